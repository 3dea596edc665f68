"""Patching scenes and images, atomic store writing, and the per-patch summary tables."""

import numpy as np
import pytest
import xarray as xr

from ubf_core.config import file_checksum, params_hash
from ubf_core.data.patches import PatchSpec, extract_patches, patch_origins, rgb_patches
from ubf_core.data.stores import open_store, write_store
from ubf_core.data.summary import band_table, patch_table
from ubf_core.errors import UBFInputError


def test_origins_cover_the_scene_and_respect_stride():
    spec = PatchSpec(size=32, stride=16, cover_edges=True)
    origins = patch_origins(100, 70, spec)
    rows = sorted({r for r, _ in origins})
    cols = sorted({c for _, c in origins})
    assert rows == [0, 16, 32, 48, 64, 68]
    assert cols == [0, 16, 32, 38]
    covered = np.zeros((100, 70), bool)
    for r, c in origins:
        covered[r:r + 32, c:c + 32] = True
    assert covered.all()
    assert len(patch_origins(100, 70, PatchSpec(32, 16, cover_edges=False))) == 5 * 3


def test_patch_larger_than_scene_names_the_scene():
    with pytest.raises(UBFInputError, match=r"salton-sea: patch size 64 is larger than the scene \(51×56"):
        patch_origins(51, 56, PatchSpec(64, 32), where="salton-sea")


def test_extract_patches_copies_the_right_pixels():
    cube = np.arange(3 * 10 * 12, dtype=np.float32).reshape(3, 10, 12)
    p = extract_patches(cube, [(0, 0), (2, 5)], 4)
    assert p.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(p[1], cube[:, 2:6, 5:9])


def test_rgb_patches_resize_and_crop():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
    arr, origins = rgb_patches(img, PatchSpec(32, 32), "resize")
    assert arr.shape == (1, 3, 32, 32) and arr.dtype == np.float32 and origins == [(0, 0)]
    assert 0.0 <= arr.min() and arr.max() <= 1.0
    arr, origins = rgb_patches(img, PatchSpec(64, 43), "crop")
    assert arr.shape == (9, 3, 64, 64)
    np.testing.assert_allclose(arr[4], img[43:107, 43:107].transpose(2, 0, 1) / 255.0)
    with pytest.raises(UBFInputError, match="rgb.mode"):
        rgb_patches(img, PatchSpec(32, 32), "stretch")


def test_rgb_patches_crop_after_resize():
    """crop with resize_to tiles the resized image: 150 px -> 64 px, patches of 32 every 16 px = 3 x 3."""
    from PIL import Image

    img = np.random.default_rng(1).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    arr, origins = rgb_patches(img, PatchSpec(32, 16), "crop", resize_to=64)
    assert arr.shape == (9, 3, 32, 32) and origins[-1] == (32, 32)
    small = np.asarray(Image.fromarray(img).resize((64, 64), Image.Resampling.LANCZOS))
    np.testing.assert_allclose(arr[4], small[16:48, 16:48].transpose(2, 0, 1) / 255.0)
    with pytest.raises(UBFInputError, match="rgb.resize_to"):
        rgb_patches(img, PatchSpec(32, 16), "crop", resize_to=16)


def _store(n=3, bands=5):
    data = np.random.default_rng(1).random((n, bands, 4, 4), dtype=np.float32)
    return xr.Dataset({"reflectance": (("patch", "wavelength", "y", "x"), data)},
                      coords={"wavelength": np.linspace(398, 698, bands),
                              "source": ("patch", np.array(["a"] * n, dtype=object))})


