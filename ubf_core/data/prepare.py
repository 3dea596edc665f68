"""Preparing the stores: HSI scenes → aligned reflectance patches; RGB images → RGB patches.

The work is split into Dask tasks: one per scene, or several for a scene larger than ``TILE_BYTES`` that can be read
by rows (ENVI, GeoTIFF: each task reads a band of patch rows), and one per batch of RGB images. A task returns its
patches, already encoded as they will be stored (they stay on its worker), and a small summary (patch count, NaN
statistics, origins). As soon as the counts of everything before it are known (and its scene passed the scene-level
checks, which need all of its blocks), a second task on the same worker writes them straight into the store being
built, at their final position (:func:`ubf_core.data.stores.write_encoded_chunks`): the data are written once,
under the store's temporary name, and the store is renamed into place when complete (nothing half-written is ever
visible, a failed run leaves the old store). Its content does not depend on the number of workers or on the order in which tasks finish.

Store layouts (Zarr format 3; one chunk per patch, ``patch.shard_patches`` consecutive patches per shard file, see
:class:`ubf_core.data.stores.PatchLayout`):

HSI store
    ``reflectance`` (patch, wavelength, y, x) float32, unitless: surface reflectance, or for a data set declared
    ``units: radiance`` its at-sensor radiance times the data set's ``scale`` (the variable keeps its name);
    Blosc-LZ4 (byte shuffle); coordinates ``wavelength`` (nm), ``fwhm`` (nm), ``source`` (data-set name), ``units``
    (reflectance | radiance, the data set's declaration), ``sensor`` (the radiance data set's sensor group, "" for
    reflectance), ``origin_y``/``origin_x`` (patch top-left pixel in the source scene); attrs ``units``
    {data set: units}.
RGB store
    ``rgb`` (patch, channel, y, x) float32 in [0, 1], display-encoded (sRGB, as stored in the images), zstd;
    coordinates ``channel`` (R, G, B), ``label`` (class = sub-folder name), ``label_id`` (index into the sorted
    class list, attrs ``classes``), ``source`` (file path relative to the RGB folder), ``origin_y``/``origin_x``.
Both carry provenance attrs: ``params_hash``, ``source_checksums`` and what was dropped or rejected. File and folder
paths in them are relative to ``base_dir`` (the params file's folder, in the stages) when inside it, so two copies of
a project write the same attrs.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from ubf_core.config import file_checksum
from ubf_core.data.patches import PatchSpec, axis_origins, patch_origins, rgb_patches
from ubf_core.data.stores import PatchLayout, finish_patch_store, replace_path, staging_dir, write_encoded_chunks
from ubf_core.errors import UBFInputError
from ubf_core.io import HSISource, RGBImage, read_hsi, read_rgb
from ubf_core.io.hsi import row_reader_shape
from ubf_core.io.source import require_units
from ubf_core.spectral import SceneRejected, SpectralGrid, check_scene, resample_rows

TILE_BYTES = 128 * 2**20   # raw bytes one task reads at most from a scene that can be read by rows (ENVI, GeoTIFF)
HSI_CODEC = "blosc-lz4"    # fast (~2 GB/s a core) and as small as zstd on reflectance (1.28x against 1.25x)
RGB_CODEC = "zstd"         # RGB values are k/255: zstd makes them 2.85x smaller (LZ4 1.2x); RGB prepare is decode-bound


@dataclass
class PrepareSummary:
    """What a prepare run did: patches written, per-source figures, sources rejected (with the reason)."""

    store: str
    n_patches: int
    sources: list[dict] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, default=str)


def _path_label(path: str | Path, base_dir: str | Path | None) -> str:
    """``path`` relative to ``base_dir`` when it lies inside it (and base_dir is given), else as given."""
    if base_dir is not None:
        try:
            return Path(path).resolve().relative_to(Path(base_dir).resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


# ------------------------------------------------------------------------------------------- tasks and writing

def _meta(result: tuple[dict, list[bytes]]) -> dict:
    return result[0]


def _write_result(result: tuple[dict, list[bytes]], start: int, ndim: int, chunk_dir: str,
                  layout: PatchLayout) -> dict:
    """Write a task's encoded patches at ``start`` (see :func:`write_encoded_chunks`), unless the staging folder is
    gone (the run failed elsewhere and was cleaned up)."""
    if not Path(chunk_dir).parent.is_dir():
        return {}
    return write_encoded_chunks(result[1], start, ndim, chunk_dir, layout)


def _compute_and_write(client, fn: Callable, groups: list[list[tuple]], decide: Callable[[int, list[dict]], bool],
                       ndim: int, chunk_dir: Path, layout: PatchLayout, desc: str, **kwargs):
    """Run ``fn(*item, layout=layout, **kwargs) -> (summary, encoded patches)`` on the Dask client for every item
    of every group and write the patches of each group that ``decide(group index, its summaries)`` keeps, in group
    then item order, as elements of an ``ndim``-D variable.

    ``decide`` runs in group order, once a group and every group before it are done (it may raise: the error stops
    the run). A kept item's patches are written by a task on the worker that holds them, as soon as their position
    is known (they were encoded by ``fn``, so what waits for the decision is file writing alone). Returns (summaries
    per group, kept flag per group, patches written, the encoded patches of shared shards).
    On an error, the tasks already started finish before it is raised (the staging folder is then removed).
    """
    from distributed import as_completed, wait

    items = [item for group in groups for item in group]
    bounds = [0]
    for group in groups:
        bounds.append(bounds[-1] + len(group))
    tasks = [client.submit(fn, *item, pure=False, layout=layout, **kwargs) for item in items]
    summaries_f = [client.submit(_meta, t, pure=False, priority=5) for t in tasks]   # right after their task
    position = {f.key: i for i, f in enumerate(summaries_f)}
    summaries: list = [None] * len(items)
    kept: list[bool] = []
    writes = []
    offset = 0
    try:
        for fut in tqdm(as_completed(summaries_f), total=len(summaries_f), desc=desc, unit="task"):
            summaries[position[fut.key]] = fut.result()  # re-raises the worker's exception (UBFInputError pickles)
            while len(kept) < len(groups) and all(m is not None for m in
                                                  summaries[bounds[len(kept)]:bounds[len(kept) + 1]]):
                g = len(kept)
                keep = bool(decide(g, summaries[bounds[g]:bounds[g + 1]]))
                kept.append(keep)
                for i in range(bounds[g], bounds[g + 1]):
                    n = summaries[i]["n_patches"]
                    if keep and n:
                        writes.append(client.submit(_write_result, tasks[i], offset, ndim, str(chunk_dir), layout,
                                                    priority=10, pure=False))
                        offset += n
                    tasks[i] = None   # its write task holds the patches; a rejected scene's are released now
        pending: dict[int, bytes] = {}
        for w in writes:
            pending.update(w.result())
    except BaseException:
        # let tasks already running finish before the staging folder is removed (a cancelled task that is still
        # executing would recreate it); a failure shows up at the first failed task, the rest is cleanup
        wait([t for t in tasks if t is not None] + summaries_f + writes)
        raise
    return [summaries[bounds[g]:bounds[g + 1]] for g in range(len(groups))], kept, offset, pending


# ------------------------------------------------------------------------------------------------------- HSI


@dataclass(frozen=True)
class SceneBlock:
    """One task's share of a scene: the rows of patch origins it cuts (None: the whole scene), the rows it reads
    (``window``) and the rows whose NaN pixels it counts (``own``; the blocks' own rows partition the scene)."""

    number: int = 0
    origin_rows: tuple[int, ...] | None = None
    window: tuple[int, int] | None = None
    own: tuple[int, int] | None = None
    lines: int | None = None   # the scene's rows


def scene_blocks(source: HSISource, spec: PatchSpec, tile_bytes: int = TILE_BYTES) -> list[SceneBlock]:
    """How a scene is shared among tasks: blocks of consecutive patch rows reading at most about ``tile_bytes`` of
    raw data each, for a scene that can be read by rows (:func:`ubf_core.io.hsi.row_reader_shape`); one block (the
    whole scene) otherwise. Depends on the scene and ``spec`` alone, never on the workers."""
    whole = [SceneBlock()]
    shape = row_reader_shape(source)
    if shape is None:
        return whole
    bands, lines, samples, itemsize = shape
    if spec.size > lines or spec.size > samples:
        return whole   # the task says so, naming the scene
    rows = axis_origins(lines, spec.size, spec.stride, spec.cover_edges)
    per_block = max(1, (tile_bytes // max(1, bands * samples * itemsize) - spec.size) // spec.stride + 1)
    # whole shards per block where the budget allows, or twice it (a block then fills its shards itself when the
    # scene's first patch starts a shard and no patch is dropped; otherwise the shared shards go by the client)
    unit = spec.shard_patches // math.gcd(spec.shard_patches, len(axis_origins(samples, spec.size, spec.stride,
                                                                                 spec.cover_edges)))
    if unit <= per_block:
        per_block -= per_block % unit
    elif unit <= 2 * per_block:
        per_block = unit
    if per_block >= len(rows):
        return whole
    groups = [rows[i:i + per_block] for i in range(0, len(rows), per_block)]
    blocks = []
    for t, g in enumerate(groups):
        own = (0 if t == 0 else g[0], lines if t == len(groups) - 1 else groups[t + 1][0])
        blocks.append(SceneBlock(t, tuple(g), (own[0], max(own[1], g[-1] + spec.size)), own, lines))
    return blocks


