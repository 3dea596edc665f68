"""Stage prepare_rgb: abundant RGB images → RGB patches with class labels (catalogue: rgb)."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.params import load_stage_params
from tasks.prepare import prepare_rgb as prepare_rgb_task


@flow(name="prepare_rgb", log_prints=True)
def prepare_rgb(params_path: str = "params.yaml") -> dict:
    """List the RGB folder (class = sub-folder), cut every image into patches, write the rgb store (catalog.yaml).

    Args:
        params_path: the params file (relative to the project folder) the stage reads its settings from.
    """
    return prepare_rgb_task(load_stage_params(params_path))


if __name__ == "__main__":
    sys.exit(run_stage(prepare_rgb, prepare_rgb.__doc__))
