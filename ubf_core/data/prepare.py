"""Preparing the stores: HSI scenes → aligned reflectance patches; RGB images → RGB patches.

Each scene (or batch of RGB images) is one Dask task that writes a *part* store into a staging folder, in the final
store's layout; the parts are then concatenated, in input order, into the final store by renaming their chunk files
(:func:`ubf_core.data.stores.write_store_from_parts`: the data are written once), so its content does not depend on
the number of workers or on the order in which tasks finish.

Store layouts (one patch per chunk, Zarr format 3):

HSI store
    ``reflectance`` (patch, wavelength, y, x) float32, unitless: surface reflectance, or for a data set declared
    ``units: radiance`` its at-sensor radiance times the data set's ``scale`` (the variable keeps its name);
    coordinates ``wavelength`` (nm), ``fwhm`` (nm), ``source`` (data-set name), ``units`` (reflectance |
    radiance, the data set's declaration), ``sensor`` (the radiance data set's sensor group, "" for reflectance),
    ``origin_y``/``origin_x`` (patch top-left pixel in the source scene); attrs ``units`` {data set: units}.
RGB store
    ``rgb`` (patch, channel, y, x) float32 in [0, 1], display-encoded (sRGB, as stored in the images);
    coordinates ``channel`` (R, G, B), ``label`` (class = sub-folder name), ``label_id`` (index into the sorted
    class list, attrs ``classes``), ``source`` (file path relative to the RGB folder), ``origin_y``/``origin_x``.
Both carry provenance attrs: ``params_hash``, ``source_checksums`` and what was dropped or rejected. File and folder
paths in them are relative to ``base_dir`` (the params file's folder, in the stages) when inside it, so two copies of
a project write the same attrs.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from ubf_core.config import file_checksum
from ubf_core.data.patches import PatchSpec, extract_patches, patch_origins, rgb_patches
from ubf_core.data.stores import staging_dir, to_zarr_per_element, write_store_from_parts
from ubf_core.errors import UBFInputError
from ubf_core.io import HSISource, RGBImage, read_hsi, read_rgb
from ubf_core.io.source import require_units
from ubf_core.spectral import SceneRejected, SpectralGrid, resample_to_grid


@dataclass
class PrepareSummary:
    """What a prepare run did: patches written, per-source figures, sources rejected (with the reason)."""

    store: str
    n_patches: int
    sources: list[dict] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, default=str)


def _path_label(path: str | Path, base_dir: str | Path | None) -> str:
    """``path`` relative to ``base_dir`` when it lies inside it (and base_dir is given), else as given."""
    if base_dir is not None:
        try:
            return Path(path).resolve().relative_to(Path(base_dir).resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


def hsi_scene_patches(aligned: xr.DataArray, spec: PatchSpec, source_id: str, units: str = "reflectance",
                      sensor: str = "") -> tuple[xr.Dataset, int]:
    """Cut an aligned cube (wavelength, y, x) into a patch Dataset; patches with too many NaN pixels are dropped.
    ``units`` (reflectance | radiance) and ``sensor`` (radiance: its sensor group) become per-patch coordinates.

    Returns (dataset with dims (patch, wavelength, y, x), number of patches dropped).
    """
    origins = patch_origins(aligned.sizes["y"], aligned.sizes["x"], spec, where=source_id)
    patches = extract_patches(aligned.values, origins, spec.size)
    nan_pixels = np.isnan(patches).any(axis=1).sum(axis=(1, 2))
    keep = nan_pixels <= spec.max_nan_pixels
    origins_kept = np.asarray(origins, dtype=np.int32).reshape(-1, 2)[keep]
    ds = xr.Dataset(
        {"reflectance": (("patch", "wavelength", "y", "x"), patches[keep])},
        coords={
            "wavelength": ("wavelength", aligned["wavelength"].values, {"units": "nm"}),
            "fwhm": ("wavelength", aligned["fwhm"].values, {"units": "nm"}),
            "source": ("patch", np.array([source_id] * int(keep.sum()), dtype=object)),
            "units": ("patch", np.array([units] * int(keep.sum()), dtype=object)),
            "sensor": ("patch", np.array([sensor] * int(keep.sum()), dtype=object)),
            "origin_y": ("patch", origins_kept[:, 0]),
            "origin_x": ("patch", origins_kept[:, 1]),
        },
    )
    ds["reflectance"].attrs.update(units="1", long_name="reflectance")
    return ds, int((~keep).sum())


def _write_part(ds: xr.Dataset, part: Path) -> None:
    """Write one part store, unless its staging folder is gone (the run failed elsewhere and was cleaned up)."""
    if part.parent.is_dir():
        to_zarr_per_element(ds, part)   # in the final store's layout: assembled by renaming its chunk files


def _hsi_part(source: HSISource, grid: SpectralGrid, spec: PatchSpec, tolerance_nm: float,
              max_nan_fraction: float, part: Path, base_dir: str | Path | None = None) -> dict:
    """One scene → one part store. Runs on a Dask worker. Returns the scene's figures (or its rejection)."""
    cube = read_hsi(source)
    info = {"source": source.name, "path": _path_label(source.path, base_dir),
            "shape": [int(n) for n in cube.shape], "sha256": file_checksum(source.path)}
    try:
        aligned = resample_to_grid(cube, grid, tolerance_nm=tolerance_nm, max_nan_fraction=max_nan_fraction,
                                   name=source.name)
    except SceneRejected as err:
        return {**info, "rejected": err.problem}
    ds, dropped = hsi_scene_patches(aligned, spec, source.name, source.units or "reflectance", source.sensor or "")
    info.update(nan_pixels=int(aligned.attrs.get("nan_pixels", 0)), dropped_patches=dropped,
                n_patches=int(ds.sizes["patch"]))
    if ds.sizes["patch"]:
        _write_part(ds, part)
    return info


