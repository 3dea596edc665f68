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

from prefect import flow
from prefect.futures import as_completed
from prefect.utilities.annotations import unmapped

from tasks.mass_synthesis import (BlockProgress, block_runner, block_task, finish_mass_synthesis,
                                  plan_mass_synthesis)
from tasks.params import load_stage_params


@flow(name="mass_synthesis", log_prints=True)
def mass_synthesis(n_samples: int | None = None, classes: dict[str, float] | None = None,
                   generator: str | int = "champion", sampler: str | None = None, steps: int | None = None,
                   out: str | None = None, block_size: int | None = None, micro_batch: int | None = None,
                   dask_address: str | None = None, seed: int | None = None, device: str | None = None,
                   replace: bool = False,
                   params_path: str = "params.yaml") -> dict:
    """Synthesise ``n_samples`` HSIs (default synthesis.n) into a Zarr store.

    classes: class → weight (counts or shares), null for unconditional samples. generator: alias ("champion"),
    version number (3) or models:/… URI of generator.model_name. sampler, steps: ddpm | ddim | dpm++ | dpm++sde and its steps
    (default synthesis.*). out: a path (relative to the params file) or an fsspec URL such as s3://bucket/x.zarr
    (needs s3fs); null: stores/mass_synthesis/<config hash>.zarr. block_size: samples per block (one task run, one
    Zarr chunk; a multiple of micro_batch). micro_batch: samples per generator call (default synthesis.micro_batch;
    part of the store's configuration). dask_address: tcp://host:8786 runs the blocks on that Dask cluster; null
    runs them in this flow run's threads. seed: base seed (sample i's randomness comes from (seed, i)). device:
    auto | cpu | cuda (default synthesis.device). replace: overwrite a store of another configuration at ``out``.
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
