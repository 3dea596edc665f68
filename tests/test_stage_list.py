"""The stage list is written once, in dvc.yaml: flows/stages.py reads it, and the `pipeline` flow, the `ubf` stage
commands and the Prefect deployments (infra/prefect.yaml, written by infra/deployments.py) all derive from it; a
stage added to dvc.yaml reaches each of them, or the check names what it lacks."""

from __future__ import annotations

import re
import shutil
import sys
import textwrap
from pathlib import Path

import click
import pytest
import yaml

from flows.stages import Stage, StageListError, pipeline_stages, read_stages

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "infra"))
import deployments  # noqa: E402

NEW_STAGE = """\
  smooth:
    cmd: python -m flows.smooth
    deps:
      - stores/abundance_hsi.zarr
    outs:
      - stores/smooth.zarr

"""
NEW_FLOW = '''\
from prefect import flow


@flow(name="smooth")
def smooth(params_path: str = "params.yaml") -> None:
    """Smooth the abundance maps.

    Args:
        params_path: the params file.
    """
'''


def _with_new_stage(folder: Path, flow_file: bool = True) -> Path:
    """A project in ``folder``: this dvc.yaml with the stage ``smooth`` inserted before ``report``, the flows of
    flows/ and (``flow_file``) flows/smooth.py. Returns the dvc.yaml."""
    text = (REPO / "dvc.yaml").read_text()
    assert text.count("\n  report:\n") == 1
    dvc_file = folder / "dvc.yaml"
    dvc_file.write_text(text.replace("\n  report:\n", "\n" + NEW_STAGE + "  report:\n"))
    (folder / "flows").mkdir()
    for path in (REPO / "flows").glob("*.py"):
        shutil.copy(path, folder / "flows" / path.name)
    if flow_file:
        (folder / "flows" / "smooth.py").write_text(NEW_FLOW)
    return dvc_file


def test_the_stages_are_those_of_dvc_yaml_in_its_order():
    stages = read_stages()
    assert [s.name for s in stages] == list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    assert all(s.module == s.name and (REPO / s.entrypoint.partition(":")[0]).is_file() for s in stages)
    frozen = [s for s in stages if s.frozen]
    assert [s.name for s in frozen] == ["pretrain_generator"] and frozen[0].params_file == "params.long.yaml"
    assert [s.name for s in pipeline_stages()] == [s.name for s in stages if s.name != "pretrain_generator"]


def test_the_pipeline_flow_runs_every_unfrozen_stage_in_dvc_yaml_order():
    from flows.pipeline import STAGE_FLOWS, stage_flows

    assert [f.name for f in STAGE_FLOWS] == [s.name for s in pipeline_stages()]
    assert "pretrain_generator" not in [f.name for f in STAGE_FLOWS]       # frozen: as `dvc repro`, left out
    with pytest.raises(ModuleNotFoundError, match="flows.smooth"):
        stage_flows([Stage("smooth", "smooth")])                         # a stage without its flow file


def test_an_unfrozen_stage_with_its_own_params_file_stays_out_of_the_pipeline(tmp_path):
    """`dvc unfreeze pretrain_generator` (to rebuild the checkpoint) does not put the long profile's run, with the
    pipeline's params file, into the pipeline flow."""
    dvc_file = tmp_path / "dvc.yaml"
    dvc_file.write_text((REPO / "dvc.yaml").read_text().replace("    frozen: true\n", ""))
    stages = {s.name: s for s in read_stages(dvc_file)}
    assert not stages["pretrain_generator"].frozen
    assert "pretrain_generator" not in [s.name for s in pipeline_stages(dvc_file)]


def test_every_stage_is_a_ubf_command_with_its_flows_description():
    from flows.cli import main

    for stage in read_stages():
        command = main.commands[stage.command]
        assert "--params" in [opt for p in command.params for opt in p.opts], stage.name
    pretrain = main.commands["pretrain-generator"].help
    assert "--params params.long.yaml" in pretrain and "Frozen" in pretrain
    assert main.commands["prepare-hsi"].help.startswith("Read every scene of hsi.datasets")
    assert "Args:" not in main.commands["prepare-hsi"].help


def test_a_stage_added_to_dvc_yaml_reaches_the_pipeline_the_commands_and_the_deployments(tmp_path):
    from flows.cli import add_stage_commands

    dvc_file = _with_new_stage(tmp_path)
    names = [s.name for s in read_stages(dvc_file)]
    assert names[-2:] == ["smooth", "report"]
    assert [s.name for s in pipeline_stages(dvc_file)][-2:] == ["smooth", "report"]

    group = click.Group("ubf")
    add_stage_commands(group, read_stages(dvc_file), root=tmp_path)
    assert group.commands["smooth"].help == "Smooth the abundance maps."

    # the committed infra/prefect.yaml lacks the new stage: the check of tests/test_infra.py fails, naming it
    assert deployments.main(["--check", "--dvc-file", str(dvc_file)]) == 1
    out = tmp_path / "prefect.yaml"
    assert deployments.main(["--dvc-file", str(dvc_file), "--out", str(out)]) == 0
    assert deployments.main(["--check", "--dvc-file", str(dvc_file), "--out", str(out)]) == 0
    new = [d for d in yaml.safe_load(out.read_text())["deployments"] if d["entrypoint"] == "flows/smooth.py:smooth"]
    assert new == [{"name": "cpu", "entrypoint": "flows/smooth.py:smooth", "description": "Smooth the abundance maps.",
                    "parameters": {"params_path": "params.yaml"}, "work_pool": {"name": "cpu"},
                    "tags": ["ubf", "cpu"]}]


def test_a_stage_without_its_flow_is_an_error_that_names_it(tmp_path, capsys):
    from flows.cli import add_stage_commands

    dvc_file = _with_new_stage(tmp_path, flow_file=False)
    with pytest.raises(StageListError, match=r"flows/smooth\.py"):
        add_stage_commands(click.Group("ubf"), read_stages(dvc_file), root=tmp_path)
    assert deployments.main(["--check", "--dvc-file", str(dvc_file)]) == 2
    assert "flows/smooth.py" in capsys.readouterr().err


@pytest.mark.parametrize("cmd, problem", [
    ("python infra/smooth.py", "must be `python -m flows.<module>"),
    ("python -m flows.smooth --fast", "takes only --params FILE"),
])
def test_a_stage_that_runs_no_flow_is_refused(tmp_path, cmd, problem):
    dvc_file = tmp_path / "dvc.yaml"
    dvc_file.write_text(textwrap.dedent(f"""\
        stages:
          prepare_hsi:
            cmd: python -m flows.prepare_hsi
          smooth:
            cmd: {cmd}
        """))
    with pytest.raises(StageListError, match=rf"stage smooth: .*{re.escape(problem)}"):
        read_stages(dvc_file)
    with pytest.raises(StageListError, match="cannot read"):
        read_stages(tmp_path / "no_dvc.yaml")