def _run_parts(client, fn: Callable, items: Sequence, parts: list[Path], desc: str, **kwargs) -> list:
    """Map ``fn(item, ..., part)`` over items on the Dask client with a progress bar; results in input order."""
    from distributed import as_completed, wait

    futures = [client.submit(fn, item, part=part, pure=False, **kwargs) for item, part in zip(items, parts)]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(futures)
    try:
        for fut in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="task"):
            results[index[fut.key]] = fut.result()  # re-raises the worker's exception (UBFInputError pickles)
    except BaseException:
        # let tasks already running finish before the staging folder is removed (a cancelled task that is still
        # executing would recreate it); a failure shows up at the first failed task, the rest is cleanup
        wait(futures)
        raise
    return results


def prepare_hsi_store(sources: Sequence[HSISource], grid: SpectralGrid, spec: PatchSpec, out: str | Path, *,
                      client, tolerance_nm: float = 5.0, max_nan_fraction: float = 0.1,
                      on_rejected: str = "skip", attrs: dict | None = None,
                      base_dir: str | Path | None = None) -> PrepareSummary:
    """Read, align and patch every scene (one Dask task per scene) and write the HSI store at ``out``.

    A bad scene raises UBFInputError (naming it) and nothing is written. A scene whose NaN share exceeds
    ``max_nan_fraction`` is skipped with a warning (``on_rejected="skip"``) or stops the run (``"error"``).
    Scene paths in the attrs are relative to ``base_dir`` when inside it, else absolute.
    """
    if not sources:
        raise UBFInputError("params.yaml", "hsi.datasets is empty: no HSI scene to prepare")
    require_units(sources)
    out = Path(out)
    with staging_dir(out) as tmp:
        parts = [tmp / f"part-{i:05d}.zarr" for i in range(len(sources))]
        results = _run_parts(client, _hsi_part, sources, parts, "prepare_hsi: scenes", grid=grid, spec=spec,
                             tolerance_nm=tolerance_nm, max_nan_fraction=max_nan_fraction, base_dir=base_dir)
        rejected = {r["source"]: r["rejected"] for r in results if "rejected" in r}
        for name, why in rejected.items():
            if on_rejected == "error":
                raise UBFInputError(name, f"scene rejected: {why}")
            warnings.warn(f"{name}: scene rejected and skipped: {why}", stacklevel=2)
        kept = [p for p, r in zip(parts, results) if "rejected" not in r and r["n_patches"] > 0]
        if not kept:
            raise UBFInputError(out, "no patch left to write: every scene was rejected or gave only NaN patches")
        attrs = {
            **(attrs or {}),
            "kind": "hsi_patches",
            "grid": {"start_nm": grid.start_nm, "stop_nm": grid.stop_nm, "n_bands": grid.n_bands},
            "patch_size": spec.size, "patch_stride": spec.stride,
            "source_checksums": {r["source"]: r["sha256"] for r in results},
            "units": {s.name: s.units for s in sources},
            "sensors": {s.name: s.sensor for s in sources if s.sensor},
            "sources": [{k: v for k, v in r.items() if k != "sha256"} for r in results],
            "rejected_sources": rejected,
        }
        ds = write_store_from_parts(kept, out, attrs)
    return PrepareSummary(str(out), int(ds.sizes["patch"]), results, rejected)


