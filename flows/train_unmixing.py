"""Stage train_unmixing: the scene-based unmixing network (and the VCA+FCLS baseline), tracked in MLflow."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.params import load_stage_params
from tasks.unmixing import fit_unmixing_network, judge_unmixing, register_unmixing, unmixing_inputs


@flow(name="train_unmixing", log_prints=True)
def train_unmixing(params_path: str = "params.yaml") -> dict:
    """Train the unmixing network on the hsi store (validated on unmixing.validation_sources), log it to MLflow,
    register the model (alias champion moves only to a better version), write reports/unmixing.json.

    Args:
        params_path: the params file (relative to the project folder) the stage reads its settings from.
    """
    params = load_stage_params(params_path)
    inputs = unmixing_inputs(params)
    fitted, run_id = fit_unmixing_network(params, inputs)
    judged = judge_unmixing(params, inputs, fitted, run_id)
    return register_unmixing(params, inputs, fitted, judged, run_id)


if __name__ == "__main__":
    sys.exit(run_stage(train_unmixing, train_unmixing.__doc__))
