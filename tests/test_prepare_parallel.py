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


def _envi_scene(tmp_path: Path, name: str, edit=None) -> HSISource:
    """A 41 x 50 px ENVI cube (70 bands, 380-725 nm) with NaN pixels across what become block boundaries."""
    from ubf_core.io import write_envi

    rng = np.random.default_rng(3)
    wl = np.arange(70) * 5.0 + 380.0
    cube = (rng.random((70, 41, 50), dtype=np.float32) * 0.5).astype(np.float32)
    cube[:, 10:13, 5:9] = np.nan          # masked pixels: drop the patches over them
    cube[4, 17, 30] = np.inf              # one more (a non-finite value in one band)
    if edit:
        edit(cube)
    da = xr.DataArray(cube, dims=("wavelength", "y", "x"),
                      coords={"wavelength": wl, "fwhm": ("wavelength", np.full(70, 5.0))}, attrs={"source": name})
    write_envi(da, tmp_path / f"{name}.hdr")
    return HSISource.from_params(name, {"path": str(tmp_path / f"{name}.hdr"), "units": "reflectance"}, tmp_path)


def _chunk_files(store: Path) -> dict:
    return {str(f.relative_to(store)): f.read_bytes() for f in sorted(store.rglob("*")) if f.is_file()}


def test_a_scene_in_blocks_and_sharded_gives_the_same_store(tmp_path):
    """A scene read in blocks of rows by several tasks, stored 5 patches per shard file, equals the store of one
    task per scene and one file per patch (values, coordinates, attrs: NaN pixels counted once, dropped patches);
    the same inputs on 1 or 2 workers give the same files, byte for byte."""
    from ubf_core.data.prepare import scene_blocks

    scene = _envi_scene(tmp_path, "gen")
    sources = [scene] + _sources(["samson"])
    row_bytes = 70 * 50 * 4
    blocks = scene_blocks(scene, PatchSpec(8, 4), tile_bytes=12 * row_bytes)
    assert len(blocks) == 5 and [b.own for b in blocks] == [(0, 8), (8, 16), (16, 24), (24, 32), (32, 41)]
    assert blocks[-1].window == (32, 41) and blocks[0].window == (0, 12)
    assert len(scene_blocks(scene, PatchSpec(8, 4))) == 1                      # small: one task
    # 12 patches a row, 48 a shard: blocks of 4 patch rows (twice the budget at most), so they fill whole shards
    assert [len(b.origin_rows) for b in scene_blocks(scene, PatchSpec(8, 4, shard_patches=48), 12 * row_bytes)] \
        == [4, 4, 2]
    assert len(scene_blocks(_sources(["samson"])[0], PatchSpec(8, 4), 1)) == 1  # .mat: read whole
    stores = {}
    for name, workers, shard, tile in [("one", 1, 1, 2**40), ("blocks", 2, 5, 12 * row_bytes),
                                       ("again", 1, 5, 12 * row_bytes)]:
        with dask_client(n_workers=workers, processes=False) as client:
            summary = prepare_hsi_store(sources, REMOTE_SENSING, PatchSpec(8, 4, shard_patches=shard),
                                        tmp_path / f"{name}.zarr", client=client, max_nan_fraction=0.1,
                                        tile_bytes=tile)
        stores[name] = summary
    a = xr.open_zarr(tmp_path / "one.zarr", consolidated=False).compute()
    b = xr.open_zarr(tmp_path / "blocks.zarr", consolidated=False).compute()
    xr.testing.assert_identical(a, b)
    info = a.attrs["sources"][0]
    assert info["nan_pixels"] == 3 * 4 + 1 and info["shape"] == [70, 41, 50] and info["dropped_patches"] > 0
    assert stores["blocks"].sources == stores["one"].sources
    assert b["reflectance"].encoding["shards"] == (5, 59, 8, 8)
    assert _chunk_files(tmp_path / "blocks.zarr") == _chunk_files(tmp_path / "again.zarr")


def test_scene_checks_see_the_whole_scene_not_a_block(tmp_path):
    """A band all NaN in one block's rows only is no error (its pixels are masked; too many: the scene is
    rejected, counted over all blocks); a band all NaN in every block is the error naming it, as with one task."""
    def half_band(cube):
        cube[7, :20] = np.nan      # 20 of 41 rows masked (the other NaN pixels lie in them)

    def whole_band(cube):
        cube[7] = np.nan

    sources = [_envi_scene(tmp_path, "half", half_band), _envi_scene(tmp_path, "abu", None)]
    tile = 12 * 70 * 50 * 4
    with dask_client(n_workers=2, processes=False) as client:
        summary = prepare_hsi_store(sources, REMOTE_SENSING, PatchSpec(8, 4), tmp_path / "a.zarr", client=client,
                                    max_nan_fraction=0.6, tile_bytes=tile)
        assert not summary.rejected and summary.sources[0]["nan_pixels"] == 20 * 50
        with pytest.warns(UserWarning, match=r"half: scene rejected and skipped: 48\.8% of pixels are NaN"):
            summary = prepare_hsi_store(sources, REMOTE_SENSING, PatchSpec(8, 4), tmp_path / "b.zarr",
                                        client=client, max_nan_fraction=0.4, tile_bytes=tile)
        assert set(summary.rejected) == {"half"}
        assert set(xr.open_zarr(tmp_path / "b.zarr", consolidated=False)["source"].values) == {"abu"}
        bad = [_envi_scene(tmp_path, "nanband", whole_band)]
        for t in (tile, 2**40):
            with pytest.raises(UBFInputError,
                               match=r"^nanband: band 7 \(415\.0 nm\) is all NaN; list it in bad_bands$"):
                prepare_hsi_store(bad, REMOTE_SENSING, PatchSpec(8, 4), tmp_path / "bad.zarr", client=client,
                                  tile_bytes=t)
            assert not (tmp_path / "bad.zarr").exists()
            assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bad.zarr")]
