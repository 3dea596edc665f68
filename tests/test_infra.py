"""infra/prefect.yaml: every flow in flows/ has a deployment that loads, on pool cpu or gpu; GPU flows on gpu + cuda."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
POOLS = {"cpu", "gpu"}
# flows that train or sample networks: pool gpu, tag cuda (add new GPU flows here and in infra/prefect.yaml)
GPU_FLOWS = {"train_unmixing", "pretrain_generator", "train_generator", "synthesize", "classify", "mass_synthesis"}
# GPU flows that also have a deployment `<flow>/cpu` on pool cpu (no tag cuda), for CPU-only machines
ALSO_ON_CPU = {"mass_synthesis"}


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
