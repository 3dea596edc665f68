"""Helpers of the end-to-end tests: a copy of the repository with shrunk params, the environment its stage
commands run in, and the `pipeline` flow run once per test run in such a copy (shared by every worker that needs
it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
E2E_TIMEOUT_S = 900     # one whole pipeline on the 2-core machine with the other worker busy


def copy_repo(dst: Path) -> None:
    """The repository's tracked and unignored files (no stores, no venv, no mlruns) copied into ``dst``."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)


def shrink_params(work: Path) -> None:
    """The embedded sample and every stage as shipped, with fewer RGB crops, training epochs and samples (test
    time)."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["rgb"]["stride"] = 32                          # 2 × 2 crops per 64 px image instead of 3 × 3
    params["unmixing"]["train"]["epochs"] = 3
    params["generator"]["train"].update(steps=4, log_every=2)
    params["generator"]["init_from_checkpoint"] = False   # the shipped checkpoint learned other endmembers
    params["synthesis"].update(n=24, block_size=8)        # the realism metrics need ≥ 20 samples
    params["evaluation"]["realism"] = {"c2st_epochs": 2, "classifier_epochs": 2}
    for name in ("vae", "gan"):
        params["evaluation"]["generators"][name]["train"]["steps"] = 4
    params["evaluation"]["features"]["epochs"] = 2
    params["classification"].update(seeds=[0, 1], n_per_class=8)
    params["classification"]["train"].update(epochs=2, batch_size=16)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def shrunk_copy(work: Path) -> Path:
    """``work`` made a copy of the repository with :func:`shrink_params` applied; returns it."""
    work.mkdir(parents=True)
    copy_repo(work)
    shrink_params(work)
    return work


def stage_env(prefect_home: Path) -> dict:
    """The environment of a stage command run in a copy: this venv first, its own ephemeral Prefect, no servers."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(prefect_home), "DVC_NO_ANALYTICS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):  # each copy tracks into its own mlruns/
        env.pop(name, None)
    return env


def declared_outputs(work: Path, kinds: tuple[str, ...] = ("outs",)) -> list[str]:
    """The paths (relative to the copy) that dvc.yaml's stages declare under ``kinds`` (outs, metrics), sorted."""
    stages = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
    return sorted(next(iter(o)) if isinstance(o, dict) else o
                  for s in stages.values() for kind in kinds for o in s.get(kind, []))


def run_base(tmp_path_factory) -> Path:
    """A folder of this test run that every pytest-xdist worker sees (the workers' base temp folders share it as
    their parent); without xdist, the run's base temp folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def pipeline_flow_run(base: Path) -> tuple[Path, dict]:
    """``python -m flows.pipeline`` (every stage in one Prefect flow) in a shrunk copy under ``base/pipeline_flow``,
    once per test run: the first caller claims it (an exclusively created file) and runs it; any other caller, in
    this process or another worker, waits for the record the first one writes. Returns (the copy, the record:
    ``returncode``, ``seconds``, ``output`` = the last 6000 characters of stdout and stderr)."""
    folder = base / "pipeline_flow"
    folder.mkdir(exist_ok=True)
    record = folder / "record.json"
    try:
        os.close(os.open(folder / "claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:                 # another test runs it: wait for its record
        deadline = time.monotonic() + E2E_TIMEOUT_S + 120
        while not record.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no record of the pipeline flow run in {folder} after {E2E_TIMEOUT_S + 120} s")
            time.sleep(2)
        return folder / "repo", json.loads(record.read_text())
    work = folder / "repo"
    start = time.monotonic()
    result: dict = {"returncode": None, "output": "interrupted before the flow finished"}
    try:                                    # whatever happens, the waiting tests get a record
        shrunk_copy(work)
        run = subprocess.run([sys.executable, "-m", "flows.pipeline", "--params", "params.yaml"], cwd=work,
                             env=stage_env(folder / "prefect_home"), capture_output=True, text=True,
                             timeout=E2E_TIMEOUT_S)
        result = {"returncode": run.returncode, "output": run.stdout[-3000:] + run.stderr[-3000:]}
    except (OSError, subprocess.SubprocessError) as err:
        result = {"returncode": None, "output": f"{type(err).__name__}: {err}"}
    finally:
        result["seconds"] = round(time.monotonic() - start, 1)
        tmp = folder / "record.json.tmp"
        tmp.write_text(json.dumps(result))
        tmp.rename(record)
    return work, result
