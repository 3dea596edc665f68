"""One unmixing experiment from arrays: settings → the baselines, the trained network, its input space.

Baselines beside the network: VCA+FCLS (all bands in, :mod:`ubf_core.unmixing.baseline`), and from the network's own
three inputs least squares of order 1 and 2 and the constant mean spectrum (:mod:`ubf_core.unmixing.regression`).

This is the stage's science without its bookkeeping: the Prefect task loads the stores, calls
:func:`fit_unmixing` and logs the result to MLflow; the benchmarks call it once per setting (input space, k).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import xarray as xr

from ubf_core.devices import pick_device, resolve_autocast
from ubf_core.errors import UBFInputError
from ubf_core.metrics.reconstruction import reconstruction_report
from ubf_core.unmixing.decoder import AtmosphereGroups, DecoderSettings, atmosphere_groups
from ubf_core.unmixing.inputs import InputSpace, band_indices, three_band
from ubf_core.spectral.library import SpectralLibrary, select_library_endmembers
from ubf_core.spectral.rendering import linear_rgb_matrix
from ubf_core.unmixing.losses import UnmixingLoss, band_weights_from_std
from ubf_core.unmixing.network import UnmixingNet
from ubf_core.unmixing.training import TrainConfig, TrainResult, train_unmixing
from ubf_core.unmixing.baseline import NormalizedVCA, fcls, vca_fcls, vca_normalized
from ubf_core.unmixing.cone import MIN_VERTICES, cone_vertices
from ubf_core.unmixing.regression import (fit_band_regression, fit_mean_spectrum, least_squares_endmembers, patches,
                                          pixels)

INIT_ENDMEMBERS = ("vca", "vca_normalized", "least_squares", "random")   # unmixing.init_endmembers
# the models compared on the validation scenes, in report order; the last three see only the network's inputs
COMPARED = ("network", "vca_fcls", "least_squares_1", "least_squares_2", "mean_spectrum")
BASELINE_NAMES = {"vca_fcls": "VCA+FCLS (all bands)", "least_squares_1": "least squares, 3 bands + offset",
                  "least_squares_2": "least squares, 2nd order", "mean_spectrum": "mean training spectrum"}


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
    init_endmembers: str = "vca"                    # vca | vca_normalized | least_squares | random
    init_normalized: NormalizedVCA | None = None    # vca_normalized's rule (params unmixing.init_normalized)
    exact_input_bands: bool = False                 # the input bands reproduced exactly (least_squares start)
    alpha: float = 0.1
    beta: float = 1e-3
    band_l1: float = 0.0                            # INSS's band-weighted L1 weight (0: off, today's loss)
    hsv: float = 0.0                                # INSS's HSV colour loss weight (0: off)
    library_n: int | None = None                    # unmixing.library.n: the network's k with library endmembers
    decoder: DecoderSettings = field(default_factory=DecoderSettings)
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
                exact_input_bands=bool(u.get("exact_input_bands", False)),
                init_normalized=(NormalizedVCA.from_params(u["init_normalized"]) if u.get("init_normalized")
                                 is not None else None),
                alpha=float(loss.get("alpha", 0.1)), beta=float(loss.get("beta", 1e-3)),
                band_l1=float(loss.get("band_l1", 0.0)), hsv=float(loss.get("hsv", 0.0)),
                library_n=(int((u.get("library") or {})["n"]) if "n" in (u.get("library") or {}) else None),
                decoder=DecoderSettings.from_params(u.get("decoder")),
                train=TrainConfig(epochs=int(t.get("epochs", 30)), batch_size=int(t.get("batch_size", 16)),
                                  lr=float(t.get("lr", 1e-3)), weight_decay=float(t.get("weight_decay", 0.0)),
                                  patience=int(t.get("patience", 5)), min_delta=float(t.get("min_delta", 0.0)),
                                  seed=seed, device=pick_device(t.get("device", "auto"), "unmixing.train.device"),
                                  autocast=str(t.get("autocast", "auto"))))
        resolve_autocast(s.train.device, s.train.autocast, "unmixing.train.autocast")   # refused before any work
        if s.k < 2:
            raise UBFInputError("params.yaml", f"unmixing.k = {s.k}: at least 2 endmembers are needed")
        if s.init_endmembers not in INIT_ENDMEMBERS:
            raise UBFInputError("params.yaml", f"unmixing.init_endmembers '{s.init_endmembers}': use "
                                               f"{', '.join(INIT_ENDMEMBERS[:-1])} or {INIT_ENDMEMBERS[-1]}")
        if s.init_endmembers == "least_squares" and s.k < MIN_VERTICES:
            raise UBFInputError("params.yaml", f"unmixing.k = {s.k}: init_endmembers least_squares needs at least "
                                               f"{MIN_VERTICES} endmembers (a black point and 3 colours holding "
                                               "3-band inputs)")
        if s.exact_input_bands:
            dec = s.decoder
            if (s.init_endmembers != "least_squares" or s.three_band != "select" or s.input_space != "linear"
                    or dec.endmembers != "learned" or dec.brightness or dec.atmosphere != "never"
                    or dec.mixing != "linear"):
                raise UBFInputError("params.yaml", "unmixing.exact_input_bands needs init_endmembers least_squares, "
                                                   "three_band select, input_space linear and the plain linear "
                                                   "decoder (endmembers learned, no brightness, atmosphere never, "
                                                   "mixing linear)")
        if s.decoder.endmembers == "library" and s.library_n is None:
            raise UBFInputError("params.yaml", "unmixing.decoder.endmembers library needs unmixing.library.n")
        if s.init_endmembers == "vca_normalized" and s.init_normalized is None:
            raise UBFInputError("params.yaml", "unmixing.init_endmembers vca_normalized needs the "
                                               "unmixing.init_normalized section")
        return s

    @property
    def network_k(self) -> int:
        """The network's abundance channels: ``k`` with learned endmembers, ``unmixing.library.n`` (the library
        spectra selected) with ``decoder.endmembers: library``; ``k`` then counts only VCA+FCLS's endmembers."""
        library = self.decoder.endmembers == "library" and self.library_n is not None
        return int(self.library_n) if library else self.k

    def loss(self, y_train: np.ndarray | None = None, wavelengths_nm: np.ndarray | None = None,
             colour_response: xr.DataArray | None = None) -> UnmixingLoss:
        """The training loss: MAE + alpha·SAD + beta·ETV, plus INSS's band-weighted L1 (weights from the band
        stds of ``y_train`` (N, C, H, W)) and HSV colour terms when their weights are > 0 (the HSV loss renders
        with ``colour_response``, e.g. CIE 1931, on ``wavelengths_nm``). Both 0: today's loss, bit for bit."""
        extra = {}
        if self.band_l1 > 0:
            extra["band_weights"] = band_weights_from_std(y_train)
        if self.hsv > 0:
            if colour_response is None:
                raise UBFInputError("params.yaml", "unmixing.loss.hsv > 0 needs a colour response (CIE 1931)")
            extra["rgb_matrix"] = linear_rgb_matrix(np.asarray(wavelengths_nm, dtype=float), colour_response,
                                                    where="unmixing.loss.hsv")
        return UnmixingLoss(alpha=self.alpha, beta=self.beta, band_l1=self.band_l1, hsv=self.hsv, **extra)


