"""Pictures for judging synthetic HSIs: real and synthetic patches side by side, spectral profiles of pixels and
small regions (as MSF-Diff Fig. 11)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from ubf_core.preview import hsi_patches_to_rgb, mosaic, pick_patches  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


def side_by_side(sets: dict[str, np.ndarray], wavelengths_nm: np.ndarray, path: str | Path, n: int = 8,
                 scale: int = 3) -> Path:
    """One row per named set of cubes (n_i, C, H, W) reflectance: ``n`` of its patches, spread evenly over the set,
    rendered to RGB (650/550/450 nm, one stretch per set), captioned with the set's name."""
    rows, captions = [], []
    for name, cubes in sets.items():
        take = np.asarray(cubes[pick_patches(len(cubes), n)], dtype=np.float32)
        da = xr.DataArray(take, dims=("patch", "wavelength", "y", "x"), coords={"wavelength": wavelengths_nm})
        rgb = hsi_patches_to_rgb(da)
        if len(rgb) < n:  # keep the rows aligned
            rgb = np.concatenate([rgb, np.full((n - len(rgb),) + rgb.shape[1:], 255, np.uint8)])
        rows.append(rgb)
        captions += [name] * n
    image = mosaic(np.concatenate(rows), captions, columns=n, scale=scale)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    image.save(tmp)
    tmp.replace(path)
    return path


def plot_spectral_profiles(sets: dict[str, np.ndarray], wavelengths_nm: np.ndarray, path: str | Path,
                           n_pixels: int = 6, region: int = 6, seed: int = 0) -> Path:
    """Spectral profiles per named set of cubes (n_i, C, H, W): top row, ``n_pixels`` randomly drawn pixels;
    bottom row, the mean spectrum of a random ``region`` × ``region`` block with its min–max envelope. Reflectance
    against wavelength (nm); the draws come from ``seed``."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(2, len(sets), figsize=(3.3 * len(sets), 5.4), squeeze=False, sharey="row")
    for j, (name, cubes) in enumerate(sets.items()):
        n, _, h, w = cubes.shape
        ax = axes[0][j]
        for _ in range(n_pixels):
            i, y, x = rng.integers(n), rng.integers(h), rng.integers(w)
            ax.plot(wavelengths_nm, cubes[i, :, y, x], lw=1)
        ax.set(title=f"{name}: pixels", xlabel="wavelength (nm)")
        ax = axes[1][j]
        for c in range(3):
            i, y, x = rng.integers(n), rng.integers(max(1, h - region + 1)), rng.integers(max(1, w - region + 1))
            block = cubes[i, :, y:y + region, x:x + region].reshape(cubes.shape[1], -1)
            line, = ax.plot(wavelengths_nm, block.mean(axis=1), lw=1.2)
            ax.fill_between(wavelengths_nm, block.min(axis=1), block.max(axis=1), alpha=0.2,
                            color=line.get_color())
        ax.set(title=f"{name}: {region}×{region} regions", xlabel="wavelength (nm)")
    axes[0][0].set_ylabel("reflectance")
    axes[1][0].set_ylabel("reflectance (mean, min–max)")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_metric_bars(table: dict[str, dict[str, float]], metrics: list[str], path: str | Path) -> Path:
    """Bars of chosen metrics (one panel each) for every row of ``table`` {set name: {metric: value}}."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.0), squeeze=False)
    names = list(table)
    for ax, m in zip(axes[0], metrics):
        values = [table[n].get(m, np.nan) for n in names]
        ax.bar(range(len(names)), values, color=plt.get_cmap("tab10")(np.arange(len(names)) % 10))
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        ax.set_title(m, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, path)
