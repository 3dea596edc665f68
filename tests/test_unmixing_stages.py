"""The unmixing stages' refusals: a model checked against the stores before any work, unknown registry URIs,
and nothing written (nor the champion alias moved) when something is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from ubf_core.data.stores import write_store
from ubf_core.errors import UBFInputError
from ubf_core.unmixing import UnmixingNet
from ubf_core.unmixing.inference import check_store

REPO = Path(__file__).resolve().parents[1]
WL = np.linspace(398, 698, 59)


def _model(k=5, wl=WL):
    torch.manual_seed(0)
    model = UnmixingNet(k, len(wl), stem=4, widths=(4, 4, 4, 4))
    model.meta = {"wavelength_nm": [float(v) for v in wl], "input_space": {"space": "linear", "rgb_to_hsi_scale": 1.0},
                  "three_band": "select", "band_wavelengths_nm": [650, 550, 450], "render_response": "cie1931"}
    return model


def _hsi(n=3, wl=WL, size=8):
    return xr.Dataset({"reflectance": (("patch", "wavelength", "y", "x"),
                                       np.full((n, len(wl), size, size), 0.2, np.float32))},
                      coords={"wavelength": wl, "source": ("patch", np.array(["s"] * n, dtype=object))})


def _rgb(n=3, channels=3, size=8):
    return xr.Dataset({"rgb": (("patch", "channel", "y", "x"), np.full((n, channels, size, size), 0.5, np.float32))},
                      coords={"label": ("patch", np.array(["Beach"] * n, dtype=object))})


def test_a_compatible_store_passes():
    check_store(_model(), Path("hsi.zarr"), _hsi(), "reflectance", 5, "models:/m@champion")
    check_store(_model(), Path("rgb.zarr"), _rgb(), "rgb", 5, "models:/m@champion")


@pytest.mark.parametrize("case, match", [
    ("grid", "wavelength grid 398–698 nm × 31 differs from the model's endmember grid 398–698 nm × 59"),
    ("k", "unmixing.k = 3 but models:/m@champion has k = 5"),
    ("empty", "the store is empty"),
    ("channels", "4 channels; the encoder takes 3"),
    ("tiny", "smaller than the 4×4"),
])
def test_incompatible_stores_are_refused(case, match):
    model, k, ds, var, path = _model(), 5, _hsi(), "reflectance", Path("stores/hsi.zarr")
    if case == "grid":
        ds = _hsi(wl=np.linspace(398, 698, 31))
    elif case == "k":
        k = 3
    elif case == "empty":
        ds = _hsi(n=0)
    elif case == "channels":
        ds, var, path = _rgb(channels=4), "rgb", Path("stores/rgb.zarr")
    elif case == "tiny":
        ds, var, path = _rgb(size=2), "rgb", Path("stores/rgb.zarr")
    with pytest.raises(UBFInputError, match=match) as err:
        check_store(model, path, ds, var, k, "models:/m@champion")
    assert "\n" not in str(err.value)


def test_unknown_model_uri_stops_infer_before_any_work(prefect_engine, tmp_path, monkeypatch):
    from flows.infer_abundance import infer_abundance

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    write_store(_hsi(), tmp_path / "stores/hsi.zarr")
    write_store(_rgb(), tmp_path / "stores/rgb.zarr")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["unmixing"]["model_uri"] = "models:/ubf-unmixing@no-such-alias"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(UBFInputError, match=r"^models:/ubf-unmixing@no-such-alias: no such registered model"):
        infer_abundance(str(tmp_path / "params.yaml"))
    assert sorted(p.name for p in (tmp_path / "stores").iterdir()) == ["hsi.zarr", "rgb.zarr"]
