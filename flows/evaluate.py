"""Stage evaluate: the synthetic HSIs and their baselines judged against held-out real HSIs."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.evaluate import evaluate_task
from tasks.params import load_stage_params


@flow(name="evaluate", log_prints=True)
def evaluate(params_path: str = "params.yaml") -> dict:
    """Compare the synthetic store, the other generators, the pixel GMM and the real training patches with the
    held-out real scenes (F_p, D_b, Fréchet distance, KID, precision/recall, abundance histograms); write
    reports/metrics.json and figures, log them to MLflow.

    Args:
        params_path: the params file (relative to the project folder) the stage reads its settings from.
    """
    return evaluate_task(load_stage_params(params_path))


if __name__ == "__main__":
    sys.exit(run_stage(evaluate, evaluate.__doc__))
