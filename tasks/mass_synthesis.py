"""Prefect tasks of the deployable ``mass_synthesis`` flow: plan a run (registry, devices, output, resume), one task
run per block of samples (in the flow run's threads or on a Dask cluster), a progress artifact, and the finished
store with its provenance as Prefect artifacts.

The work is done by ``ubf_core.synthesis.blocks``, the block driver the ``synthesize`` stage runs too (plan the
blocks, run each, finish the store); this module puts its steps into Prefect task runs and, with a scheduler address,
the blocks onto Dask. So the store is the one the stage writes: the same arrays for the same settings whatever the
block size, the number of workers or Dask, resumable block by block. Everything that can be wrong with a request (an
MLflow server that does not answer, a model alias that points nowhere, an unknown class, an output URL nothing here
can write) is an error naming it before the first block starts.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.params import dataset_path, resolve
from tasks.registry import configure_tracking, download_generator
from tasks.servers import check_tracking_server
from ubf_core.config import params_hash, section
from ubf_core.devices import is_cuda
from ubf_core.errors import UBFInputError
from ubf_core.synthesis.blocks import BlockPlan, finish_blocks, plan_blocks, run_block

GPU_TAG = "cuda"                       # task runs on a CUDA device carry it: the tag concurrency limit caps them
DASK_TIMEOUT_S = 10.0
# catalogue names (catalog.yaml) of the folders mass synthesis writes, none of them a DVC out
DEFAULT_OUT_DIR = "mass_synthesis"          # out=None: <this>/<config hash>.zarr (a rerun finds and resumes it)
GENERATOR_CACHE = "generator_cache"         # registered generator versions, downloaded once
REMOTE_STAGING_DIR = "mass_synthesis_staging"   # remote outputs are built here, then uploaded
PROGRESS_KEY, PROVENANCE_KEY, OUTPUT_KEY = "mass-synthesis-progress", "mass-synthesis-provenance", \
    "mass-synthesis-output"
# MLflow retries a failing request 7 times with exponential back-off (minutes); a flow run should fail sooner
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


# ------------------------------------------------------------------------------------------------ checks, names
def generator_model_uri(params: dict, generator: str | int | None) -> str:
    """The registry URI of ``generator``: an alias ("champion" → ``models:/<generator.model_name>@champion``), a
    version (3 or "3" → ``models:/<name>/3``), a full ``models:/…`` URI, or None for ``generator.model_uri``."""
    g = section(params, "generator")
    name = str(g["model_name"])
    if generator is None:
        return str(g["model_uri"])
    if isinstance(generator, bool) or not isinstance(generator, (int, str)):
        raise UBFInputError("generator", f"expected an alias, a version number or models:/… URI, got {generator!r}")
    text = str(generator).strip()
    if text.startswith("models:/"):
        return text
    if text.isdigit():
        return f"models:/{name}/{int(text)}"
    if not text or "/" in text or "@" in text:
        raise UBFInputError("generator", f"expected an alias, a version number or models:/… URI, got {generator!r}")
    return f"models:/{name}@{text}"


def output_location(params: dict, out: str, config_hash: str) -> tuple[Path, str | None]:
    """Where the store is built (a local path) and, for an fsspec URL (s3://…), where it is uploaded when complete.

    A local path is relative to the params file's folder; ``file://`` is a local path. A remote URL is built under
    ``stores/.mass_synthesis_staging/`` (:func:`ubf_core.synthesis.store.staging_path`, resumable there) and
    uploaded with fsspec; its file system's package must be installed (s3fs for s3://), checked here before any work.
    """
    from ubf_core.synthesis.store import remote_fs, staging_path

    if "://" not in out or out.startswith("file://"):
        return resolve(params, out[len("file://"):] if out.startswith("file://") else out), None
    remote_fs(out)
    return staging_path(dataset_path(params, REMOTE_STAGING_DIR), out, config_hash), out


# ------------------------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class MassSynthesisPlan:
    """What the block tasks and the final step need, built by :func:`plan_mass_synthesis`: the driver's plan (the
    store and the blocks left to compute) and how this flow run executes the blocks."""

    blocks: BlockPlan                  # ubf_core.synthesis.blocks.plan_blocks
    dask_address: str | None
    concurrency: int                   # blocks in flight at once
    tags: tuple[str, ...]              # tags of the block task runs
    provenance: dict = field(default_factory=dict)

    @property
    def todo(self) -> tuple[int, ...]:
        """The blocks still to compute (the flow maps the block task over them)."""
        return self.blocks.todo


@task(name="plan-mass-synthesis", cache_policy=NO_CACHE)
def plan_mass_synthesis(params: dict, n_samples: int | None = None, classes: dict[str, float] | None = None,
                        generator: str | int | None = "champion", sampler: str | None = None,
                        steps: int | None = None, out: str | None = None, block_size: int | None = None,
                        micro_batch: int | None = None, dask_address: str | None = None, seed: int | None = None,
                        device: str | None = None, replace: bool = False) -> MassSynthesisPlan:
    """Check the request and prepare the store: MLflow server, generator version (alias or number) and the
    unmixing model it was trained with, classes, device, output location, Dask scheduler; then keep a finished
    store of the same configuration, resume a partial one, or start a new one (``replace`` overwrites a store of
    another configuration). No block is computed here."""
    from ubf_core.generators import load_generator

    from tasks.generator import resolve_synthesis_models, synthesis_job

    log = get_run_logger()
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    s = section(params, "synthesis")
    check_tracking_server(configure_tracking(resolve(params, ".")))
    uri = generator_model_uri(params, generator)
    models = resolve_synthesis_models(params, uri)          # a URI that points nowhere stops here
    n = int(s["n"]) if n_samples is None else n_samples
    class_mix = dict(classes) if classes else None
    block_size = int(s["block_size"]) if block_size is None else block_size
    threads = int(s["torch_threads"])
    if dask_address:
        _dask_client(dask_address)                        # an unreachable scheduler stops here

    gen_dir = cached_generator(params, models.generator_version_uri, models.generator_name,
                               models.generator_version)
    gen = load_generator(gen_dir)
    job = synthesis_job(params, models, gen, n=n, class_mix=class_mix, seed=seed, sampler=sampler, steps=steps,
                        device=device, micro_batch=micro_batch)
    if job.unit_brightness:
        from tasks.generator import BRIGHTNESS_WARNING

        log.warning(BRIGHTNESS_WARNING.format(uri=models.unmixing_uri))
    want = job.config_hash()
    local, remote = output_location(params, out or str(dataset_path(params, DEFAULT_OUT_DIR) / f"{want}.zarr"), want)
    settings = {**s, "n": n, "class_mix": class_mix, "sampler": dict(job.sampler or {}), "device": job.device,
                "block_size": block_size, "torch_threads": threads}
    provenance = {**models.provenance(), "generator_uri": uri, "config_hash": want, "n": n, "seed": int(job.seed),
                  "classes": json.dumps(class_mix or {}), "sampler": json.dumps(dict(job.sampler or {})),
                  "device": job.device, "torch_threads": threads, "output": remote or str(local)}
    attrs = {**models.provenance(), "params_hash": params_hash(settings, job.seed), "generator_uri": uri}

    blocks = plan_blocks(job, gen_dir, local, block_size=block_size, threads=threads, replace=replace, attrs=attrs,
                         remote=remote)
    common = dict(blocks=blocks, dask_address=dask_address or None, provenance=provenance,
                  tags=(GPU_TAG,) if is_cuda(job.device) else ())
    if blocks.partial is None:
        there = blocks.remote if blocks.remote and not Path(blocks.out).exists() else blocks.out
        log.info("%s already holds this configuration (%s): nothing to compute", there, want)
        return MassSynthesisPlan(**common, concurrency=1)
    todo = blocks.todo
    plan = MassSynthesisPlan(**common, concurrency=_concurrency(dask_address, threads, len(todo)))
    log.info("mass synthesis of %d samples (%s) with %s (version %d) on %s: %d of %d blocks of %d to compute, "
             "%d at a time %s; output %s", n, ", ".join(f"{c}: {w}" for c, w in (class_mix or {}).items())
             or "unconditional", uri, models.generator_version, job.device, len(todo), blocks.total,
             blocks.block_size, plan.concurrency,
             f"on Dask {dask_address}" if dask_address else "in this flow run's threads", blocks.output)
    return plan


def _concurrency(dask_address: str | None, threads: int, todo: int) -> int:
    """Blocks in flight: one per Dask worker thread, else one per ``threads`` CPU cores of this machine."""
    if dask_address:
        slots = sum(_dask_client(dask_address).nthreads().values())
    else:
        slots = (os.cpu_count() or 1) // max(1, threads)
    return max(1, min(int(slots), todo))


def cached_generator(params: dict, version_uri: str, name: str, version: int) -> Path:
    """The saved-generator folder of registry version ``version_uri``, downloaded once into
    ``stores/.generators/<name>-<version>`` (a version never changes; the stores folder is the file system the
    Dask workers share). Downloaded under a temporary name and renamed, so concurrent runs never see half of it."""
    import uuid

    from ubf_core.generators.base import SAVED_GENERATOR_FILE

    root = dataset_path(params, GENERATOR_CACHE)
    final = root / f"{name}-{version}"
    if not (final.is_dir() and any(final.rglob(SAVED_GENERATOR_FILE))):
        tmp = root / f".tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir(parents=True)
        try:
            download_generator(version_uri, tmp)
            shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:  # another run put it there meanwhile
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    found = sorted(final.rglob(SAVED_GENERATOR_FILE))
    if not found:
        raise UBFInputError(version_uri, f"no saved generator in {final} after download")
    return found[0].parent


# ------------------------------------------------------------------------------------------------ blocks
_dask_lock = threading.Lock()
_dask_clients: dict[str, object] = {}
_dask_jobs: dict[tuple[str, str], object] = {}


def _dask_client(address: str):
    """One Dask client per scheduler address in this process (the block tasks' threads share it)."""
    with _dask_lock:
        client = _dask_clients.get(address)
        if client is None:
            from ubf_core.parallel import dask_client

            ctx = dask_client(address, connect_timeout_s=DASK_TIMEOUT_S)
            client = ctx.__enter__()
            _dask_clients[address] = client
            client._ubf_context = ctx  # closed by close_dask_clients
        return client


def close_dask_clients() -> None:
    """Close the Dask clients this process opened (the scheduler releases whatever they still held)."""
    with _dask_lock:
        for client in _dask_clients.values():
            try:
                client._ubf_context.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - a scheduler already gone
                pass
        _dask_clients.clear()
        _dask_jobs.clear()


@task(name="synthesis-block", task_run_name="block-{block}", cache_policy=NO_CACHE)
def synthesis_block(block: int, plan: MassSynthesisPlan) -> int:
    """Generate, mix and write block ``block`` of the plan's store (``ubf_core.synthesis.blocks.run_block``), here or
    on the plan's Dask scheduler; returns the block index once it is marked done in the store."""
    b = plan.blocks
    if not plan.dask_address:
        return run_block(b.partial, b.generator_dir, block, b.block_size, b.job, threads=b.threads)
    client = _dask_client(plan.dask_address)
    key = (plan.dask_address, b.config_hash)
    with _dask_lock:
        job = _dask_jobs.get(key)
        if job is None:  # the job (labels, endmembers) travels to the cluster once, not with every block;
            # replicated on every worker, so that a worker that dies does not take it with it
            job = _dask_jobs[key] = client.scatter(b.job, broadcast=True, hash=False)
    return int(client.submit(run_block, b.partial, b.generator_dir, block, b.block_size, job,
                             threads=b.threads, pure=False).result())


@contextmanager
def block_runner(plan: MassSynthesisPlan):
    """A thread pool of ``plan.concurrency`` task runs for the blocks (``runner.map(synthesis_block, …)``); on
    exit (also on failure or cancellation) queued blocks are dropped, running ones finish, Dask clients close."""
    from prefect.task_runners import ThreadPoolTaskRunner

    try:
        with ThreadPoolTaskRunner(max_workers=plan.concurrency) as runner:
            yield runner
    finally:
        close_dask_clients()


def block_task(plan: MassSynthesisPlan):
    """The block task with the plan's tags (``cuda`` on a CUDA device, for the tag concurrency limit)."""
    return synthesis_block.with_options(tags=list(plan.tags)) if plan.tags else synthesis_block


class BlockProgress:
    """A Prefect progress artifact of the run (blocks done / all blocks), updated as blocks finish (at most once
    a second, and at the end)."""

    def __init__(self, plan: MassSynthesisPlan, min_interval_s: float = 1.0):
        from prefect.artifacts import create_progress_artifact

        self.plan, self.min_interval_s = plan.blocks, min_interval_s
        self.computed: list[int] = []
        self._skipped = self.plan.total - len(self.plan.todo)
        self._last = 0.0
        self.artifact_id = create_progress_artifact(
            self._percent(), key=PROGRESS_KEY, description=self._description()) if plan.todo else None

    def _percent(self) -> float:
        return 100.0 * (self._skipped + len(self.computed)) / max(1, self.plan.total)

    def _description(self) -> str:
        return (f"{self._skipped + len(self.computed)} of {self.plan.total} blocks of {self.plan.block_size} "
                f"samples done ({self._skipped} from an earlier run) → {self.plan.output}")

    def done(self, block: int) -> None:
        """Record a finished block; update the artifact (throttled)."""
        from prefect.artifacts import update_progress_artifact

        self.computed.append(int(block))
        now = time.monotonic()
        last = len(self.computed) == len(self.plan.todo)
        if self.artifact_id is not None and (last or now - self._last >= self.min_interval_s):
            self._last = now
            update_progress_artifact(self.artifact_id, self._percent(), description=self._description())


# ------------------------------------------------------------------------------------------------ the end
@task(name="finish-mass-synthesis", cache_policy=NO_CACHE)
def finish_mass_synthesis(plan: MassSynthesisPlan, computed: list[int]) -> dict:
    """Mark the store complete and move it into place (upload it for a remote output), remove the downloaded
    generator, and link the store and its provenance (models, config hash, n, seed, path) as Prefect artifacts."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
    from prefect.context import get_run_context

    log = get_run_logger()
    b = plan.blocks
    finish_blocks(b)   # also uploads a store finished by a run whose upload failed
    run = get_run_context()
    flow_run_id = str(run.task_run.flow_run_id) if getattr(run, "task_run", None) else ""
    report = {**plan.provenance, "computed_blocks": sorted(computed), "skipped_blocks": b.total - len(computed)
              if b.total else "all", "block_size": b.block_size, "flow_run_id": flow_run_id}
    link = b.remote or Path(b.out).resolve().as_uri()
    create_link_artifact(link, link_text=b.output, key=OUTPUT_KEY,
                         description=f"mass synthesis store ({plan.provenance['n']} samples, config "
                                     f"{plan.provenance['config_hash']})")
    create_table_artifact([{"field": k, "value": json.dumps(v) if isinstance(v, (list, dict)) else str(v)}
                           for k, v in report.items()], key=PROVENANCE_KEY,
                          description=f"provenance of {b.output}")
    create_markdown_artifact(_markdown(report, link), key=f"{PROVENANCE_KEY}-summary",
                             description="mass synthesis summary")
    log.info("mass synthesis store %s complete: %d blocks computed in this run, %s before; generator %s/%s, "
             "unmixing %s/%s, config %s", b.output, len(computed), report["skipped_blocks"],
             report["generator_model"], report["generator_version"], report["unmixing_model"],
             report["unmixing_version"], report["config_hash"])
    return report


def _markdown(report: dict, link: str) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in report.items() if k != "computed_blocks")
    return (f"# Mass synthesis\n\nStore: [{report['output']}]({link}) — open with "
            f"`xarray.open_zarr({report['output']!r}, consolidated=False)`\n\n| field | value |\n|---|---|\n{rows}\n")