def _kept_origins(data: np.ndarray, origins: list[tuple[int, int]], top: int, spec: PatchSpec):
    """Of the patches of ``data`` (wavelength, y, x; its first row is scene row ``top``) at scene ``origins``, those
    that hold at most ``spec.max_nan_pixels`` NaN pixels → (their origins (n, 2) int32, number dropped)."""
    s = spec.size
    nan = np.zeros(data.shape[1:], bool)
    band_nan = np.empty(data.shape[1:], bool)
    for band in data:
        np.isnan(band, out=band_nan)
        nan |= band_nan
    o = np.asarray(origins, dtype=np.int64).reshape(-1, 2)
    if nan.any():   # NaN pixels per patch from the summed-area table of the NaN map
        sat = np.zeros((nan.shape[0] + 1, nan.shape[1] + 1), np.int64)
        sat[1:, 1:] = nan.cumsum(0).cumsum(1)
        r, c = o[:, 0] - top, o[:, 1]
        counts = sat[r + s, c + s] - sat[r, c + s] - sat[r + s, c] + sat[r, c]
        keep = counts <= spec.max_nan_pixels
    else:
        keep = np.ones(len(o), bool)
    return o[keep].astype(np.int32), int((~keep).sum())


def _hsi_block(source: HSISource, block: SceneBlock, *, grid: SpectralGrid, spec: PatchSpec, tolerance_nm: float,
               layout: PatchLayout, base_dir: str | Path | None = None) -> tuple[dict, list[bytes]]:
    """One scene (or block of it) → its summary and its patches, encoded. Runs on a Dask worker."""
    cube = read_hsi(source, rows=block.window)
    count = None if block.window is None else (block.own[0] - block.window[0], block.own[1] - block.window[0])
    aligned, stats = resample_rows(cube, grid, tolerance_nm=tolerance_nm, name=source.name, count_rows=count)
    data = aligned.values
    del cube, aligned
    ny, nx = data.shape[1:]
    if block.origin_rows is None:
        origins, top, lines = patch_origins(ny, nx, spec, where=source.name), 0, ny
    else:
        cols = axis_origins(nx, spec.size, spec.stride, spec.cover_edges)
        origins, top, lines = [(r, c) for r in block.origin_rows for c in cols], block.window[0], block.lines
    kept, dropped = _kept_origins(data, origins, top, spec)
    summary = {"n_patches": len(kept), "dropped": dropped, "origins": kept, "stats": stats,
               "shape": [int(stats.wavelengths.size), int(lines), int(nx)]}
    if block.number == 0:
        summary.update(path=_path_label(source.path, base_dir), sha256=file_checksum(source.path))
    s = spec.size   # each patch is encoded from its view of the cube: no array of all the patches is made
    return summary, layout.encode(data[:, r - top:r - top + s, c:c + s] for r, c in kept.tolist())


