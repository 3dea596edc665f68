"""The synthesis store on disk, and its upload to a remote file system.

A Zarr v3 store:

- ``reflectance`` (sample, wavelength, y, x) float32, reflectance (the endmembers' units, never renormalised), or
  with ``synthesis.units: radiance`` radiance (reflectance × the model's factor t; the variable keeps its name, the
  attrs ``units`` and its ``long_name`` say which);
- ``abundance`` (sample, endmember, y, x) float32, on the simplex — the generated maps themselves;
- coordinates ``wavelength`` (nm), ``label`` (class name, "" when unconditional) and ``seed`` (the sample's own
  seed, derived from the base seed and the sample index) along ``sample``;
- ``block_done`` (block,) uint8: 1 once every array of the block is written;
- ``brightness`` (sample, y, x) float32, dimensionless, > 0 — only when the generator makes it: the generated
  per-pixel scale s each pixel was mixed with (Ŷ' = s·Ê·Â');
- attrs ``units`` (reflectance | radiance) and ``brightness``: ``none`` (the unmixing model has no brightness term),
  ``generated`` (the generator makes s: the ``brightness`` variable) or ``1`` (the unmixing model has the term but
  the generator does not make s: every pixel is mixed with s = 1).

One chunk along ``sample`` per block. The store is built under a hidden ``.<name>.partial`` folder beside the output
(:func:`partial_path`); the output path appears only when every block is done (:func:`finish_store`, a rename).
A remote output (an fsspec URL such as ``s3://bucket/x.zarr``) is built in a local staging folder
(:func:`staging_path`) and uploaded whole once complete (:func:`publish_store`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import xarray as xr

from ubf_core.data.stores import replace_path
from ubf_core.errors import UBFInputError
from ubf_core.synthesis.job import SynthesisJob


BRIGHTNESS_NOTE = ("1: the unmixing model has a brightness term but the generator does not generate it; every "
                   "pixel is mixed with s = 1")
GENERATED_BRIGHTNESS_NOTE = ("generated: the generator makes the brightness s of every pixel (variable brightness), "
                             "mixed as s * E a")


def brightness_note(job: SynthesisJob) -> str:
    """The store attribute ``brightness`` of ``job``: none, generated, or the s = 1 note."""
    if job.generated_brightness:
        return GENERATED_BRIGHTNESS_NOTE
    return BRIGHTNESS_NOTE if job.brightness else "none"


def blocks(n: int, block_size: int) -> list[tuple[int, int]]:
    """[start, stop) sample ranges of the blocks."""
    return [(a, min(n, a + block_size)) for a in range(0, n, block_size)]


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def create_store(path: Path, job: SynthesisJob, block_size: int, k: int, attrs: dict) -> None:
    """Write the metadata, coordinates and an all-zero ``block_done`` of a new partial store."""
    import dask.array as da

    n, (h, w), c = job.n, job.size, len(job.wavelengths_nm)
    ds = xr.Dataset(
        {"reflectance": (("sample", "wavelength", "y", "x"),
                         da.zeros((n, c, h, w), dtype=np.float32, chunks=(block_size, c, h, w)),
                         {"long_name": "reflectance", "units": "1"}),
         "abundance": (("sample", "endmember", "y", "x"),
                       da.zeros((n, k, h, w), dtype=np.float32, chunks=(block_size, k, h, w)),
                       {"long_name": "abundance", "units": "1"}),
         "block_done": (("block",), np.zeros(len(blocks(n, block_size)), dtype=np.uint8))},
        coords={"wavelength": ("wavelength", np.asarray(job.wavelengths_nm, dtype=float), {"units": "nm"}),
                "endmember": ("endmember", np.arange(k)),
                "label": ("sample", np.asarray([str(v) for v in job.labels], dtype=object)),
                "seed": ("sample", job.seeds)},
        attrs={**attrs, "config_hash": job.config_hash(), "block_size": int(block_size), "n": job.n,
               "base_seed": int(job.seed), "snr_db": "none" if job.snr_db is None else float(job.snr_db),
               "sampler": json.dumps(dict(job.sampler or {}), sort_keys=True), "complete": False,
               "units": job.units, "brightness": brightness_note(job)})
    enc = {"reflectance": {"chunks": (block_size, c, h, w)}, "abundance": {"chunks": (block_size, k, h, w)},
           "block_done": {"chunks": (1,)}}
    if job.generated_brightness:
        ds["brightness"] = (("sample", "y", "x"), da.zeros((n, h, w), dtype=np.float32, chunks=(block_size, h, w)),
                            {"long_name": "brightness scale s of reflectance = s * E a", "units": "1"})
        enc["brightness"] = {"chunks": (block_size, h, w)}
    ds.to_zarr(path, mode="w", consolidated=False, zarr_format=3, encoding=enc, compute=False)
    import zarr

    zarr.open_group(path, mode="r+")["block_done"][:] = 0


def pending_blocks(path: str | Path) -> list[int]:
    """Indices of the blocks of a partial store whose ``block_done`` flag is still 0."""
    import zarr

    done = zarr.open_group(Path(path), mode="r")["block_done"][:]
    return [int(i) for i in np.flatnonzero(done == 0)]


def finish_store(partial: str | Path, out: str | Path) -> None:
    """Mark a partial store whose every block is done as complete and move it to ``out`` (replacing what is
    there); a block still missing is a UBFInputError and the partial store stays for the next run."""
    import zarr

    partial = Path(partial)
    left = pending_blocks(partial)
    if left:
        raise UBFInputError(partial, f"blocks {left[:5]} are not done after the run")
    zarr.open_group(partial, mode="r+").attrs["complete"] = True
    replace_path(partial, Path(out))


def store_config_hash(path: str | Path) -> str | None:
    """The ``config_hash`` attribute of a synthesis store (complete or partial), None when it has none."""
    return store_attrs(Path(path)).get("config_hash")


def store_attrs(path: Path) -> dict:
    """The attributes of a synthesis store (complete or partial); a UBFInputError when it cannot be read."""
    import zarr

    try:
        return dict(zarr.open_group(path, mode="r").attrs)
    except Exception as err:  # noqa: BLE001 - zarr raises several types for a broken store
        raise UBFInputError(path, f"not a readable synthesis store ({type(err).__name__}: {err})") from None


# ------------------------------------------------------------------------------------------------ remote outputs
def staging_path(staging_root: str | Path, url: str, config_hash: str) -> Path:
    """Where the store of the remote output ``url`` is built before its upload: ``<staging_root>/<hash of the URL
    and the configuration>/<the URL's last name>`` (a stopped run resumes there; the folder goes after the upload)."""
    digest = hashlib.sha256(f"{url}|{config_hash}".encode()).hexdigest()[:16]
    name = url.rstrip("/").rsplit("/", 1)[-1] or "store.zarr"
    return Path(staging_root) / digest / name