@dataclass
class FittedUnmixing:
    """A trained network with what produced it and how it scored."""

    model: UnmixingNet | None     # None: only the references (fit_references)
    result: TrainResult | None
    space: InputSpace
    x: np.ndarray                 # encoder inputs of every patch (N, 3, H, W), in ``space``
    baseline: dict                # VCA+FCLS validation figures, keys vca_fcls_<metric>
    vca_endmembers: np.ndarray    # (C, k) reflectance
    regressions: dict = field(default_factory=dict)   # least_squares_1, least_squares_2, mean_spectrum (fitted)
    input_bands: np.ndarray | None = None              # indices of the selected input bands (None: rendered)
    init_endmembers: np.ndarray | None = None          # (C, k) the decoder's start (None: random)
    cone: np.ndarray | None = None                     # (k, 3) input-cone vertices (init_endmembers least_squares)
    atmosphere: AtmosphereGroups = field(default_factory=lambda: AtmosphereGroups((), None))   # groups per patch

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


def initial_endmembers(y_train: np.ndarray, settings: UnmixingSettings, seed: int,
                       vca_endmembers: np.ndarray, max_pixels: int = 20000, cone: np.ndarray | None = None,
                       regressions: dict | None = None) -> np.ndarray | None:
    """The decoder's starting endmembers (C, k) by ``settings.init_endmembers``: ``vca`` the VCA+FCLS baseline's
    ``vca_endmembers`` (C, k) themselves; ``vca_normalized``
    :func:`~ubf_core.unmixing.baseline.vca_normalized` on the training patches ``y_train`` (N, C, H, W)
    reflectance (at most ``max_pixels`` pixels, drawn with ``seed`` like :func:`vca_fcls`); ``least_squares``
    :func:`~ubf_core.unmixing.regression.least_squares_endmembers`: the fitted ``regressions["least_squares_1"]``
    (:func:`fit_regressions`) at the ``cone`` vertices (k, 3) of the encoder inputs; ``random`` None."""
    if settings.init_endmembers == "vca":
        return vca_endmembers
    if settings.init_endmembers == "random":
        return None
    if settings.init_endmembers == "least_squares":
        if cone is None or regressions is None:
            raise UBFInputError("unmixing", "init_endmembers least_squares needs the cone of the encoder inputs and "
                                            "the fitted least-squares regression")
        return least_squares_endmembers(regressions["least_squares_1"], cone)
    c = y_train.shape[1]
    Y = np.moveaxis(np.asarray(y_train, dtype=np.float64), 1, 0).reshape(c, -1)
    rng = np.random.default_rng(seed)
    if Y.shape[1] > max_pixels:
        Y = Y[:, np.sort(rng.choice(Y.shape[1], size=int(max_pixels), replace=False))]
    return vca_normalized(Y, settings.k, settings.init_normalized, seed=seed)[0]