def prepare_hsi_store(sources: Sequence[HSISource], grid: SpectralGrid, spec: PatchSpec, out: str | Path, *,
                      client, tolerance_nm: float = 5.0, max_nan_fraction: float = 0.1,
                      on_rejected: str = "skip", attrs: dict | None = None,
                      base_dir: str | Path | None = None, tile_bytes: int = TILE_BYTES) -> PrepareSummary:
    """Read, align and patch every scene (one Dask task per scene, or per block of rows of a large one, see
    :func:`scene_blocks`) and write the HSI store at ``out`` (``spec.shard_patches`` patches per shard file).

    A bad scene raises UBFInputError (naming it) and nothing is written. A scene whose NaN share exceeds
    ``max_nan_fraction`` is skipped with a warning (``on_rejected="skip"``) or stops the run (``"error"``).
    Scene paths in the attrs are relative to ``base_dir`` when inside it, else absolute.
    """
    if not sources:
        raise UBFInputError("params.yaml", "hsi.datasets is empty: no HSI scene to prepare")
    require_units(sources)
    out = Path(out)
    layout = PatchLayout(spec.shard_patches, HSI_CODEC)
    groups = [[(source, block) for block in scene_blocks(source, spec, tile_bytes)] for source in sources]
    rejected: dict[str, str] = {}

    def merged(summaries: list[dict]):
        stats = summaries[0]["stats"]
        for m in summaries[1:]:
            stats = stats.merge(m["stats"])
        return stats

    def decide(g: int, summaries: list[dict]) -> bool:
        name = sources[g].name
        try:
            check_scene(merged(summaries), name, max_nan_fraction)
        except SceneRejected as err:
            if on_rejected == "error":
                raise UBFInputError(name, f"scene rejected: {err.problem}") from None
            rejected[name] = err.problem
            return False
        return True

    with staging_dir(out) as tmp:
        chunk_dir = tmp / "chunks"
        per_scene, kept, n, pending = _compute_and_write(
            client, _hsi_block, groups, decide, 4, chunk_dir, layout, "prepare_hsi: scene blocks", grid=grid,
            spec=spec, tolerance_nm=tolerance_nm, base_dir=base_dir)
        results = []
        for source, summaries in zip(sources, per_scene):
            first = summaries[0]
            info = {"source": source.name, "path": first["path"], "shape": first["shape"], "sha256": first["sha256"]}
            if source.name in rejected:
                info["rejected"] = rejected[source.name]
            else:
                info.update(nan_pixels=merged(summaries).nan_pixels,
                            dropped_patches=sum(m["dropped"] for m in summaries),
                            n_patches=sum(m["n_patches"] for m in summaries))
            results.append(info)
        for name, why in rejected.items():
            warnings.warn(f"{name}: scene rejected and skipped: {why}", stacklevel=2)
        if n == 0:
            raise UBFInputError(out, "no patch left to write: every scene was rejected or gave only NaN patches")
        written = [(source, m) for source, summaries, keep in zip(sources, per_scene, kept) if keep
                   for m in summaries if m["n_patches"]]
        origins = np.concatenate([m["origins"] for _, m in written])

        def per_patch(value) -> np.ndarray:
            return np.array([value(s) for s, m in written for _ in range(m["n_patches"])], dtype=object)

        ds = xr.Dataset(
            coords={
                "wavelength": ("wavelength", grid.centres, {"units": "nm"}),
                "fwhm": ("wavelength", grid.fwhm, {"units": "nm"}),
                "source": ("patch", per_patch(lambda s: s.name)),
                "units": ("patch", per_patch(lambda s: s.units or "reflectance")),
                "sensor": ("patch", per_patch(lambda s: s.sensor or "")),
                "origin_y": ("patch", origins[:, 0]),
                "origin_x": ("patch", origins[:, 1]),
            },
            attrs={
                **(attrs or {}),
                "kind": "hsi_patches",
                "grid": {"start_nm": grid.start_nm, "stop_nm": grid.stop_nm, "n_bands": grid.n_bands},
                "patch_size": spec.size, "patch_stride": spec.stride,
                "source_checksums": {r["source"]: r["sha256"] for r in results},
                "units": {s.name: s.units for s in sources},
                "sensors": {s.name: s.sensor for s in sources if s.sensor},
                "sources": [{k: v for k, v in r.items() if k != "sha256"} for r in results],
                "rejected_sources": rejected,
            },
        )
        target = tmp / out.name
        finish_patch_store(ds, "reflectance", ("patch", "wavelength", "y", "x"),
                           (n, grid.n_bands, spec.size, spec.size), np.float32,
                           {"units": "1", "long_name": "reflectance"}, layout, chunk_dir, pending, target)
        replace_path(target, out)
    return PrepareSummary(str(out), n, results, rejected)


