"""Mass synthesis: generated abundance maps → new HSIs by the linear mixing model, Ŷ' = Ê·Â' (+ noise), in blocks.

The output is a Zarr v3 store:

- ``reflectance`` (sample, wavelength, y, x) float32, reflectance (the endmembers' units, never renormalised);
- ``abundance`` (sample, endmember, y, x) float32, on the simplex — the generated maps themselves;
- coordinates ``wavelength`` (nm), ``label`` (class name, "" when unconditional) and ``seed`` (the sample's own
  seed, derived from the base seed and the sample index) along ``sample``;
- ``block_done`` (block,) uint8: 1 once every array of the block is written.

One chunk along ``sample`` per block. Every sample's randomness derives from (base seed, sample index) only, and the
generator evaluates fixed micro-batches of m samples (``sampler["micro_batch"]``, part of the configuration; block
sizes must be multiples of m), so the arrays are the same whatever the block size and the number of workers. The
store is built under a hidden ``.<name>.partial`` folder beside the output; a killed run leaves it there and the
next run with the same configuration computes only the blocks whose ``block_done`` is 0 (a half-written block is
rewritten whole). The output path appears only when every block is done (a rename). An existing output written with
another configuration is never replaced silently.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import xarray as xr

from ubf_core.data.stores import replace_path
from ubf_core.devices import AUTOCAST_DTYPE, is_cuda, mixed_precision
from ubf_core.errors import UBFInputError
from ubf_core.generators.seeding import sample_seed

NOISE_STREAM = 1  # the per-sample noise generator is seeded from (seed, index, NOISE_STREAM)


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


def mix(abundances: np.ndarray, endmembers: np.ndarray) -> np.ndarray:
    """Linear mixing: abundances (n, k, H, W) and endmembers (C, k) → reflectance (n, C, H, W) float32."""
    if abundances.shape[1] != endmembers.shape[1]:
        raise UBFInputError("endmembers", f"k = {endmembers.shape[1]} but the abundances have k = "
                                          f"{abundances.shape[1]}")
    return np.einsum("ck,nkhw->nchw", endmembers.astype(np.float32), abundances.astype(np.float32),
                     optimize=True).astype(np.float32)


def add_noise(reflectance: np.ndarray, snr_db: float | None, seeds: Sequence[int]) -> np.ndarray:
    """White Gaussian noise at ``snr_db`` (signal power = mean square of each sample), seeded per sample."""
    if snr_db is None:
        return reflectance
    out = reflectance.copy()
    for i, s in enumerate(seeds):
        rng = np.random.default_rng([int(s), NOISE_STREAM])
        power = float(np.mean(reflectance[i].astype(np.float64) ** 2))
        sigma = math.sqrt(power / 10 ** (float(snr_db) / 10))
        out[i] += (sigma * rng.standard_normal(reflectance[i].shape)).astype(np.float32)
    return out


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
        if is_cuda(self.device):  # sampling on a GPU runs under torch.autocast (run_block)
            fields["autocast"] = AUTOCAST_DTYPE
        h.update(json.dumps(fields, sort_keys=True, default=str).encode())
        h.update("\n".join(map(str, self.labels)).encode())
        h.update(np.ascontiguousarray(self.endmembers, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(self.wavelengths_nm, dtype=np.float64).tobytes())
        return h.hexdigest()[:16]


def blocks(n: int, block_size: int) -> list[tuple[int, int]]:
    """[start, stop) sample ranges of the blocks."""
    return [(a, min(n, a + block_size)) for a in range(0, n, block_size)]


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def _create(path: Path, job: SynthesisJob, block_size: int, k: int, attrs: dict) -> None:
    """Write the metadata, coordinates and an all-zero ``block_done`` of a new partial store."""
    import dask.array as da

    n, (h, w), c = job.n, job.size, len(job.wavelengths_nm)
    ds = xr.Dataset(
        {"reflectance": (("sample", "wavelength", "y", "x"),
                         da.zeros((n, c, h, w), dtype=np.float32, chunks=(block_size, c, h, w)),
                         {"long_name": "reflectance", "units": "1"}),
         "abundance": (("sample", "endmember", "y", "x"),
                       da.zeros((n, k, h, w), dtype=np.float32, chunks=(block_size, k, h, w)),
                       {"long_name": "abundance", "units": "1"}),
         "block_done": (("block",), np.zeros(len(blocks(n, block_size)), dtype=np.uint8))},
        coords={"wavelength": ("wavelength", np.asarray(job.wavelengths_nm, dtype=float), {"units": "nm"}),
                "endmember": ("endmember", np.arange(k)),
                "label": ("sample", np.asarray([str(v) for v in job.labels], dtype=object)),
                "seed": ("sample", job.seeds)},
        attrs={**attrs, "config_hash": job.config_hash(), "block_size": int(block_size), "n": job.n,
               "base_seed": int(job.seed), "snr_db": "none" if job.snr_db is None else float(job.snr_db),
               "sampler": json.dumps(dict(job.sampler or {}), sort_keys=True), "complete": False})
    enc = {"reflectance": {"chunks": (block_size, c, h, w)}, "abundance": {"chunks": (block_size, k, h, w)},
           "block_done": {"chunks": (1,)}}
    ds.to_zarr(path, mode="w", consolidated=False, zarr_format=3, encoding=enc, compute=False)
    import zarr

    zarr.open_group(path, mode="r+")["block_done"][:] = 0


def pending_blocks(path: str | Path) -> list[int]:
    """Indices of the blocks of a partial store whose ``block_done`` flag is still 0."""
    import zarr

    done = zarr.open_group(Path(path), mode="r")["block_done"][:]
    return [int(i) for i in np.flatnonzero(done == 0)]


@functools.lru_cache(maxsize=2)
def _cached_generator(folder: str):
    from ubf_core.generators import load_generator

    return load_generator(folder)


def run_block(store: str | Path, generator_dir: str | Path, block: int, block_size: int, job: SynthesisJob,
              threads: int = 1) -> int:
    """Generate, mix and write one block, then mark it done. Runs on a Dask worker; returns the block index.

    ``threads``: torch threads while sampling (CPU kernels round differently with another thread count, so the
    store is identical across runs only for the same value). On a CUDA ``job.device`` the generator samples under
    ``torch.autocast`` (float16, :func:`ubf_core.devices.mixed_precision`). Blocks may run in several threads of
    one process at once: torch's thread setting (OpenMP) is per thread, so each block sets and restores its own.
    """
    import torch
    import zarr

    a, b = blocks(job.n, block_size)[block]
    gen = _cached_generator(str(generator_dir)).to(job.device)
    labels = job.labels[a:b]
    conditional = any(str(lab) for lab in labels)
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        with mixed_precision(job.device):
            abundance = gen.sample(b - a, size=tuple(job.size), seed=int(job.seed), start_index=a,
                                   labels=list(labels) if conditional else None, **dict(job.sampler or {}))
    finally:
        torch.set_num_threads(before)
    reflectance = add_noise(mix(abundance, job.endmembers), job.snr_db, job.seeds[a:b])
    group = zarr.open_group(Path(store), mode="r+")
    group["abundance"][a:b] = abundance.astype(np.float32)
    group["reflectance"][a:b] = reflectance
    group["block_done"][block] = 1  # last: a block is done only when all its arrays are written
    return block


def synthesize(job: SynthesisJob, generator_dir: str | Path, out: str | Path, *, client, block_size: int = 8,
               threads: int = 1, replace: bool = False, attrs: dict | None = None,
               progress: Callable[[int, int], None] | None = None) -> dict:
    """Write (or finish) the synthesis store at ``out``; returns {"computed_blocks", "skipped_blocks", ...}.

    ``client``: a Dask client; blocks run as its tasks, at most one per worker thread at a time. ``threads``: see
    :func:`run_block`. ``replace``: an existing output with another
    configuration is replaced (otherwise a UBFInputError). An output with the same configuration is kept as is.
    A partial store of the same configuration is resumed (with its own block size); of another one, restarted.
    """
    out = Path(out)
    plan = prepare_store(job, generator_dir, out, block_size=block_size, replace=replace, attrs=attrs)
    want = plan["config_hash"]
    if plan["complete"]:
        return {"out": str(out), "computed_blocks": [], "skipped_blocks": "all", "config_hash": want}
    partial, block_size, todo, total = Path(plan["partial"]), plan["block_size"], plan["todo"], plan["total"]
    from distributed import as_completed, wait

    # at most one block per worker thread in flight: a stopped run leaves only those to finish, never a queue
    window = max(1, sum(client.nthreads().values()))
    queue, submitted = list(todo), []
    running = as_completed()

    def submit_next() -> None:
        fut = client.submit(run_block, str(partial), str(generator_dir), queue.pop(0), block_size, job,
                            threads=threads, pure=False)
        submitted.append(fut)
        running.add(fut)

    for _ in range(min(window, len(queue))):
        submit_next()
    done = total - len(todo)
    try:
        for fut in running:
            fut.result()
            done += 1
            if progress:
                progress(done, total)
            if queue:
                submit_next()
    except BaseException:
        wait([f for f in submitted if not f.done()])  # blocks already running finish; the partial store stays
        raise
    finish_store(partial, out)
    return {"out": str(out), "computed_blocks": todo, "skipped_blocks": total - len(todo), "config_hash": want,
            "n": job.n, "block_size": block_size}


def prepare_store(job: SynthesisJob, generator_dir: str | Path, out: str | Path, *, block_size: int = 8,
                  replace: bool = False, attrs: dict | None = None) -> dict:
    """Everything :func:`synthesize` does before the first block: check the job against the generator, keep an
    output of the same configuration, refuse (or, with ``replace``, plan to replace) one of another, resume a
    partial store of the same configuration (with its own block size) or start a new one.

    Returns {"complete": True, "config_hash"} when ``out`` already holds this configuration, else {"complete":
    False, "config_hash", "partial" (path of the partial store), "block_size", "todo" (indices of the blocks
    still to compute, for :func:`run_block`), "total" (number of blocks)}. Nothing is written before the checks.
    """
    out = Path(out)
    want = job.config_hash()
    gen = _cached_generator(str(generator_dir))
    k = int(gen.k)
    if job.endmembers.shape[1] != k:
        raise UBFInputError("endmembers", f"k = {job.endmembers.shape[1]} but the generator {generator_dir} "
                                          f"makes k = {k} abundance maps")
    if job.endmembers.shape[0] != len(job.wavelengths_nm):
        raise UBFInputError("endmembers", f"{job.endmembers.shape[0]} bands but {len(job.wavelengths_nm)} "
                                          f"wavelengths")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise UBFInputError("synthesis.block_size", f"must be a positive integer, got {block_size!r}")
    m = job.micro_batch
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise UBFInputError("synthesis.micro_batch", f"must be a positive integer, got {m!r}")
    if block_size % m:
        raise UBFInputError("synthesis.block_size", f"{block_size} is not a multiple of synthesis.micro_batch "
                                                    f"= {m}: a block must hold whole micro-batches")
    if out.exists():
        have = _attrs(out).get("config_hash")
        if have == want:
            return {"complete": True, "config_hash": want}
        if not replace:
            raise UBFInputError(out, f"exists and was written with another configuration ({have} ≠ {want}); "
                                     f"pass --replace (or synthesis.replace: true) to overwrite it")
    partial = partial_path(out)
    if partial.exists() and _attrs(partial).get("config_hash") != want:
        shutil.rmtree(partial)
    if not partial.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = partial.with_name(partial.name + ".new")
        shutil.rmtree(tmp, ignore_errors=True)
        _create(tmp, job, int(block_size), k, dict(attrs or {}))
        tmp.rename(partial)
    block_size = int(_attrs(partial)["block_size"])
    return {"complete": False, "config_hash": want, "partial": str(partial), "block_size": block_size,
            "todo": pending_blocks(partial), "total": len(blocks(job.n, block_size))}


def finish_store(partial: str | Path, out: str | Path) -> None:
    """Mark a partial store whose every block is done as complete and move it to ``out`` (replacing what is
    there); a block still missing is a UBFInputError and the partial store stays for the next run."""
    import zarr

    partial = Path(partial)
    left = pending_blocks(partial)
    if left:
        raise UBFInputError(partial, f"blocks {left[:5]} are not done after the run")
    zarr.open_group(partial, mode="r+").attrs["complete"] = True
    replace_path(partial, Path(out))


def store_config_hash(path: str | Path) -> str | None:
    """The ``config_hash`` attribute of a synthesis store (complete or partial), None when it has none."""
    return _attrs(Path(path)).get("config_hash")


def _attrs(path: Path) -> dict:
    import zarr

    try:
        return dict(zarr.open_group(path, mode="r").attrs)
    except Exception as err:  # noqa: BLE001 - zarr raises several types for a broken store
        raise UBFInputError(path, f"not a readable synthesis store ({type(err).__name__}: {err})") from None
