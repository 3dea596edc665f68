"""The labelled real set of the classification experiment: from scene patches, or from a user's own folder.

**(i) Scene patches.** The pipeline cuts each hyperspectral scene into patches (n, C, H, W) and records, per patch,
the id of its source scene (e.g. ``"abu-airport-1"``). A scene's class comes from an explicit mapping
``{scene: class}`` or from the prefix rule ``<data set>-<class>-<number>`` (``abu-airport-1`` → ``airport``,
:func:`scene_class`). Patches of one scene are strongly correlated, so the test set is made of **whole scenes**
(:func:`split_by_scene`); :func:`pick_test_scenes` chooses one test scene per class by seed, leaving at least one
scene of every class for training.

**(ii) A folder of labelled patches (HSRS-SC style).** Layout read by :func:`read_labelled_folder`::

    root/
      wavelengths.txt        band centres in nm, one number per line (or whitespace/comma separated; lines that
                             start with # are comments) — or wavelengths.json: a list of numbers or
                             {"wavelength_nm": [...]} (also accepted: "wavelength", "wavelengths")
      airport/               one sub-folder per class; the folder name is the class name
        patch_0001.npy       one patch per file: a (C, H, W) array, reflectance
        patch_0002.tif       … or any cube the project's reader takes (GeoTIFF .tif/.tiff, ENVI .hdr, .mat
                             holding one H×W×C array) — read by ubf_core.io; their own wavelengths are used
                             when they carry some and must then agree with the root file
      beach/
        ...

Every patch must have the same shape (C, H, W) and C must equal the number of wavelengths. Hidden files and
folders (starting with ``.``) are ignored. Each patch is its own "scene" (source id ``<class>/<file stem>``), since
such sets carry no scene grouping. :func:`write_labelled_folder` writes this layout (``.npy``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ubf_core.errors import UBFInputError

__all__ = ["LabelledPatches", "PATCH_EXTENSIONS", "WAVELENGTH_FILES", "class_labels", "labelled_from_scenes",
           "pick_test_scenes", "read_labelled_folder", "scene_class", "scene_classes", "split_by_scene",
           "write_labelled_folder"]

PATCH_EXTENSIONS = (".npy", ".tif", ".tiff", ".hdr", ".mat")
WAVELENGTH_FILES = ("wavelengths.txt", "wavelengths.json")
_SCENE_RE = re.compile(r"^(?P<dataset>[^-]+)-(?P<cls>.+)-(?P<number>\d+)$")


def _str_array(values) -> np.ndarray:
    """A 1-D numpy unicode array from any sequence of ids (lists, object arrays, numpy 2 StringDType from Zarr)."""
    return np.array([str(v) for v in np.asarray(values, dtype=object).reshape(-1)], dtype=str)


@dataclass
class LabelledPatches:
    """A labelled patch set.

    x: (n, C, H, W) float32 reflectance; y: (n,) int64 class indices into ``class_names``; class_names: list of K
    names; sources: (n,) str, the scene (or file) each patch comes from; wavelength: (C,) float64 band centres in
    nm, or None when unknown.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    sources: np.ndarray
    wavelength: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float32)
        self.y = np.asarray(self.y, dtype=np.int64)
        self.sources = _str_array(self.sources)
        self.class_names = [str(c) for c in self.class_names]
        if self.x.ndim != 4:
            raise ValueError(f"patches must be (n, C, H, W), got shape {self.x.shape}")
        if not len(self.x) == len(self.y) == len(self.sources):
            raise ValueError(f"{len(self.x)} patches but {len(self.y)} labels and {len(self.sources)} sources")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= len(self.class_names)):
            raise ValueError(f"labels must lie in [0, {len(self.class_names)})")
        if self.wavelength is not None:
            self.wavelength = np.asarray(self.wavelength, dtype=np.float64)
            if self.wavelength.shape != (self.x.shape[1],):
                raise ValueError(f"{self.wavelength.size} wavelengths for {self.x.shape[1]} bands")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray | Sequence[int]) -> "LabelledPatches":
        """The patches at ``index`` (integer indices or a boolean mask), same classes and wavelengths."""
        index = np.asarray(index)
        return LabelledPatches(self.x[index], self.y[index], list(self.class_names), self.sources[index],
                               self.wavelength)

    def class_counts(self) -> dict[str, int]:
        """Patches per class, {class name: count}, every class listed (0 when absent)."""
        counts = np.bincount(self.y, minlength=len(self.class_names))
        return {c: int(n) for c, n in zip(self.class_names, counts)}


