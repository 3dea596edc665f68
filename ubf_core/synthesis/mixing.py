"""The linear mixing model that turns abundance maps into HSIs: Ŷ' = Ê·Â' (:func:`mix`), plus white Gaussian noise
at a signal-to-noise ratio, seeded per sample (:func:`add_noise`).

The unmixing decoder's options enter here too: a brightness scale s (n, H, W) multiplies each pixel (Ŷ' = s·Ê·Â'),
and for radiance output the solar–atmosphere factor t (C,) multiplies each band (Ŷ' = t ⊙ s·Ê·Â'). The decoder's
per-band offset b is not added: synthesis writes the mixture of the endmembers, as it always has. A model with
``mixing: neural`` corrects the mixture with its NeuralMixing, the generated abundances as context (as the decoder
does with the encoder's): Ŷ' = t ⊙ NM(s·Ê·Â'; Â') (:func:`neural_mixing`)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ubf_core.errors import UBFInputError

NOISE_STREAM = 1  # the per-sample noise generator is seeded from (seed, index, NOISE_STREAM)


def neural_mixing(mixing: dict):
    """The NeuralMixing module of a saved decoder: ``mixing`` = ``{"config": NeuralMixing.config, "state":
    {name: array}}`` (:func:`mixing_record`), rebuilt on the CPU in eval mode (torch's random state untouched)."""
    import torch

    from ubf_core.unmixing.nonlinear import NeuralMixing

    with torch.random.fork_rng(devices=[]):
        module = NeuralMixing.from_config(dict(mixing["config"]))
    try:
        module.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in mixing["state"].items()})
    except RuntimeError as err:
        raise UBFInputError("mixing", f"the neural mixing weights do not fit its config ({err})") from None
    return module.eval()


def mixing_record(module) -> dict:
    """A NeuralMixing module as plain data for a synthesis job: its config and its weights (float32 arrays)."""
    return {"config": dict(module.config),
            "state": {k: v.detach().cpu().numpy().astype(np.float32) for k, v in module.state_dict().items()}}


def mix(abundances: np.ndarray, endmembers: np.ndarray, brightness: np.ndarray | None = None,
        transmission: np.ndarray | None = None, mixing: dict | None = None) -> np.ndarray:
    """Linear mixing: abundances (n, k, H, W) and endmembers (C, k) → reflectance (n, C, H, W) float32; times the
    brightness s (n, H, W) ≥ 0 when given; corrected by the decoder's NeuralMixing when ``mixing``
    (:func:`mixing_record`) is given, with the abundances as its context; times the factor t (C,) when given
    (radiance)."""
    if abundances.shape[1] != endmembers.shape[1]:
        raise UBFInputError("endmembers", f"k = {endmembers.shape[1]} but the abundances have k = "
                                          f"{abundances.shape[1]}")
    y = np.einsum("ck,nkhw->nchw", endmembers.astype(np.float32), abundances.astype(np.float32),
                  optimize=True).astype(np.float32)
    if brightness is not None:
        want = (abundances.shape[0], *abundances.shape[2:])
        if brightness.shape != want:
            raise UBFInputError("brightness", f"must have shape (n, H, W) = {want}, got {brightness.shape}")
        y *= brightness.astype(np.float32)[:, None]
    if mixing is not None:
        import torch

        module = neural_mixing(mixing)
        if module.n_bands != endmembers.shape[0] or module.context_channels != endmembers.shape[1]:
            raise UBFInputError("mixing", f"the neural mixing is for {module.n_bands} bands and k = "
                                          f"{module.context_channels}, the endmembers are {endmembers.shape}")
        with torch.no_grad():
            y = module(torch.as_tensor(y), torch.as_tensor(abundances.astype(np.float32))).numpy().astype(np.float32)
    if transmission is not None:
        if np.shape(transmission) != (endmembers.shape[0],):
            raise UBFInputError("transmission", f"must have shape (C,) = ({endmembers.shape[0]},), got "
                                                f"{np.shape(transmission)}")
        y *= np.asarray(transmission, dtype=np.float32)[None, :, None, None]
    return y


def add_noise(reflectance: np.ndarray, snr_db: float | None, seeds: Sequence[int]) -> np.ndarray:
    """White Gaussian noise at ``snr_db`` (signal power = mean square of each sample), seeded per sample."""
    if snr_db is None:
        return reflectance
    out = reflectance.copy()
    for i, s in enumerate(seeds):
        rng = np.random.default_rng([int(s), NOISE_STREAM])
        power = float(np.mean(reflectance[i].astype(np.float64) ** 2))
        sigma = math.sqrt(power / 10 ** (float(snr_db) / 10))
        out[i] += (sigma * rng.standard_normal(reflectance[i].shape)).astype(np.float32)
    return out
