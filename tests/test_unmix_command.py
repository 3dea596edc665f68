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
