"""The interface every abundance generator follows, with the checks, training loop and storage they share.

An abundance generator learns the distribution of abundance maps ``A`` of shape (N, k, H, W), float32,
non-negative and summing to one over the endmember axis k at every pixel, and samples new ones of the same kind.
Implementations: :mod:`ubf_core.generators.ddpm` (diffusion on diffusers), :mod:`ubf_core.generators.vae`,
:mod:`ubf_core.generators.gan`; :func:`ubf_core.generators.make_generator` picks one by name and
:func:`ubf_core.generators.load_generator` restores any saved one.

Brightness (option ``brightness=True``, all implementations): the model learns maps with one more channel, the
per-pixel brightness s ≥ 0 (N, H, W) of the extended linear mixing model Ŷ = s·Ê·Â, given to ``fit`` as
``brightness=`` and returned by :meth:`AbundanceGenerator.sample_with_brightness`. The networks see it as channel k
(after the k abundance channels) in a standardised log space whose mean and spread of the training set are stored in
the config (``brightness_log_stats``, set by the first ``fit``; see :mod:`ubf_core.generators.constraints`), so a
saved model inverts it exactly. Without the option (the default) the networks, training and samples are those of a
model that never had it.

Class conditioning is the same for all: with ``classes`` given, the networks get a class embedding with
``len(classes) + 1`` rows, the last one meaning "no class"; training replaces a label by "no class" with probability
``p_uncond``, so unconditional sampling (``labels=None``) stays available on a conditional model.
"""

from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from ubf_core.devices import AmpStep, resolve_autocast
from ubf_core.errors import UBFInputError
from ubf_core.generators.constraints import brightness_log_stats, to_brightness, to_brightness_space
from ubf_core.generators.seeding import deterministic_torch, sample_generators
from ubf_core.generators.training import TrainSettings, WeightEMA, dihedral, lr_factor

__all__ = ["AbundanceGenerator", "SIMPLEX_TOLERANCE", "SAVED_GENERATOR_FILE", "own_copy", "own_memory"]

SIMPLEX_TOLERANCE = 1e-3      # training maps must be ≥ −tol and sum to 1 ± tol at every pixel
SAVED_GENERATOR_FILE = "generator.json"
_FORMAT = "ubf-abundance-generator"
_COMMON_DEFAULTS: dict[str, Any] = {"p_uncond": 0.1, "init_seed": 0, "brightness": False, "brightness_log_stats": None}


