"""The generator's training set: abundance maps inferred from RGB images, from HSIs, or both mixed."""

from __future__ import annotations

import numpy as np

from ubf_core.errors import UBFInputError

SOURCES = ("rgb", "hsi", "both")


def heldout_images(sources, labels, per_class: int, seed: int = 0) -> np.ndarray:
    """Which patches belong to held-out RGB images: ``per_class`` whole images of every class, drawn with
    ``seed`` (patches of one image share its ``sources`` entry, so no held-out image leaks into training).

    sources, labels: (N,) the image and the class of each patch. Returns a boolean mask (N,), True = held out.
    A class with no more than ``per_class`` images is a UBFInputError naming it (nothing would be left to train on).
    """
    sources = np.asarray([str(s) for s in sources])
    labels = np.asarray([str(v) for v in labels])
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 0:
        raise UBFInputError("heldout_rgb_per_class", f"must be an integer ≥ 0, got {per_class!r}")
    rng = np.random.default_rng(seed)
    out = np.zeros(len(sources), dtype=bool)
    if per_class == 0:
        return out
    for cls in sorted(set(labels.tolist())):
        images = sorted(set(sources[labels == cls].tolist()))
        if len(images) <= per_class:
            raise UBFInputError("heldout_rgb_per_class", f"class {cls!r} has {len(images)} images; holding out "
                                                         f"{per_class} would leave none to train on")
        out |= np.isin(sources, rng.choice(images, per_class, replace=False))
    return out


def training_set(source: str, rgb: np.ndarray | None, rgb_labels: np.ndarray | None, hsi: np.ndarray | None,
                 hsi_share: float = 0.5, seed: int = 0) -> tuple[np.ndarray, list]:
    """Abundance maps (N, k, H, W) and their labels (class name, or None for an HSI map, which has no class).

    ``source``: "rgb" (the RGB store's maps), "hsi" (the HSI store's) or "both": as many maps as the two stores
    allow with a share ``hsi_share`` of HSI maps, each side drawn without replacement (seeded), RGB maps first.
    """
    if source not in SOURCES:
        raise UBFInputError("generator.source", f"'{source}' unknown; use one of {SOURCES}")
    if source in ("rgb", "both") and (rgb is None or len(rgb) == 0):
        raise UBFInputError("generator.source", f"source {source} needs RGB abundances; the RGB store is empty")
    if source in ("hsi", "both") and (hsi is None or len(hsi) == 0):
        raise UBFInputError("generator.source", f"source {source} needs HSI abundances; the HSI store is empty")
    if source == "rgb":
        return np.asarray(rgb, dtype=np.float32), [str(v) for v in rgb_labels]
    if source == "hsi":
        return np.asarray(hsi, dtype=np.float32), [None] * len(hsi)
    if not 0.0 < float(hsi_share) < 1.0:
        raise UBFInputError("generator.hsi_share", f"must lie strictly between 0 and 1, got {hsi_share}")
    if rgb.shape[1:] != hsi.shape[1:]:
        raise UBFInputError("generator.source", f"RGB maps {rgb.shape[1:]} and HSI maps {hsi.shape[1:]} differ in "
                                                f"k or size; both must come from one unmixing model and patch size")
    share = float(hsi_share)
    total = int(min(len(hsi) / share, len(rgb) / (1.0 - share)))
    n_hsi = int(round(share * total))
    n_rgb = total - n_hsi
    rng = np.random.default_rng(seed)
    pick_rgb = np.sort(rng.choice(len(rgb), n_rgb, replace=False))
    pick_hsi = np.sort(rng.choice(len(hsi), n_hsi, replace=False))
    maps = np.concatenate([rgb[pick_rgb], hsi[pick_hsi]]).astype(np.float32)
    return maps, [str(rgb_labels[i]) for i in pick_rgb] + [None] * n_hsi