def remote_fs(url: str):
    """The fsspec file system of ``url``; a clear error when its implementation is not installed."""
    protocol = url.split("://", 1)[0].lower()
    try:
        import fsspec

        return fsspec.filesystem(protocol)
    except ImportError as err:
        if protocol in ("s3", "s3a"):
            raise UBFInputError(url, "s3:// needs s3fs installed (pip install s3fs); credentials and endpoint come "
                                     "from the usual AWS variables (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL …)") from None
        raise UBFInputError(url, f"{protocol}:// needs a package that is not installed ({err})") from None
    except ValueError as err:
        raise UBFInputError(url, f"{protocol}:// is not a file system fsspec knows ({err})") from None


def remote_config_hash(url: str) -> str | None:
    """``config_hash`` of the store at a remote URL (from its root zarr.json), None when there is none."""
    fs = remote_fs(url)
    meta = url.rstrip("/") + "/zarr.json"
    if not fs.exists(meta):
        return None
    return (json.loads(fs.cat_file(meta)).get("attributes") or {}).get("config_hash")


def publish_store(local: Path, url: str) -> None:
    """Upload the complete store ``local`` to ``url``; its root zarr.json goes last, so a store that is not
    whole never opens there. An older store at ``url`` is removed first."""
    fs = remote_fs(url)
    url = url.rstrip("/")
    if fs.exists(url):
        fs.rm(url, recursive=True)
    files = sorted(p for p in Path(local).rglob("*") if p.is_file())
    root_meta = Path(local) / "zarr.json"
    rest = [p for p in files if p != root_meta]
    if rest:
        fs.put([str(p) for p in rest], [f"{url}/{p.relative_to(local).as_posix()}" for p in rest])
    fs.put_file(str(root_meta), f"{url}/zarr.json")
