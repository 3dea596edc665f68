"""Loading params.yaml for a flow run."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from ubf_core.config import load_params


@task(name="load-params")
def load_stage_params(params_path: str) -> dict:
    """Read params.yaml; paths inside it resolve against the folder that holds it."""
    params = load_params(params_path)
    params["_root"] = str(Path(params_path).resolve().parent)
    return params


def resolve(params: dict, relative: str) -> Path:
    """A path from params.yaml, relative to the params file's folder."""
    p = Path(relative)
    return p if p.is_absolute() else Path(params["_root"]) / p
