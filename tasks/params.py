"""Loading params.yaml for a flow run."""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefect import task

from ubf_core.catalog import Catalog, project_catalog
from ubf_core.config import load_params, params_hash


@task(name="load-params")
def load_stage_params(params_path: str) -> dict:
    """Read params.yaml; paths inside it resolve against the folder that holds it."""
    params = load_params(params_path)
    params["_root"] = str(Path(params_path).resolve().parent)
    return params


def params_file_hash(params: dict) -> str:
    """:func:`ubf_core.config.params_hash` of the whole params file as loaded (without the keys
    :func:`load_stage_params` adds, such as ``_root``)."""
    return params_hash({k: v for k, v in params.items() if not k.startswith("_")})


def resolve(params: dict, relative: str) -> Path:
    """A path from params.yaml, relative to the params file's folder."""
    p = Path(relative)
    return p if p.is_absolute() else Path(params["_root"]) / p


def catalog(params: dict) -> Catalog:
    """The data catalogue: catalog.yaml in the params file's folder (the repository's when that folder has none);
    its relative paths resolve against the params file's folder, as params paths do."""
    return project_catalog(params["_root"])


def dataset_path(params: dict, name: str) -> Path:
    """The path of catalogue dataset ``name`` (e.g. "hsi" -> <root>/stores/hsi.zarr)."""
    return catalog(params).path(name)


def relative(params: dict, path: Path) -> str:
    """``path`` as written in reports: relative to the params file's folder when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path(params["_root"]).resolve()))
    except ValueError:
        return str(path)


def write_json(path: Path, data: dict) -> None:
    """Write a JSON report atomically (temporary name, then rename), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
