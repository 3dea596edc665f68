"""Stage evaluate: the synthetic HSIs and their baselines judged against held-out real HSIs."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.evaluate import (draw_evaluation_figures, evaluation_candidates, judge_candidates, load_evaluation_inputs,
                            record_evaluation)
from tasks.params import load_stage_params


@flow(name="evaluate", log_prints=True)
def evaluate(params_path: str = "params.yaml") -> dict:
    """Compare the synthetic store, the other generators, the pixel GMM and the real training patches with the
    held-out real scenes (F_p, D_b, Fréchet distance, KID, precision/recall, C2ST, spatial statistics, class
    fidelity, memorisation); write reports/metrics.json and figures, log them to MLflow, tag the judged generator.

    Args:
        params_path: the params file (relative to the project folder) the stage reads its settings from.
    """
    params = load_stage_params(params_path)
    inputs = load_evaluation_inputs(params)
    candidates, roles = evaluation_candidates(params, inputs)
    table, realism_table, real_maps, net = judge_candidates(params, inputs, candidates)
    figures = draw_evaluation_figures(params, inputs, candidates, table, real_maps)
    return record_evaluation(params, inputs, roles, table, realism_table, net, figures)


if __name__ == "__main__":
    sys.exit(run_stage(evaluate, evaluate.__doc__))
