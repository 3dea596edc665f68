"""Stage classify: the downstream scene-classification experiment with real, augmented and synthetic training sets."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.classify import SYNTHESIS_DATASETS, classify_task, synthesis_params, synthesis_plan
from tasks.generator import synthesize_task
from tasks.params import load_stage_params


@flow(name="classify", log_prints=True)
def classify(params_path: str = "params.yaml") -> dict:
    """Synthesise class-conditional HSIs for the classes of the labelled real scenes (RGB → HSI class mapping in
    params), then train the classifiers on real only, real + classic augmentation and real + synthetic, 5 seeds
    each, tested on whole held-out scenes; write reports/classification.md and .json.

    Args:
        params_path: the params file (relative to the project folder) the stage reads its settings from.
    """
    params = load_stage_params(params_path)
    plan = synthesis_plan(params)
    synthesize_task(synthesis_params(params, plan), **SYNTHESIS_DATASETS)
    return classify_task(params, plan)


if __name__ == "__main__":
    sys.exit(run_stage(classify, classify.__doc__))
