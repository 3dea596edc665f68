"""infra/prefect.yaml: every deployment names a flow that loads, on a known work pool; GPU flows on the CUDA pool."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_every_deployment_points_at_a_real_flow():
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((REPO / "infra/prefect.yaml").read_text())
    assert spec["deployments"]
    for dep in spec["deployments"]:
        path, _, name = dep["entrypoint"].partition(":")
        flow = load_flow_from_entrypoint(str(REPO / path) + ":" + name)
        assert set(dep.get("parameters", {})) <= set(flow.parameters.properties), dep["entrypoint"]
        gpu = name in ("train_unmixing", "train_generator", "synthesize")
        assert (dep["work_pool"]["name"] == "ubf-cuda") == gpu and ("cuda" in dep["tags"]) == gpu
