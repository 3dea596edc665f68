"""One unmixing experiment from arrays: settings → the VCA+FCLS baseline, the trained network, its input space.

This is the stage's science without its bookkeeping: the Prefect task loads the stores, calls
:func:`fit_unmixing` and logs the result to MLflow; the benchmarks call it once per setting (input space, k).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import xarray as xr

from ubf_core.devices import pick_device, resolve_autocast
from ubf_core.errors import UBFInputError
from ubf_core.metrics.reconstruction import reconstruction_report
from ubf_core.unmixing.inputs import InputSpace, three_band
from ubf_core.unmixing.losses import UnmixingLoss
from ubf_core.unmixing.network import UnmixingNet
from ubf_core.unmixing.training import TrainConfig, TrainResult, train_unmixing
from ubf_core.unmixing.baseline import fcls, vca_fcls


@dataclass
class UnmixingSettings:
    """Everything params.yaml ``unmixing`` says about the model, its inputs and its training."""

    k: int = 5
    stem: int = 32
    widths: tuple[int, ...] = (64, 128, 96, 48)
    nonnegative_endmembers: bool = True
    three_band: str = "select"                      # select | render
    band_wavelengths_nm: tuple[float, ...] = (650.0, 550.0, 450.0)
    render_response: str = "cie1931"                # cie1931 | camera:<name>
    input_space: str = "linear"                     # linear | display
    init_endmembers: str = "vca"                    # vca | random
    alpha: float = 0.1
    beta: float = 1e-3
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_params(cls, u: dict, seed: int = 0) -> "UnmixingSettings":
        """From the ``unmixing`` section of params.yaml (missing keys take the defaults above)."""
        t = dict(u.get("train") or {})
        loss = dict(u.get("loss") or {})
        s = cls(k=int(u.get("k", 5)), stem=int(u.get("stem", 32)),
                widths=tuple(int(w) for w in u.get("widths", (64, 128, 96, 48))),
                nonnegative_endmembers=bool(u.get("nonnegative_endmembers", True)),
                three_band=str(u.get("three_band", "select")),
                band_wavelengths_nm=tuple(float(v) for v in u.get("band_wavelengths_nm", (650.0, 550.0, 450.0))),
                render_response=str(u.get("render_response", "cie1931")),
                input_space=str(u.get("input_space", "linear")),
                init_endmembers=str(u.get("init_endmembers", "vca")),
                alpha=float(loss.get("alpha", 0.1)), beta=float(loss.get("beta", 1e-3)),
                train=TrainConfig(epochs=int(t.get("epochs", 30)), batch_size=int(t.get("batch_size", 16)),
                                  lr=float(t.get("lr", 1e-3)), weight_decay=float(t.get("weight_decay", 0.0)),
                                  patience=int(t.get("patience", 5)), min_delta=float(t.get("min_delta", 0.0)),
                                  seed=seed, device=pick_device(t.get("device", "auto"), "unmixing.train.device"),
                                  autocast=str(t.get("autocast", "auto"))))
        resolve_autocast(s.train.device, s.train.autocast, "unmixing.train.autocast")   # refused before any work
        if s.k < 2:
            raise UBFInputError("params.yaml", f"unmixing.k = {s.k}: at least 2 endmembers are needed")
        if s.init_endmembers not in ("vca", "random"):
            raise UBFInputError("params.yaml", f"unmixing.init_endmembers '{s.init_endmembers}': use vca or random")
        return s


@dataclass
class FittedUnmixing:
    """A trained network with what produced it and how it scored."""

    model: UnmixingNet
    result: TrainResult
    space: InputSpace
    x: np.ndarray                 # encoder inputs of every patch (N, 3, H, W), in ``space``
    baseline: dict                # VCA+FCLS validation figures, keys vca_fcls_<metric>
    vca_endmembers: np.ndarray    # (C, k) reflectance

    @property
    def best(self) -> dict:
        """Validation figures (val_*) of the kept (best) epoch."""
        rec = self.result.history[self.result.best_epoch - 1]
        return {k: v for k, v in rec.items() if k.startswith("val_")}


def baseline_vca_fcls(y_train: np.ndarray, y_val: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, dict]:
    """VCA endmembers (C, k) of the training patches (N, C, H, W) and the validation figures of FCLS on them."""
    E, _ = vca_fcls(y_train, k, seed=seed)
    n, c, h, w = y_val.shape
    a = fcls(y_val.transpose(1, 0, 2, 3).reshape(c, -1), E)
    y_hat = (E @ a).reshape(c, n, h, w).transpose(1, 0, 2, 3)
    return E, {f"vca_fcls_{name}": v for name, v in reconstruction_report(y_hat, y_val).items()}


def fit_unmixing(y: np.ndarray, wavelengths_nm: np.ndarray, is_val: np.ndarray, rgb_display: np.ndarray,
                 settings: UnmixingSettings, *, seed: int = 0, response: xr.DataArray | None = None,
                 on_epoch: Callable[[int, dict], None] | None = None) -> FittedUnmixing:
    """Fit the VCA+FCLS baseline and the network on the training patches, scored on the validation ones.

    ``y``: aligned reflectance (N, C, H, W); ``wavelengths_nm`` (C,); ``is_val`` (N,) bool; ``rgb_display``: a
    sample of RGB patches (M, 3, H', W') in display sRGB [0, 1], used only to fit the input space's brightness
    factor; ``response``: the spectral response when ``settings.three_band == "render"``.
    """
    is_val = np.asarray(is_val, dtype=bool)
    if not is_val.any() or is_val.all():
        raise UBFInputError("unmixing", "the validation set must hold some but not all patches")
    x_lin = three_band(y, wavelengths_nm, settings.three_band, settings.band_wavelengths_nm, response)
    space = InputSpace.fit(settings.input_space, x_lin[~is_val], rgb_display)
    x = space.from_hsi(x_lin)
    E_vca, baseline = baseline_vca_fcls(y[~is_val], y[is_val], settings.k, seed)

    torch.manual_seed(seed)
    init = torch.as_tensor(E_vca, dtype=torch.float32) if settings.init_endmembers == "vca" else None
    model = UnmixingNet(settings.k, len(wavelengths_nm), stem=settings.stem, widths=settings.widths,
                        nonnegative_endmembers=settings.nonnegative_endmembers, init_endmembers=init)
    cfg = TrainConfig(**{**settings.train.__dict__, "seed": seed})
    result = train_unmixing(model, x[~is_val], y[~is_val], x[is_val], y[is_val], cfg,
                            UnmixingLoss(alpha=settings.alpha, beta=settings.beta), on_epoch=on_epoch)
    model.cpu()
    model.meta = {"wavelength_nm": [float(v) for v in wavelengths_nm], "input_space": space.to_dict(),
                  "three_band": settings.three_band, "band_wavelengths_nm": list(settings.band_wavelengths_nm),
                  "render_response": settings.render_response}
    return FittedUnmixing(model, result, space, x, baseline, E_vca)


def validation_by_source(fitted: FittedUnmixing, y: np.ndarray, is_val: np.ndarray, sources: np.ndarray,
                         batch_size: int = 64) -> dict[str, dict]:
    """The validation figures scene by scene: ``{source: {"patches": n, "network": {...}, "vca_fcls": {...}}}``
    with :func:`ubf_core.metrics.reconstruction.reconstruction_report` keys (rmse, psnr, ssim, sad_deg, ergas).

    ``y``: the reflectance (N, C, H, W) ``fitted`` was trained on; ``is_val`` (N,) bool; ``sources`` (N,) scene
    names. The network reconstructs from its own inputs ``fitted.x`` (float32, on the CPU); VCA+FCLS unmixes
    each scene's full spectra with the training scenes' VCA endmembers.
    """
    is_val = np.asarray(is_val, dtype=bool)
    sources = np.asarray(sources).astype(str)
    model = fitted.model.cpu().eval()
    E = fitted.vca_endmembers
    out: dict[str, dict] = {}
    for source in sorted(set(sources[is_val])):
        pick = is_val & (sources == source)
        y_src, x_src = y[pick], fitted.x[pick]
        with torch.no_grad():
            y_hat = np.concatenate([model(torch.as_tensor(x_src[i:i + batch_size]))[1].numpy()
                                    for i in range(0, len(x_src), batch_size)])
        n, c, h, w = y_src.shape
        a = fcls(y_src.transpose(1, 0, 2, 3).reshape(c, -1), E)
        y_vca = (E @ a).reshape(c, n, h, w).transpose(1, 0, 2, 3)
        out[source] = {"patches": int(n), "network": reconstruction_report(y_hat, y_src),
                       "vca_fcls": reconstruction_report(y_vca, y_src)}
    return out