# ---------------------------------------------------------------------------------------------- (i) scene patches

def scene_class(scene: str) -> str:
    """The class of a scene id by the prefix rule ``<data set>-<class>-<number>``: ``abu-airport-1`` → ``airport``.

    A class may itself contain dashes (``abu-dense-urban-2`` → ``dense-urban``). An id that does not follow the rule
    is a ``UBFInputError`` naming it.
    """
    match = _SCENE_RE.match(str(scene))
    if match is None:
        raise UBFInputError(str(scene), "scene id does not follow <data set>-<class>-<number> (e.g. abu-airport-1); "
                                        "give an explicit scene → class mapping")
    return match.group("cls")


def scene_classes(sources: Iterable[str], mapping: Mapping[str, str] | None = None) -> dict[str, str]:
    """{scene: class} for every distinct scene id in ``sources`` (any iterable of str, e.g. the (n,) per-patch ids).

    mapping: an explicit {scene: class}; scenes not in it fall back to the prefix rule (:func:`scene_class`).
    Scenes are listed in sorted order.
    """
    mapping = dict(mapping or {})
    return {s: str(mapping[s]) if s in mapping else scene_class(s) for s in sorted(set(map(str, sources)))}


def class_labels(sources: Sequence[str], mapping: Mapping[str, str] | None = None,
                 class_names: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Per-patch class indices for per-patch scene ids.

    sources: (n,) scene ids; mapping: see :func:`scene_classes`; class_names: the class order (default: sorted
    class names found). Returns (y (n,) int64, class_names). A scene whose class is not in ``class_names`` is a
    ``UBFInputError`` naming the scene and listing the classes.
    """
    sources = _str_array(sources)
    classes = scene_classes(sources, mapping)
    names = list(class_names) if class_names is not None else sorted(set(classes.values()))
    lookup = {c: i for i, c in enumerate(names)}
    for scene, cls in classes.items():
        if cls not in lookup:
            raise UBFInputError(scene, f"class {cls!r} is not among the classes {', '.join(names)}")
    y = np.array([lookup[classes[s]] for s in sources], dtype=np.int64)
    return y, names


def labelled_from_scenes(x: np.ndarray, sources: Sequence[str], mapping: Mapping[str, str] | None = None,
                         class_names: Sequence[str] | None = None,
                         wavelength: np.ndarray | None = None) -> LabelledPatches:
    """A :class:`LabelledPatches` from scene patches x (n, C, H, W) reflectance and their scene ids (n,).

    Classes from ``mapping`` / the prefix rule (:func:`class_labels`); wavelength: (C,) band centres in nm.
    """
    y, names = class_labels(sources, mapping, class_names)
    return LabelledPatches(x, y, names, _str_array(sources), wavelength)


def split_by_scene(sources: Sequence[str], test_scenes: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices (int64 arrays into ``sources``) such that every patch of a test scene is in test and
    no patch of a test scene is in training.

    sources: (n,) per-patch scene ids; test_scenes: scene ids. A test scene that no patch comes from is a
    ``UBFInputError`` listing the known scenes.
    """
    sources = _str_array(sources)
    test = sorted(set(map(str, test_scenes)))
    known = sorted(set(sources))
    missing = [s for s in test if s not in known]
    if missing:
        raise UBFInputError(", ".join(missing), f"test scene not found among the patch sources; known scenes: "
                                                f"{', '.join(known)}")
    is_test = np.isin(sources, test)
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)


