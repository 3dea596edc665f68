"""Cutting scenes and images into square patches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ubf_core.data.stores import check_shard_patches
from ubf_core.errors import UBFInputError

_RESAMPLE = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
}


@dataclass(frozen=True)
class PatchSpec:
    """Square patches of ``size`` pixels taken every ``stride`` pixels.

    ``cover_edges`` adds a last row/column of origins flush with the far edge, so no pixel is left out;
    ``max_nan_pixels`` is how many NaN pixels a patch may hold before it is dropped; ``shard_patches`` is how many
    consecutive patches the stores keep in one shard file (1: one file per patch; see
    :class:`ubf_core.data.stores.PatchLayout`). A ``shard_patches`` that is not a whole number of patches (≥ 1) is a
    one-line UBFInputError naming ``patch.shard_patches``.
    """

    size: int
    stride: int
    cover_edges: bool = True
    max_nan_pixels: int = 0
    shard_patches: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "shard_patches", check_shard_patches(self.shard_patches))

    @classmethod
    def from_params(cls, d: dict) -> "PatchSpec":
        spec = cls(int(d["size"]), int(d.get("stride", d["size"])), bool(d.get("cover_edges", True)),
                   int(d.get("max_nan_pixels", 0)), d.get("shard_patches", 1))
        if spec.size < 1 or spec.stride < 1:
            raise UBFInputError("params.yaml", f"patch size and stride must be positive, got {spec.size}, {spec.stride}")
        return spec


def axis_origins(length: int, size: int, stride: int, cover_edges: bool) -> list[int]:
    """Patch starts along one axis of ``length`` pixels (the rows or the columns of :func:`patch_origins`)."""
    return _axis_origins(length, size, stride, cover_edges)


def _axis_origins(length: int, size: int, stride: int, cover_edges: bool) -> list[int]:
    origins = list(range(0, length - size + 1, stride))
    if cover_edges and origins[-1] != length - size:
        origins.append(length - size)
    return origins


def patch_origins(height: int, width: int, spec: PatchSpec, where: str = "scene") -> list[tuple[int, int]]:
    """Top-left corners (row, col) of the patches of a ``height`` × ``width`` scene, row-major order.

    A patch larger than the scene is a UBFInputError naming ``where``.
    """
    if spec.size > height or spec.size > width:
        raise UBFInputError(where, f"patch size {spec.size} is larger than the scene ({height}×{width} pixels)")
    rows = _axis_origins(height, spec.size, spec.stride, spec.cover_edges)
    cols = _axis_origins(width, spec.size, spec.stride, spec.cover_edges)
    return [(r, c) for r in rows for c in cols]


def extract_patches(cube: np.ndarray, origins: list[tuple[int, int]], size: int) -> np.ndarray:
    """Cut patches out of a (C, H, W) array → (n, C, size, size), same dtype."""
    out = np.empty((len(origins), cube.shape[0], size, size), dtype=cube.dtype)
    for i, (r, c) in enumerate(origins):
        out[i] = cube[:, r:r + size, c:c + size]
    return out


def rgb_patches(image: np.ndarray, spec: PatchSpec, mode: str = "resize", resample: str = "lanczos",
                where: str = "image", resize_to: int | None = None) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Patches of an 8-bit RGB image (H, W, 3) → (float32 array (n, 3, size, size) in [0, 1], origins).

    ``mode="resize"`` resizes the whole image to one ``size`` × ``size`` patch (origin (0, 0));
    ``mode="crop"`` tiles it with ``spec.stride`` (an image smaller than a patch is an error naming ``where``),
    after resizing it to ``resize_to`` × ``resize_to`` pixels when given (origins are in the resized image).
    Values stay display-encoded (sRGB, as stored), scaled by 1/255.
    """
    if mode not in ("resize", "crop"):
        raise UBFInputError("params.yaml", f"rgb.mode '{mode}' unknown; use resize or crop")
    if resample not in _RESAMPLE:
        raise UBFInputError("params.yaml", f"rgb.resample '{resample}' unknown; use one of {sorted(_RESAMPLE)}")
    if mode == "resize":
        img = Image.fromarray(image).resize((spec.size, spec.size), _RESAMPLE[resample])
        arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
        return arr, [(0, 0)]
    if resize_to is not None:
        if isinstance(resize_to, bool) or not isinstance(resize_to, int) or resize_to < spec.size:
            raise UBFInputError("params.yaml", f"rgb.resize_to must be an integer ≥ patch.size {spec.size}, "
                                               f"got {resize_to!r}")
        image = np.asarray(Image.fromarray(image).resize((resize_to, resize_to), _RESAMPLE[resample]))
    origins = patch_origins(image.shape[0], image.shape[1], spec, where)
    chw = image.transpose(2, 0, 1)
    return extract_patches(chw, origins, spec.size).astype(np.float32) / 255.0, origins
