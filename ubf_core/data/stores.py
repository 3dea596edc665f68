"""Writing and opening Zarr stores (format 3) atomically.

A store is an ``xarray.Dataset`` written with one patch per chunk. It is first written under a temporary name
beside its final path and renamed into place only when complete, so a reader never sees a half-written store and a
failed run leaves the previous store untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import xarray as xr

from ubf_core.errors import UBFInputError


@contextmanager
def staging_dir(final: str | Path) -> Iterator[Path]:
    """A scratch folder beside ``final`` (same file system, so renames are atomic), removed on exit."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    finally:
        # a failed Dask write raises at its first failed chunk while other threads may still be writing theirs
        # (and recreating folders): remove again until the folder stays gone
        for _ in range(20):
            shutil.rmtree(tmp, ignore_errors=True)
            time.sleep(0.05)
            if not tmp.exists():
                break


def replace_path(src: Path, dst: Path) -> None:
    """Move the complete ``src`` to ``dst``, replacing what was there (two renames; the old copy is removed last)."""
    dst = Path(dst)
    old = None
    if dst.exists():
        old = dst.parent / f".{dst.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


def chunk_encoding(ds: xr.Dataset, dim: str = "patch") -> dict:
    """Encoding giving every data variable along ``dim`` one chunk per element (one patch per chunk), compressed
    with Zarr's default codec (Zstandard)."""
    return {name: {"chunks": tuple(1 if d == dim else var.sizes[d] for d in var.dims)}
            for name, var in ds.data_vars.items() if dim in var.dims}


def to_zarr_per_element(ds: xr.Dataset, path: str | Path, dim: str = "patch", compute: bool = True) -> None:
    """Write ``ds`` to a new Zarr v3 store at ``path`` (not atomic), one chunk per element of ``dim``.

    Dask-backed variables are rechunked to match and computed by the active Dask scheduler while writing;
    with ``compute=False`` only their metadata is written (coordinates are always written).
    """
    ds = ds.copy()
    ds = ds.assign_coords({name: c.compute() for name, c in ds.coords.items() if c.chunks is not None})
    for name, var in ds.data_vars.items():
        if dim in var.dims and var.chunks is not None:
            ds[name] = var.chunk({d: (1 if d == dim else -1) for d in var.dims})
    for var in ds.variables.values():  # encoding from a source store would carry its chunks: start clean
        var.encoding = {}
    ds.to_zarr(path, mode="w", consolidated=False, zarr_format=3, encoding=chunk_encoding(ds, dim),
               compute=compute)


def _chunk_layout(array_dir: Path) -> dict:
    """What decides an array's chunk files: codecs, chunk grid, chunk-key encoding, fill value (from zarr.json)."""
    meta = json.loads((array_dir / "zarr.json").read_text())
    return {key: meta.get(key) for key in ("codecs", "chunk_grid", "chunk_key_encoding", "fill_value", "data_type")}


def _move_chunks(src: Path, dst: Path, axis: int, offset: int) -> None:
    """Rename the chunk files of array folder ``src`` into ``dst``, shifting the chunk index along ``axis`` by
    ``offset`` (Zarr v3 default chunk keys ``c/<i0>/<i1>/…``; one element per chunk along ``axis``)."""
    root = src / "c"
    if not root.is_dir():
        return   # every chunk equals the fill value: nothing was written
    for file in root.rglob("*"):
        if file.is_file():
            index = list(file.relative_to(root).parts)
            index[axis] = str(int(index[axis]) + offset)
            target = dst.joinpath("c", *index)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(file, target)


def write_store_from_parts(parts: list[Path], path: str | Path, attrs: dict, dim: str = "patch") -> xr.Dataset:
    """Concatenate part stores along ``dim`` (in list order) into one store at ``path``, atomically, without
    rewriting their data.

    The parts must have been written by :func:`to_zarr_per_element` with the same settings (one chunk per element
    of ``dim``, the same codecs; checked). The new store's metadata and coordinates are written under a temporary
    name, the parts' chunk files are moved into it (renamed, their index along ``dim`` shifted by the part's
    offset), and the store is renamed into place: the data are written once, by the part tasks. The parts are
    emptied. Returns the new store, opened lazily.
    """
    path = Path(path)
    datasets = [xr.open_zarr(p, consolidated=False) for p in parts]
    ds = xr.concat(datasets, dim=dim, data_vars="all", coords="different", compat="equals", join="exact")
    ds.attrs = dict(attrs)
    names = [name for name in ds.data_vars if dim in ds[name].dims]
    bounds = [0]
    for d in datasets:
        bounds.append(bounds[-1] + d.sizes[dim])
    with staging_dir(path) as tmp:
        target = tmp / path.name
        to_zarr_per_element(ds, target, dim, compute=False)   # metadata and coordinates only
        for name in names:
            want = {k: v for k, v in _chunk_layout(target / name).items() if k != "chunk_grid"}
            for part in parts:
                have = {k: v for k, v in _chunk_layout(part / name).items() if k != "chunk_grid"}
                if have != want:
                    raise UBFInputError(part, f"{name}: written with other chunk settings than the store being "
                                              f"assembled ({have} ≠ {want})")
        for part, start in zip(parts, bounds[:-1]):
            for name in names:
                _move_chunks(part / name, target / name, ds[name].dims.index(dim), start)
        replace_path(target, path)
    return open_store(path)


def write_store(ds: xr.Dataset, path: str | Path, dim: str = "patch") -> Path:
    """Write ``ds`` to a Zarr v3 store at ``path`` atomically, one chunk per element of ``dim``."""
    path = Path(path)
    with staging_dir(path) as tmp:
        to_zarr_per_element(ds, tmp / path.name, dim)
        replace_path(tmp / path.name, path)
    return path


def open_store(path: str | Path, chunks: dict | None = None) -> xr.Dataset:
    """Open a store lazily (Dask arrays, one chunk per patch); a missing or unreadable store is a UBFInputError."""
    path = Path(path)
    if not path.exists():
        raise UBFInputError(path, "store not found (run the stage that writes it first)")
    try:
        return xr.open_zarr(path, consolidated=False, chunks={} if chunks is None else chunks)
    except Exception as err:  # zarr raises several types for a broken store
        raise UBFInputError(path, f"not a readable Zarr store ({type(err).__name__}: {err})") from None
