"""The block driver of mass synthesis, shared by the ``synthesize`` stage and the ``mass_synthesis`` deployment.

A run is three steps, each callable on its own so that an orchestrator can put them where it likes:

1. :func:`plan_blocks` — check the job against the generator, keep an output that already holds this configuration,
   refuse (or, with ``replace``, plan to replace) one of another, resume a partial store of the same configuration
   (with its own block size) or start a new one; the :class:`BlockPlan` names the blocks still to compute;
2. :func:`run_block` — generate, mix and write one block, then mark it done; any number at once, in any order, in
   threads, processes or on a Dask cluster;
3. :func:`finish_blocks` — move the complete store into place (and upload it, for a remote output).

:func:`synthesize` runs all three on a Dask client (the stage); the ``mass_synthesis`` deployment runs each step as a
task of its own, one per block for step 2. Every sample's randomness derives from (base seed, sample index) only,
and the generator evaluates fixed micro-batches of m samples (``sampler["micro_batch"]``, part of the configuration;
block sizes must be multiples of m), so the arrays are the same whatever the block size, the number of workers and
who runs the steps. A killed run leaves the partial store
(:func:`~ubf_core.synthesis.store.partial_path`) and the next run with the same configuration computes only the
blocks whose ``block_done`` is 0 (a half-written block is rewritten whole). An existing output written with another
configuration is never replaced silently.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ubf_core.devices import mixed_precision
from ubf_core.errors import UBFInputError
from ubf_core.synthesis.job import SynthesisJob
from ubf_core.synthesis.mixing import add_noise, mix
from ubf_core.synthesis.store import (blocks, create_store, finish_store, partial_path, pending_blocks, publish_store,
                                      remote_config_hash, store_attrs)


@dataclass(frozen=True)
class BlockPlan:
    """What is left of a synthesis run, from :func:`plan_blocks`: the job, where its store goes, and the blocks
    still to compute (none when the output already holds this configuration: ``partial`` is then None)."""

    job: SynthesisJob
    generator_dir: str                 # the saved generator (every block loads it from there)
    out: str                           # the local store (for a remote output: its staging store)
    remote: str | None                 # fsspec URL the finished store is uploaded to
    partial: str | None                # the partial store the blocks write into (None: nothing to do)
    block_size: int
    todo: tuple[int, ...]              # blocks still to compute
    total: int                         # blocks in all (0 when there is nothing to do)
    config_hash: str
    threads: int = 1                   # torch threads per block (see run_block)

    @property
    def output(self) -> str:
        """Where the finished store ends up: the remote URL, else the local path."""
        return self.remote or self.out


@functools.lru_cache(maxsize=2)
def _cached_generator(folder: str):
    from ubf_core.generators import load_generator

    return load_generator(folder)


def plan_blocks(job: SynthesisJob, generator_dir: str | Path, out: str | Path, *, block_size: int = 8,
                threads: int = 1, replace: bool = False, attrs: dict | None = None,
                remote: str | None = None) -> BlockPlan:
    """Everything before the first block: a :class:`BlockPlan` whose ``todo`` lists the blocks :func:`run_block`
    must compute before :func:`finish_blocks`.

    ``out`` already holding this configuration (or ``remote``, an fsspec URL the finished store is uploaded to;
    ``out`` is then its staging store, :func:`~ubf_core.synthesis.store.staging_path`): nothing to do. One of another
    configuration: a UBFInputError unless ``replace``. A partial store of the same configuration is resumed with its
    own block size; of another one, restarted. ``attrs`` go into a new store's attributes. Nothing is written
    before the checks.
    """
    out = Path(out)
    job.check_units()
    want = job.config_hash()
    plan = functools.partial(BlockPlan, job=job, generator_dir=str(generator_dir), out=str(out), remote=remote,
                             config_hash=want, threads=int(threads))
    if remote:
        there = remote_config_hash(remote)
        if there not in (None, want) and not replace:
            raise UBFInputError(remote, f"exists and was written with another configuration ({there} ≠ {want}); "
                                        f"pass replace=true to overwrite it")
        if there == want:
            return plan(partial=None, block_size=block_size, todo=(), total=0)
    gen = _cached_generator(str(generator_dir))
    k = int(gen.k)
    if bool(gen.brightness) != bool(job.generated_brightness):
        raise UBFInputError(generator_dir, f"the generator {'makes' if gen.brightness else 'does not make'} brightness"
                                           f" but the job's generated_brightness is {job.generated_brightness}")
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
        have = store_attrs(out).get("config_hash")
        if have == want:
            return plan(partial=None, block_size=block_size, todo=(), total=0)
        if not replace:
            raise UBFInputError(out, f"exists and was written with another configuration ({have} ≠ {want}); "
                                     f"pass --replace (or synthesis.replace: true) to overwrite it")
    partial = partial_path(out)
    if partial.exists() and store_attrs(partial).get("config_hash") != want:
        shutil.rmtree(partial)
    if not partial.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = partial.with_name(partial.name + ".new")
        shutil.rmtree(tmp, ignore_errors=True)
        create_store(tmp, job, int(block_size), k, dict(attrs or {}))
        tmp.rename(partial)
    block_size = int(store_attrs(partial)["block_size"])
    return plan(partial=str(partial), block_size=block_size, todo=tuple(pending_blocks(partial)),
                total=len(blocks(job.n, block_size)))


def run_block(store: str | Path, generator_dir: str | Path, block: int, block_size: int, job: SynthesisJob,
              threads: int = 1) -> int:
    """Generate, mix and write one block of the partial ``store``, then mark it done; returns the block index.

    Called with a :class:`BlockPlan`'s fields (``plan.partial``, ``plan.generator_dir``, a block of ``plan.todo``,
    ``plan.block_size``, ``plan.job``, ``threads=plan.threads``), wherever the block runs (a Dask worker, a Prefect
    task run, a thread). ``threads``: torch threads while sampling (CPU kernels round differently with another
    thread count, so the store is identical across runs only for the same value). On a CUDA ``job.device`` the
    generator samples under ``torch.autocast`` (float16, :func:`ubf_core.devices.mixed_precision`). Blocks may run
    in several threads of one process at once: torch's thread setting (OpenMP) is per thread, so each block sets and
    restores its own.
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
            abundance, brightness = gen.sample_with_brightness(b - a, size=tuple(job.size), seed=int(job.seed),
                                                               start_index=a,
                                                               labels=list(labels) if conditional else None,
                                                               **dict(job.sampler or {}))
    finally:
        torch.set_num_threads(before)
    # a generator without brightness beside a brightness unmixing model: s = 1 (the store attrs "brightness" say so)
    transmission = job.transmission if job.units == "radiance" else None
    reflectance = add_noise(mix(abundance, job.endmembers, brightness=brightness, transmission=transmission,
                                mixing=job.mixing),
                            job.snr_db, job.seeds[a:b])
    group = zarr.open_group(Path(store), mode="r+")
    group["abundance"][a:b] = abundance.astype(np.float32)
    if brightness is not None:
        group["brightness"][a:b] = brightness.astype(np.float32)
    group["reflectance"][a:b] = reflectance
    group["block_done"][block] = 1  # last: a block is done only when all its arrays are written
    return block


