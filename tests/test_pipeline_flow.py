"""The Prefect `pipeline` flow (every stage in one flow run) in a copy of the repository with shrunk params.

It runs here, on its own pytest-xdist worker, while tests/test_stages.py runs `dvc repro` in another copy on the
other worker; test_stages then compares the two copies' stores (whichever test asks first runs the flow, once per
test run: tests/copies.py)."""

from __future__ import annotations

import pytest

from copies import declared_outputs, pipeline_flow_run, run_base


@pytest.mark.slow
def test_pipeline_flow_runs_every_stage_in_one_flow_run(tmp_path_factory):
    work, run = pipeline_flow_run(run_base(tmp_path_factory))
    print(f"\n[pipeline flow: {run['seconds']:.0f} s]")
    assert run["returncode"] == 0, run["output"]
    declared = declared_outputs(work, ("outs", "metrics"))
    missing = [p for p in declared if not (work / p).exists()]
    assert len(declared) > 10 and not missing, f"outputs of dvc.yaml the pipeline flow did not write: {missing}"