class AbundanceGenerator(abc.ABC):
    """A generative model of abundance maps (N, k, H, W): ``fit`` on real maps, ``sample`` new ones.

    Attributes: ``name`` (registry name: "ddpm", "vae", "gan"), ``k`` (number of endmembers), ``size`` (trained
    (H, W) in pixels), ``classes`` (class names, or None for an unconditional model), ``config`` (every option that
    defines the model, JSON-able; ``make_generator(name, k, size, classes, **config)`` rebuilds it untrained),
    ``brightness`` (True: it also generates the per-pixel brightness s) and ``channels`` (k, or k + 1 with it).
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}        # the implementation's options and their default values
    sample_options: ClassVar[frozenset[str]] = frozenset()   # keyword options of ``sample`` besides "progress"
    default_lr: ClassVar[float] = 1e-3

    def __init__(self, k: int, size: tuple[int, int], classes: Iterable[str] | None = None, **options):
        where = f"{self.name} generator"
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
            raise UBFInputError(where, f"k (number of endmembers) must be an integer ≥ 2, got {k!r}")
        self.k = int(k)
        self.size = _check_pair(size, where, "size")
        if classes is not None:
            classes = [str(c) for c in classes]
            if not classes or len(set(classes)) != len(classes):
                raise UBFInputError(where, f"classes must be a non-empty list of distinct names, got {classes}")
        self.classes: list[str] | None = classes
        known = {**_COMMON_DEFAULTS, **self.defaults}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise UBFInputError(where, f"unknown option(s) {unknown}; known options: {sorted(known)}")
        self.config: dict[str, Any] = _jsonable({**known, **options})
        if not 0.0 <= float(self.config["p_uncond"]) < 1.0:
            raise UBFInputError(where, f"p_uncond must be in [0, 1), got {self.config['p_uncond']}")
        _check_brightness_options(self.config, where)
        self._check_config()
        self._check_size(self.size, where)
        self.device = torch.device("cpu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.config["init_seed"]))
            self._build()

    # ----------------------------------------------------------------------------------------------------------
    # what an implementation provides
    @abc.abstractmethod
    def _check_config(self) -> None:
        """Raise UBFInputError for an option value the implementation cannot use."""

    @abc.abstractmethod
    def _check_size(self, size: tuple[int, int], where: str) -> None:
        """Raise UBFInputError if maps of ``size`` (H, W) cannot be produced by this model."""

    @abc.abstractmethod
    def _build(self) -> None:
        """Create the networks from ``self.config`` (called once, under ``torch.manual_seed(init_seed)``)."""

    @abc.abstractmethod
    def networks(self) -> dict[str, torch.nn.Module]:
        """The model's networks by name (what ``save`` stores)."""

    @abc.abstractmethod
    def _make_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """Create fresh optimisers for a ``fit`` call and return them (the lr schedule applies to each)."""

    @abc.abstractmethod
    def _train_step(self, abundances: torch.Tensor, labels: torch.Tensor | None,
                    gen: torch.Generator) -> dict[str, float]:
        """One optimisation step on a batch (B, k, H, W) (a brightness model: (B, k + 1, H, W), channel k the
        brightness in its standardised log space, :func:`~ubf_core.generators.constraints.to_brightness_space`)
        with class indices (B,) (the "no class" index where
        dropped) or None; returns the batch's losses by name (always one called "loss").

        The forward pass and losses run under ``self._amp.autocast()`` (mixed precision on CUDA), the losses in
        float32 (network outputs cast with ``.float()``), and each optimiser steps through ``self._amp.step``
        (:class:`ubf_core.devices.AmpStep`, made by ``fit`` for ``self.device``)."""

    @abc.abstractmethod
    def _sample(self, n: int, size: tuple[int, int], labels: torch.Tensor | None,
                generators: list[torch.Generator], progress: bool, **options) -> torch.Tensor:
        """n abundance maps (n, k, H, W) on the simplex (a brightness model: (n, k + 1, H, W), channel k the
        brightness s ≥ 0, see :meth:`_with_brightness`), computed as one batch (one micro-batch of
        :meth:`sample`); sample j draws its randomness only from ``generators[j]``. The networks see the n
        samples in one call, on freshly allocated inputs (see :func:`own_copy`), so a sample's value depends
        only on its micro-batch (its own index and those of its group), never on how the caller split the run."""

    # ----------------------------------------------------------------------------------------------------------
    # shared behaviour
    @property
    def conditional(self) -> bool:
        """True when the model was built with classes."""
        return self.classes is not None

    @property
    def brightness(self) -> bool:
        """True when the model generates the per-pixel brightness s beside the abundances."""
        return bool(self.config["brightness"])

    @property
    def channels(self) -> int:
        """Channels of the maps the networks see: k, plus one for the brightness."""
        return self.k + (1 if self.brightness else 0)

    @property
    def brightness_log_stats(self) -> list[float]:
        """[μ, σ] of ln s of the training set (the config's, set by the first ``fit``; [0, 1] before it)."""
        stats = self.config["brightness_log_stats"]
        return [0.0, 1.0] if stats is None else [float(v) for v in stats]

    @property
    def null_class(self) -> int | None:
        """Index of the "no class" embedding row (``len(classes)``), or None for an unconditional model."""
        return None if self.classes is None else len(self.classes)

    def to(self, device: str | torch.device) -> "AbundanceGenerator":
        """Move the networks to ``device``; random draws stay on the CPU, so samples keep their seeds."""
        self.device = torch.device(device)
        for net in self.networks().values():
            net.to(self.device)
        return self

    def fit(self, abundances: np.ndarray, labels: np.ndarray | None = None,
            settings: TrainSettings = TrainSettings(), *, brightness: np.ndarray | None = None, seed: int = 0,
            progress: bool = True, on_log: Callable[[int, dict], None] | None = None) -> list[dict]:
        """Train on abundance maps for ``settings.steps`` optimizer steps; returns the history.

        abundances: (N, k, H, W) float, non-negative and summing to one over k at every pixel (±1e-3), with
            (H, W) equal to ``size``.
        labels: (N,) class indices or class names (from ``classes``), or None for a map of no class (it trains
            the unconditional branch); required for a conditional model, refused by an unconditional one.
        brightness: (N, H, W) float, the per-pixel brightness s ≥ 0 (dimensionless) of each map; required by a
            brightness model, refused by one without. The first fit sets ``config["brightness_log_stats"]`` from
            it (later fits, e.g. from a checkpoint, keep the model's).
        settings: steps, batch size, learning-rate warm-up and decay, weight EMA, augmentation
            (:class:`~ubf_core.generators.training.TrainSettings`); seed fixes the shuffling, the augmentation and
            every random draw of training.
        on_log: called as ``on_log(step, record)`` every ``settings.log_every`` steps and after the last one.
        Batches are drawn without replacement, reshuffled after each pass over the maps. With ``ema_decay`` > 0
        the networks end holding the EMA of their weights (what ``sample`` and ``save`` then use).
        Each history record is ``{"step": s, "lr": …, "loss": …, …}``, losses averaged over the steps since the
        previous record. Forward passes run under ``settings.autocast`` (auto: float16 on a CUDA device, with
        scaled gradients; bfloat16 on a CPU with fast bfloat16 kernels; float32 elsewhere); weights and losses stay
        float32.
        """
        where = f"{self.name} generator.fit"
        if isinstance(labels, TrainSettings):
            raise UBFInputError(where, "TrainSettings given as labels: pass it as settings=…")
        x = self._check_abundances(abundances, where)
        if not self.brightness and brightness is not None:
            raise UBFInputError(where, "brightness given, but this model was built without it (brightness=False)")
        y = None
        if self.conditional:
            if labels is None:
                raise UBFInputError(where, f"this model is conditioned on classes {self.classes}; give labels (N,)")
            y = torch.as_tensor(self._class_indices(labels, len(x), where, allow_none=True), dtype=torch.long)
        elif labels is not None:
            raise UBFInputError(where, "labels given, but this model was built without classes")
        if not isinstance(settings, TrainSettings):
            raise UBFInputError(where, f"settings must be a TrainSettings, got {type(settings).__name__}")
        if self.brightness:   # last check: the first fit takes the standardisation of ln s from these maps
            x = torch.cat([x, self._brightness_channel(brightness, len(x), where)], dim=1)
        if settings.steps == 0:
            return []
        lr = self.default_lr if settings.lr is None else float(settings.lr)
        batch_size = min(settings.batch_size, len(x))
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        history: list[dict] = []
        with deterministic_torch():
            dtype = resolve_autocast(self.device, settings.autocast, "generator.train.autocast")
            self._amp = AmpStep(self.device, dtype)
            optimizers = self._make_optimizers(lr)
            schedules = [torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, settings))
                         for opt in optimizers]
            ema = WeightEMA(self.networks(), settings.ema_decay) if settings.ema_decay > 0 else None
            for net in self.networks().values():
                net.train()
            order, cursor = torch.randperm(len(x), generator=gen), 0
            sums: dict[str, float] = {}
            since = 0
            bar = tqdm(range(1, settings.steps + 1), desc=f"{self.name} training", unit="step",
                       disable=not progress, leave=False)
            for step in bar:
                if cursor + batch_size > len(x):
                    order, cursor = torch.randperm(len(x), generator=gen), 0
                idx = order[cursor:cursor + batch_size]
                cursor += batch_size
                xb = dihedral(x[idx], gen) if settings.augment else x[idx]
                yb = None if y is None else self._drop_labels(y[idx], gen)
                current_lr = optimizers[0].param_groups[0]["lr"]
                parts = self._train_step(xb.to(self.device), None if yb is None else yb.to(self.device), gen)
                for schedule in schedules:
                    schedule.step()
                if ema is not None:
                    ema.update()
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                since += 1
                if step % settings.log_every == 0 or step == settings.steps:
                    record = {"step": step, "lr": current_lr, **{k: v / since for k, v in sums.items()}}
                    history.append(record)
                    bar.set_postfix(loss=f"{record['loss']:.4g}")
                    if on_log is not None:
                        on_log(step, record)
                    sums, since = {}, 0
            if ema is not None:
                ema.copy_to()
            for net in self.networks().values():
                net.eval()
        return history

    def sample(self, n: int, size: tuple[int, int] | None = None, seed: int = 0, labels=None,
               start_index: int = 0, micro_batch: int = 1, **options) -> np.ndarray:
        """n new abundance maps (n, k, H, W) float32, non-negative and summing to one over k at every pixel (a
        brightness model's maps without their brightness: :meth:`sample_with_brightness` gives both).

        size: (H, W) in pixels, None for the trained ``size``.
        seed, start_index: sample j is a function of (seed, start_index + j) only, so one call with n maps equals
            n calls with n=1 and start_index = start_index + j.
        micro_batch: m, the samples the networks evaluate in one call. Sample i (counted from index 0 of the
            run, i = start_index + j) is computed in the group ⌊i/m⌋·m … ⌊i/m⌋·m + m − 1, cut at the end of this
            call; ``start_index`` must be a multiple of m. Calls whose starts are multiples of m and whose sizes
            are multiples of m (the last call of a run excepted) therefore give the same maps however the run is
            split; m = 1 (one sample per network call) gives the same maps for any split. Larger m fills a GPU;
            maps differ in the last bits between values of m (batched kernels sum in another order).
        labels: None (unconditional), one class (name or index) for all maps, or n of them.
        options: the implementation's sampler options (``sample_options``) and ``progress`` (a progress bar).
        """
        return self.sample_with_brightness(n, size, seed, labels, start_index, micro_batch, **options)[0]

    def sample_with_brightness(self, n: int, size: tuple[int, int] | None = None, seed: int = 0, labels=None,
                               start_index: int = 0, micro_batch: int = 1,
                               **options) -> tuple[np.ndarray, np.ndarray | None]:
        """(abundances (n, k, H, W) float32 on the simplex, brightness s (n, H, W) float32 > 0, dimensionless, or
        None for a model without brightness); arguments as :meth:`sample`, the same draws (a sample's s comes
        with its abundances, from the same seed)."""
        where = f"{self.name} generator.sample"
        n = _positive_int(n, where, "n (number of samples)")
        m = _positive_int(micro_batch, where, "micro_batch")
        if isinstance(start_index, bool) or not isinstance(start_index, (int, np.integer)) or start_index < 0:
            raise UBFInputError(where, f"start_index must be an integer ≥ 0, got {start_index!r}")
        if start_index % m:
            raise UBFInputError(where, f"start_index {start_index} is not a multiple of micro_batch {m}: the "
                                       f"run's micro-batches would be cut")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise UBFInputError(where, f"seed must be an integer, got {seed!r}")
        size = self.size if size is None else _check_pair(size, where, "size")
        self._check_size(size, where)
        unknown = sorted(set(options) - set(self.sample_options) - {"progress"})
        if unknown:
            raise UBFInputError(where, f"unknown sampler option(s) {unknown}; this model takes "
                                       f"{sorted(self.sample_options | {'progress'})}")
        progress = bool(options.pop("progress", False))
        if labels is None:
            y = None
        elif not self.conditional:
            raise UBFInputError(where, "labels given, but this model was built without classes")
        else:
            if isinstance(labels, (str, int, np.integer, np.str_)):
                labels = [labels] * n
            y = torch.as_tensor(self._class_indices(labels, n, where), dtype=torch.long)
        generators = sample_generators(int(seed), int(start_index), n)
        with torch.no_grad(), deterministic_torch():
            for net in self.networks().values():
                net.eval()
            maps = [self._sample(min(m, n - a), size, None if y is None else y[a:a + m], generators[a:a + m],
                                 progress, **options).detach().to("cpu", torch.float32)
                    for a in tqdm(range(0, n, m), desc=f"{self.name} sampling", unit="micro-batch",
                                  disable=not progress or n <= m, leave=False)]
        out = torch.cat(maps).numpy()
        if not self.brightness:
            return out, None
        return np.ascontiguousarray(out[:, :self.k]), np.ascontiguousarray(out[:, self.k])

    def save(self, path: str | Path) -> Path:
        """Write the model to the folder ``path`` (created): ``generator.json`` (name, k, size, classes, config)
        and the weights (safetensors). ``load_generator(path)`` restores it."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": _FORMAT, "version": 1, "name": self.name, "k": self.k, "size": list(self.size),
                "classes": self.classes, "config": self.config}
        (folder / SAVED_GENERATOR_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        self._save_weights(folder)
        return folder

    def _save_weights(self, folder: Path) -> None:
        """All networks' parameters and buffers in one ``weights.safetensors`` (keys "<network>.<name>")."""
        from safetensors.torch import save_file

        tensors = {f"{name}.{key}": value.detach().to("cpu").contiguous()
                   for name, net in self.networks().items() for key, value in net.state_dict().items()}
        save_file(tensors, str(folder / "weights.safetensors"))

    def _load_weights(self, folder: Path) -> None:
        """Restore what :meth:`_save_weights` wrote."""
        from safetensors.torch import load_file

        file = folder / "weights.safetensors"
        if not file.is_file():
            raise UBFInputError(folder, "weights.safetensors missing: not a complete saved generator")
        tensors = load_file(str(file))
        for name, net in self.networks().items():
            prefix = f"{name}."
            net.load_state_dict({key[len(prefix):]: value for key, value in tensors.items()
                                 if key.startswith(prefix)})
            net.eval()

    @classmethod
    def _restore(cls, folder: Path, meta: dict) -> "AbundanceGenerator":
        """Rebuild from the saved metadata, then load the saved weights."""
        gen = cls(meta["k"], tuple(meta["size"]), meta["classes"], **meta["config"])
        gen._load_weights(folder)
        return gen

    # ----------------------------------------------------------------------------------------------------------
    # helpers for implementations
    def _with_brightness(self, abundances: torch.Tensor, brightness_x: torch.Tensor | None) -> torch.Tensor:
        """What ``_sample`` returns: abundances (n, k, H, W) as they are for a model without brightness; for a
        brightness model with the channel x_s (n, 1, H, W) mapped back to s ≥ 0 appended as channel k."""
        if not self.brightness:
            return abundances
        return torch.cat([abundances, to_brightness(brightness_x.float(), self.brightness_log_stats)[:, None]],
                         dim=1)

    def _brightness_channel(self, brightness, n: int, where: str) -> torch.Tensor:
        """Training brightness (N, H, W) → the networks' channel x_s (N, 1, H, W) float32, after checking shape and
        values; sets ``brightness_log_stats`` on the first fit."""
        if brightness is None:
            raise UBFInputError(where, "this model generates brightness (brightness=True): give brightness (N, H, W)")
        s = np.asarray(brightness)
        if s.shape != (n, *self.size):
            raise UBFInputError(where, f"brightness must be (N, H, W) = {(n, *self.size)}, got {s.shape}")
        if not np.issubdtype(s.dtype, np.floating):
            raise UBFInputError(where, f"brightness must be floating point, got dtype {s.dtype}")
        if not np.isfinite(s).all() or float(s.min()) < 0:
            raise UBFInputError(where, "brightness must be finite and ≥ 0 at every pixel")
        if self.config["brightness_log_stats"] is None:
            self.config["brightness_log_stats"] = brightness_log_stats(s)
        return to_brightness_space(torch.from_numpy(np.ascontiguousarray(s, dtype=np.float32)),
                                   self.brightness_log_stats)

    def _drop_labels(self, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Replace each label by the "no class" index with probability ``p_uncond`` (classifier-free training)."""
        drop = torch.rand(len(labels), generator=gen) < float(self.config["p_uncond"])
        return torch.where(drop, torch.full_like(labels, self.null_class), labels)

    def _class_indices(self, labels, n: int, where: str, allow_none: bool = False) -> np.ndarray:
        """Labels (n class names or indices) → int64 indices into ``classes``; with ``allow_none`` (training), a
        None label (a map of no class, e.g. from an HSI) becomes the "no class" index."""
        values = labels.tolist() if isinstance(labels, np.ndarray) else list(labels)
        if len(values) != n:
            raise UBFInputError(where, f"{len(values)} labels given for {n} maps")
        out = np.empty(n, dtype=np.int64)
        for j, value in enumerate(values):
            if value is None and allow_none:
                out[j] = self.null_class
            elif isinstance(value, (str, np.str_)):
                if value not in self.classes:
                    raise UBFInputError(where, f"class {value!r} is not one the model was trained on "
                                               f"({', '.join(self.classes)})")
                out[j] = self.classes.index(value)
            elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                if not 0 <= value < len(self.classes):
                    raise UBFInputError(where, f"class index {value} out of range: the model knows "
                                               f"{len(self.classes)} classes (0 … {len(self.classes) - 1})")
                out[j] = int(value)
            else:
                raise UBFInputError(where, f"a label must be a class name or index, got {value!r}")
        return out

    def _check_abundances(self, abundances, where: str) -> torch.Tensor:
        """Training maps → float32 tensor (N, k, H, W), after checking shape and the simplex constraints."""
        a = np.asarray(abundances)
        if a.ndim != 4:
            raise UBFInputError(where, f"abundances must be (N, k, H, W), got an array of shape {a.shape}")
        if a.shape[1] != self.k:
            raise UBFInputError(where, f"abundances have k = {a.shape[1]} endmembers, the model k = {self.k}")
        if tuple(a.shape[2:]) != self.size:
            raise UBFInputError(where, f"abundance maps are {a.shape[2]}×{a.shape[3]} pixels, the model was "
                                       f"built for {self.size[0]}×{self.size[1]}")
        if a.shape[0] == 0:
            raise UBFInputError(where, "no abundance maps given (N = 0)")
        if not np.issubdtype(a.dtype, np.floating):
            raise UBFInputError(where, f"abundances must be floating point, got dtype {a.dtype}")
        a = a.astype(np.float32, copy=False)
        if not np.isfinite(a).all():
            raise UBFInputError(where, "abundances contain NaN or infinite values")
        low = float(a.min())
        worst_sum = float(np.abs(a.sum(axis=1, dtype=np.float64) - 1.0).max())
        if low < -SIMPLEX_TOLERANCE or worst_sum > SIMPLEX_TOLERANCE:
            raise UBFInputError(where, f"abundances are not on the simplex (min {low:.4g}, largest |sum over k − 1| "
                                       f"{worst_sum:.4g}; tolerance {SIMPLEX_TOLERANCE})")
        return torch.from_numpy(np.ascontiguousarray(a))


def own_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A freshly allocated contiguous copy (CPU allocations are 64-byte aligned).

    CPU matrix kernels may sum in a different order for data at a different memory alignment, so a sample sliced
    out of a batch (a view at an arbitrary offset) is copied before it enters a network, and loaded weights (views
    into one file buffer) are copied into their own memory: results then do not depend on batch size or on
    whether a model was trained here or loaded.
    """
    return tensor.clone(memory_format=torch.contiguous_format)


def own_memory(module: torch.nn.Module) -> torch.nn.Module:
    """Give every parameter and buffer of ``module`` its own aligned memory (see :func:`own_copy`)."""
    with torch.no_grad():
        for p in module.parameters():
            p.data = own_copy(p.data)
        for owner in module.modules():
            for name, buffer in list(owner.named_buffers(recurse=False)):
                if buffer is not None:
                    setattr(owner, name, own_copy(buffer))
    return module


def _check_brightness_options(config: dict, where: str) -> None:
    """``brightness`` must be a bool and ``brightness_log_stats`` None or [μ, σ] with σ > 0, both finite."""
    if not isinstance(config["brightness"], bool):
        raise UBFInputError(where, f"brightness must be true or false, got {config['brightness']!r}")
    stats = config["brightness_log_stats"]
    if stats is None:
        return
    ok = (isinstance(stats, list) and len(stats) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in stats))
    if not ok or not stats[1] > 0:
        raise UBFInputError(where, f"brightness_log_stats must be null or [mean, std > 0] of ln s, got {stats!r}")


def _check_pair(size, where: str, what: str) -> tuple[int, int]:
    """(H, W) as two positive ints."""
    try:
        h, w = size
    except (TypeError, ValueError):
        raise UBFInputError(where, f"{what} must be (H, W), got {size!r}") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise UBFInputError(where, f"{what} must be two positive integers (H, W), got {size!r}")
    return int(h), int(w)


def _positive_int(value, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UBFInputError(where, f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _jsonable(value):
    """Options as plain JSON values (tuples → lists, numpy scalars → Python), so configs survive save/load."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
