"""Stage report: one self-contained HTML page from what the other stages wrote (also `ubf report`)."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.params import load_stage_params
from tasks.report import report_task


@flow(name="report", log_prints=True)
def report(params_path: str = "params.yaml") -> dict:
    """Write reports/report.html: real and synthetic samples side by side, endmembers, spectral profiles, abundance
    maps, the metric tables with baselines, the classification table and provenance; log it to MLflow.

    Args:
        params_path: the params file (relative to the project folder) the stage reads its settings from.
    """
    return report_task(load_stage_params(params_path))


if __name__ == "__main__":
    sys.exit(run_stage(report, report.__doc__))
