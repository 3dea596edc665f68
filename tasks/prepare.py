"""Prefect tasks of the data stages: prepare the HSI store and the RGB store."""

from __future__ import annotations

import warnings

from prefect import get_run_logger, task

from tasks.params import resolve
from ubf_core.config import params_hash, section
from ubf_core.data.patches import PatchSpec
from ubf_core.data.prepare import prepare_hsi_store, prepare_rgb_store
from ubf_core.io import HSISource, list_rgb_images
from ubf_core.parallel import dask_client
from ubf_core.spectral import SpectralGrid


def _dask_options(params: dict) -> dict:
    d = params.get("dask", {}) or {}
    return {"scheduler_address": d.get("scheduler_address"), "n_workers": int(d.get("n_workers", 2)),
            "threads_per_worker": int(d.get("threads_per_worker", 1)), "processes": bool(d.get("processes", True))}


@task(name="prepare-hsi-store")
def prepare_hsi(params: dict) -> dict:
    """Read, align (to params grid) and patch every scene of params hsi.datasets into stores.hsi."""
    log = get_run_logger()
    hsi, grid_p, patch_p = section(params, "hsi"), section(params, "grid"), section(params, "patch")
    root = resolve(params, ".")
    sources = [HSISource.from_params(name, spec, root) for name, spec in (hsi.get("datasets") or {}).items()]
    grid = SpectralGrid.from_params(grid_p)
    out = resolve(params, section(params, "stores")["hsi"])
    attrs = {"params_hash": params_hash(grid_p, hsi, patch_p), "seed": params.get("seed")}
    with dask_client(**_dask_options(params)) as client, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = prepare_hsi_store(
            sources, grid, PatchSpec.from_params(patch_p), out, client=client,
            tolerance_nm=float(grid_p.get("coverage_tolerance_nm", 5.0)),
            max_nan_fraction=float(hsi.get("max_nan_fraction", 0.1)),
            on_rejected=str(hsi.get("on_rejected", "skip")), attrs=attrs, base_dir=root)
    for w in caught:
        log.warning(str(w.message))
    log.info("wrote %s: %d patches from %d scenes (%d rejected)", out, summary.n_patches, len(sources),
             len(summary.rejected))
    return {"store": str(out), "n_patches": summary.n_patches, "rejected": summary.rejected}


@task(name="prepare-rgb-store")
def prepare_rgb(params: dict) -> dict:
    """List the RGB folder (class = sub-folder) and patch every image into stores.rgb."""
    log = get_run_logger()
    rgb, patch_p = section(params, "rgb"), section(params, "patch")
    folder = resolve(params, rgb["path"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = list_rgb_images(folder, on_bad=str(rgb.get("on_bad_image", "skip")))
    skipped = {}
    for w in caught:
        log.warning(str(w.message))
        skipped[str(w.message).split(": ", 1)[0]] = str(w.message).split(": ", 1)[-1]
    out = resolve(params, section(params, "stores")["rgb"])
    attrs = {"params_hash": params_hash(rgb, patch_p), "seed": params.get("seed")}
    with dask_client(**_dask_options(params)) as client:
        summary = prepare_rgb_store(
            images, folder, PatchSpec.from_params({**patch_p, "stride": rgb.get("stride") or patch_p.get("stride")}),
            out, client=client, mode=str(rgb.get("mode", "resize")), resample=str(rgb.get("resample", "lanczos")),
            resize_to=rgb.get("resize_to"), images_per_task=int(rgb.get("images_per_task", 64)),
            attrs=attrs, skipped=skipped, base_dir=resolve(params, "."))
    log.info("wrote %s: %d patches from %d images (%d skipped)", out, summary.n_patches, len(images), len(skipped))
    return {"store": str(out), "n_patches": summary.n_patches, "skipped": skipped}
