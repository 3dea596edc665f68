"""The deployable mass_synthesis flow against a real local stack on loopback (infra/up.py: Prefect server and process
workers, MLflow server, Dask scheduler with 2 workers), started on free ports with a temporary state dir, once for
the module, and stopped by process id (infra/down.py). Tiny, untrained DDPM generators and a tiny unmixing model are
registered in that MLflow server.

The stack tests run in file order; the last one kills the cpu pool's worker.
A run of the killed worker must be marked Crashed by the automation infra/up.py creates (infra/zombies.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
import xarray as xr
import yaml
from loopback import alive, api, free_ports

from ubf_core.errors import UBFInputError

REPO = Path(__file__).resolve().parents[1]
UP, DOWN = REPO / "infra" / "up.py", REPO / "infra" / "down.py"
PREFECT = str(Path(sys.executable).parent / "prefect")
K, SIZE, CLASSES = 4, (8, 8), ["Beach", "Forest"]
WL = np.linspace(398, 698, 12)
BASE = {"n_samples": 12, "classes": {"Beach": 1, "Forest": 1}, "block_size": 4}   # the project's synthesis settings
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


# ------------------------------------------------------------------------------------------------ helpers
def arrays(path) -> dict:
    ds = xr.open_zarr(path, consolidated=False)
    return {name: ds[name].values for name in ("reflectance", "abundance", "label", "seed", "wavelength")}


def assert_same(a: dict, b: dict) -> None:
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def store_attrs(path) -> dict:
    import zarr

    return dict(zarr.open_group(Path(path), mode="r").attrs)


def deployment_run(stack: dict, name: str, params: dict) -> str:
    """`prefect deployment run NAME --param k=v …` (values as JSON); the flow run id."""
    args = [a for k, v in params.items() for a in ("--param", f"{k}={json.dumps(v)}")]
    res = subprocess.run([PREFECT, "deployment", "run", name, *args], capture_output=True, text=True,
                         env=stack["client_env"], cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return re.search(r"UUID:\s*([0-9a-f-]{36})", res.stdout).group(1)


def wait_flow_run(stack: dict, run_id: str, timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        run = api(f"{stack['prefect']}/flow_runs/{run_id}")
        if run["state_type"] in TERMINAL or time.monotonic() > deadline:
            return run
        time.sleep(1)


def flow_run_logs(stack: dict, run_id: str) -> str:
    logs = api(f"{stack['prefect']}/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}})
    return "\n".join(log["message"] for log in logs)


def block_task_runs(stack: dict, run_id: str) -> list[dict]:
    runs = api(f"{stack['prefect']}/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
    return [r for r in runs if r["name"].startswith("block-")]


def artifacts(stack: dict, run_id: str) -> dict[str, dict]:
    found = api(f"{stack['prefect']}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
    return {a["key"]: a for a in found}


def provenance(artifact: dict) -> dict:
    data = artifact["data"]
    rows = json.loads(data) if isinstance(data, str) else data
    return {row["field"]: row["value"] for row in rows}


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("infra")
    prefect_port, mlflow_port, dask_port, dash_port = free_ports(4)
    args = ["--state-dir", str(state_dir), "--prefect-port", str(prefect_port), "--mlflow-port", str(mlflow_port),
            "--dask-port", str(dask_port), "--dask-dashboard-port", str(dash_port), "--mlflow-workers", "1",
            "--crash-after", "60"]   # the shortest safe delay for the 30 s heartbeat: the crash test waits less
    env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "2"}  # workers poll every 2 s
    for var in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "UBF_DASK_SCHEDULER"):
        env.pop(var, None)
    up = subprocess.run([sys.executable, str(UP), *args], capture_output=True, text=True, env=env, cwd=REPO,
                        timeout=300)
    state = json.loads((state_dir / "pids.json").read_text()) if (state_dir / "pids.json").exists() else None
    urls = {"prefect": f"http://127.0.0.1:{prefect_port}/api", "mlflow": f"http://127.0.0.1:{mlflow_port}",
            "dask": f"tcp://127.0.0.1:{dask_port}"}
    client_env = {**env, "PREFECT_API_URL": urls["prefect"], "MLFLOW_TRACKING_URI": urls["mlflow"],
                  "PREFECT_HOME": str(state_dir / "prefect")}
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        yield {"dir": state_dir, "state": state, "client_env": client_env, **urls}
    finally:
        subprocess.run([sys.executable, str(DOWN), "--state-dir", str(state_dir)], capture_output=True, timeout=120,
                       cwd=REPO)
        for p in (state or {}).get("processes", []):  # last resort: never leave a server behind
            try:
                if abs(psutil.Process(p["pid"]).create_time() - p["create_time"]) < 1.0:
                    os.killpg(p["pgid"], signal.SIGKILL)
            except (psutil.NoSuchProcess, ProcessLookupError, TypeError):
                pass


def _register(root: Path, version_seed: int, metric: float, model_uri_tags: dict) -> dict:
    import mlflow

    from tasks.registry import experiment, log_generator, register
    from ubf_core.generators import make_generator

    gen = make_generator("ddpm", K, SIZE, CLASSES, block_out_channels=[8, 16], num_train_timesteps=1000,
                         init_seed=version_seed)
    folder = gen.save(root / f"generator-{version_seed}")
    with mlflow.start_run(experiment_id=experiment("ubf-test-generator", root)):
        info = log_generator(folder)
    return register(info.model_uri, "ubf-generator", "hist_distance", metric, higher_is_better=False,
                    tags=model_uri_tags)


@pytest.fixture(scope="module")
def project(stack, tmp_path_factory):
    """A params.yaml in a temp folder; ubf-unmixing v1 and ubf-generator v1 (champion) and v2 registered in the
    stack's MLflow server; the mass_synthesis deployments of infra/prefect.yaml on the stack's Prefect server; the
    in-process flow runs of the tests go to that server too."""
    import mlflow
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tasks.registry import experiment, log_unmixing_model, register
    from ubf_core.unmixing import UnmixingNet

    root = tmp_path_factory.mktemp("project")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["synthesis"].update(n=BASE["n_samples"], class_mix=BASE["classes"], block_size=BASE["block_size"],
                               micro_batch=1, sampler="dpm++", steps=4, guidance_scale=2.0, noise_snr_db=30.0,
                               torch_threads=1, device="cpu",
                               export={**params["synthesis"]["export"], "n": 0})
    params["dask"].update(scheduler_address=None, processes=False, n_workers=1, threads_per_worker=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params))

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "UBF_DASK_SCHEDULER")}
    os.environ["MLFLOW_TRACKING_URI"] = stack["mlflow"]
    os.environ.pop("UBF_DASK_SCHEDULER", None)
    mlflow.set_tracking_uri(stack["mlflow"])
    try:
        torch.manual_seed(0)
        unmixing = UnmixingNet(K, len(WL), stem=4, widths=(4, 4, 4, 4))
        unmixing.meta = {"wavelength_nm": [float(v) for v in WL]}
        with mlflow.start_run(experiment_id=experiment("ubf-test-unmixing", root)):
            info = log_unmixing_model(unmixing)
        register(info.model_uri, "ubf-unmixing", "val_psnr", 30.0, higher_is_better=True)
        tags = {"unmixing_model_version": "1", "wavelength_nm": json.dumps([float(v) for v in WL])}
        v1 = _register(root, 0, 0.5, tags)
        v2 = _register(root, 1, 0.6, tags)      # worse: the champion stays at version 1
        assert (v1["version"], v1["promoted"], v2["version"], v2["promoted"]) == (1, True, 2, False)

        deploy = subprocess.run([PREFECT, "--no-prompt", "deploy", "--prefect-file", "infra/prefect.yaml",
                                 "--name", "mass_synthesis/cpu", "--name", "mass_synthesis/gpu"],
                                capture_output=True, text=True, env=stack["client_env"], cwd=REPO, timeout=180)
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
        with temporary_settings(updates={PREFECT_API_URL: stack["prefect"]}):
            try:
                yield {"root": root, "params": root / "params.yaml", "runs": {}}
            finally:  # send this process's logs and events of the in-process runs while the server still listens
                from prefect.events.worker import EventsWorker
                from prefect.logging.handlers import APILogWorker

                APILogWorker.drain_all(timeout=10)
                EventsWorker.drain_all(timeout=10)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ------------------------------------------------------------------------------------------------ stack tests
@pytest.mark.slow
def test_deployment_run_writes_the_store_and_links_its_provenance(stack, project):
    """`prefect deployment run mass_synthesis/gpu --param …`: the gpu pool's worker runs it (device auto: the CPU
    here), one task run per block, a complete store, a progress artifact at 100 % and the provenance artifacts."""
    out = project["root"] / "deployed.zarr"
    for pool in ("cpu", "gpu"):
        dep = api(f"{stack['prefect']}/deployments/name/mass_synthesis/{pool}")
        assert dep["work_pool_name"] == pool and ("cuda" in dep["tags"]) == (pool == "gpu")
    t0 = time.monotonic()
    run_id = deployment_run(stack, "mass_synthesis/gpu", {**BASE, "out": str(out),
                                                          "params_path": str(project["params"])})
    run = wait_flow_run(stack, run_id)
    print(f"deployment run: {time.monotonic() - t0:.1f} s")
    assert run["state_type"] == "COMPLETED", flow_run_logs(stack, run_id)[-3000:]
    assert run["work_pool_name"] == "gpu"

    from ubf_core.synthesis.store import partial_path

    attrs = store_attrs(out)
    assert attrs["complete"] is True and attrs["n"] == 12 and attrs["generator_version"] == 1
    assert attrs["unmixing_version"] == 1 and not partial_path(out).exists()
    blocks = block_task_runs(stack, run_id)
    assert sorted(r["name"] for r in blocks) == ["block-0", "block-1", "block-2"]
    assert {r["state_type"] for r in blocks} == {"COMPLETED"} and not any("cuda" in r["tags"] for r in blocks)
    found = artifacts(stack, run_id)
    assert found["mass-synthesis-progress"]["type"] == "progress" and found["mass-synthesis-progress"]["data"] == 100
    assert out.resolve().as_uri() in found["mass-synthesis-output"]["data"]
    prov = provenance(found["mass-synthesis-provenance"])
    assert prov["generator_model"] == "ubf-generator" and prov["generator_version"] == "1"
    assert prov["unmixing_model"] == "ubf-unmixing" and prov["unmixing_version"] == "1"
    assert prov["config_hash"] == attrs["config_hash"] and prov["n"] == "12" and prov["seed"] == "0"
    assert prov["output"] == str(out) and prov["generator_uri"] == "models:/ubf-generator@champion"
    assert "Mass synthesis" in found["mass-synthesis-provenance-summary"]["data"]
    project["runs"]["deployed"] = out


@pytest.mark.slow
def test_dask_workers_and_mapped_tasks_give_the_stage_store(stack, project):
    """2 Dask workers (the stack's), 1 Dask worker and no Dask, with other block sizes, and the `synthesize`
    stage: the same arrays, the same configuration hash."""
    from distributed import LocalCluster

    from flows.mass_synthesis import mass_synthesis
    from flows.synthesize import synthesize

    root, params = project["root"], str(project["params"])
    ref = project["runs"].get("deployed")
    if ref is None:
        ref = root / "mapped.zarr"
        mass_synthesis(**BASE, out=str(ref), params_path=params)
    two = mass_synthesis(**{**BASE, "block_size": 5}, out=str(root / "dask2.zarr"), dask_address=stack["dask"],
                         params_path=params)
    assert two["computed_blocks"] == [0, 1, 2]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        one = mass_synthesis(**{**BASE, "block_size": 3}, out=str(root / "dask1.zarr"),
                             dask_address=cluster.scheduler_address, params_path=params)
    assert one["computed_blocks"] == [0, 1, 2, 3]
    synthesize(params_path=params)          # the DVC stage: stores/synthetic.zarr, its own local Dask cluster
    expected = arrays(ref)
    for name in ("dask2.zarr", "dask1.zarr", "stores/synthetic.zarr"):
        assert_same(expected, arrays(root / name))
        assert store_attrs(root / name)["config_hash"] == store_attrs(ref)["config_hash"], name
    assert list(expected["label"]) == ["Beach"] * 6 + ["Forest"] * 6


@pytest.mark.slow
def test_the_next_run_uses_the_version_the_alias_was_moved_to(stack, project):
    """Move `champion` to version 2 with MLflow's REST API: the next run's store and provenance say version 2."""
    from flows.mass_synthesis import mass_synthesis

    alias = f"{stack['mlflow']}/api/2.0/mlflow/registered-models/alias"
    api(alias, {"name": "ubf-generator", "alias": "champion", "version": "2"})
    try:
        report = mass_synthesis(n_samples=4, classes=None, params_path=str(project["params"]))
    finally:
        api(alias, {"name": "ubf-generator", "alias": "champion", "version": "1"})
    out = Path(report["output"])
    assert out.parent == project["root"] / "stores" / "mass_synthesis" and out.name == f"{report['config_hash']}.zarr"
    assert report["generator_version"] == 2 and store_attrs(out)["generator_version"] == 2
    assert report["generator_uri"] == "models:/ubf-generator@champion"
    found = artifacts(stack, report["flow_run_id"])
    assert provenance(found["mass-synthesis-provenance"])["generator_version"] == "2"
    assert list(arrays(out)["label"]) == [""] * 4
    again = mass_synthesis(n_samples=4, classes=None, generator=2, params_path=str(project["params"]))
    assert again["output"] == str(out) and again["skipped_blocks"] == "all"   # the same store: nothing to do


@pytest.mark.slow
def test_an_alias_that_points_nowhere_stops_before_any_block(stack, project):
    from flows.mass_synthesis import mass_synthesis
    from ubf_core.synthesis.store import partial_path

    out = project["root"] / "nowhere.zarr"
    with pytest.raises(UBFInputError) as err:
        mass_synthesis(**BASE, generator="nope", out=str(out), params_path=str(project["params"]))
    assert str(err.value).startswith("models:/ubf-generator@nope: no such registered model version")
    assert stack["mlflow"] in str(err.value)
    assert not out.exists() and not partial_path(out).exists()
    with pytest.raises(UBFInputError, match=r"^models:/ubf-generator/7: no such registered model version"):
        mass_synthesis(**BASE, generator=7, out=str(out), params_path=str(project["params"]))


@pytest.mark.slow
def test_an_unreachable_mlflow_server_is_a_clear_error_within_the_timeout(stack, project, monkeypatch):
    """A server that accepts connections but never answers, and a port nobody listens on."""
    from flows.mass_synthesis import mass_synthesis
    from tasks.servers import check_tracking_server

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(UBFInputError) as err:
            check_tracking_server(url, timeout_s=2)
        assert time.monotonic() - t0 < 3.5
        assert str(err.value).startswith(url) and "did not answer within 2 s" in str(err.value)

        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv("UBF_MLFLOW_TIMEOUT_S", "3")
        out = project["root"] / "unreachable.zarr"
        t0 = time.monotonic()
        with pytest.raises(UBFInputError) as err:
            mass_synthesis(**BASE, out=str(out), params_path=str(project["params"]))
        elapsed = time.monotonic() - t0
    print(f"unreachable MLflow: error after {elapsed:.1f} s")
    assert str(err.value).startswith(url) and "did not answer within 3 s" in str(err.value)
    assert elapsed < 3 + 12, elapsed   # the timeout plus the flow run's own start on a busy machine
    assert not out.exists()
    closed = f"http://127.0.0.1:{free_ports(1)[0]}"
    with pytest.raises(UBFInputError, match=re.escape(closed) + r": MLflow tracking server not reachable"):
        check_tracking_server(closed, timeout_s=2)


def slow_run(project: dict) -> dict:
    """Parameters of a run that takes long enough to be stopped part-way (cancellation takes about 10 s to reach
    the flow run's process): 12 blocks of 2-6 s each, two at a time."""
    return {"n_samples": 24, "classes": None, "sampler": "ddpm", "steps": 500, "block_size": 2,
            "params_path": str(project["params"])}


def wait_for_blocks(partial: Path, at_least: int, timeout_s: float = 180) -> int:
    """Wait until ``at_least`` blocks of the store being written at ``partial`` are done; how many are."""
    from ubf_core.synthesis.store import pending_blocks

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (partial / "block_done").exists():
            done = 12 - len(pending_blocks(partial))
            if done >= at_least:
                return done
        time.sleep(0.1)
    return 0


def flow_run_processes(run_id: str) -> list[psutil.Process]:
    """The processes that execute flow run ``run_id`` (a worker passes the id in PREFECT__FLOW_RUN_ID)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("PREFECT__FLOW_RUN_ID") == run_id:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def clean_store(project: dict) -> Path:
    """The slow run's store written in one go, in this process (made once for the module)."""
    from flows.mass_synthesis import mass_synthesis

    if "clean" not in project["runs"]:
        path = project["root"] / "clean.zarr"
        assert len(mass_synthesis(**slow_run(project), out=str(path))["computed_blocks"]) == 12
        project["runs"]["clean"] = path
    return project["runs"]["clean"]


def assert_resumed(stack: dict, rerun_id: str, missing: list[int], out: Path, project: dict) -> None:
    """The rerun computed exactly the blocks that were missing, and the store equals a clean run's."""
    rerun = api(f"{stack['prefect']}/flow_runs/{rerun_id}")
    assert rerun["state_type"] == "COMPLETED", flow_run_logs(stack, rerun_id)[-3000:]
    assert sorted(int(r["name"].split("-")[1]) for r in block_task_runs(stack, rerun_id)) == missing
    prov = provenance(artifacts(stack, rerun_id)["mass-synthesis-provenance"])
    assert json.loads(prov["computed_blocks"]) == missing and prov["skipped_blocks"] == str(12 - len(missing))
    assert_same(arrays(clean_store(project)), arrays(out))
    from ubf_core.synthesis.store import partial_path

    assert store_attrs(out)["complete"] is True and not partial_path(out).exists()


@pytest.mark.slow
def test_a_cancelled_run_stops_and_the_same_run_again_resumes(stack, project):
    """`prefect flow-run cancel` while blocks run: the worker stops the flow run's process, the run ends
    Cancelled, no block is written after that and no half store appears; the same deployment run again computes
    only the missing blocks."""
    from ubf_core.synthesis.store import partial_path, pending_blocks

    out = project["root"] / "cancelled.zarr"
    run_id = deployment_run(stack, "mass_synthesis/cpu", {**slow_run(project), "out": str(out)})
    partial = partial_path(out)
    done = wait_for_blocks(partial, 1)
    assert 1 <= done < 12, f"{done} blocks done when the run was to be cancelled"
    t0 = time.monotonic()
    cancel = subprocess.run([PREFECT, "flow-run", "cancel", run_id], capture_output=True, text=True,
                            env=stack["client_env"], cwd=REPO, timeout=60)
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    run = wait_flow_run(stack, run_id, timeout_s=120)
    print(f"cancelled with {done} of 12 blocks done; Cancelled {time.monotonic() - t0:.1f} s later")
    assert run["state_type"] == "CANCELLED", run["state"]
    deadline = time.monotonic() + 30
    while flow_run_processes(run_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not flow_run_processes(run_id), "the cancelled flow run's process still runs"
    missing = pending_blocks(partial)
    assert 0 < len(missing) < 12 and not out.exists()

    rerun_id = deployment_run(stack, "mass_synthesis/cpu", {**slow_run(project), "out": str(out)})
    wait_flow_run(stack, rerun_id)
    assert_resumed(stack, rerun_id, missing, out, project)


@pytest.mark.slow
def test_a_killed_worker_crashes_its_run_and_the_next_run_finishes_the_store(stack, project):
    """SIGKILL the cpu worker (its process group and every process under it, the flow run's included) while
    blocks run: no half store appears, and once its heartbeats stop the server's automation (infra/zombies.py)
    marks the run Crashed; the same deployment run again (a new worker) computes only the missing blocks, and
    the store equals a clean run's."""
    from ubf_core.synthesis.store import partial_path, pending_blocks

    out = project["root"] / "killed.zarr"
    worker = next(p for p in stack["state"]["processes"] if p["name"] == "prefect-worker-cpu")
    worker_env = psutil.Process(worker["pid"]).environ()
    run_id = deployment_run(stack, "mass_synthesis/cpu", {**slow_run(project), "out": str(out)})
    partial = partial_path(out)
    done = wait_for_blocks(partial, 2)
    assert 2 <= done < 12, f"{done} blocks done when the worker was to be killed"
    leader = psutil.Process(worker["pid"])
    tree = [leader, *leader.children(recursive=True)]
    os.killpg(worker["pgid"], signal.SIGKILL)
    t_kill = time.monotonic()
    for proc in tree:  # the flow run runs in its own session (Prefect's workspace supervisor): kill it too
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + 15  # gone, or a zombie (alive() counts those as gone); create_time() is cached
    while (left := [p for p in tree if alive(p.pid, p.create_time())]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, left
    print(f"killed the worker with {done} of 12 blocks done")
    missing = pending_blocks(partial)
    assert 0 < len(missing) < 12 and not out.exists()

    rerun_id = deployment_run(stack, "mass_synthesis/cpu", {**slow_run(project), "out": str(out)})
    new_worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "cpu", "--type", "process", "--run-once",
                                   "--install-policy", "never"], env=worker_env, cwd=REPO, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_flow_run(stack, rerun_id)
    finally:
        try:
            new_worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(new_worker.pid, signal.SIGKILL)
            new_worker.wait()
    assert_resumed(stack, rerun_id, missing, out, project)

    crash_after = stack["state"]["crash_after_s"]
    run = wait_flow_run(stack, run_id, timeout_s=max(0.0, crash_after + 40 - (time.monotonic() - t_kill)))
    print(f"the killed run was {run['state_type']} {time.monotonic() - t_kill:.1f} s after the kill "
          f"(heartbeat every {stack['state']['heartbeat_s']} s, crashed after {crash_after:g} s without one)")
    assert run["state_type"] == "CRASHED", run["state"]
    assert "no heartbeat" in run["state"]["message"]


# ------------------------------------------------------------------------------------------------ no stack
def test_pick_device():
    from ubf_core.devices import pick_device

    assert pick_device("cpu") == "cpu" and pick_device("CPU") == "cpu"
    assert pick_device("auto") == pick_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UBFInputError, match=r"^synthesis.device: device must be one of auto, cpu, cuda"):
        pick_device("tpu", "synthesis.device")
    if not torch.cuda.is_available():
        with pytest.raises(UBFInputError, match="sees no CUDA device"):
            pick_device("cuda")


def test_cuda_jobs_hash_their_mixed_precision():
    from ubf_core.synthesis.job import SynthesisJob

    job = dict(labels=np.array(["", ""], dtype=object), seed=0, size=SIZE, endmembers=np.ones((12, K), np.float32),
               wavelengths_nm=WL)
    cpu, cuda = SynthesisJob(**job).config_hash(), SynthesisJob(**job, device="cuda").config_hash()
    assert cpu != cuda and cpu == SynthesisJob(**job, device="cpu").config_hash()


def test_generator_names_become_registry_uris():
    from tasks.mass_synthesis import generator_model_uri

    params = {"generator": {"model_name": "ubf-generator", "model_uri": "models:/ubf-generator@champion"}}
    assert generator_model_uri(params, "champion") == "models:/ubf-generator@champion"
    assert generator_model_uri(params, 3) == generator_model_uri(params, "3") == "models:/ubf-generator/3"
    assert generator_model_uri(params, "models:/other/2") == "models:/other/2"
    assert generator_model_uri(params, None) == "models:/ubf-generator@champion"
    for bad in ("a/b", "", True, 2.5):
        with pytest.raises(UBFInputError, match="^generator: expected an alias"):
            generator_model_uri(params, bad)


def test_remote_outputs_need_their_file_system_and_upload_whole(tmp_path):
    """s3:// without s3fs is a clear error; an fsspec URL (memory:// here) gets the finished store, root
    metadata last, and opens with xarray."""
    import importlib.util

    from tasks.mass_synthesis import output_location
    from ubf_core.synthesis.store import publish_store, remote_config_hash

    params = {"_root": str(tmp_path)}
    if importlib.util.find_spec("s3fs") is None:
        with pytest.raises(UBFInputError, match=r"^s3://bucket/x.zarr: s3:// needs s3fs installed"):
            output_location(params, "s3://bucket/x.zarr", "abc")
    local, remote = output_location(params, "memory://ubf-test/x.zarr", "abc")
    assert remote == "memory://ubf-test/x.zarr" and local.name == "x.zarr" and tmp_path in local.parents
    assert output_location(params, "file:///data/y.zarr", "abc") == (Path("/data/y.zarr"), None)
    assert output_location(params, "rel/y.zarr", "abc") == (tmp_path / "rel/y.zarr", None)
    with pytest.raises(UBFInputError, match=r"^nosuchfs://x: nosuchfs:// is not a file system fsspec knows"):
        output_location(params, "nosuchfs://x", "abc")

    ds = xr.Dataset({"a": (("sample", "x"), np.arange(12, dtype=np.float32).reshape(4, 3))},
                    attrs={"config_hash": "abc"})
    ds.to_zarr(local, mode="w", consolidated=False, zarr_format=3, encoding={"a": {"chunks": (2, 3)}})
    assert remote_config_hash(remote) is None
    publish_store(local, remote)
    assert remote_config_hash(remote) == "abc"
    back = xr.open_zarr(remote, consolidated=False)
    np.testing.assert_array_equal(back["a"].values, ds["a"].values)


def test_the_run_form_describes_every_parameter_and_offers_the_choices():
    """The Prefect UI's Run form of the deployments: a description for every parameter, and the sampler and
    device as choices (the same as ubf_core's) rather than free text (tests/test_infra.py checks the descriptions of
    every flow's parameters)."""
    from flows.mass_synthesis import mass_synthesis
    from ubf_core.devices import DEVICES
    from ubf_core.generators.ddpm import SAMPLERS

    props = mass_synthesis.parameters.model_dump()["properties"]
    undescribed = [name for name, schema in props.items() if not schema.get("description")]
    assert len(props) == 13 and not undescribed, undescribed

    def choices(name):
        return next(tuple(alt["enum"]) for alt in props[name]["anyOf"] if "enum" in alt)

    assert choices("sampler") == SAMPLERS and choices("device") == DEVICES
    assert "synthesis.n" in props["n_samples"]["description"]
