"""Stage train_generator: the abundance generator, tracked in MLflow and registered as ubf-generator."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.generator import train_generator_task
from tasks.params import load_stage_params


@flow(name="train_generator", log_prints=True)
def train_generator(params_path: str = "params.yaml") -> dict:
    """Train the abundance generator (params generator) on the abundance stores (source rgb, hsi or both), log
    losses, sample grids and quality figures to MLflow, register the model (alias champion moves only to a better
    version).

    Args:
        params_path: the params file (relative to the project folder) the stage reads its settings from.
    """
    return train_generator_task(load_stage_params(params_path))


if __name__ == "__main__":
    sys.exit(run_stage(train_generator, train_generator.__doc__))