def _rgb_part(images: Sequence[RGBImage], classes: list[str], root: Path, spec: PatchSpec, mode: str,
              resample: str, resize_to: int | None, part: Path) -> dict:
    """A batch of RGB images → one part store. Runs on a Dask worker."""
    arrays, labels, sources, origins = [], [], [], []
    for img in images:
        rel = str(Path(img.path).relative_to(root))
        patches, orig = rgb_patches(read_rgb(img.path), spec, mode, resample, where=str(img.path),
                                    resize_to=resize_to)
        arrays.append(patches)
        labels += [img.label] * len(patches)
        sources += [rel] * len(patches)
        origins += orig
    data = np.concatenate(arrays)
    origins_arr = np.asarray(origins, dtype=np.int32).reshape(-1, 2)
    ds = xr.Dataset(
        {"rgb": (("patch", "channel", "y", "x"), data, {"long_name": "display-encoded sRGB", "units": "1"})},
        coords={
            "channel": ("channel", np.array(["R", "G", "B"], dtype=object)),
            "label": ("patch", np.array(labels, dtype=object)),
            "label_id": ("patch", np.array([classes.index(c) for c in labels], dtype=np.int16)),
            "source": ("patch", np.array(sources, dtype=object)),
            "origin_y": ("patch", origins_arr[:, 0]),
            "origin_x": ("patch", origins_arr[:, 1]),
        },
    )
    _write_part(ds, part)
    return {"n_images": len(images), "n_patches": int(data.shape[0])}


def prepare_rgb_store(images: Sequence[RGBImage], root: str | Path, spec: PatchSpec, out: str | Path, *, client,
                      mode: str = "resize", resample: str = "lanczos", resize_to: int | None = None,
                      images_per_task: int = 64,
                      attrs: dict | None = None, skipped: dict[str, str] | None = None,
                      base_dir: str | Path | None = None) -> PrepareSummary:
    """Cut every RGB image into patches (batches of ``images_per_task`` per Dask task) and write the RGB store;
    ``mode``, ``resample`` and ``resize_to`` as in :func:`ubf_core.data.patches.rgb_patches`.
    The folder's path in the attrs (``source_checksums``) is relative to ``base_dir`` when inside it."""
    root = Path(root)
    if not images:
        raise UBFInputError(root, "no RGB images found")
    classes = sorted({img.label for img in images})
    batches = [list(images[i:i + images_per_task]) for i in range(0, len(images), max(1, images_per_task))]
    out = Path(out)
    with staging_dir(out) as tmp:
        parts = [tmp / f"part-{i:05d}.zarr" for i in range(len(batches))]
        _run_parts(client, _rgb_part, batches, parts, "prepare_rgb: image batches", classes=classes,
                             root=root, spec=spec, mode=mode, resample=resample, resize_to=resize_to)
        counts: dict[str, int] = {}
        for img in images:
            counts[img.label] = counts.get(img.label, 0) + 1
        attrs = {**(attrs or {}), "kind": "rgb_patches", "encoding": "sRGB display values / 255",
                 "classes": classes, "images_per_class": counts, "patch_size": spec.size, "mode": mode,
                 "patch_stride": spec.stride, "resize_to": resize_to,
                 "source_checksums": {_path_label(root, base_dir): file_checksum(root)},
                 "skipped_images": skipped or {}}
        ds = write_store_from_parts(parts, out, attrs)
    return PrepareSummary(str(out), int(ds.sizes["patch"]), [{"n_images": len(images), "classes": counts}],
                          skipped=skipped or {})