def library_for_training(params: dict, root: str | Path, wavelengths_nm: np.ndarray,
                         y_train: np.ndarray) -> SpectralLibrary:
    """The fixed endmembers of ``unmixing.decoder.endmembers: library``: the ``unmixing.library.n`` spectra of
    the library file (``unmixing.library.path``, relative to ``root``, the params file's folder) selected for the
    training patches ``y_train`` (N, C, H, W) reflectance on the grid ``wavelengths_nm`` (C,) nm
    (:func:`ubf_core.spectral.library.select_library_endmembers`). ``.reflectance`` (C, n) and ``.names`` go to
    :func:`fit_unmixing`; ``.record()`` (file, spectra dropped per rule, selection, names) to the provenance."""
    p = copy.deepcopy(params)
    lib = (p.get("unmixing") or {}).get("library")
    if not isinstance(lib, dict) or "path" not in lib:
        raise UBFInputError("params.yaml", "unmixing.decoder.endmembers library needs the unmixing.library section")
    path = Path(str(lib["path"]))
    lib["path"] = str(path if path.is_absolute() else Path(root) / path)
    return select_library_endmembers(p, wavelengths_nm, y_train)


def fit_regressions(x_train: np.ndarray, y_train: np.ndarray) -> dict:
    """The baselines that see only the network's inputs, fitted on the training patches' pixels: encoder inputs
    ``x_train`` (N, 3, H, W) and reflectance ``y_train`` (N, C, H, W) → ``{"least_squares_1": BandRegression,
    "least_squares_2": BandRegression, "mean_spectrum": MeanSpectrum}``."""
    b, y = pixels(x_train), pixels(y_train)
    return {"least_squares_1": fit_band_regression(b, y, 1), "least_squares_2": fit_band_regression(b, y, 2),
            "mean_spectrum": fit_mean_spectrum(y)}


def predict_patches(model, x: np.ndarray) -> np.ndarray:
    """A fitted regression or mean spectrum applied to encoder inputs (N, 3, H, W) → reflectance (N, C, H, W)."""
    n, _, h, w = x.shape
    return patches(model.predict(pixels(x)), n, h, w)


