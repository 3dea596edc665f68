"""`dvc repro` end to end on the embedded sample in a copy of the repository (shrunk params, tests/copies.py), and
the `pipeline` flow, run in a second copy, writing the same stores."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import xarray as xr
import yaml

from copies import REPO, E2E_TIMEOUT_S, declared_outputs, pipeline_flow_run, run_base, shrunk_copy, stage_env


@pytest.fixture(scope="module")
def dvc_repro(tmp_path_factory):
    """One `make repro` (infra/repro.py: `dvc repro` with one shared local Prefect server) of the whole pipeline
    (shrunk params) in a copy of the repository, shared by the tests that check it: (copy, env, the finished
    process)."""
    tmp = tmp_path_factory.mktemp("dvc_repro")
    work = shrunk_copy(tmp / "repo")
    env = stage_env(tmp / "prefect_home")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=work, check=True, env=env)
    start = time.monotonic()
    first = subprocess.run([sys.executable, "infra/repro.py"], cwd=work, env=env, capture_output=True,
                           text=True, timeout=E2E_TIMEOUT_S)
    print(f"\n[make repro: {time.monotonic() - start:.0f} s]")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return work, env, first


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_and_writes_valid_outputs(dvc_repro):
    work, env, first = dvc_repro
    dvc = [sys.executable, "-m", "dvc"]
    # every stage reported to the one server infra/repro.py started, and that server is gone afterwards
    started = re.search(r"repro: Prefect server at http://127\.0\.0\.1:\d+/api \(pid (\d+),", first.stdout)
    assert started and f"repro: Prefect server (pid {started[1]}) stopped" in first.stdout, first.stdout[-2000:]
    assert "Starting temporary server" not in first.stdout + first.stderr
    pid = int(started[1])
    try:  # gone, a zombie (ZombieProcess is a NoSuchProcess) or a later process that reused the pid
        assert "prefect" not in " ".join(psutil.Process(pid).cmdline())
    except psutil.NoSuchProcess:
        pass
    assert not (work / ".infra/repro/pids.json").exists()
    for stage in ("prepare_hsi", "prepare_rgb", "validate"):
        assert f"Running stage '{stage}'" in first.stdout
    hsi = xr.open_zarr(work / "stores/hsi.zarr", consolidated=False)
    rgb = xr.open_zarr(work / "stores/rgb.zarr", consolidated=False)
    assert hsi.sizes["wavelength"] == 59 and hsi.sizes["patch"] > 100
    assert len(set(hsi["source"].values.astype(object))) == 11
    assert rgb.sizes["patch"] == 240 * 4 and len(rgb.attrs["classes"]) == 8    # 2 × 2 crops per image
    assert (work / "reports/validation.md").is_file()
    for stage in ("train_unmixing", "infer_abundance"):
        assert f"Running stage '{stage}'" in first.stdout
    ab = xr.open_zarr(work / "stores/abundance_rgb.zarr", consolidated=False)
    assert ab.sizes["patch"] == 240 * 4 and ab.attrs["model_version"] == 1
    np.testing.assert_allclose(ab["abundance"].sum("endmember").values, 1.0, atol=1e-5)
    assert float(ab["abundance"].min()) >= 0.0
    unmixing = json.loads((work / "reports/unmixing.json").read_text())
    assert unmixing["champion_version"] == 1
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())
    assert sorted(unmixing["validation_by_source"]) == sorted(shipped["unmixing"]["validation_sources"])
    for rec in unmixing["validation_by_source"].values():
        assert rec["patches"] > 0 and 0 <= rec["network"]["sad_deg"] < 90 and rec["vca_fcls"]["psnr"] > 0
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
    realism = metrics["realism"]
    for kind in ("abundance", "hsi"):
        assert {"real_vs_real", "ddpm", "vae", "gan", "gmm"} <= set(realism[kind])
        assert all(0.0 <= row["c2st"] <= 1.0 for row in realism[kind].values())
    assert realism["abundance"]["ddpm"]["copy_share"] <= 1.0 and "nn_ratio" not in realism["abundance"]["real_vs_real"]
    assert set(realism["class_fidelity"]["ddpm"]["cas_per_class"]) == set(params["class_mix"])
    assert (work / "reports/evaluation/realism_samples.png").is_file()
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


@pytest.mark.slow
def test_a_second_dvc_repro_reruns_nothing_and_a_fresh_clone_retrains(dvc_repro):
    work, env, _ = dvc_repro
    dvc = [sys.executable, "-m", "dvc"]
    second = subprocess.run(dvc + ["repro"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout.lower()
    # A fresh clone holds dvc.lock and the metrics but no stores and no MLflow registry: its training stages must
    # count as changed (their registration records are missing), or infer_abundance would find no model.
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "repro"],
                ["git", "clone", "-q", str(work), str(work.parent / "clone")]):
        subprocess.run(cmd, cwd=work, check=True, env=env, capture_output=True)
    clone_status = subprocess.run(dvc + ["status", "--json"], cwd=work.parent / "clone", env=env,
                                  capture_output=True, text=True, timeout=300)
    changed = json.loads(clone_status.stdout)
    assert {"train_unmixing", "train_generator"} <= set(changed), clone_status.stdout
    assert "stores/unmixing_model.json" in json.dumps(changed["train_unmixing"])
    record = json.loads((work / "stores/unmixing_model.json").read_text())
    assert record["model_name"] == "ubf-unmixing" and record["model_uri"] == "models:/ubf-unmixing/1"


def _numbers(tree, prefix: str = "") -> dict:
    """Every number of a JSON tree by its path (``a/b/0/c``)."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _numbers(sub, f"{prefix}{key}/").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in _numbers(sub, f"{prefix}{i}/").items()}
    return {prefix.rstrip("/"): tree} if isinstance(tree, (int, float)) and not isinstance(tree, bool) else {}


