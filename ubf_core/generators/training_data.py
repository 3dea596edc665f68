"""The generator's training set: abundance maps inferred from RGB images, from HSIs, or both mixed, with their
per-pixel brightness s when the generator learns it.

Whether it does is ``generator.brightness`` (:func:`use_brightness`): ``auto`` (on exactly when the abundance stores
the training set reads hold a ``brightness`` variable, i.e. when their unmixing model has the brightness term; the
default, so a linear unmixing model keeps the generator it always had), ``always`` (an error naming a store without
it) or ``never``. Not on/off: YAML reads those as booleans."""

from __future__ import annotations

import numpy as np

from ubf_core.errors import UBFInputError

SOURCES = ("rgb", "hsi", "both")
BRIGHTNESS_CHOICES = ("auto", "always", "never")


def use_brightness(setting: str, stores: dict) -> bool:
    """Whether the generator learns the brightness: ``setting`` (``generator.brightness``: auto | always | never)
    against ``stores``, {store name or path: whether it holds ``brightness``} for the abundance stores the training
    set reads. ``always`` with a store without it, or ``auto`` with stores that disagree (two unmixing models), is a
    UBFInputError naming the store."""
    if setting not in BRIGHTNESS_CHOICES:
        raise UBFInputError("generator.brightness", f"{setting!r} unknown; use one of {', '.join(BRIGHTNESS_CHOICES)}")
    if setting == "never":
        return False
    missing = [name for name, has in stores.items() if not has]
    if setting == "always" and missing:
        raise UBFInputError(missing[0], "has no brightness variable but generator.brightness is always: infer the "
                                        "abundances with an unmixing model with unmixing.decoder.brightness: true, or "
                                        "set generator.brightness: auto")
    if missing and len(missing) < len(stores):
        have = next(name for name, has in stores.items() if has)
        raise UBFInputError(missing[0], f"has no brightness variable but {have} has: the abundance stores come from "
                                        f"different unmixing models (rerun infer_abundance)")
    return bool(stores) and not missing


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
    return training_set_with_brightness(source, rgb, rgb_labels, hsi, hsi_share, seed)[:2]


def training_set_with_brightness(source: str, rgb: np.ndarray | None, rgb_labels: np.ndarray | None,
                                 hsi: np.ndarray | None, hsi_share: float = 0.5, seed: int = 0, *,
                                 rgb_brightness: np.ndarray | None = None, hsi_brightness: np.ndarray | None = None,
                                 brightness: bool = False) -> tuple[np.ndarray, list, np.ndarray | None]:
    """:func:`training_set` and, with ``brightness``, the brightness s (N, H, W) float32 of the same maps, taken
    from ``rgb_brightness`` / ``hsi_brightness`` (M, H, W), one per map of ``rgb`` / ``hsi`` (None without
    ``brightness``). A side the source uses without its brightness is a UBFInputError."""
    maps, labels, picks = _picked(source, rgb, rgb_labels, hsi, hsi_share, seed)
    if not brightness:
        return maps, labels, None
    parts = []
    for side, a, s, pick in (("rgb", rgb, rgb_brightness, picks[0]), ("hsi", hsi, hsi_brightness, picks[1])):
        if pick is None:
            continue
        if s is None:
            raise UBFInputError("generator.brightness", f"is on but the {side.upper()} abundances come without "
                                                        f"their brightness")
        s = np.asarray(s)
        if s.shape != (len(a), *np.shape(a)[2:]):
            raise UBFInputError("generator.brightness", f"{side.upper()} brightness has shape {s.shape}, the maps "
                                                        f"{np.shape(a)}: need (N, H, W)")
        parts.append(s[pick])
    return maps, labels, np.concatenate(parts).astype(np.float32)


def _picked(source, rgb, rgb_labels, hsi, hsi_share, seed) -> tuple[np.ndarray, list, tuple]:
    """The training maps and labels, and which maps of each side they are (index arrays, None for a side not
    used)."""
    if source not in SOURCES:
        raise UBFInputError("generator.source", f"'{source}' unknown; use one of {SOURCES}")
    if source in ("rgb", "both") and (rgb is None or len(rgb) == 0):
        raise UBFInputError("generator.source", f"source {source} needs RGB abundances; the RGB store is empty")
    if source in ("hsi", "both") and (hsi is None or len(hsi) == 0):
        raise UBFInputError("generator.source", f"source {source} needs HSI abundances; the HSI store is empty")
    if source == "rgb":
        return np.asarray(rgb, dtype=np.float32), [str(v) for v in rgb_labels], (np.arange(len(rgb)), None)
    if source == "hsi":
        return np.asarray(hsi, dtype=np.float32), [None] * len(hsi), (None, np.arange(len(hsi)))
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
    return maps, [str(rgb_labels[i]) for i in pick_rgb] + [None] * n_hsi, (pick_rgb, pick_hsi)