def fit_references(y: np.ndarray, wavelengths_nm: np.ndarray, is_val: np.ndarray, rgb_display: np.ndarray,
                   settings: UnmixingSettings, *, seed: int = 0,
                   response: xr.DataArray | None = None) -> FittedUnmixing:
    """Everything of :func:`fit_unmixing` but the network (``model`` and ``result`` are None): the encoder inputs
    in their input space, VCA+FCLS and the regressions from the inputs, fitted on the training patches."""
    is_val = np.asarray(is_val, dtype=bool)
    if not is_val.any() or is_val.all():
        raise UBFInputError("unmixing", "the validation set must hold some but not all patches")
    x_lin = three_band(y, wavelengths_nm, settings.three_band, settings.band_wavelengths_nm, response)
    space = InputSpace.fit(settings.input_space, x_lin[~is_val], rgb_display)
    x = space.from_hsi(x_lin)
    E_vca, baseline = baseline_vca_fcls(y[~is_val], y[is_val], settings.k, seed)
    regressions = fit_regressions(x[~is_val], y[~is_val])   # no random numbers: the network's training is unchanged
    input_bands = (band_indices(wavelengths_nm, settings.band_wavelengths_nm) if settings.three_band == "select"
                   else None)
    ls = regressions["least_squares_1"]
    cone = (cone_vertices(pixels(x[~is_val]), ls.coef[0], ls.coef[1:], settings.k)
            if settings.init_endmembers == "least_squares" else None)
    return FittedUnmixing(None, None, space, x, baseline, E_vca, regressions, input_bands,
                          initial_endmembers(y[~is_val], settings, seed, E_vca, cone=cone, regressions=regressions),
                          cone=cone)


def fit_unmixing(y: np.ndarray, wavelengths_nm: np.ndarray, is_val: np.ndarray, rgb_display: np.ndarray,
                 settings: UnmixingSettings, *, seed: int = 0, response: xr.DataArray | None = None,
                 on_epoch: Callable[[int, dict], None] | None = None, units: np.ndarray | None = None,
                 sensors: np.ndarray | None = None, sources: np.ndarray | None = None,
                 fixed_endmembers: np.ndarray | None = None, endmember_names: list[str] | None = None,
                 colour_response: xr.DataArray | None = None) -> FittedUnmixing:
    """Fit the baselines (:func:`fit_references`) and the network on the training patches, scored on the
    validation ones.

    ``y``: aligned patches (N, C, H, W), reflectance or (``units``) radiance; ``wavelengths_nm`` (C,); ``is_val``
    (N,) bool; ``rgb_display``: a sample of RGB patches (M, 3, H', W') in display sRGB [0, 1], used only to fit the
    input space's brightness factor; ``response``: the spectral response when ``settings.three_band == "render"``.

    The decoder follows ``settings.decoder`` (:mod:`ubf_core.unmixing.decoder`). ``units``, ``sensors``,
    ``sources`` (N,): the HSI store's per-patch coordinates, for the atmosphere term (None: all reflectance).
    ``fixed_endmembers`` (C, N_lib) reflectance and ``endmember_names`` (N_lib,): the spectra of
    ``decoder.endmembers: library`` (the network then has N_lib abundance channels; the names go to
    ``model.meta["endmember_names"]``); their number must be ``unmixing.library.n`` (:attr:`network_k`).
    ``decoder.mixing: neural`` adds NeuralMixing (its options from ``settings.decoder``); ``colour_response``: the
    response (CIE 1931) the HSV loss renders with when ``unmixing.loss.hsv`` > 0. With the defaults the network
    is exactly today's linear model, trained with today's loss.
    """
    is_val = np.asarray(is_val, dtype=bool)
    dec = settings.decoder
    if dec.endmembers == "library" and fixed_endmembers is None:
        raise UBFInputError("params.yaml", "unmixing.decoder.endmembers: library needs the library spectra "
                                           "(fixed_endmembers), none were given")
    if dec.endmembers != "library" and fixed_endmembers is not None:
        raise UBFInputError("params.yaml", "fixed endmembers were given but unmixing.decoder.endmembers is "
                                           f"{dec.endmembers!r} (use library)")
    n = len(y)
    atm = atmosphere_groups(dec.atmosphere, ["reflectance"] * n if units is None else units,
                            [""] * n if sensors is None else sensors,
                            [""] * n if sources is None else sources, is_val)
    fitted = fit_references(y, wavelengths_nm, is_val, rgb_display, settings, seed=seed, response=response)
    x, space = fitted.x, fitted.space
    fitted.atmosphere = atm

    torch.manual_seed(seed)
    k, kind = settings.k, "learned"
    if fixed_endmembers is not None:
        fixed = np.asarray(fixed_endmembers, dtype=np.float32)
        if fixed.ndim != 2 or fixed.shape[0] != len(wavelengths_nm):
            raise UBFInputError("fixed_endmembers", f"must be (C, N) with C = {len(wavelengths_nm)} bands, got "
                                                    f"{fixed.shape}")
        if endmember_names is None or len(endmember_names) != fixed.shape[1]:
            raise UBFInputError("fixed_endmembers", f"needs one name per spectrum ({fixed.shape[1]})")
        if settings.library_n is not None and fixed.shape[1] != settings.library_n:
            raise UBFInputError("params.yaml", f"unmixing.library.n = {settings.library_n} but {fixed.shape[1]} "
                                               f"library spectra were given")
        init, k, kind = torch.as_tensor(fixed), fixed.shape[1], "fixed"
    else:
        init = (None if fitted.init_endmembers is None
                else torch.as_tensor(fitted.init_endmembers, dtype=torch.float32))
    model = UnmixingNet(k, len(wavelengths_nm), stem=settings.stem, widths=settings.widths,
                        nonnegative_endmembers=settings.nonnegative_endmembers, init_endmembers=init,
                        endmembers=kind, brightness=dec.brightness, atmosphere=atm.names, mixing=dec.mixing,
                        mixing_options=dec.mixing_options(), cone=fitted.cone is not None and kind == "learned",
                        cone_vertices=fitted.cone if kind == "learned" else None,
                        exact_bands=fitted.input_bands if settings.exact_input_bands else ())
    cfg = TrainConfig(**{**settings.train.__dict__, "seed": seed})
    groups = atm.index
    result = train_unmixing(model, x[~is_val], y[~is_val], x[is_val], y[is_val], cfg,
                            settings.loss(y[~is_val], wavelengths_nm, colour_response), on_epoch=on_epoch,
                            train_groups=None if groups is None else groups[~is_val],
                            val_groups=None if groups is None else groups[is_val])
    model.cpu()
    model.meta = {"wavelength_nm": [float(v) for v in wavelengths_nm], "input_space": space.to_dict(),
                  "three_band": settings.three_band, "band_wavelengths_nm": list(settings.band_wavelengths_nm),
                  "render_response": settings.render_response}
    if fixed_endmembers is not None:
        model.meta["endmember_names"] = [str(v) for v in endmember_names]
    fitted.model, fitted.result = model, result
    return fitted


