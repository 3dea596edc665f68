"""The data catalogue (catalog.yaml at the repository root): every store and report of the pipeline by name.

Each entry gives ``path`` (relative to the catalogue's folder unless absolute), ``kind`` (zarr, json, markdown,
html, png, png-folder, folder), for Zarr stores ``dims`` (array name -> its dims), ``stage`` (the DVC stage whose out
it is; ``input`` for data tracked elsewhere, ``outside`` for paths DVC does not see) and a ``description``. Code
opens stores by name::

    catalog = Catalog.load("catalog.yaml")
    catalog.path("hsi")          # Path(".../stores/hsi.zarr")

so that each path is written once, in the catalogue. tests/test_catalog.py checks it against dvc.yaml.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ubf_core.errors import UBFInputError

CATALOG_FILE = "catalog.yaml"
#: the repository's catalogue: the one a project folder without its own catalog.yaml uses
REPO_CATALOG = Path(__file__).resolve().parents[1] / CATALOG_FILE
KINDS = ("zarr", "json", "markdown", "html", "png", "png-folder", "folder")
NOT_STAGES = ("input", "outside")      # stage values that name no DVC stage


@dataclass(frozen=True)
class Dataset:
    """One catalogue entry."""

    name: str
    path: str                          # as written in the catalogue
    kind: str
    stage: str
    dims: dict[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Catalog:
    """The catalogue's entries and the folder their relative paths resolve against."""

    root: Path
    entries: dict[str, Dataset]

    @classmethod
    def load(cls, path: str | Path, root: str | Path | None = None) -> "Catalog":
        """Read a catalogue file; relative paths resolve against ``root`` (default: the file's folder). Raises
        :class:`UBFInputError` (one line naming the file) for a missing file or a malformed entry."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise UBFInputError(path, "catalogue file not found") from None
        except yaml.YAMLError as err:
            raise UBFInputError(path, f"not valid YAML: {err}") from None
        return cls.from_dict(raw or {}, Path(root) if root is not None else path.resolve().parent, where=path)

    @classmethod
    def from_dict(cls, raw: dict, root: str | Path, where: str | Path = CATALOG_FILE) -> "Catalog":
        if not isinstance(raw, dict):
            raise UBFInputError(where, "a catalogue is a mapping of dataset names to entries")
        entries = {}
        for name, e in raw.items():
            if not isinstance(e, dict) or not e.get("path") or not e.get("kind") or not e.get("stage"):
                raise UBFInputError(where, f"entry '{name}' needs path, kind and stage")
            if e["kind"] not in KINDS:
                raise UBFInputError(where, f"entry '{name}': kind '{e['kind']}' unknown; use one of {', '.join(KINDS)}")
            dims = {str(k): tuple(map(str, v)) for k, v in (e.get("dims") or {}).items()}
            if dims and e["kind"] != "zarr":
                raise UBFInputError(where, f"entry '{name}': dims are for zarr stores, not {e['kind']}")
            entries[str(name)] = Dataset(str(name), str(e["path"]), str(e["kind"]), str(e["stage"]), dims,
                                         str(e.get("description", "")))
        return cls(Path(root), entries)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __getitem__(self, name: str) -> Dataset:
        try:
            return self.entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self.entries), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(sorted(self.entries))}"
            raise UBFInputError(CATALOG_FILE, f"no dataset '{name}' in the catalogue{hint}") from None

    def path(self, name: str) -> Path:
        """The resolved path of dataset ``name`` (relative catalogue paths against :attr:`root`)."""
        p = Path(self[name].path)
        return p if p.is_absolute() else self.root / p

    def dims(self, name: str) -> dict[str, tuple[str, ...]]:
        """The dims of dataset ``name``'s arrays, as the catalogue gives them (empty for non-Zarr entries)."""
        return dict(self[name].dims)


def project_catalog(root: str | Path) -> Catalog:
    """The data catalogue of the project folder ``root`` (a params file's folder): its own catalog.yaml, or the
    repository's when it has none; relative paths resolve against ``root``, as params paths do."""
    root = Path(root)
    own = root / CATALOG_FILE
    return Catalog.load(own if own.is_file() else REPO_CATALOG, root=root)
