"""Stage infer_abundance: the registered unmixing model maps the RGB and HSI stores into abundance space."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.params import load_stage_params
from tasks.unmixing import infer_abundance_task


@flow(name="infer_abundance", log_prints=True)
def infer_abundance(params_path: str = "params.yaml") -> dict:
    """Map the RGB and HSI stores into abundance space with the registered model unmixing.model_uri: write
    the catalogue datasets abundance_rgb, abundance_hsi and endmembers.

    Args:
        params_path: the params file (relative to the project folder) the stage reads its settings from.
    """
    return infer_abundance_task(load_stage_params(params_path))


if __name__ == "__main__":
    sys.exit(run_stage(infer_abundance, infer_abundance.__doc__))
