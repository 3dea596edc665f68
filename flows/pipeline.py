"""The end-to-end flow: every stage in order, the same stage code that `dvc repro` runs."""

import sys

from prefect import flow

from flows._entry import run_stage
from flows.classify import classify
from flows.evaluate import evaluate
from flows.prepare_hsi import prepare_hsi
from flows.prepare_rgb import prepare_rgb
from flows.report import report
from flows.infer_abundance import infer_abundance
from flows.synthesize import synthesize
from flows.train_generator import train_generator
from flows.train_unmixing import train_unmixing
from flows.validate import validate


@flow(name="pipeline")
def pipeline(params_path: str = "params.yaml") -> None:
    """Run every stage in dvc.yaml order: data stages, unmixing, abundance inference, generator, synthesis,
    evaluation, the classification experiment, the report."""
    prepare_hsi(params_path)
    prepare_rgb(params_path)
    validate(params_path)
    train_unmixing(params_path)
    infer_abundance(params_path)
    train_generator(params_path)
    synthesize(params_path)
    evaluate(params_path)
    classify(params_path)
    report(params_path)


if __name__ == "__main__":
    sys.exit(run_stage(pipeline, pipeline.__doc__))