def finish_blocks(plan: BlockPlan) -> None:
    """After every block of ``plan.todo``: mark the store complete and move it to ``plan.out`` (a block still
    missing is a UBFInputError and the partial store stays for the next run); for a remote output, upload it (also
    a store finished by a run whose upload failed) and remove its staging folder."""
    if plan.partial:
        finish_store(plan.partial, plan.out)
    if plan.remote and Path(plan.out).exists():
        publish_store(Path(plan.out), plan.remote)
        shutil.rmtree(Path(plan.out).parent, ignore_errors=True)   # the staging folder of this URL


def synthesize(job: SynthesisJob, generator_dir: str | Path, out: str | Path, *, client, block_size: int = 8,
               threads: int = 1, replace: bool = False, attrs: dict | None = None,
               progress: Callable[[int, int], None] | None = None) -> dict:
    """Write (or finish) the synthesis store at ``out`` on a Dask client: :func:`plan_blocks`, :func:`run_block`
    for every block still to do, :func:`finish_blocks`. Returns {"computed_blocks", "skipped_blocks", ...}.

    ``client``: a Dask client; blocks run as its tasks, at most one per worker thread at a time. ``threads``: see
    :func:`run_block`. ``replace``: an existing output with another configuration is replaced (otherwise a
    UBFInputError). An output with the same configuration is kept as is. ``progress(done, total)`` is called as
    blocks finish.
    """
    plan = plan_blocks(job, generator_dir, out, block_size=block_size, threads=threads, replace=replace, attrs=attrs)
    if plan.partial is None:
        return {"out": plan.out, "computed_blocks": [], "skipped_blocks": "all", "config_hash": plan.config_hash}
    todo, total = list(plan.todo), plan.total
    from distributed import as_completed, wait

    # at most one block per worker thread in flight: a stopped run leaves only those to finish, never a queue
    window = max(1, sum(client.nthreads().values()))
    queue, submitted = list(todo), []
    running = as_completed()

    def submit_next() -> None:
        fut = client.submit(run_block, plan.partial, plan.generator_dir, queue.pop(0), plan.block_size, job,
                            threads=plan.threads, pure=False)
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
    finish_blocks(plan)
    return {"out": plan.out, "computed_blocks": todo, "skipped_blocks": total - len(todo),
            "config_hash": plan.config_hash, "n": job.n, "block_size": plan.block_size}
