"""Deployable mass synthesis: N new HSIs from a registered generator version, one Prefect task run per block.

Deployments (infra/prefect.yaml): ``mass_synthesis/gpu`` (pool gpu, device auto, block tasks tagged ``cuda``) and
``mass_synthesis/cpu`` (pool cpu, device cpu). For example::

    prefect deployment run mass_synthesis/cpu -p n_samples=1000 -p classes='{"Beach": 1, "Forest": 3}' \\
        -p generator=champion -p out=/data/synthetic/beach_forest.zarr

Every parameter left null comes from params.yaml (``seed``, ``synthesis.*``, ``generator.model_uri``), except
``classes`` (null: unconditional samples) and ``dask_address`` (null: no Dask). A rerun with the same parameters
resumes a stopped run, computing only the blocks not yet complete; the store is the one the ``synthesize`` stage
writes for the same settings, whatever the block size, the worker count, or Dask.
"""

import sys
from typing import Literal

from prefect import flow
from prefect.futures import as_completed
from prefect.utilities.annotations import unmapped

from tasks.mass_synthesis import (BlockProgress, block_runner, block_task, finish_mass_synthesis,
                                  plan_mass_synthesis)
from tasks.params import load_stage_params

# the choices of the Run form (kept equal to ubf_core's SAMPLERS and DEVICES by tests/test_mass_synthesis.py)
Sampler = Literal["ddpm", "ddim", "dpm++", "dpm++sde"]
Device = Literal["auto", "cpu", "cuda"]

@flow(name="mass_synthesis", log_prints=True)
def mass_synthesis(n_samples: int | None = None, classes: dict[str, float] | None = None,
                   generator: str | int = "champion", sampler: Sampler | None = None, steps: int | None = None,
                   out: str | None = None, block_size: int | None = None, micro_batch: int | None = None,
                   dask_address: str | None = None, seed: int | None = None, device: Device | None = None,
                   replace: bool = False,
                   params_path: str = "params.yaml") -> dict:
    """Synthesise ``n_samples`` HSIs into a Zarr store, one task run per block (resumable).

    Args:
        n_samples: how many HSIs; empty: synthesis.n of the params file.
        classes: class → weight (counts or shares), e.g. {"Beach": 1, "Forest": 3}; empty: unconditional samples.
        generator: registered generator version: an alias ("champion"), a version number (3) or a models:/… URI.
        sampler: ddpm (ancestral) | ddim | dpm++ | dpm++sde; empty: synthesis.sampler of the params file.
        steps: sampler steps; empty: synthesis.steps of the params file.
        out: store path (relative to the params file) or fsspec URL such as s3://bucket/x.zarr (needs s3fs);
            empty: stores/mass_synthesis/<config hash>.zarr.
        block_size: samples per block (one task run, one Zarr chunk), a multiple of micro_batch; empty:
            synthesis.block_size of the params file.
        micro_batch: samples per generator call, part of the store's configuration; empty: synthesis.micro_batch.
        dask_address: tcp://host:8786 runs the blocks on that Dask cluster; empty: in this flow run's threads.
        seed: base seed (sample i's randomness comes from (seed, i)); empty: seed of the params file.
        device: auto | cpu | cuda; empty: synthesis.device of the params file.
        replace: overwrite a store of another configuration at out.
        params_path: the params file (relative to the project folder) every empty parameter comes from.
    """
    params = load_stage_params(params_path)
    plan = plan_mass_synthesis(params, n_samples=n_samples, classes=classes, generator=generator, sampler=sampler,
                               steps=steps, out=out, block_size=block_size, micro_batch=micro_batch,
                               dask_address=dask_address, seed=seed, device=device, replace=replace)
    progress = BlockProgress(plan)
    if plan.todo:
        with block_runner(plan) as runner:
            futures = runner.map(block_task(plan), {"block": list(plan.todo), "plan": unmapped(plan)})
            for future in as_completed(futures):
                progress.done(future.result())
    return finish_mass_synthesis(plan, progress.computed)


if __name__ == "__main__":
    from flows._entry import run_stage

    sys.exit(run_stage(mass_synthesis, mass_synthesis.__doc__))
