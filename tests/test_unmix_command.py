"""`ubf unmix FILE`: a registered model (real local MLflow store) run on one RGB image and on one HSI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
WL = np.linspace(398, 698, 59)


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    """A tiny unmixing model registered as ubf-unmixing (champion) in a temp SQLite store; its tracking URI."""
    import mlflow

    from tasks.registry import configure_tracking, experiment, log_unmixing_model, register
    from ubf_core.unmixing import UnmixingNet

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = configure_tracking(tmp_path)
    torch.manual_seed(0)
    model = UnmixingNet(4, len(WL), stem=4, widths=(4, 4, 4, 4))
    model.meta = {"wavelength_nm": [float(v) for v in WL], "input_space": {"space": "linear", "rgb_to_hsi_scale": 0.3},
                  "three_band": "select", "band_wavelengths_nm": [650.0, 550.0, 450.0], "render_response": "cie1931"}
    with mlflow.start_run(experiment_id=experiment("ubf-test", tmp_path)):
        info = log_unmixing_model(model)
    register(info.model_uri, "ubf-unmixing", "val_psnr", 30.0, higher_is_better=True)
    return uri, model


def _unmix(args, tracking_uri):
    return subprocess.run([sys.executable, "-m", "flows.cli", "unmix", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri})


def test_unmix_an_rgb_image_and_an_hsi(registry, tmp_path):
    tracking, model = registry
    image = sorted((REPO / "data/rgb/aid").glob("*/*.jpg"))[0]
    res = _unmix([str(image), "--out", str(tmp_path / "rgb_out")], tracking)
    assert res.returncode == 0, res.stderr
    ds = xr.open_zarr(tmp_path / "rgb_out/abundance.zarr", consolidated=False)
    a = ds["abundance"].values
    from PIL import Image

    with Image.open(image) as im:
        assert a.shape == (4, im.height, im.width)
    assert (a >= 0).all() and np.allclose(a.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(ds["endmembers"].values, model.endmembers().detach().numpy(), rtol=1e-6)
    assert ds["wavelength"].attrs["units"] == "nm" and ds.attrs["model_version"] == 1
    assert (tmp_path / "rgb_out/preview.png").stat().st_size > 1000

    res = _unmix(["data/hsi/samson.mat", "--out", str(tmp_path / "hsi_out")], tracking)  # reader options: params
    assert res.returncode == 0, res.stderr
    a = xr.open_zarr(tmp_path / "hsi_out/abundance.zarr", consolidated=False)["abundance"].values
    assert a.shape == (4, 95, 95) and np.allclose(a.sum(axis=0), 1.0, atol=1e-5)
    assert ds.attrs["kind"] == "rgb"


@pytest.mark.parametrize("case, match", [
    ("missing", "file not found"),
    ("uri", "models:/ubf-unmixing@nope: "),
    ("grid", "bands 398.0–423.9 nm are not covered"),
])
def test_unmix_refusals_write_nothing(registry, tmp_path, shared_data, case, match):
    tracking, _ = registry
    args = {"missing": ["no/such.png"],
            "uri": [str(sorted((REPO / "data/rgb/aid").glob("*/*.jpg"))[0]), "--model-uri", "models:/ubf-unmixing@nope"],
            "grid": [str(shared_data / "hsi/pavia_u_downsampled.mat"), "--variable", "I1", "--layout", "HWC",
                     "--wavelengths", "variable:wl:um"]}[case]
    res = _unmix(args + ["--out", str(tmp_path / "out")], tracking)
    assert res.returncode == 2
    assert match in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "abundance.zarr").exists()


# ------------------------------------------------------------------------------ defects a new user hit (issue item 6)

def test_unmix_dataset_gives_the_reader_settings_and_reads_file(registry, tmp_path):
    """--dataset NAME: NAME's reader settings, FILE's pixels, FILE's name on the output."""
    tracking, _ = registry
    res = _unmix(["data/hsi/abu/abu-beach-1.mat", "--dataset", "abu-airport-1", "--out", str(tmp_path / "out")],
                 tracking)
    assert res.returncode == 0, res.stderr
    ds = xr.open_zarr(tmp_path / "out/abundance.zarr", consolidated=False)
    assert ds["abundance"].shape == (4, 150, 150)          # beach-1; airport-1 is 100 x 100
    assert ds.attrs["input"] == "abu-beach-1.mat" and res.stdout.startswith("abu-beach-1.mat: ")


def test_unmix_refuses_raw_counts(registry, tmp_path):
    """An ABU cube read without its scale holds digital numbers in the thousands: no saturated maps, a hint."""
    tracking, _ = registry
    scene = tmp_path / "abu.mat"
    scene.write_bytes((REPO / "data/hsi/abu/abu-airport-1.mat").read_bytes())
    reader = ["--variable", "data", "--wavelengths", "linspace:370,750,42"]
    res = _unmix([str(scene), *reader, "--out", str(tmp_path / "out")], tracking)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {scene}: ")
    assert "not reflectance" in lines[0] and "--scale 1e-4" in lines[0] and "reflectance_max" in lines[0]
    assert not (tmp_path / "out").exists()

    res = _unmix([str(scene), *reader, "--scale", "1e-4", "--out", str(tmp_path / "out")], tracking)
    assert res.returncode == 0, res.stderr
    a = xr.open_zarr(tmp_path / "out/abundance.zarr", consolidated=False)["abundance"].values
    assert a.shape == (4, 100, 100) and np.allclose(a.sum(axis=0), 1.0, atol=1e-5)


CHEAP_PROBE = """
import json, sys
from flows.cli import main
try:
    main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
heavy = sorted(m for m in ("torch", "mlflow", "prefect") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize("args, match", [
    (["nope.jpg"], "nope.jpg: file not found"),
    (["data/hsi/samson.mat", "--wavelengths", "linspace:400,700"], "--wavelengths"),
    (["data/hsi/samson.mat", "--params", "nope.yaml"], "nope.yaml: params file not found"),
    (["data/hsi/samson.mat", "--dataset", "nope"], "no data set 'nope'"),
    (["README.md", "--kind", "rgb"], "README.md: not a readable image"),
])
def test_unmix_checks_its_input_before_loading_anything_heavy(tmp_path, args, match):
    """Bad input is refused before torch, MLflow or Prefect are imported (seconds, not the ~20 s of a model load)."""
    res = subprocess.run([sys.executable, "-c", CHEAP_PROBE, "unmix", *args, "--out", str(tmp_path / "out")],
                         cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri()})
    import json

    assert res.stdout.strip(), res.stderr
    probe = json.loads(res.stdout.strip().splitlines()[-1])
    assert probe == {"code": 2, "heavy": []}, (probe, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "mlruns").exists()
