"""Stage train_generator: the abundance generator, tracked in MLflow and registered as ubf-generator."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.generator import fit_generator, generator_inputs, judge_generator, register_generator
from tasks.params import load_stage_params


@flow(name="train_generator", log_prints=True)
def train_generator(params_path: str = "params.yaml") -> dict:
    """Train the abundance generator (params generator) on the abundance stores (source rgb, hsi or both), log
    losses, sample grids and quality figures to MLflow, register the model (alias champion moves only to a better
    version).

    Args:
        params_path: the params file (relative to the project folder) the stage reads its settings from.
    """
    params = load_stage_params(params_path)
    inputs = generator_inputs(params)
    gen, history, started_from, run_id = fit_generator(params, inputs)
    quality = judge_generator(params, gen, inputs, history, run_id)
    return register_generator(params, gen, inputs, quality, started_from, run_id)


if __name__ == "__main__":
    sys.exit(run_stage(train_generator, train_generator.__doc__))
