"""What a synthesis run makes: the class of every sample (:func:`plan_labels`) and everything that determines the
arrays (:class:`SynthesisJob`, whose hash names a store's configuration)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ubf_core.devices import AUTOCAST_DTYPE, is_cuda
from ubf_core.errors import UBFInputError
from ubf_core.generators.seeding import sample_seed


def plan_labels(n: int, class_mix: Mapping[str, float] | None, classes: Sequence[str] | None,
                where: str = "synthesis.class_mix") -> np.ndarray:
    """Class name of each of ``n`` samples ("" for unconditional samples).

    ``class_mix`` maps class names to weights (counts or shares); counts are n·weight/Σweights rounded by largest
    remainder (ties to the earlier class), laid out class after class in the order given. None: unconditional.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
        raise UBFInputError(where.split(".")[0] + ".n", f"the number of samples must be a positive integer, got {n!r}")
    if not class_mix:
        return np.array([""] * n, dtype=object)
    if not classes:
        raise UBFInputError(where, "the generator is unconditional: it cannot be asked for classes")
    unknown = [c for c in class_mix if c not in classes]
    if unknown:
        raise UBFInputError(where, f"class {unknown[0]!r} is not one the generator was trained on "
                                   f"(it knows {', '.join(classes)})")
    weights = np.array([float(w) for w in class_mix.values()])
    if (weights < 0).any() or not weights.sum() > 0:
        raise UBFInputError(where, "class weights must be non-negative with a positive sum")
    exact = n * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return np.array([c for c, m in zip(class_mix, counts) for _ in range(m)], dtype=object)


@dataclass(frozen=True)
class SynthesisJob:
    """What a synthesis run produces: the samples' labels and seeds, their size, the mixing and the sampler.

    ``config`` holds everything that determines the arrays (generator and unmixing model identities, sampler
    options, SNR, ...); its hash names the store's configuration. The block size is not part of it.
    """

    labels: np.ndarray            # (n,) class names, "" for unconditional
    seed: int
    size: tuple[int, int]
    endmembers: np.ndarray        # (C, k) reflectance
    wavelengths_nm: np.ndarray    # (C,)
    snr_db: float | None = None
    sampler: Mapping | None = None
    config: Mapping | None = None
    device: str = "cpu"           # where the generator runs (GPU and CPU kernels round differently)
    units: str = "reflectance"    # reflectance | radiance (then × transmission)
    transmission: np.ndarray | None = None   # (C,) the unmixing model's solar-atmosphere factor t, for radiance
    brightness: bool = False      # the unmixing model has a brightness term s
    mixing: Mapping | None = None  # mixing neural: the decoder's NeuralMixing (mixing.mixing_record); None: linear
    generated_brightness: bool = False   # the generator makes s (n, H, W) too: stored and mixed (Ŷ' = s·Ê·Â')

    @property
    def unit_brightness(self) -> bool:
        """True when the unmixing model has a brightness term but the generator does not make s: every pixel is
        mixed with s = 1 (the store attrs and a warning say so)."""
        return self.brightness and not self.generated_brightness

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def micro_batch(self) -> int:
        """m: samples per generator call (``sampler["micro_batch"]``, default 1); block sizes are multiples of m."""
        return (self.sampler or {}).get("micro_batch", 1)

    @property
    def seeds(self) -> np.ndarray:
        return np.array([sample_seed(self.seed, i) for i in range(self.n)], dtype=np.int64)

    def config_hash(self) -> str:
        """SHA-256 (16 hex) of the configuration, the labels and the endmembers."""
        h = hashlib.sha256()
        fields = {"config": dict(self.config or {}), "sampler": dict(self.sampler or {}), "device": self.device,
                  "seed": int(self.seed), "size": list(self.size), "snr_db": self.snr_db}
        if is_cuda(self.device):  # sampling on a GPU runs under torch.autocast (blocks.run_block)
            fields["autocast"] = AUTOCAST_DTYPE
        h.update(json.dumps(fields, sort_keys=True, default=str).encode())
        h.update("\n".join(map(str, self.labels)).encode())
        h.update(np.ascontiguousarray(self.endmembers, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(self.wavelengths_nm, dtype=np.float64).tobytes())
        if self.units != "reflectance" or self.brightness:   # only then: earlier stores keep their hash
            h.update(json.dumps({"units": self.units, "brightness": self.brightness}).encode())
        if self.units == "radiance":
            h.update(np.ascontiguousarray(self.transmission, dtype=np.float32).tobytes())
        if self.mixing is not None:                            # only then: linear stores keep their hash
            h.update(json.dumps(dict(self.mixing["config"]), sort_keys=True).encode())
            for key in sorted(self.mixing["state"]):
                h.update(key.encode() + np.ascontiguousarray(self.mixing["state"][key], dtype=np.float32).tobytes())
        if self.generated_brightness:
            h.update(b"generated_brightness")
        return h.hexdigest()[:16]

    def check_units(self) -> None:
        """``units`` must be reflectance or radiance, and radiance needs ``transmission`` (C,); a generated
        brightness needs an unmixing model with the brightness term."""
        if self.generated_brightness and not self.brightness:
            raise UBFInputError("synthesis", "the generator makes brightness but the unmixing model has no brightness "
                                             "term: they are not the pair the generator was trained with")
        if self.units not in ("reflectance", "radiance"):
            raise UBFInputError("synthesis.units", f"{self.units!r} unknown; use reflectance or radiance")
        if self.units == "radiance" and (self.transmission is None
                                         or np.shape(self.transmission) != (len(self.wavelengths_nm),)):
            raise UBFInputError("synthesis.units", "radiance needs the unmixing model's solar-atmosphere factor t "
                                                   "(C,): the model has no atmosphere term")