def reconstruct(model, x: np.ndarray, groups: np.ndarray | None = None, batch_size: int = 64) -> np.ndarray:
    """The network's reconstruction (N, C, H, W) float32 of encoder inputs ``x`` (N, 3, H, W), each patch in its
    own units (``groups`` (N,): sensor group of the atmosphere term, −1 reflectance; None: all reflectance)."""
    model = model.cpu().eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[i:i + batch_size])
            _, y_hat = model(xb) if groups is None else model(xb, groups=torch.as_tensor(groups[i:i + batch_size]))
            out.append(y_hat.numpy())
    return np.concatenate(out)


def _reconstructions(fitted: FittedUnmixing, y_src: np.ndarray, x_src: np.ndarray,
                     batch_size: int, groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every compared model's reconstruction (N, C, H, W) of the patches ``y_src`` (network and regressions from
    their encoder inputs ``x_src``, VCA+FCLS from the full spectra); ``groups``: the patches' atmosphere groups."""
    out = {}
    if fitted.model is not None:
        out["network"] = reconstruct(fitted.model, x_src, groups, batch_size)
    E = fitted.vca_endmembers
    n, c, h, w = y_src.shape
    a = fcls(y_src.transpose(1, 0, 2, 3).reshape(c, -1), E)
    out["vca_fcls"] = (E @ a).reshape(c, n, h, w).transpose(1, 0, 2, 3)
    for name, reg in fitted.regressions.items():
        out[name] = predict_patches(reg, x_src)
    return out


def input_bands_note(fitted: FittedUnmixing, wavelengths_nm: np.ndarray | None = None) -> dict:
    """What "without the input bands" leaves out: the selected bands' indices (and wavelengths), or nothing when
    the inputs are rendered (no band is an input then, so those figures equal the all-band ones)."""
    if fitted.input_bands is None:
        return {"indices": [], "excluded": False,
                "note": "three_band: render: no input is a band of the cube, so the figures without the input bands "
                        "are those with all bands"}
    rec = {"indices": [int(i) for i in fitted.input_bands], "excluded": True,
           "note": "three_band: select: the input bands are left out of the *_without_inputs figures (least squares "
                   "reproduces them exactly, each band's PSNR is capped at 100 dB)"}
    if wavelengths_nm is not None:
        rec["wavelengths_nm"] = [float(wavelengths_nm[i]) for i in fitted.input_bands]
    return rec


