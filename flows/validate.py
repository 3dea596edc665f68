"""Stage validate: Great Expectations checks over every prepared store; stops the pipeline on bad data."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.params import load_stage_params
from tasks.validate import DataValidationError, validate_store, write_preview, write_report


@flow(name="validate", log_prints=True)
def validate(params_path: str = "params.yaml") -> list[dict]:
    """Check the hsi and rgb stores (catalog.yaml); write the reports and a preview mosaic of each store; raise
    DataValidationError when a check fails (the run fails; a stage command exits with status 1).

    Args:
        params_path: the params file (relative to the project folder) the stage reads its settings from.
    """
    params = load_stage_params(params_path)
    summaries = [validate_store(params, "hsi"), validate_store(params, "rgb")]
    for summary in summaries:
        summary["preview"] = write_preview(params, summary["kind"])
    write_report(params, summaries)
    failed = [s for s in summaries if not s["success"]]
    if failed:
        raise DataValidationError(failed[0]["store"], failed[0]["error"])
    return summaries


if __name__ == "__main__":
    sys.exit(run_stage(validate, validate.__doc__))
