"""Stage synthesize: mass synthesis of HSIs from the registered generator and unmixing model (also deployable)."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.generator import synthesize_task
from tasks.params import load_stage_params


@flow(name="synthesize", log_prints=True)
def synthesize(params_path: str = "params.yaml", n: int | None = None, class_name: str | None = None,
               out: str | None = None, replace: bool | None = None) -> dict:
    """Generate synthesis.n abundance maps (class mix from params, or n of one class), mix them with the
    endmembers into the synthetic store of catalog.yaml (resuming a stopped run), export the first samples as files.

    Args:
        params_path: the params file (relative to the project folder) every empty parameter comes from.
        n: how many HSIs; empty: synthesis.n of the params file.
        class_name: make all n of this class (one the generator was trained on); empty: the class mix
            synthesis.class_mix of the params file.
        out: output Zarr store (relative to the params file); empty: the synthetic store of catalog.yaml.
        replace: overwrite an existing store of another configuration at out; empty: synthesis.replace of the
            params file (false when absent).
    """
    return synthesize_task(load_stage_params(params_path), n=n, class_name=class_name, out=out, replace=replace)


if __name__ == "__main__":
    sys.exit(run_stage(synthesize, synthesize.__doc__))
