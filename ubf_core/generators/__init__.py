"""Generative models of abundance maps (N, k, H, W): learn their distribution, sample new ones on the simplex.

* :class:`AbundanceGenerator` — the interface (``fit``, ``sample``, ``save``; ``k``, ``size``, ``classes``,
  ``config``, ``name``), in :mod:`~ubf_core.generators.base`;
* :func:`make_generator` (by name: "ddpm", "vae", "gan") and :func:`load_generator` (any saved one);
* implementations: :mod:`~ubf_core.generators.ddpm` (diffusers UNet + schedulers), :mod:`~ubf_core.generators.vae`,
  :mod:`~ubf_core.generators.gan` (imported on first use);
* :mod:`~ubf_core.generators.training` (:class:`TrainSettings`: steps, lr warm-up and decay, weight EMA,
  augmentation) — how ``fit`` trains any of them;
* :mod:`~ubf_core.generators.quality` (nearest-real spectral angle) and :mod:`~ubf_core.generators.seeding`
  (per-sample seeds: sample j depends only on (seed, start_index + j)).
* :mod:`~ubf_core.generators.pixel_gmm` (:class:`PixelGMM`, imported by name) — the pixel-wise Gaussian-mixture
  baseline the evaluation compares against: it draws HSI spectra directly, with no spatial structure, and is not an
  :class:`AbundanceGenerator`.
"""

from ubf_core.generators.base import AbundanceGenerator
from ubf_core.generators.factory import GENERATORS, load_generator, make_generator
from ubf_core.generators.quality import nearest_real_angle_deg
from ubf_core.generators.seeding import sample_seed
from ubf_core.generators.training import TrainSettings

__all__ = ["AbundanceGenerator", "GENERATORS", "make_generator", "load_generator", "nearest_real_angle_deg",
           "sample_seed", "TrainSettings"]
