"""Pictures of stores for a person to look at: mosaics of patches rendered to 8-bit RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from PIL import Image, ImageDraw

from ubf_core.spectral import select_bands


def pick_patches(n_total: int, n: int) -> np.ndarray:
    """``n`` patch indices spread evenly over ``0 .. n_total-1`` (deterministic)."""
    return np.unique(np.linspace(0, n_total - 1, min(n, n_total)).round().astype(int))


def hsi_patches_to_rgb(reflectance: xr.DataArray, wavelengths_nm=(650.0, 550.0, 450.0)) -> np.ndarray:
    """HSI patches (patch, wavelength, y, x) → uint8 (patch, y, x, 3) by band selection and a shared
    2–98 % percentile stretch (display only; the store is untouched)."""
    rgb = np.stack([select_bands(reflectance[i].rename("reflectance"), wavelengths_nm).values
                    for i in range(reflectance.sizes["patch"])])
    lo, hi = np.nanpercentile(rgb, [2, 98])
    scaled = np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1) ** (1 / 2.2)
    return (scaled.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)


def mosaic(images: np.ndarray, captions: list[str] | None = None, columns: int = 8, scale: int = 3,
           gap: int = 4) -> Image.Image:
    """Tile uint8 images (n, h, w, 3) into one picture, each enlarged ``scale`` times, with optional captions."""
    n, h, w, _ = images.shape
    rows = int(np.ceil(n / columns))
    cap_h = 12 if captions else 0
    cell_w, cell_h = w * scale + gap, h * scale + gap + cap_h
    canvas = Image.new("RGB", (columns * cell_w + gap, rows * cell_h + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        r, c = divmod(i, columns)
        x0, y0 = gap + c * cell_w, gap + r * cell_h
        canvas.paste(Image.fromarray(images[i]).resize((w * scale, h * scale), Image.Resampling.NEAREST), (x0, y0))
        if captions:
            draw.text((x0, y0 + h * scale + 1), captions[i][: max(4, w * scale // 6)], fill="black")
    return canvas


def save_store_preview(ds: xr.Dataset, path: str | Path, n: int = 32) -> Path:
    """A PNG mosaic of ``n`` patches of an HSI store (``reflectance``) or RGB store (``rgb``), captioned with
    their source (HSI) or class label (RGB). Written to a temporary name, then renamed."""
    idx = pick_patches(ds.sizes["patch"], n)
    sub = ds.isel(patch=idx).load()
    if "reflectance" in sub:
        images = hsi_patches_to_rgb(sub["reflectance"])
        captions = [str(s) for s in sub["source"].values]
    else:
        images = (np.clip(sub["rgb"].values, 0, 1).transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
        captions = [str(s) for s in sub["label"].values]
    path = Path(path)
    tmp = path.with_name("." + path.name + ".tmp.png")
    mosaic(images, captions).save(tmp)
    tmp.replace(path)
    return path
