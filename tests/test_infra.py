"""infra/prefect.yaml: written by infra/deployments.py from dvc.yaml's stages and up to date; every flow in flows/ has
a deployment that loads, on pool cpu or gpu; GPU flows on gpu + cuda. Every flow's Run form describes each parameter."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "infra"))
import deployments  # noqa: E402
from deployments import ALSO_ON_CPU, GPU_FLOWS  # noqa: E402  (flows that train or sample networks; those also on cpu)

POOLS = {"cpu", "gpu"}


def _deployments() -> list[dict]:
    spec = yaml.safe_load((REPO / "infra/prefect.yaml").read_text())
    assert spec["deployments"]
    return spec["deployments"]


def _flows_in_repo() -> set[str]:
    """``flows/<file>.py:<function>`` of every function decorated with @flow / @flow(...) in flows/."""
    found = set()
    for path in sorted((REPO / "flows").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for dec in node.decorator_list:
                    target = dec.func if isinstance(dec, ast.Call) else dec
                    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                    if name == "flow":
                        found.add(f"flows/{path.name}:{node.name}")
    return found


def test_prefect_yaml_is_written_from_the_stages_of_dvc_yaml(capsys):
    """A stage added to dvc.yaml (or a flow's docstring changed) without `python infra/deployments.py` fails here."""
    assert deployments.main(["--check"]) == 0, capsys.readouterr().err
    params_path = {d["entrypoint"]: d["parameters"]["params_path"] for d in _deployments()}
    for stage in deployments.read_stages():     # frozen ones too: with the params file of their dvc.yaml command
        assert params_path.get(stage.entrypoint) == (stage.params_file or "params.yaml"), stage.name


def test_every_deployment_points_at_a_real_flow():
    from prefect.flows import load_flow_from_entrypoint

    for dep in _deployments():
        path, _, name = dep["entrypoint"].partition(":")
        flow = load_flow_from_entrypoint(str(REPO / path) + ":" + name)
        assert set(dep.get("parameters", {})) <= set(flow.parameters.properties), dep["entrypoint"]
        assert dep["work_pool"]["name"] in POOLS, dep["entrypoint"]
        gpu = name in GPU_FLOWS and not (name in ALSO_ON_CPU and dep["name"] == "cpu")
        assert (dep["work_pool"]["name"] == "gpu") == gpu and ("cuda" in dep["tags"]) == gpu, dep["entrypoint"]
        assert dep["name"] == dep["work_pool"]["name"], f"{dep['entrypoint']}: deployments are named after their pool"


def test_every_flow_has_one_deployment():
    entrypoints = [dep["entrypoint"] for dep in _deployments()]
    named = [(dep["entrypoint"], dep["name"]) for dep in _deployments()]
    assert len(named) == len(set(named)), "a flow has two deployments of the same name"
    twice = {e.rpartition(":")[2] for e in entrypoints if entrypoints.count(e) > 1}
    assert twice <= ALSO_ON_CPU, f"deployed twice (only {sorted(ALSO_ON_CPU)} may have a cpu and a gpu one)"
    for name in ALSO_ON_CPU:
        pools = sorted(d["work_pool"]["name"] for d in _deployments() if d["entrypoint"].endswith(f":{name}"))
        assert pools == ["cpu", "gpu"], f"{name}: a gpu and a cpu deployment, got {pools}"
    missing = _flows_in_repo() - set(entrypoints)
    assert not missing, f"flows without a deployment in infra/prefect.yaml: {sorted(missing)}"


def test_the_run_form_of_every_flow_describes_every_parameter():
    """The Prefect UI's Run form (the flow's parameter schema, from the docstring's Args: section): a description for
    each parameter of every flow in flows/; a parameter that may be left empty (default None) says what empty means
    (the params file's setting, in most). tests/test_mass_synthesis.py checks mass_synthesis's choices."""
    from prefect.flows import load_flow_from_entrypoint

    found = {}
    for entrypoint in sorted(_flows_in_repo()):
        path, _, name = entrypoint.partition(":")
        flow = load_flow_from_entrypoint(str(REPO / path) + ":" + name)
        props = flow.parameters.model_dump()["properties"]
        assert list(props) == list(inspect.signature(flow.fn).parameters), entrypoint
        found[name] = props
        undescribed = [p for p, schema in props.items() if not (schema.get("description") or "").strip()]
        assert not undescribed, f"{entrypoint}: no description (docstring Args:) for {undescribed}"
        unsaid = [p for p, schema in props.items() if "default" in schema and schema["default"] is None
                  and "empty" not in schema["description"]]
        assert not unsaid, f"{entrypoint}: the description of {unsaid} does not say what empty (None) means"
    assert {"pipeline", "mass_synthesis", "synthesize"} <= set(found)
    assert all("params_path" in props for props in found.values())
    assert "synthesis.n" in found["synthesize"]["n"]["description"]
