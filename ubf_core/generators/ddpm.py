"""Denoising diffusion in abundance space on diffusers: a ``UNet2DModel`` predicting the noise ε (or v, or the
clean map), and diffusers' schedulers for training (``DDPMScheduler.add_noise``) and sampling (``set_timesteps`` /
``step``).

Defaults follow the UBF / MSF-Diff papers: linear β from 1e-6 to 1e-2 over T = 2000 steps, ε-prediction, ancestral
sampling over all T steps. The pipeline's params choose ``prediction_type="v_prediction"`` (target
v = √ᾱ_t ε − √(1−ᾱ_t) x0) and the cosine schedule ``beta_schedule="squaredcos_cap_v2"``: at the last noise level
√ᾱ_T ≈ 0.007, and an ε-predicting network recovers the clean map x0 = (x − √(1−ᾱ) ε̂)/√ᾱ only to its error × 150,
so it never learns the maps' mean there. Abundance maps in HUD space have means far from 0 (−0.3 … 0.7 per
channel), and the ε model's samples came out near x = 0 in every channel whatever the class (Forest 40 % vegetation
against 97 % real); a v-predicting network learns E[x0 | x_t, class] directly and gets each class's endmember mix
(tests/test_generators.py, test_v_prediction_learns_the_class_where_epsilon_prediction_does_not). The cosine
schedule spends fewer training steps on near-pure noise and halved the pixel grain of samples at 4000 steps. ``sample(..., sampler="ddim" | "dpm++" | "dpm++sde", steps=…)`` gives the same model's
faster samplers (DDIM, η = 0 by default; DPM-Solver++ of order 2, deterministic; its stochastic (SDE) variant, which
like ancestral sampling adds fresh noise at every step and lands closest to the ancestral samples at 20–50 steps:
benchmarks/generator_sampling.py). The UNet is CPU-sized by default
(``block_out_channels=(32, 64)``, one ResNet layer per block, no attention); the papers' network is
``block_out_channels = base × (1, 2, 2, 4, 4)`` with ``attention=True``.

Constraint modes (option ``constraint``, see :mod:`ubf_core.generators.constraints`): ``"softmax"`` diffuses
x = 2A − 1, ``"hud"`` diffuses the scaled log-abundances Z = ln(A + ε); both end in a softmax over k, so every
sample is non-negative and sums to one. A brightness model (``brightness=True``) diffuses one more channel, the
standardised ln s (:func:`~ubf_core.generators.constraints.to_brightness_space`, ±3σ of the training set on ±1),
beside the k abundance channels, in the same UNet; its samples map back to s > 0 (clipping x̂0 bounds ln s to the
training mean ± 3σ). The predicted clean sample x̂0 is clipped to [-1, 1] at each step (``clip_sample``) in the
same way for the three samplers: the DDPM posterior mean uses the clipped x̂0, DDIM re-derives ε from it
(``use_clipped_model_output``), DPM-Solver++ clips it through its thresholding with ``sample_max_value=1``; so
DDIM and DPM-Solver++ converge to the same ODE solution as their steps grow.

Classes: the UNet gets ``num_class_embeds = len(classes) + 1`` (the last = "no class"); labels are dropped with
probability ``p_uncond`` in training; sampling with labels uses classifier-free guidance
ε = ε_uncond + w·(ε_cond − ε_uncond) with ``guidance_scale`` w (w = 1: the conditional model alone).

Micro-batches: ``sample(..., micro_batch=m)`` hands ``_sample`` m samples at a time; the UNet evaluates them in
one call (a guided micro-batch as one call of 2m: cond, then uncond), on a fresh copy
(:func:`~ubf_core.generators.base.own_copy`), and the scheduler steps and the final mapping are element-wise or
per-sample, so a sample's value depends only on its micro-batch, not on how a run is split into calls.
``last_nfe`` holds the UNet evaluations per sample of the last ``sample`` call (a guided pair counts 2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from ubf_core.devices import adam
from ubf_core.errors import UBFInputError
from ubf_core.generators.base import AbundanceGenerator, own_copy, own_memory
from ubf_core.generators.constraints import CONSTRAINTS, to_abundances, to_diffusion_space

__all__ = ["DDPMGenerator", "SAMPLERS", "PREDICTION_TYPES", "BETA_SCHEDULES", "FAST_SAMPLER", "FAST_SAMPLER_DEFAULT_STEPS"]

SAMPLERS = ("ddpm", "ddim", "dpm++", "dpm++sde")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")   # what the UNet outputs: ε, v = √ᾱ ε − √(1−ᾱ) x0, or x0
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")   # diffusers' names
FAST_SAMPLER = "dpm++sde"         # the pipeline's default sampler (params synthesis.sampler, generator.preview)
FAST_SAMPLER_DEFAULT_STEPS = 20   # steps of the fast samplers when none are given ("ddpm": all T)


class DDPMGenerator(AbundanceGenerator):
    """Diffusion model of abundance maps (N, k, H, W); see the module docstring.

    Options (``make_generator("ddpm", k, size, classes, **options)``): constraint ("softmax" | "hud"),
    prediction_type (PREDICTION_TYPES), num_train_timesteps, beta_schedule (BETA_SCHEDULES), beta_start, beta_end
    (linear and scaled_linear only), block_out_channels, layers_per_block, attention (self-attention at
    the lowest resolution and in the middle block), norm_num_groups (must divide every block_out_channels entry),
    clip_sample, guidance_scale (default of ``sample``), p_uncond, init_seed, brightness (one more channel: the
    per-pixel brightness s) and brightness_log_stats (its standardisation, set by the first ``fit``).
    Sample options: sampler ("ddpm" | "ddim" | "dpm++" | "dpm++sde"), steps, guidance_scale, eta (DDIM only), progress.
    """

    name = "ddpm"
    default_lr = 1e-3
    defaults = {
        "constraint": "softmax",
        "num_train_timesteps": 2000,
        "beta_start": 1e-6,
        "beta_end": 1e-2,
        "block_out_channels": [32, 64],
        "layers_per_block": 1,
        "attention": False,
        "norm_num_groups": 8,
        "clip_sample": True,
        "guidance_scale": 2.0,
        "prediction_type": "epsilon",
        "beta_schedule": "linear",
    }
    sample_options = frozenset({"sampler", "steps", "guidance_scale", "eta"})

    last_nfe: int | None = None

    # ------------------------------------------------------------------------------------------------ set-up
    def _check_config(self) -> None:
        c, where = self.config, "ddpm generator"
        if c["constraint"] not in CONSTRAINTS:
            raise UBFInputError(where, f"constraint must be one of {CONSTRAINTS}, got {c['constraint']!r}")
        if not isinstance(c["num_train_timesteps"], int) or c["num_train_timesteps"] < 2:
            raise UBFInputError(where, f"num_train_timesteps must be an integer ≥ 2, got {c['num_train_timesteps']!r}")
        if not 0.0 < float(c["beta_start"]) < float(c["beta_end"]) < 1.0:
            raise UBFInputError(where, f"need 0 < beta_start < beta_end < 1, got {c['beta_start']}, {c['beta_end']}")
        channels, groups = c["block_out_channels"], c["norm_num_groups"]
        if (not isinstance(channels, list) or not channels
                or any(not isinstance(ch, int) or ch < 1 or ch % groups for ch in channels)):
            raise UBFInputError(where, f"block_out_channels must be positive integers divisible by norm_num_groups "
                                       f"= {groups}, got {channels!r}")
        if not isinstance(c["layers_per_block"], int) or c["layers_per_block"] < 1:
            raise UBFInputError(where, f"layers_per_block must be an integer ≥ 1, got {c['layers_per_block']!r}")
        if float(c["guidance_scale"]) < 0:
            raise UBFInputError(where, f"guidance_scale must be ≥ 0, got {c['guidance_scale']}")
        if c["prediction_type"] not in PREDICTION_TYPES:
            raise UBFInputError(where, f"prediction_type must be one of {PREDICTION_TYPES}, got {c['prediction_type']!r}")
        if c["beta_schedule"] not in BETA_SCHEDULES:
            raise UBFInputError(where, f"beta_schedule must be one of {BETA_SCHEDULES}, got {c['beta_schedule']!r}")

    @property
    def downsampling_factor(self) -> int:
        """Sizes (H, W) must be multiples of this: 2^(number of UNet levels − 1)."""
        return 2 ** (len(self.config["block_out_channels"]) - 1)

    def _check_size(self, size: tuple[int, int], where: str) -> None:
        f = self.downsampling_factor
        if size[0] % f or size[1] % f:
            raise UBFInputError(where, f"size {size[0]}×{size[1]} is not a multiple of {f}, the UNet's downsampling "
                                       f"factor (block_out_channels {self.config['block_out_channels']})")

    def _build(self) -> None:
        c = self.config
        levels = len(c["block_out_channels"])
        down = ["DownBlock2D"] * levels
        up = ["UpBlock2D"] * levels
        if c["attention"]:
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        self.unet = UNet2DModel(
            sample_size=list(self.size), in_channels=self.channels, out_channels=self.channels,
            block_out_channels=tuple(c["block_out_channels"]), layers_per_block=c["layers_per_block"],
            down_block_types=tuple(down), up_block_types=tuple(up), add_attention=bool(c["attention"]),
            norm_num_groups=c["norm_num_groups"],
            num_class_embeds=None if self.classes is None else len(self.classes) + 1,
        ).eval()
        self._train_scheduler = self.scheduler("ddpm")

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.unet}

    def scheduler(self, sampler: str):
        """A fresh diffusers scheduler for ``sampler`` (one of SAMPLERS) on the model's β schedule."""
        c = self.config
        common = dict(num_train_timesteps=c["num_train_timesteps"], beta_start=float(c["beta_start"]),
                      beta_end=float(c["beta_end"]), beta_schedule=c["beta_schedule"],
                      prediction_type=c["prediction_type"],
                      timestep_spacing="trailing")
        clip = bool(c["clip_sample"])
        if sampler == "ddpm":
            return DDPMScheduler(**common, variance_type="fixed_small", clip_sample=clip, clip_sample_range=1.0)
        if sampler == "ddim":
            return DDIMScheduler(**common, clip_sample=clip, clip_sample_range=1.0, set_alpha_to_one=True)
        if sampler in ("dpm++", "dpm++sde"):
            algorithm = "dpmsolver++" if sampler == "dpm++" else "sde-dpmsolver++"
            return DPMSolverMultistepScheduler(**common, algorithm_type=algorithm, solver_order=2, thresholding=clip,
                                               sample_max_value=1.0, lower_order_final=True)
        raise UBFInputError("ddpm generator.sample", f"sampler must be one of {SAMPLERS}, got {sampler!r}")

    # ------------------------------------------------------------------------------------------------ training
    def _make_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        self._optimizer = adam(self.unet.parameters(), lr=lr)
        return [self._optimizer]

    def _train_step(self, abundances, labels, gen) -> dict[str, float]:
        """‖target − f_θ(√ᾱ_t x0 + √(1−ᾱ_t) ε, t, class)‖² with t uniform in 0 … T−1; target ε, v or x0
        (``prediction_type``); a brightness model's channel k enters as it is (already standardised)."""
        if self.brightness:
            x0 = torch.cat([to_diffusion_space(abundances[:, :self.k], self.config["constraint"]),
                            abundances[:, self.k:]], dim=1)
        else:
            x0 = to_diffusion_space(abundances, self.config["constraint"])
        noise = torch.randn(x0.shape, generator=gen).to(self.device)
        t = torch.randint(0, self.config["num_train_timesteps"], (len(x0),), generator=gen).to(self.device)
        noisy = self._train_scheduler.add_noise(x0, noise, t)
        kind = self.config["prediction_type"]
        target = (noise if kind == "epsilon" else x0 if kind == "sample"
                  else self._train_scheduler.get_velocity(x0, noise, t))
        with self._amp.autocast():
            loss = F.mse_loss(self.unet(noisy, t, class_labels=labels).sample.float(), target)
        self._amp.step(loss, self._optimizer, max_norm=1.0, parameters=self.unet.parameters())
        return {"loss": float(loss.detach())}

    # ------------------------------------------------------------------------------------------------ sampling
    def _sample(self, n, size, labels, generators, progress, sampler: str = "ddpm", steps: int | None = None,
                guidance_scale: float | None = None, eta: float = 0.0) -> torch.Tensor:
        """Run ``sampler`` for ``steps`` steps (None: all T for "ddpm", 20 otherwise) from per-sample noise."""
        where = "ddpm generator.sample"
        if sampler not in SAMPLERS:
            raise UBFInputError(where, f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        T = self.config["num_train_timesteps"]
        if steps is None:
            steps = T if sampler == "ddpm" else FAST_SAMPLER_DEFAULT_STEPS
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= T:
            raise UBFInputError(where, f"steps must be an integer in 1 … {T} (the training steps), got {steps!r}")
        steps = int(steps)
        w = float(self.config["guidance_scale"] if guidance_scale is None else guidance_scale)
        if w < 0:
            raise UBFInputError(where, f"guidance_scale must be ≥ 0, got {w}")
        if sampler != "ddim" and eta:
            raise UBFInputError(where, f"eta applies to the 'ddim' sampler only, got eta={eta} with {sampler!r}")
        guided = labels is not None and w != 1.0
        if labels is None and self.conditional:
            labels = torch.full((n,), self.null_class, dtype=torch.long)   # unconditional on a conditional model

        scheduler = self.scheduler(sampler)
        scheduler.set_timesteps(steps, device=self.device)
        x = randn_tensor((n, self.channels, *size), generator=generators, device=self.device, dtype=torch.float32)
        x = x * scheduler.init_noise_sigma
        step_kwargs = {"generator": generators}
        if sampler == "ddim":   # ε re-derived from the clipped x0, as in the DDPM posterior and DPM-Solver++
            step_kwargs.update(eta=float(eta), use_clipped_model_output=True)
        if labels is not None:
            labels = labels.to(self.device)
            null = torch.full_like(labels, self.null_class)
        for t in tqdm(scheduler.timesteps, desc=f"{sampler} sampling", unit="step", disable=not progress,
                      leave=False):
            model_input = own_copy(scheduler.scale_model_input(x, t))   # the micro-batch: one UNet call
            if labels is None:
                out = self.unet(model_input, t).sample
            elif guided:   # cond and uncond of the whole micro-batch in one call
                pair = self.unet(torch.cat([model_input, model_input]), t,
                                 class_labels=torch.cat([labels, null])).sample
                cond, uncond = pair[:n], pair[n:]
                out = uncond + w * (cond - uncond)
            else:
                out = self.unet(model_input, t, class_labels=labels).sample
            x = scheduler.step(out, t, x, **step_kwargs).prev_sample
        self.last_nfe = steps * (2 if guided else 1)
        if not self.brightness:
            return to_abundances(x, self.config["constraint"])
        return self._with_brightness(to_abundances(x[:, :self.k], self.config["constraint"]), x[:, self.k:])

    # ------------------------------------------------------------------------------------------------ storage
    def _save_weights(self, folder: Path) -> None:
        self.unet.save_pretrained(folder / "unet")

    def _load_weights(self, folder: Path) -> None:
        if not (folder / "unet" / "config.json").is_file():
            raise UBFInputError(folder, "unet/config.json missing: not a complete saved DDPM generator")
        unet = UNet2DModel.from_pretrained(folder / "unet", low_cpu_mem_usage=False)
        self.unet = own_memory(unet).to(self.device).eval()
