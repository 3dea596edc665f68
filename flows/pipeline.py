"""The end-to-end flow: every stage in order, the same stage code that `dvc repro` runs.

The stages and their order are dvc.yaml's (flows/stages.py reads them); frozen stages, and those whose command names
a params file of its own (the long profile's pretrain_generator), are not run.
"""

import importlib
import sys

from prefect import Flow, flow

from flows._entry import run_stage
from flows.stages import Stage, pipeline_stages


def stage_flows(stages: list[Stage]) -> list[Flow]:
    """The flow function of each stage (``flows.<module>.<module>``), imported, in the given order."""
    found_flows = []
    for stage in stages:
        found = getattr(importlib.import_module(f"flows.{stage.module}"), stage.module, None)
        if not isinstance(found, Flow):
            raise TypeError(f"stage {stage.name}: flows/{stage.module}.py has no flow function {stage.module}")
        found_flows.append(found)
    return found_flows


STAGE_FLOWS = stage_flows(pipeline_stages())


@flow(name="pipeline")
def pipeline(params_path: str = "params.yaml") -> None:
    """Run every stage of dvc.yaml in its order (data, unmixing, abundance inference, generator, synthesis,
    evaluation, classification, report) as subflows of one flow run; frozen stages are left out.

    Args:
        params_path: the params file (relative to the project folder) of every stage.
    """
    for stage_flow in STAGE_FLOWS:
        stage_flow(params_path=params_path)


if __name__ == "__main__":
    sys.exit(run_stage(pipeline, pipeline.__doc__))
