"""Pictures for judging synthetic HSIs: real and synthetic patches side by side, spectral profiles of pixels and
small regions (as MSF-Diff Fig. 11), and the captioned grids of the report's realism section (:func:`labelled_rows`
for cubes under one colour stretch, :func:`abundance_rows` for abundance maps in false colour)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from ubf_core.reporting.preview import hsi_patches_to_rgb, mosaic, pick_patches  # noqa: E402


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


# ------------------------------------------------------------------------------------ captioned grids (report)

RGB_NM = (650.0, 550.0, 450.0)
_GAP, _FONT_SIZE = 6, 12


def _font(size: int = _FONT_SIZE):
    """DejaVu Sans (shipped with matplotlib) at ``size`` px; PIL's bitmap font if it cannot be loaded."""
    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except Exception:  # pragma: no cover - a matplotlib without its fonts
        return ImageFont.load_default()


def _fit(text: str, font, width: float) -> str:
    """``text`` cut (with an ellipsis) to fit ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


@dataclass(frozen=True)
class TileLayout:
    """Where everything sits in a captioned grid (pixels): ``boxes[row name][j]`` = (x0, y0, x1, y1) of tile j
    (x1, y1 exclusive), its caption just below; row names left of the tiles; an optional legend under the grid
    from ``legend_top``."""

    width: int
    height: int
    boxes: dict[str, list[tuple[int, int, int, int]]]
    legend_top: int


def tile_layout(row_names: list[str], n: int, tile_h: int, tile_w: int, scale: int,
                legend_height: int = 0) -> TileLayout:
    """The layout of :func:`labelled_rows` / :func:`abundance_rows`: one row per name, ``n`` tiles of
    ``tile_h`` × ``tile_w`` pixels enlarged ``scale`` times, each with a caption line."""
    font = _font()
    margin = _GAP + int(np.ceil(max((font.getlength(_fit(r, font, 180)) for r in row_names), default=0))) + _GAP
    tw, th, cap = tile_w * scale, tile_h * scale, _FONT_SIZE + 4
    cell_w, cell_h = tw + _GAP, th + cap + _GAP
    boxes = {name: [(margin + j * cell_w, _GAP + i * cell_h, margin + j * cell_w + tw, _GAP + i * cell_h + th)
                    for j in range(n)] for i, name in enumerate(row_names)}
    legend_top = _GAP + len(row_names) * cell_h
    return TileLayout(width=margin + n * cell_w, height=legend_top + legend_height + (_GAP if legend_height else 0),
                      boxes=boxes, legend_top=legend_top)


def _draw_grid(rows: dict[str, tuple[np.ndarray, list[str]]], n: int, scale: int,
               legend: list[tuple[str, tuple[float, float, float]]] | None = None) -> Image.Image:
    """Paste uint8 tiles (n_i ≤ n, h, w, 3) of each row into a white canvas laid out by :func:`tile_layout`, with
    captions under the tiles, row names on the left and an optional legend of (label, RGB in 0–1) swatches."""
    font = _font()
    h, w = next(iter(rows.values()))[0].shape[1:3]
    layout = tile_layout(list(rows), n, h, w, scale)
    if legend:  # the legend may need more than one line: measure it first
        x, lines = _GAP, 1
        for label, _ in legend:
            step = _FONT_SIZE + 4 + int(font.getlength(label)) + 14
            if x + step > layout.width and x > _GAP:
                x, lines = _GAP, lines + 1
            x += step
        layout = tile_layout(list(rows), n, h, w, scale, legend_height=(_FONT_SIZE + 8) * lines)
    canvas = Image.new("RGB", (layout.width, layout.height), "white")
    draw = ImageDraw.Draw(canvas)
    for name, (tiles, captions) in rows.items():
        boxes = layout.boxes[name]
        x0, y0, _, y1 = boxes[0]
        label = _fit(name, font, 180)
        draw.text((_GAP, (y0 + y1) // 2), label, fill="black", font=font, anchor="lm")
        for j, (bx0, by0, bx1, by1) in enumerate(boxes[:len(tiles)]):
            canvas.paste(Image.fromarray(tiles[j]).resize((bx1 - bx0, by1 - by0), Image.Resampling.NEAREST),
                         (bx0, by0))
            if j < len(captions) and captions[j]:
                draw.text((bx0, by1 + 2), _fit(str(captions[j]), font, bx1 - bx0), fill="black", font=font)
    if legend:
        x, y = _GAP, layout.legend_top + 2
        for label, colour in legend:
            step = _FONT_SIZE + 4 + int(font.getlength(label)) + 14
            if x + step > layout.width and x > _GAP:
                x, y = _GAP, y + _FONT_SIZE + 8
            rgb = tuple(int(round(255 * float(c))) for c in colour[:3])
            draw.rectangle((x, y, x + _FONT_SIZE, y + _FONT_SIZE), fill=rgb, outline="black")
            draw.text((x + _FONT_SIZE + 4, y), label, fill="black", font=font)
            x += step
    return canvas


def _save_image(image: Image.Image, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    image.save(tmp)
    tmp.replace(path)
    return path


def _picked(rows: dict[str, tuple[np.ndarray, list[str]]], n: int, ndim_name: str):
    """For each row, ``n`` items spread evenly over it (:func:`ubf_core.reporting.preview.pick_patches`) and their
    captions; a row whose captions do not match its items is refused."""
    out = {}
    for name, (arrays, captions) in rows.items():
        arrays = np.asarray(arrays)
        if arrays.ndim != 4:
            raise ValueError(f"row {name!r}: expected {ndim_name} (n, channels, H, W), got shape {arrays.shape}")
        captions = list(captions or [])
        if captions and len(captions) != len(arrays):
            raise ValueError(f"row {name!r}: {len(captions)} captions for {len(arrays)} tiles")
        idx = pick_patches(len(arrays), n) if len(arrays) else np.array([], int)
        out[name] = (arrays[idx], [str(captions[i]) for i in idx] if captions else [])
    return out


def _auto_scale(h: int, scale: int | None) -> int:
    return int(scale) if scale else max(1, int(np.ceil(96 / max(h, 1))))


def rgb_band_indices(wavelengths_nm, bands_nm=RGB_NM) -> np.ndarray:
    """Indices of the bands nearest ``bands_nm`` (R, G, B) in the grid ``wavelengths_nm`` (nm)."""
    wl = np.asarray(wavelengths_nm, dtype=float)
    return np.array([int(np.argmin(np.abs(wl - b))) for b in bands_nm])


def rgb_stretch(cubes: np.ndarray, wavelengths_nm, percentiles=(2.0, 98.0), bands_nm=RGB_NM) -> np.ndarray:
    """The colour stretch of a reference set of cubes (n, C, H, W) reflectance: (2, 3) = low and high
    reflectance per channel (R, G, B from the bands nearest ``bands_nm``), its ``percentiles`` per channel."""
    bands = np.asarray(cubes, dtype=np.float32)[:, rgb_band_indices(wavelengths_nm, bands_nm)]
    per_channel = bands.transpose(1, 0, 2, 3).reshape(3, -1)
    return np.stack([np.nanpercentile(per_channel, percentiles[0], axis=1),
                     np.nanpercentile(per_channel, percentiles[1], axis=1)]).astype(np.float64)


def cubes_to_rgb(cubes: np.ndarray, wavelengths_nm, stretch: np.ndarray, bands_nm=RGB_NM) -> np.ndarray:
    """Cubes (n, C, H, W) reflectance → uint8 (n, H, W, 3) under a fixed ``stretch`` (2, 3) (:func:`rgb_stretch`),
    with a display gamma of 1/2.2 (as :func:`ubf_core.reporting.preview.hsi_patches_to_rgb`); NaN renders black."""
    stretch = np.asarray(stretch, dtype=np.float64).reshape(2, 3)
    rgb = np.asarray(cubes, dtype=np.float64)[:, rgb_band_indices(wavelengths_nm, bands_nm)]
    lo, hi = stretch[0][None, :, None, None], stretch[1][None, :, None, None]
    scaled = np.clip(np.nan_to_num((rgb - lo) / np.maximum(hi - lo, 1e-6), nan=0.0), 0, 1) ** (1 / 2.2)
    return (scaled.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)


def labelled_rows(rows: dict[str, tuple[np.ndarray, list[str]]], wavelengths_nm, path: str | Path, *, n: int = 8,
                  stretch: np.ndarray | None = None, scale: int | None = None) -> Path:
    """Real and synthetic HSI patches side by side under ONE colour stretch.

    ``rows`` = {row name: (cubes (n_i, C, H, W) reflectance on ``wavelengths_nm`` (nm), a caption per cube, e.g.
    its class "Beach" or source scene "abu-urban-3")}; the first row is the reference (held-out real). Each row
    shows ``n`` of its cubes spread evenly over it, rendered to RGB from the bands nearest 650/550/450 nm with
    ``stretch`` (2, 3) — default: the 2nd–98th percentile per channel of all cubes of the FIRST row
    (:func:`rgb_stretch`) — so brightness and colour compare across rows. Tiles are enlarged ``scale`` times
    (default: to about 96 px) and captioned; row names are on the left. Returns ``path`` (PNG, written to a
    temporary name, then renamed)."""
    if not rows:
        raise ValueError("labelled_rows: no rows to draw")
    first = np.asarray(next(iter(rows.values()))[0])
    if stretch is None:
        stretch = rgb_stretch(first, wavelengths_nm)
    picked = _picked(rows, n, "cubes")
    tiles = {name: (cubes_to_rgb(c, wavelengths_nm, stretch) if len(c) else np.zeros((0,) + first.shape[2:] + (3,),
                                                                                    np.uint8), caps)
             for name, (c, caps) in picked.items()}
    return _save_image(_draw_grid(tiles, n, _auto_scale(first.shape[2], scale)), path)


def endmember_colours(k: int) -> np.ndarray:
    """A fixed, distinct colour per endmember: (k, 3) RGB in 0–1 (matplotlib's tab10, tab20 beyond 10)."""
    cmap = plt.get_cmap("tab10" if k <= 10 else "tab20")
    return np.asarray([cmap(i % cmap.N)[:3] for i in range(k)], dtype=np.float64)


def abundances_to_rgb(maps: np.ndarray, colours: np.ndarray | None = None) -> np.ndarray:
    """Abundance maps (n, k, H, W) → uint8 (n, H, W, 3) false colour: pixel colour = Σ_k a_k · colour_k, so a pure
    pixel shows its endmember's colour and a mixture a blend (``colours`` (k, 3) in 0–1, default
    :func:`endmember_colours`)."""
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float64), nan=0.0)
    colours = endmember_colours(maps.shape[1]) if colours is None else np.asarray(colours, dtype=np.float64)
    rgb = np.einsum("nkyx,kc->nyxc", maps, colours)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def abundance_rows(rows: dict[str, tuple[np.ndarray, list[str]]], path: str | Path, *, n: int = 8,
                   endmember_names: list[str] | None = None, scale: int | None = None) -> Path:
    """Real and synthetic abundance maps side by side in false colour.

    ``rows`` = {row name: (maps (n_i, k, H, W), a caption per map)}, the same k in every row. Each endmember has a
    fixed colour (:func:`endmember_colours`) and a pixel is Σ_k a_k · colour_k: saturated where one endmember is
    pure, blended where they mix. ``n`` maps per row, spread evenly; tiles captioned, row names on the left, a
    legend of the endmember colours (``endmember_names``, default "endmember 1".."k") underneath. Returns
    ``path`` (PNG)."""
    if not rows:
        raise ValueError("abundance_rows: no rows to draw")
    picked = _picked(rows, n, "abundance maps")
    ks = {name: m.shape[1] for name, (m, _) in picked.items()}
    if len(set(ks.values())) != 1:
        raise ValueError(f"abundance_rows: rows have different numbers of endmembers {ks}")
    k = next(iter(ks.values()))
    colours = endmember_colours(k)
    names = list(endmember_names) if endmember_names else [f"endmember {i + 1}" for i in range(k)]
    if len(names) != k:
        raise ValueError(f"abundance_rows: {len(names)} endmember names for {k} endmembers")
    h = next(iter(picked.values()))[0].shape[2]
    tiles = {name: (abundances_to_rgb(m, colours), caps) for name, (m, caps) in picked.items()}
    image = _draw_grid(tiles, n, _auto_scale(h, scale), legend=list(zip(names, map(tuple, colours))))
    return _save_image(image, path)
