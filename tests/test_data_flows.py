"""The data stages as Prefect flows (a real Prefect engine) on the embedded sample, and bad inputs at the stage
level: what each flow writes, and that a refused input writes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

REPO = Path(__file__).resolve().parents[1]


def _project(tmp_path: Path, edit=None) -> Path:
    """A params.yaml in tmp_path pointing at the repository's embedded sample; stores go to tmp_path."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for spec in params["hsi"]["datasets"].values():
        spec["path"] = str(REPO / spec["path"])
        wl = spec.get("wavelengths", {})
        if "table" in wl:
            wl["table"] = str(REPO / wl["table"])
    params["rgb"]["path"] = str(REPO / params["rgb"]["path"])
    params["dask"].update(processes=False, n_workers=1, threads_per_worker=2)
    if edit:
        edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path / "params.yaml"


def test_prepare_and_validate_flows_write_valid_stores(prefect_engine, tmp_path):
    from flows.prepare_hsi import prepare_hsi
    from flows.prepare_rgb import prepare_rgb
    from flows.validate import validate

    params = _project(tmp_path, lambda p: p["hsi"].update(datasets={k: v for k, v in p["hsi"]["datasets"].items()
                                                                    if k in ("abu-beach-2", "salton-sea")}))
    out = prepare_hsi(str(params))
    hsi = xr.open_zarr(tmp_path / "stores/hsi.zarr", consolidated=False)
    assert out["n_patches"] == hsi.sizes["patch"] > 0
    assert hsi["reflectance"].dims == ("patch", "wavelength", "y", "x")
    assert hsi.sizes["wavelength"] == 59 and hsi["wavelength"].values[[0, -1]].tolist() == [398.0, 698.0]
    assert set(hsi["source"].values.astype(object)) == {"abu-beach-2", "salton-sea"}
    assert hsi.attrs["params_hash"] and set(hsi.attrs["source_checksums"]) == {"abu-beach-2", "salton-sea"}
    assert bool(np.isfinite(hsi["reflectance"]).all())
    prepare_rgb(str(params))
    rgb = xr.open_zarr(tmp_path / "stores/rgb.zarr", consolidated=False)
    assert rgb.sizes["patch"] == 240 * 9 and rgb.sizes["y"] == 32
    assert sorted(set(rgb["label"].values.astype(object))) == rgb.attrs["classes"]
    summaries = validate(str(params))
    assert all(s["success"] for s in summaries)
    assert (tmp_path / "stores/hsi.validation.json").is_file()
    report = (tmp_path / "reports/validation.md").read_text()
    assert "PASSED" in report and "](hsi_preview.png)" in report
    from PIL import Image

    preview = Image.open(tmp_path / "reports/hsi_preview.png")
    assert preview.mode == "RGB" and preview.size[0] > 8 * 32


def test_validation_failure_names_store_expectation_and_patches(prefect_engine, tmp_path):
    from flows.prepare_hsi import prepare_hsi
    from flows.prepare_rgb import prepare_rgb
    from flows.validate import validate
    from tasks.validate import DataValidationError

    params = _project(tmp_path, lambda p: p["hsi"].update(datasets={"abu-urban-1": p["hsi"]["datasets"]["abu-urban-1"]}))
    prepare_hsi(str(params))
    prepare_rgb(str(params))
    # a stricter bound than the data meets: the suite must fail and say where
    p = yaml.safe_load(params.read_text())
    p["validation"]["reflectance_max"] = 0.3
    params.write_text(yaml.safe_dump(p))
    with pytest.raises(DataValidationError) as err:
        validate(str(params))
    msg = str(err.value)
    assert "\n" not in msg and "hsi.zarr" in msg and "expect_column_values_to_be_between(max)" in msg
    report = yaml.safe_load((tmp_path / "stores/hsi.validation.json").read_text())
    failed = [r for r in report["results"] if not r["success"]]
    assert failed and failed[0]["unexpected_patches"] and failed[0]["unexpected_sources"] == ["abu-urban-1"]
    assert "**failed**" in (tmp_path / "reports/validation.md").read_text()


def test_uncovered_range_stops_the_stage_and_writes_nothing(prefect_engine, tmp_path, shared_data):
    from flows.prepare_hsi import prepare_hsi
    from ubf_core.errors import UBFInputError

    pavia = {"path": str(shared_data / "hsi/pavia_u_downsampled.mat"), "variable": "I1", "layout": "HWC",
             "wavelengths": {"variable": "wl", "unit": "um"}, "units": "reflectance"}
    params = _project(tmp_path, lambda p: p["hsi"]["datasets"].update({"pavia-u": pavia}))
    with pytest.raises(UBFInputError, match=r"pavia-u: .*398.*not covered"):
        prepare_hsi(str(params))
    assert not (tmp_path / "stores").exists() or not any((tmp_path / "stores").iterdir())


def test_patch_larger_than_a_scene_is_an_error(prefect_engine, tmp_path):
    from flows.prepare_hsi import prepare_hsi
    from ubf_core.errors import UBFInputError

    params = _project(tmp_path, lambda p: p["patch"].update(size=64, stride=32))
    with pytest.raises(UBFInputError, match=r"salton-sea: patch size 64 is larger than the scene \(51×56"):
        prepare_hsi(str(params))
    assert not (tmp_path / "stores/hsi.zarr").exists()


@pytest.mark.parametrize("bad", [0, 2.5])
def test_shard_size_not_a_whole_number_of_patches_is_an_error(prefect_engine, tmp_path, bad):
    """patch.shard_patches 0 (no patch per shard) or 2.5 (not whole): a one-line error naming the param, before any
    data is read; nothing written."""
    from flows.prepare_hsi import prepare_hsi
    from flows.prepare_rgb import prepare_rgb
    from ubf_core.errors import UBFInputError

    params = _project(tmp_path, lambda p: p["patch"].update(shard_patches=bad))
    for flow in (prepare_hsi, prepare_rgb):
        with pytest.raises(UBFInputError, match=r"patch\.shard_patches") as err:
            flow(str(params))
        assert "\n" not in str(err.value)
    assert not (tmp_path / "stores").exists() or not any((tmp_path / "stores").iterdir())