def test_write_store_is_atomic_and_one_patch_per_chunk(tmp_path):
    path = tmp_path / "s.zarr"
    write_store(_store(), path)
    ds = open_store(path)
    assert ds["reflectance"].data.chunksize == (1, 5, 4, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]  # no staging folder left behind
    # a failing rewrite leaves the old store untouched
    bad = _store(n=4).chunk({"patch": 1})

    def fail_on_third(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 2:
            raise RuntimeError("worker died")
        return block

    bad["reflectance"].data = bad["reflectance"].data.map_blocks(fail_on_third, dtype=np.float32)
    with pytest.raises(RuntimeError, match="worker died"):
        write_store(bad, path)
    assert open_store(path).sizes["patch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]


def test_open_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(UBFInputError, match="store not found"):
        open_store(tmp_path / "nothing.zarr")


def test_patch_table_finds_nan_inf_and_range():
    ds = _store()
    ds["reflectance"][1, 2, 0, 0] = np.nan
    ds["reflectance"][2, 0, 1, 1] = np.inf
    ds["reflectance"][0, 0, 0, 0] = 7.0
    t = patch_table(ds.chunk({"patch": 1}), "reflectance")
    assert list(t["n_nan"]) == [0, 1, 0] and list(t["n_inf"]) == [0, 0, 1]
    assert t.loc[0, "max"] == 7.0 and np.isfinite(t.loc[2, "max"])
    assert (t["height"] == 4).all() and (t["n_channels"] == 5).all()


def test_band_table_flags_a_shifted_grid():
    ds = _store()
    t = band_table(ds, np.linspace(398, 698, 5) + np.array([0, 0, 0.5, 0, 0]))
    assert t["abs_diff_nm"].round(3).tolist() == [0, 0, 0.5, 0, 0]
    t = band_table(ds, np.linspace(398, 698, 6))
    assert len(t) == 6 and np.isnan(t["wavelength_nm"].iloc[-1])


def test_params_hash_and_checksum(tmp_path):
    assert params_hash({"a": 1, "b": 2}) == params_hash({"b": 2, "a": 1})
    assert params_hash({"a": 1}) != params_hash({"a": 2})
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("1")
    before = file_checksum(tmp_path / "d")
    (tmp_path / "d" / "x.txt").write_text("2")
    assert file_checksum(tmp_path / "d") != before


def _write_patch_store(tmp_path, name, store, layout, ranges):
    """Write ``store``'s reflectance as the prepare tasks do: each (start, stop) range by its own
    write_patch_chunks call, then finish_patch_store; returns the store's path."""
    from ubf_core.data.stores import finish_patch_store, replace_path, write_patch_chunks

    chunks, target = tmp_path / f"{name}.chunks", tmp_path / f"{name}.staged"
    pending = {}
    data = store["reflectance"].values
    for a, b in ranges:
        pending.update(write_patch_chunks(data[a:b], a, chunks, layout))
    finish_patch_store(store.drop_vars("reflectance"), "reflectance", store["reflectance"].dims, data.shape,
                       data.dtype, {"units": "1"}, layout, chunks, pending, target)
    replace_path(target, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("codec", ["none", "blosc-lz4", "zstd"])
@pytest.mark.parametrize("shard", [1, 3, 64])
def test_patch_chunks_are_the_files_zarr_writes(tmp_path, codec, shard):
    """write_patch_chunks + finish_patch_store, from ranges that split shards (10 patches: 4, 1, 0 and 5), give the
    store xarray/Zarr write with the same encoding: same values, byte for byte the same chunk and shard files; one
    patch per Dask chunk when opened, one file per shard."""
    from ubf_core.data.stores import PatchLayout

    layout = PatchLayout(shard, codec)
    store = _store(n=10)
    path = _write_patch_store(tmp_path, "s.zarr", store, layout, [(0, 4), (4, 5), (5, 5), (5, 10)])
    ref = tmp_path / "ref.zarr"
    store.assign(reflectance=store["reflectance"].assign_attrs(units="1")).to_zarr(
        ref, zarr_format=3, consolidated=False, encoding={"reflectance": layout.encoding(store["reflectance"].shape)})
    ds = open_store(path)
    xr.testing.assert_identical(ds.compute(), xr.open_zarr(ref, consolidated=False).compute())
    assert ds["reflectance"].data.chunksize == (1, 5, 4, 4)
    files = sorted(f.relative_to(path) for f in path.rglob("*") if f.is_file())
    assert files == sorted(f.relative_to(ref) for f in ref.rglob("*") if f.is_file())
    for f in files:
        if f.parts[0] == "reflectance" and f.name != "zarr.json":
            assert (path / f).read_bytes() == (ref / f).read_bytes(), f
    assert len(list((path / "reflectance" / "c").iterdir())) == -(-10 // shard)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("s.")] == ["s.zarr"]   # chunk folder moved in


def test_one_patch_read_from_a_sharded_store(tmp_path):
    """Patch k of the sharded store (64 patches per file, last shard partial) reads the same values as from the
    store with a file per patch, and alone: Zarr reads the shard's index and that patch's byte range."""
    from ubf_core.data.stores import PatchLayout

    store = _store(n=70, bands=7)
    one = open_store(_write_patch_store(tmp_path, "one.zarr", store, PatchLayout(1), [(0, 70)]))
    sharded = open_store(_write_patch_store(tmp_path, "sharded.zarr", store, PatchLayout(64), [(0, 30), (30, 70)]))
    assert len(list((tmp_path / "sharded.zarr" / "reflectance" / "c").iterdir())) == 2
    for k in (0, 31, 63, 64, 69):
        np.testing.assert_array_equal(sharded["reflectance"][k].values, one["reflectance"][k].values)
        np.testing.assert_array_equal(sharded["reflectance"][k].values, store["reflectance"][k].values)
    # a patch is read and decoded alone: with patch 0's bytes in shard 0 garbled, patch 1 still reads
    shard0 = tmp_path / "sharded.zarr" / "reflectance" / "c" / "0" / "0" / "0" / "0"
    data = bytearray(shard0.read_bytes())
    data[:16] = b"\xff" * 16
    shard0.write_bytes(bytes(data))
    lazy = xr.open_dataset(tmp_path / "sharded.zarr", engine="zarr", consolidated=False, chunks=None)
    np.testing.assert_array_equal(lazy["reflectance"][1].values, store["reflectance"][1].values)
    with pytest.raises(Exception):
        lazy["reflectance"][0].values


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "64", None])
def test_shard_patches_must_be_a_whole_number_of_patches(bad):
    from ubf_core.data.stores import PatchLayout

    for make in (lambda: PatchSpec(32, 16, shard_patches=bad),
                 lambda: PatchSpec.from_params({"size": 32, "stride": 16, "shard_patches": bad}),
                 lambda: PatchLayout(bad)):
        with pytest.raises(UBFInputError) as err:
            make()
        assert str(err.value).startswith("params.yaml: patch.shard_patches must be a whole number of patches")
        assert "\n" not in str(err.value) and repr(bad) in str(err.value)
    assert PatchSpec(32, 16, shard_patches=np.int64(8)).shard_patches == 8