# Store attributes that differ between two runs of the same code and params, and why. Nothing else may differ
# (model versions do not: each copy has its own MLflow store, so both register version 1).
RUN_SPECIFIC_ATTRS = {
    "model_run_id",      # abundance and endmember stores: the MLflow run that trained the unmixing model (random id)
    "generator_run_id",  # synthesis stores: the MLflow run that trained the generator (random id)
}


@pytest.mark.slow
def test_pipeline_flow_writes_the_same_stores_as_dvc_repro(dvc_repro, tmp_path_factory):
    """One pipeline, two entry points: the Prefect `pipeline` flow, run in a second copy with the same params and
    its own MLflow store (tests/test_pipeline_flow.py runs it on another worker meanwhile, or this test does),
    writes the stores and metrics that `dvc repro` wrote."""
    repro, _, _ = dvc_repro
    work, run = pipeline_flow_run(run_base(tmp_path_factory))
    print(f"\n[pipeline flow: {run['seconds']:.0f} s]")
    assert run["returncode"] == 0, run["output"]
    assert (work / "params.yaml").read_text() == (repro / "params.yaml").read_text()

    stores = [o for o in declared_outputs(repro) if o.endswith(".zarr")]
    assert {"stores/hsi.zarr", "stores/rgb.zarr", "stores/endmembers.zarr", "stores/abundance_rgb.zarr",
            "stores/synthetic.zarr", "stores/synthetic_classify.zarr"} <= set(stores)
    for folder in (repro, work):
        assert sorted(str(p.relative_to(folder)) for p in (folder / "stores").glob("*.zarr")) == stores
    for rel in stores:
        a = xr.open_zarr(repro / rel, consolidated=False)
        b = xr.open_zarr(work / rel, consolidated=False)
        assert dict(a.sizes) == dict(b.sizes), rel
        assert set(a.variables) == set(b.variables) and set(a.coords) == set(b.coords), rel
        for name in a.variables:  # data variables and coordinates
            va, vb = a[name].variable, b[name].variable
            assert va.dims == vb.dims and va.dtype == vb.dtype and va.attrs == vb.attrs, f"{rel}: {name}"
            assert np.array_equal(va.values, vb.values, equal_nan=va.dtype.kind in "fc"), f"{rel}: {name} differs"
        assert str(work) not in json.dumps(b.attrs, default=str), f"{rel}: an absolute path of the copy in its attrs"
        assert ({k: v for k, v in a.attrs.items() if k not in RUN_SPECIFIC_ATTRS}
                == {k: v for k, v in b.attrs.items() if k not in RUN_SPECIFIC_ATTRS}), rel

    metrics = [_numbers(json.loads((f / "reports/metrics.json").read_text())) for f in (repro, work)]
    assert metrics[0] and metrics[0] == metrics[1]
    summary = [json.loads((f / "reports/classification.json").read_text())["summary"] for f in (repro, work)]
    assert summary[0] and summary[0] == summary[1]