def validation_figures(fitted: FittedUnmixing, y: np.ndarray, is_val: np.ndarray, sources: np.ndarray,
                       batch_size: int = 64, wavelengths_nm: np.ndarray | None = None) -> tuple[dict, dict]:
    """The validation figures of every compared model (:data:`COMPARED`; the network only when ``fitted.model``
    is set), scene by scene and pooled.

    Returns ``(by_source, comparison)``: ``by_source`` is :func:`validation_by_source`'s result; ``comparison`` is
    ``{"input_bands": input_bands_note(...), <model>: {"pooled", "pooled_without_inputs", "per_scene",
    "per_scene_without_inputs"}}`` with :func:`~ubf_core.metrics.reconstruction.reconstruction_report` dicts
    (per scene keyed by scene name). Pooled: over all validation patches at once. Without inputs: the selected
    input bands (``fitted.input_bands``) dropped from both reconstruction and reference; with rendered inputs none
    is dropped.
    """
    is_val = np.asarray(is_val, dtype=bool)
    sources = np.asarray(sources).astype(str)
    names = [n for n in COMPARED if (n == "network" and fitted.model is not None) or n == "vca_fcls"
             or n in fitted.regressions]
    c = y.shape[1]
    keep = np.setdiff1d(np.arange(c), [] if fitted.input_bands is None else fitted.input_bands)
    by_source: dict[str, dict] = {}
    comparison: dict = {"input_bands": input_bands_note(fitted, wavelengths_nm)}
    for name in names:
        comparison[name] = {"per_scene": {}, "per_scene_without_inputs": {}}
    pooled: dict[str, list] = {name: [] for name in names}
    refs = []
    for source in sorted(set(sources[is_val])):
        pick = is_val & (sources == source)
        y_src = y[pick]
        groups = None if fitted.atmosphere.index is None else fitted.atmosphere.index[pick]
        rec = _reconstructions(fitted, y_src, fitted.x[pick], batch_size, groups)
        by_source[source] = {"patches": int(len(y_src))}
        for name in names:
            by_source[source][name] = reconstruction_report(rec[name], y_src)
            comparison[name]["per_scene"][source] = by_source[source][name]
            comparison[name]["per_scene_without_inputs"][source] = (
                reconstruction_report(rec[name][:, keep], y_src[:, keep]) if len(keep) < c
                else dict(by_source[source][name]))
            pooled[name].append(rec[name])
        refs.append(y_src)
    y_val = np.concatenate(refs)
    for name in names:
        y_hat = np.concatenate(pooled[name])
        comparison[name]["pooled"] = reconstruction_report(y_hat, y_val)
        comparison[name]["pooled_without_inputs"] = (reconstruction_report(y_hat[:, keep], y_val[:, keep])
                                                     if len(keep) < c else dict(comparison[name]["pooled"]))
    return by_source, comparison


def validation_by_source(fitted: FittedUnmixing, y: np.ndarray, is_val: np.ndarray, sources: np.ndarray,
                         batch_size: int = 64) -> dict[str, dict]:
    """The validation figures scene by scene: ``{source: {"patches": n, "network": {...}, "vca_fcls": {...},
    "least_squares_1": {...}, "least_squares_2": {...}, "mean_spectrum": {...}}}`` with
    :func:`ubf_core.metrics.reconstruction.reconstruction_report` keys (rmse, psnr, ssim, sad_deg, ergas), all bands.

    ``y``: the reflectance (N, C, H, W) ``fitted`` was trained on; ``is_val`` (N,) bool; ``sources`` (N,) scene
    names. The network and the regressions (those in ``fitted.regressions``) reconstruct from the network's own
    inputs ``fitted.x`` (float32, on the CPU); VCA+FCLS unmixes each scene's full spectra with the training
    scenes' VCA endmembers. :func:`validation_figures` has these and the pooled figures, with and without the
    input bands.
    """
    return validation_figures(fitted, y, is_val, sources, batch_size)[0]
