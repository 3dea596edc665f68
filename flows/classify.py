"""Stage classify: the downstream scene-classification experiment with real, augmented and synthetic training sets."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.classify import (SYNTHESIS_DATASETS, classification_experiment, labelled_real_sets, record_classification,
                            synthesis_params, synthesis_plan, synthetic_pool)
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
    train, test, test_scenes = labelled_real_sets(params)
    plan = synthesis_plan(params, train)
    synthesize_task(synthesis_params(params, plan), **SYNTHESIS_DATASETS)
    synthetic, attrs = synthetic_pool(params, plan, train)
    result = classification_experiment(params, train, test, synthetic)
    return record_classification(params, result, train, test, test_scenes, synthetic, attrs)


if __name__ == "__main__":
    sys.exit(run_stage(classify, classify.__doc__))