# ------------------------------------------------------------------------------------------------------- RGB

def _rgb_batch(images: Sequence[RGBImage], *, classes: list[str], root: Path, spec: PatchSpec, mode: str,
               resample: str, resize_to: int | None, layout: PatchLayout) -> tuple[dict, list[bytes]]:
    """A batch of RGB images → their summary and their patches, encoded. Runs on a Dask worker."""
    arrays, labels, sources, origins = [], [], [], []
    for img in images:
        rel = str(Path(img.path).relative_to(root))
        patches, orig = rgb_patches(read_rgb(img.path), spec, mode, resample, where=str(img.path),
                                    resize_to=resize_to)
        arrays.append(patches)
        labels += [img.label] * len(patches)
        sources += [rel] * len(patches)
        origins += orig
    data = np.concatenate(arrays)
    summary = {"n_patches": int(data.shape[0]), "labels": labels, "sources": sources,
               "origins": np.asarray(origins, dtype=np.int32).reshape(-1, 2)}
    return summary, layout.encode(data)


def prepare_rgb_store(images: Sequence[RGBImage], root: str | Path, spec: PatchSpec, out: str | Path, *, client,
                      mode: str = "resize", resample: str = "lanczos", resize_to: int | None = None,
                      images_per_task: int = 64,
                      attrs: dict | None = None, skipped: dict[str, str] | None = None,
                      base_dir: str | Path | None = None) -> PrepareSummary:
    """Cut every RGB image into patches (batches of ``images_per_task`` per Dask task) and write the RGB store
    (``spec.shard_patches`` patches per shard file); ``mode``, ``resample`` and ``resize_to`` as in
    :func:`ubf_core.data.patches.rgb_patches`.
    The folder's path in the attrs (``source_checksums``) is relative to ``base_dir`` when inside it."""
    root = Path(root)
    if not images:
        raise UBFInputError(root, "no RGB images found")
    layout = PatchLayout(spec.shard_patches, RGB_CODEC)
    classes = sorted({img.label for img in images})
    batches = [list(images[i:i + images_per_task]) for i in range(0, len(images), max(1, images_per_task))]
    out = Path(out)
    with staging_dir(out) as tmp:
        chunk_dir = tmp / "chunks"
        per_batch, _, n, pending = _compute_and_write(
            client, _rgb_batch, [[(batch,)] for batch in batches], lambda g, summaries: True, 4, chunk_dir, layout,
            "prepare_rgb: image batches", classes=classes, root=root, spec=spec, mode=mode, resample=resample,
            resize_to=resize_to)
        summaries = [m for batch in per_batch for m in batch]
        labels = [label for m in summaries for label in m["labels"]]
        origins = np.concatenate([m["origins"] for m in summaries])
        counts: dict[str, int] = {}
        for img in images:
            counts[img.label] = counts.get(img.label, 0) + 1
        ds = xr.Dataset(
            coords={
                "channel": ("channel", np.array(["R", "G", "B"], dtype=object)),
                "label": ("patch", np.array(labels, dtype=object)),
                "label_id": ("patch", np.array([classes.index(c) for c in labels], dtype=np.int16)),
                "source": ("patch", np.array([s for m in summaries for s in m["sources"]], dtype=object)),
                "origin_y": ("patch", origins[:, 0]),
                "origin_x": ("patch", origins[:, 1]),
            },
            attrs={**(attrs or {}), "kind": "rgb_patches", "encoding": "sRGB display values / 255",
                   "classes": classes, "images_per_class": counts, "patch_size": spec.size, "mode": mode,
                   "patch_stride": spec.stride, "resize_to": resize_to,
                   "source_checksums": {_path_label(root, base_dir): file_checksum(root)},
                   "skipped_images": skipped or {}},
        )
        target = tmp / out.name
        finish_patch_store(ds, "rgb", ("patch", "channel", "y", "x"), (n, 3, spec.size, spec.size), np.float32,
                           {"long_name": "display-encoded sRGB", "units": "1"}, layout, chunk_dir, pending, target)
        replace_path(target, out)
    return PrepareSummary(str(out), n, [{"n_images": len(images), "classes": counts}], skipped=skipped or {})
