"""Reading params.yaml, hashing configuration, checksumming inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from ubf_core.errors import UBFInputError
from ubf_core.settings import check_complete, check_keys


def load_params(path: str | Path, complete: bool = True) -> dict[str, Any]:
    """Load a params.yaml file into a dict, checked against the schema of params files (:mod:`ubf_core.settings`).

    A missing or malformed file, an unknown key (with the closest known one), a value of the wrong type or (with
    ``complete``) a missing key is a one-line UBFInputError naming the file and the dotted key. Defaults live in
    the repository's params.yaml alone: a params file gives every key (``complete=False`` leaves that out, for a
    partial file that no stage runs on).

    A file with a top-level ``extends: OTHER.yaml`` (relative to its folder) holds only what differs from OTHER:
    it is merged onto it (mappings key by key, any other value replaced), e.g. params.long.yaml on params.yaml.
    Each file's own keys are checked as it is read (errors name the file that has the key), the merge as a whole.
    """
    params = _read_params(Path(path), ())
    if complete:
        check_complete(params, path)
    return params


def _read_params(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise UBFInputError(path, "params file not found")
    if path.resolve() in seen:
        raise UBFInputError(path, "extends itself (a cycle of 'extends:')")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UBFInputError(path, f"not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(params, dict):
        raise UBFInputError(path, "expected a mapping of sections at the top level")
    base = params.pop("extends", None)
    check_keys(params, path)
    if base is None:
        return params
    if not isinstance(base, str):
        raise UBFInputError(path, f"extends must name one params file, got {base!r}")
    return _merged(_read_params(path.parent / base, seen + (path.resolve(),)), params)


def _merged(base: dict, overlay: dict) -> dict:
    """``overlay`` onto ``base``: nested mappings merged key by key, every other value replaced."""
    out = dict(base)
    for key, value in overlay.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def section(params: dict[str, Any], name: str, where: str | Path = "params.yaml") -> dict[str, Any]:
    """Return ``params[name]`` or raise a UBFInputError saying which section is missing."""
    value = params.get(name)
    if not isinstance(value, dict):
        raise UBFInputError(where, f"section '{name}' is missing or not a mapping")
    return value


def params_hash(*parts: Any) -> str:
    """A short, stable hash (16 hex digits of SHA-256) of JSON-serialisable configuration."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_checksum(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file, or of a folder's files (names and contents, in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            while block := fh.read(chunk_bytes):
                digest.update(block)
    return digest.hexdigest()
