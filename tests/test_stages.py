"""The data stages as Prefect flows (a real Prefect engine), bad inputs at the stage level, and `dvc repro`
end to end on the embedded sample in a copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
    assert rgb.sizes["patch"] == 240 and rgb.sizes["y"] == 32
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
             "wavelengths": {"variable": "wl", "unit": "um"}}
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


def _copy_repo(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)


@pytest.mark.slow
def test_dvc_repro_end_to_end_and_second_run_reruns_nothing(tmp_path):
    work = tmp_path / "repo"
    work.mkdir()
    _copy_repo(work)
    # the embedded sample and every stage as shipped, with fewer training epochs and samples (test time)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["unmixing"]["train"]["epochs"] = 3
    params["generator"]["train"]["epochs"] = 2
    params["synthesis"].update(n=8, block_size=4)
    for name in ("vae", "gan"):
        params["evaluation"]["generators"][name]["train"]["epochs"] = 2
    params["evaluation"]["features"]["epochs"] = 2
    params["classification"].update(seeds=[0, 1], n_per_class=8, train={"epochs": 2, "batch_size": 16})
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(tmp_path / "prefect_home"), "DVC_NO_ANALYTICS": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=work, check=True, env=env)
    dvc = [sys.executable, "-m", "dvc"]
    first = subprocess.run(dvc + ["repro"], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for stage in ("prepare_hsi", "prepare_rgb", "validate"):
        assert f"Running stage '{stage}'" in first.stdout
    hsi = xr.open_zarr(work / "stores/hsi.zarr", consolidated=False)
    rgb = xr.open_zarr(work / "stores/rgb.zarr", consolidated=False)
    assert hsi.sizes["wavelength"] == 59 and hsi.sizes["patch"] > 100
    assert len(set(hsi["source"].values.astype(object))) == 11
    assert rgb.sizes["patch"] == 240 and len(rgb.attrs["classes"]) == 8
    assert (work / "reports/validation.md").is_file()
    for stage in ("train_unmixing", "infer_abundance"):
        assert f"Running stage '{stage}'" in first.stdout
    ab = xr.open_zarr(work / "stores/abundance_rgb.zarr", consolidated=False)
    assert ab.sizes["patch"] == 240 and ab.attrs["model_version"] == 1
    np.testing.assert_allclose(ab["abundance"].sum("endmember").values, 1.0, atol=1e-5)
    assert float(ab["abundance"].min()) >= 0.0
    assert yaml.safe_load((work / "reports/unmixing.json").read_text())["champion_version"] == 1
    for stage in ("train_generator", "synthesize"):
        assert f"Running stage '{stage}'" in first.stdout
    assert yaml.safe_load((work / "reports/generator.json").read_text())["model_version"] == 1
    params = yaml.safe_load((work / "params.yaml").read_text())["synthesis"]
    syn = xr.open_zarr(work / "stores/synthetic.zarr", consolidated=False)
    assert syn["reflectance"].dims == ("sample", "wavelength", "y", "x")
    assert syn.sizes["sample"] == params["n"] and syn.sizes["wavelength"] == 59
    assert set(syn["label"].values) == set(params["class_mix"]) and syn.attrs["complete"] is True
    a = syn["abundance"].values
    assert a.min() >= 0.0 and np.allclose(a.sum(axis=1), 1.0, atol=1e-5)
    E = xr.open_zarr(work / "stores/endmembers.zarr", consolidated=False)["endmembers"].values
    np.testing.assert_allclose(syn["reflectance"].values[0], np.einsum("ck,khw->chw", E, a[0]), rtol=1e-4, atol=1e-6)
    assert len(list((work / "reports/synthetic_examples").glob("*.tif"))) == params["export"]["n"]
    for stage in ("evaluate", "classify", "report"):
        assert f"Running stage '{stage}'" in first.stdout
    metrics = json.loads((work / "reports/metrics.json").read_text())
    assert set(metrics["generation"]) == {"real_train", "ddpm", "vae", "gan", "gmm"}
    for row in metrics["generation"].values():
        assert 0.0 < row["F_p"] <= 1.0 + 1e-6 and 0.0 <= row["precision"] <= 1.0 and np.isfinite(row["frechet"])
    assert metrics["generation"]["ddpm"]["sum_to_one_max"] < 1e-4
    shown = subprocess.run(dvc + ["metrics", "show", "--json"], cwd=work, env=env, capture_output=True, text=True)
    assert shown.returncode == 0 and "reports/metrics.json" in shown.stdout and "F_p" in shown.stdout
    cls = json.loads((work / "reports/classification.json").read_text())
    for arm in ("real", "augment", "synthetic"):
        for model in ("cnn", "spectral_resnet"):
            assert 0.0 <= cls["summary"][f"{model}/{arm}/oa_mean"] <= 1.0
    assert set(cls["test_counts"]) == {"airport", "beach", "urban"}
    table = (work / "reports/classification.md").read_text()
    assert "| synthetic | cnn |" in table and "89.5" in table
    page = (work / "reports/report.html").read_text()
    assert page.count('src="data:image/png;base64,') >= 4 and "| synthetic" not in page and ">synthetic<" in page
    for report in (work / "reports").glob("*.json"):
        assert str(work) not in report.read_text(), report
    second = subprocess.run(dvc + ["repro"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout.lower()
