"""Prefect tasks of the data stages: prepare the HSI store and the RGB store."""

from __future__ import annotations

import warnings

from prefect import get_run_logger, task

from tasks.params import dataset_path, resolve
from ubf_core.config import params_hash, section
from ubf_core.data.patches import PatchSpec
from ubf_core.data.prepare import prepare_hsi_store, prepare_rgb_store
from ubf_core.io import HSISource, list_rgb_images
from ubf_core.parallel import dask_client
from ubf_core.spectral import SpectralGrid


def _dask_options(params: dict) -> dict:
    d = section(params, "dask")
    return {"scheduler_address": d["scheduler_address"], "n_workers": int(d["n_workers"]),
            "threads_per_worker": int(d["threads_per_worker"]), "processes": bool(d["processes"])}


@task(name="prepare-hsi-store")
def prepare_hsi(params: dict) -> dict:
    """Read, align (to params grid) and patch every scene of params hsi.datasets into the hsi store (catalog.yaml)."""
    log = get_run_logger()
    hsi, grid_p, patch_p = section(params, "hsi"), section(params, "grid"), section(params, "patch")
    root = resolve(params, ".")
    sources = [HSISource.from_params(name, spec, root) for name, spec in hsi["datasets"].items()]
    grid = SpectralGrid.from_params(grid_p)
    out = dataset_path(params, "hsi")
    attrs = {"params_hash": params_hash(grid_p, hsi, patch_p), "seed": params.get("seed")}
    spec = PatchSpec.from_params(patch_p)   # a bad patch param stops here, before the cluster starts
    with dask_client(**_dask_options(params)) as client, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = prepare_hsi_store(
            sources, grid, spec, out, client=client,
            tolerance_nm=float(grid_p["coverage_tolerance_nm"]), max_nan_fraction=float(hsi["max_nan_fraction"]),
            on_rejected=str(hsi["on_rejected"]), attrs=attrs, base_dir=root)
    for w in caught:
        log.warning(str(w.message))
    log.info("wrote %s: %d patches from %d scenes (%d rejected)", out, summary.n_patches, len(sources),
             len(summary.rejected))
    return {"store": str(out), "n_patches": summary.n_patches, "rejected": summary.rejected}


@task(name="prepare-rgb-store")
def prepare_rgb(params: dict) -> dict:
    """List the RGB folder (class = sub-folder) and patch every image into the rgb store (catalog.yaml)."""
    log = get_run_logger()
    rgb, patch_p = section(params, "rgb"), section(params, "patch")
    folder = resolve(params, rgb["path"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = list_rgb_images(folder, on_bad=str(rgb["on_bad_image"]))
    skipped = {}
    for w in caught:
        log.warning(str(w.message))
        skipped[str(w.message).split(": ", 1)[0]] = str(w.message).split(": ", 1)[-1]
    out = dataset_path(params, "rgb")
    attrs = {"params_hash": params_hash(rgb, patch_p), "seed": params.get("seed")}
    spec = PatchSpec.from_params({**patch_p, "stride": rgb["stride"] or patch_p["stride"]})
    with dask_client(**_dask_options(params)) as client:
        summary = prepare_rgb_store(
            images, folder, spec, out, client=client, mode=str(rgb["mode"]), resample=str(rgb["resample"]),
            resize_to=rgb["resize_to"], images_per_task=int(rgb["images_per_task"]),
            attrs=attrs, skipped=skipped, base_dir=resolve(params, "."))
    log.info("wrote %s: %d patches from %d images (%d skipped)", out, summary.n_patches, len(images), len(skipped))
    return {"store": str(out), "n_patches": summary.n_patches, "skipped": skipped}
