"""Stage prepare_hsi: scarce real HSIs → aligned reflectance patches (catalogue: hsi)."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.params import load_stage_params
from tasks.prepare import prepare_hsi as prepare_hsi_task


@flow(name="prepare_hsi", log_prints=True)
def prepare_hsi(params_path: str = "params.yaml") -> dict:
    """Read every scene of hsi.datasets, resample it to the target grid, patch it, write the hsi store (catalog.yaml).

    Args:
        params_path: the params file (relative to the project folder) the stage reads its settings from.
    """
    return prepare_hsi_task(load_stage_params(params_path))


if __name__ == "__main__":
    sys.exit(run_stage(prepare_hsi, prepare_hsi.__doc__))
