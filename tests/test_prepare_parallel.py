"""Dask parallelism of the prepare step: the store does not depend on the workers, and an existing scheduler
given by address is used instead of a local cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from distributed import LocalCluster

from ubf_core.data.patches import PatchSpec
from ubf_core.data.prepare import prepare_hsi_store, prepare_rgb_store
from ubf_core.errors import UBFInputError
from ubf_core.io import HSISource, list_rgb_images
from ubf_core.parallel import dask_client
from ubf_core.spectral import REMOTE_SENSING

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def _sources(names):
    return [HSISource.from_params(n, PARAMS["hsi"]["datasets"][n], REPO) for n in names]


def _assert_same(a: Path, b: Path):
    x, y = xr.open_zarr(a, consolidated=False).load(), xr.open_zarr(b, consolidated=False).load()
    xr.testing.assert_identical(x.drop_attrs(), y.drop_attrs())


def test_one_worker_and_a_remote_two_worker_cluster_give_the_same_store(tmp_path):
    sources = _sources(["abu-beach-2", "salton-sea", "samson", "jasper-ridge"])
    spec = PatchSpec(32, 16)
    with dask_client(n_workers=1, processes=False) as client:
        prepare_hsi_store(sources, REMOTE_SENSING, spec, tmp_path / "one.zarr", client=client)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with dask_client(scheduler_address=cluster.scheduler_address) as client:
            assert len(client.scheduler_info()["workers"]) == 2
            summary = prepare_hsi_store(sources, REMOTE_SENSING, spec, tmp_path / "two.zarr", client=client)
    _assert_same(tmp_path / "one.zarr", tmp_path / "two.zarr")
    ds = xr.open_zarr(tmp_path / "two.zarr", consolidated=False)
    # patches come in params order, each scene's in row-major order of origins
    order = [str(s) for s in ds["source"].values]
    assert order == sorted(order, key=["abu-beach-2", "salton-sea", "samson", "jasper-ridge"].index)
    assert summary.n_patches == ds.sizes["patch"]
    assert ds["reflectance"].encoding["chunks"] == (1, 59, 32, 32)


def test_rgb_store_is_independent_of_batching(tmp_path):
    images = list_rgb_images(REPO / "data/rgb/aid")[:50]
    with dask_client(n_workers=2, processes=False) as client:
        for per_task in (7, 64):
            prepare_rgb_store(images, REPO / "data/rgb/aid", PatchSpec(32, 32), tmp_path / f"rgb{per_task}.zarr",
                              client=client, images_per_task=per_task)
    _assert_same(tmp_path / "rgb7.zarr", tmp_path / "rgb64.zarr")
    ds = xr.open_zarr(tmp_path / "rgb7.zarr", consolidated=False)
    assert [str(v) for v in ds["label"].values] == [im.label for im in images]
    assert ds.attrs["classes"] == sorted({im.label for im in images})
    np.testing.assert_array_equal(ds["label_id"].values, [ds.attrs["classes"].index(im.label) for im in images])


def test_unreachable_scheduler_names_its_address():
    with pytest.raises(UBFInputError, match=r"tcp://127.0.0.1:1: Dask scheduler not reachable"):
        with dask_client(scheduler_address="tcp://127.0.0.1:1", connect_timeout_s=2):
            pass


def test_rejected_scene_is_skipped_and_recorded(tmp_path):
    # salton-sea's shared copy has ~9% NaN in its bad bands only; force NaN pixels into good bands instead
    import scipy.io as sio

    d = sio.loadmat(REPO / "data/hsi/salton_sea_roi.mat")
    d["I"][:30, :, 10] = np.nan  # 30 of 51 rows: 59% of the pixels
    sio.savemat(tmp_path / "salton_nan.mat", {k: v for k, v in d.items() if not k.startswith("__")})
    spec = {**PARAMS["hsi"]["datasets"]["salton-sea"], "path": str(tmp_path / "salton_nan.mat")}
    sources = [HSISource.from_params("salton-nan", spec, REPO)] + _sources(["abu-beach-2"])
    with dask_client(n_workers=1, processes=False) as client:
        with pytest.warns(UserWarning, match="salton-nan: scene rejected"):
            summary = prepare_hsi_store(sources, REMOTE_SENSING, PatchSpec(32, 16), tmp_path / "s.zarr",
                                        client=client, max_nan_fraction=0.1)
        assert set(summary.rejected) == {"salton-nan"}
        ds = xr.open_zarr(tmp_path / "s.zarr", consolidated=False)
        assert set(str(s) for s in ds["source"].values) == {"abu-beach-2"}
        assert "salton-nan" in ds.attrs["rejected_sources"]
        with pytest.raises(UBFInputError, match="salton-nan: scene rejected"):
            prepare_hsi_store(sources, REMOTE_SENSING, PatchSpec(32, 16), tmp_path / "e.zarr", client=client,
                              max_nan_fraction=0.1, on_rejected="error")
        assert not (tmp_path / "e.zarr").exists()