def pick_test_scenes(sources: Iterable[str], seed: int = 0, mapping: Mapping[str, str] | None = None) -> list[str]:
    """One test scene per class, chosen at random by ``seed``, so that every class keeps ≥1 scene for training.

    sources: scene ids (per patch or distinct); mapping: see :func:`scene_classes`. Returns the test scenes sorted.
    A class with fewer than 2 scenes is a ``UBFInputError`` naming the class and its scenes.
    """
    by_class: dict[str, list[str]] = {}
    for scene, cls in scene_classes(sources, mapping).items():
        by_class.setdefault(cls, []).append(scene)
    short = {c: s for c, s in by_class.items() if len(s) < 2}
    if short:
        detail = "; ".join(f"{c!r} has only {', '.join(s)}" for c, s in sorted(short.items()))
        raise UBFInputError("test scenes", f"every class needs ≥2 scenes (one for test, one for training): {detail}")
    rng = np.random.default_rng(int(seed))
    return sorted(scenes[int(rng.integers(len(scenes)))] for _, scenes in sorted(by_class.items()))


# ------------------------------------------------------------------------------------- (ii) folder of labelled patches

def _parse_numbers(path: Path) -> np.ndarray:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise UBFInputError(path, f"not valid JSON ({err.msg}, line {err.lineno})") from None
        if isinstance(data, dict):
            key = next((k for k in ("wavelength_nm", "wavelength", "wavelengths") if k in data), None)
            if key is None:
                raise UBFInputError(path, "JSON object needs a list under 'wavelength_nm' (or 'wavelength', "
                                          "'wavelengths')")
            data = data[key]
        try:
            values = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError):
            raise UBFInputError(path, "wavelengths must be a list of numbers (nm)") from None
    else:
        items = [tok for line in text.splitlines() if not line.strip().startswith("#")
                 for tok in line.replace(",", " ").split()]
        try:
            values = np.array([float(t) for t in items], dtype=np.float64)
        except ValueError:
            raise UBFInputError(path, "wavelengths must be numbers (nm), one per line") from None
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise UBFInputError(path, "wavelengths must be a non-empty list of finite numbers (nm)")
    if np.any(np.diff(values) <= 0):
        raise UBFInputError(path, "wavelengths must increase strictly")
    return values


def _read_patch(path: Path, grid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(C, H, W) float32 reflectance and, for self-describing formats, the file's own wavelengths (nm)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise UBFInputError(path, f"not a readable .npy array ({err})") from None
        if arr.ndim != 3:
            raise UBFInputError(path, f"patch has {arr.ndim} dimensions (shape {'×'.join(map(str, arr.shape))}), "
                                      f"expected a (C, H, W) array")
        if arr.dtype.kind not in "fiu":
            raise UBFInputError(path, f"patch has dtype {arr.dtype}, expected numbers")
        return arr.astype(np.float32), None
    from ubf_core.io import HSISource, read_hsi

    if suffix == ".mat":
        if grid is None:
            raise UBFInputError(path, ".mat patches need the wavelength file (wavelengths.txt or wavelengths.json) in "
                                      "the root folder")
        cube = read_hsi(HSISource(name=path.stem, path=path, wavelengths=[float(v) for v in grid]))
        return cube.values, None
    from ubf_core.io.hsi import assemble
    from ubf_core.io.raster import read_envi_raw, read_geotiff_raw

    raw, real = (read_geotiff_raw(path), path) if suffix in (".tif", ".tiff") else read_envi_raw(path)
    if raw.wavelengths is None and grid is None:
        raise UBFInputError(path, "the file carries no wavelengths and the root folder has no wavelength file "
                                  "(wavelengths.txt or wavelengths.json)")
    spec = None if raw.wavelengths is not None else [float(v) for v in grid]
    cube = assemble(HSISource(name=path.stem, path=path, wavelengths=spec), raw, real)
    return cube.values, (np.asarray(cube["wavelength"].values) if raw.wavelengths is not None else None)


def _patch_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in PATCH_EXTENSIONS)


