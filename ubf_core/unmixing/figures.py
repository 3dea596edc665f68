"""Pictures of an unmixing result: endmember spectra, abundance maps, reconstructions rendered to RGB."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ubf_core.reporting.preview import mosaic  # noqa: E402


def plot_endmembers(wavelengths_nm: np.ndarray, endmembers: dict[str, np.ndarray], path: str | Path) -> Path:
    """Endmember spectra (C, k) against wavelength (nm), one panel per named set (e.g. network, VCA)."""
    fig, axes = plt.subplots(1, len(endmembers), figsize=(5 * len(endmembers), 3.6), squeeze=False)
    for ax, (name, E) in zip(axes[0], endmembers.items()):
        for j in range(E.shape[1]):
            ax.plot(wavelengths_nm, E[:, j], label=f"e{j + 1}")
        ax.set(title=name, xlabel="wavelength (nm)", ylabel="reflectance")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_transmission(wavelengths_nm: np.ndarray, transmission: np.ndarray, sensors: list[str],
                      path: str | Path) -> Path:
    """The learned solar–atmosphere factor t (G, C) against wavelength (nm), one line per sensor group."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, t in zip(sensors, np.asarray(transmission)):
        ax.plot(wavelengths_nm, t, label=name)
    ax.axhline(1.0, color="0.6", lw=0.8, ls="--")
    ax.set(title="solar-atmosphere factor t (radiance = t * reflectance)", xlabel="wavelength (nm)",
           ylabel="t (dimensionless)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def abundance_mosaic(abundances: np.ndarray, path: str | Path, scale: int = 3) -> Path:
    """Abundance maps (n, k, H, W) in [0, 1] as a grid: one row per patch, one column per endmember (gray)."""
    n, k, h, w = abundances.shape
    tiles = (np.clip(abundances, 0, 1).reshape(n * k, h, w) * 255).round().astype(np.uint8)
    tiles = np.repeat(tiles[..., None], 3, axis=-1)
    mosaic(tiles, [f"e{j + 1}" for _ in range(n) for j in range(k)], columns=k, scale=scale).save(path)
    return Path(path)


def rgb_pairs(truth_rgb: np.ndarray, recon_rgb: np.ndarray, path: str | Path, scale: int = 3) -> Path:
    """Side-by-side RGB renderings (n, 3, H, W) of real patches and their reconstructions, shared stretch."""
    both = np.concatenate([truth_rgb, recon_rgb]).astype(np.float32)
    lo, hi = np.nanpercentile(both, [2, 98])
    both = (np.clip((both - lo) / max(hi - lo, 1e-6), 0, 1) ** (1 / 2.2) * 255).round().astype(np.uint8)
    n = len(truth_rgb)
    order = [i for pair in zip(range(n), range(n, 2 * n)) for i in pair]
    captions = ["real", "reconstructed"] * n
    mosaic(both[order].transpose(0, 2, 3, 1), captions, columns=min(8, 2 * n), scale=scale).save(path)
    return Path(path)


def plot_abundance_histograms(abundances: dict[str, np.ndarray], path: str | Path, bins: int = 20) -> Path:
    """Per-endmember histograms of several sets of abundance maps ((N, k, H, W) each, e.g. RGB- vs HSI-inferred),
    one panel per endmember, densities on a log axis."""
    from ubf_core.metrics.distribution import abundance_histograms

    hists = {name: abundance_histograms(a, bins) for name, a in abundances.items()}
    k = next(iter(hists.values())).shape[0]
    centres = (np.arange(bins) + 0.5) / bins
    fig, axes = plt.subplots(1, k, figsize=(2.6 * k, 2.6), squeeze=False, sharey=True)
    for j, ax in enumerate(axes[0]):
        for name, h in hists.items():
            ax.step(centres, np.maximum(h[j], 1e-6), where="mid", label=name)
        ax.set(title=f"e{j + 1}", xlabel="abundance", yscale="log", ylim=(1e-5, 1.2))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("share of pixels")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def unmix_preview(image_rgb: np.ndarray, abundances: np.ndarray, path: str | Path, title: str = "") -> Path:
    """The input as RGB (H, W, 3) uint8 beside its abundance maps (k, H, W) (viridis, 0–1; NaN pixels white)."""
    k = abundances.shape[0]
    fig, axes = plt.subplots(1, k + 1, figsize=(2.2 * (k + 1) + 0.8, 2.6), squeeze=False, layout="constrained")
    axes[0][0].imshow(image_rgb)
    axes[0][0].set_title("input", fontsize=9)
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    for j in range(k):
        im = axes[0][j + 1].imshow(np.ma.masked_invalid(abundances[j]), cmap=cmap, vmin=0, vmax=1)
        axes[0][j + 1].set_title(f"e{j + 1}  mean {np.nanmean(abundances[j]):.2f}", fontsize=9)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="abundance")
    if title:
        fig.suptitle(title, fontsize=9)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return Path(path)