def read_labelled_folder(root: str | Path, class_names: Sequence[str] | None = None,
                         wavelength_tolerance_nm: float = 0.5) -> LabelledPatches:
    """Read a folder of labelled patches laid out as in the module docstring (ii).

    root: the folder; class_names: which class folders to read and in which order (default: every sub-folder,
    sorted by name); wavelength_tolerance_nm: how far a file's own wavelengths may lie from the root grid.
    Returns a :class:`LabelledPatches` (x (n, C, H, W) float32, wavelength (C,) nm). Problems are a one-line
    ``UBFInputError`` naming the file or folder: no class folder, an empty class folder, a patch of another shape,
    a missing or bad wavelength file, a band-count mismatch, NaN values.
    """
    root = Path(root)
    if not root.is_dir():
        raise UBFInputError(root, "labelled-patch folder not found")
    wl_files = [root / n for n in WAVELENGTH_FILES if (root / n).is_file()]
    grid = _parse_numbers(wl_files[0]) if wl_files else None
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if class_names is not None:
        known = {p.name: p for p in folders}
        missing = [c for c in class_names if str(c) not in known]
        if missing:
            raise UBFInputError(root / str(missing[0]), f"class folder not found; class folders: "
                                                        f"{', '.join(known) or 'none'}")
        folders = [known[str(c)] for c in class_names]
    if not folders:
        raise UBFInputError(root, "no class sub-folders (expected root/<class>/<patch>.npy)")
    xs, ys, sources = [], [], []
    first: tuple[Path, tuple] | None = None
    for k, folder in enumerate(folders):
        files = _patch_files(folder)
        if not files:
            raise UBFInputError(folder, f"class folder {folder.name!r} holds no patch files "
                                        f"({', '.join(PATCH_EXTENSIONS)})")
        for path in files:
            arr, own_wl = _read_patch(path, grid)
            if first is None:
                first = (path, arr.shape)
                if grid is None and own_wl is None:
                    raise UBFInputError(root / WAVELENGTH_FILES[0], "wavelength file missing: .npy patches need "
                                        "wavelengths.txt (nm, one per line) or wavelengths.json in the root folder")
                if grid is None:
                    grid = own_wl
                if grid.size != arr.shape[0]:
                    where = wl_files[0] if wl_files else path
                    raise UBFInputError(where, f"{grid.size} wavelengths but the patch {path.name} has "
                                               f"{arr.shape[0]} bands")
            elif arr.shape != first[1]:
                raise UBFInputError(path, f"patch has shape {'×'.join(map(str, arr.shape))}, expected "
                                          f"{'×'.join(map(str, first[1]))} (C×H×W) like {first[0]}")
            if own_wl is not None and (own_wl.shape != grid.shape or
                                       np.max(np.abs(own_wl - grid)) > wavelength_tolerance_nm):
                raise UBFInputError(path, f"the file's wavelengths ({own_wl[0]:.1f}–{own_wl[-1]:.1f} nm) differ from "
                                          f"the set's grid ({grid[0]:.1f}–{grid[-1]:.1f} nm) by more than "
                                          f"{wavelength_tolerance_nm} nm")
            n_bad = int(np.count_nonzero(~np.isfinite(arr)))
            if n_bad:
                raise UBFInputError(path, f"patch holds {n_bad} NaN/infinite values")
            xs.append(arr)
            ys.append(k)
            sources.append(f"{folder.name}/{path.stem}")
    return LabelledPatches(np.stack(xs), np.array(ys), [f.name for f in folders], np.array(sources), grid)


def write_labelled_folder(root: str | Path, patches: LabelledPatches, digits: int = 5) -> Path:
    """Write ``patches`` as root/<class>/<class>_<index>.npy ((C, H, W) float32) plus root/wavelengths.txt (nm).

    The inverse of :func:`read_labelled_folder` (classes without patches get no folder). Needs
    ``patches.wavelength``. Returns ``root``.
    """
    root = Path(root)
    if patches.wavelength is None:
        raise ValueError("write_labelled_folder needs the wavelengths (nm) of the patches")
    root.mkdir(parents=True, exist_ok=True)
    (root / "wavelengths.txt").write_text("# band centres, nm\n" + "\n".join(repr(float(v)) for v in patches.wavelength)
                                          + "\n", encoding="utf-8")
    counters: dict[int, int] = {}
    for arr, k in zip(patches.x, patches.y):
        name = patches.class_names[int(k)]
        i = counters[int(k)] = counters.get(int(k), -1) + 1
        folder = root / name
        folder.mkdir(exist_ok=True)
        np.save(folder / f"{name}_{i:0{digits}d}.npy", np.ascontiguousarray(arr, dtype=np.float32))
    return root
