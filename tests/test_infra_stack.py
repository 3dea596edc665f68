"""infra/up.py and infra/down.py: the real local stack on loopback (Prefect server and workers, MLflow, Dask).

One stack per module (Prefect's start-up is slow here), on free ports picked by the test and a temporary state dir.
The tests run in file order: the last ones stop the stack and check that nothing of it is left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
import yaml
from loopback import alive, api, free_ports

REPO = Path(__file__).resolve().parents[1]
UP, DOWN, REPRO = REPO / "infra" / "up.py", REPO / "infra" / "down.py", REPO / "infra" / "repro.py"
NAMES = {"prefect-server", "mlflow-server", "dask-scheduler", "dask-worker-0", "dask-worker-1",
         "prefect-worker-cpu", "prefect-worker-gpu"}

pytestmark = pytest.mark.slow


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


def run(script: Path, *args: str, env: dict | None = None, timeout: float = 60,
        as_background_job: bool = False) -> subprocess.CompletedProcess:
    """``script`` with ``args``; as_background_job: with SIGINT and SIGQUIT ignored, as a non-interactive shell starts
    a command with ``&``."""
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=REPO, preexec_fn=_ignore_interrupts if as_background_job else None)


def ours(state_dir: Path) -> list[psutil.Process]:
    """Processes whose command line or environment names the state dir (everything up.py starts has it)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.pid != os.getpid() and (any(str(state_dir) in a for a in p.info["cmdline"] or [])
                                         or p.environ().get("PREFECT_HOME", "").startswith(str(state_dir))):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("infra")
    prefect_port, mlflow_port, dask_port, dash_port = free_ports(4)
    args = ["--state-dir", str(state_dir), "--prefect-port", str(prefect_port), "--mlflow-port", str(mlflow_port),
            "--dask-port", str(dask_port), "--dask-dashboard-port", str(dash_port)]
    env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "2"}  # workers poll every 2 s: deployment runs start soon
    t0 = time.monotonic()
    # started as `up.py &` would be (SIGINT ignored): its Prefect workers must still stop gracefully on SIGTERM
    up = run(UP, *args, env=env, timeout=300, as_background_job=True)
    up_s = time.monotonic() - t0
    state = json.loads((state_dir / "pids.json").read_text()) if (state_dir / "pids.json").exists() else None
    seen: dict[int, float] = {}  # every process of the stack ever seen (pid -> create time), children included
    info = {"dir": state_dir, "args": args, "env": env, "up": up, "up_s": up_s, "state": state, "seen": seen,
            "prefect": f"http://127.0.0.1:{prefect_port}/api", "mlflow": f"http://127.0.0.1:{mlflow_port}",
            "dask": f"tcp://127.0.0.1:{dask_port}", "ports": [prefect_port, mlflow_port, dask_port]}
    try:
        yield info
    finally:
        run(DOWN, "--state-dir", str(state_dir), timeout=120)
        for p in (state or {}).get("processes", []):  # last resort: never leave a server behind
            if alive(p["pid"], p.get("create_time")):
                os.killpg(p["pgid"], signal.SIGKILL)


def remember(stack: dict) -> None:
    for p in stack["state"]["processes"]:
        if alive(p["pid"], p["create_time"]):
            proc = psutil.Process(p["pid"])
            for q in [proc, *proc.children(recursive=True)]:
                try:
                    stack["seen"][q.pid] = q.create_time()
                except psutil.NoSuchProcess:
                    pass


def test_up_starts_and_records_every_process(stack):
    up = stack["up"]
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"infra up: {stack['up_s']:.1f} s")
    state = stack["state"]
    assert {p["name"] for p in state["processes"]} == NAMES
    for p in state["processes"]:
        assert alive(p["pid"], p["create_time"]), p["name"]
        assert p["pgid"] == p["pid"] == os.getpgid(p["pid"]) == os.getsid(p["pid"]), f"{p['name']}: own session"
        assert Path(p["log"]).is_file() and p["cmd"], p["name"]
    exports = [f"export PREFECT_API_URL={stack['prefect']}", f"export MLFLOW_TRACKING_URI={stack['mlflow']}",
               f"export UBF_DASK_SCHEDULER={stack['dask']}"]
    for line in exports:
        assert line in up.stdout
    assert (stack["dir"] / "env").read_text().split("\n")[:3] == exports
    remember(stack)


def test_the_prefect_ui_calls_the_api_on_the_stack_port(stack):
    """The stack's Prefect port is not the default 4200: the UI served there must call the API there too."""
    ui_root = stack["prefect"].removesuffix("/api")
    assert not ui_root.endswith(":4200")
    assert api(f"{ui_root}/ui-settings")["api_url"] == stack["prefect"]


def test_prefect_pools_workers_and_cuda_limit(stack):
    api_url = stack["prefect"]
    assert api(f"{api_url}/health") is True
    for pool in ("cpu", "gpu"):
        info = api(f"{api_url}/work_pools/{pool}")
        assert info["type"] == "process" and info["base_job_template"], pool
        workers = api(f"{api_url}/work_pools/{pool}/workers/filter", {})
        assert [w["status"] for w in workers] == ["ONLINE"], pool
    limit = api(f"{api_url}/concurrency_limits/tag/cuda")
    assert limit["concurrency_limit"] == stack["state"]["gpus"] >= 1


def test_the_crashed_run_automation_watches_deployment_heartbeats(stack):
    """up.py creates infra/zombies.py's automation once (a second ensure updates it) and gives the workers the
    heartbeat interval it assumes."""
    sys.path.insert(0, str(REPO / "infra"))
    from zombies import NAME, ensure_automation

    def ours_now():
        return [a for a in api(f"{stack['prefect']}/automations/filter", {}) if a["name"] == NAME]

    [auto] = ours_now()
    trigger = auto["trigger"]
    assert auto["enabled"] and trigger["posture"] == "Proactive" and trigger["within"] == 90.0
    assert trigger["after"] == ["prefect.flow-run.heartbeat"] and "prefect.flow-run.Completed" in trigger["expect"]
    assert trigger["match_related"] == {"prefect.resource.role": "deployment"}
    assert auto["actions"][0]["type"] == "change-flow-run-state" and auto["actions"][0]["state"] == "CRASHED"
    assert ensure_automation(stack["prefect"], 120.0) == auto["id"]
    [again] = ours_now()
    assert again["trigger"]["within"] == 120.0
    ensure_automation(stack["prefect"], 90.0)
    worker = next(p for p in stack["state"]["processes"] if p["name"] == "prefect-worker-cpu")
    assert psutil.Process(worker["pid"]).environ()["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"


@pytest.mark.parametrize("flags, message", [(["--heartbeat", "10"], "--heartbeat must be at least 30 s"),
                                            (["--crash-after", "40"], "must be at least 1.5 × the heartbeat")])
def test_heartbeat_settings_that_would_crash_live_runs_are_refused(tmp_path, flags, message):
    res = run(UP, "--state-dir", str(tmp_path), *flags)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    assert not (tmp_path / "pids.json").exists()


def test_mlflow_server_tracks_and_serves_artifacts(stack):
    from mlflow.tracking import MlflowClient

    with urllib.request.urlopen(stack["mlflow"] + "/health", timeout=10) as r:
        assert r.status == 200
    client = MlflowClient(tracking_uri=stack["mlflow"])
    run_id = client.create_run(client.create_experiment("infra-test")).info.run_id
    client.log_metric(run_id, "x", 1.0)
    client.log_text(run_id, "hello", "note.txt")  # uploaded through the server (--serve-artifacts)
    assert client.get_run(run_id).data.metrics == {"x": 1.0}
    stored = list((stack["dir"] / "mlflow" / "artifacts").rglob("note.txt"))
    assert len(stored) == 1 and stored[0].read_text() == "hello"


def test_dask_scheduler_has_two_workers(stack):
    from distributed import Client

    with Client(stack["dask"], timeout="20s") as client:
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2
        assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
        assert len(set(client.run(os.getpid).values())) == 2  # two worker processes


def test_deployments_of_prefect_yaml_run_on_their_pools(stack):
    """Deploy infra/prefect.yaml to the stack; a run of a cpu and of a gpu deployment is picked up by the pool's
    worker, which runs the flow code from the checkout (a missing params file fails it in load_params)."""
    env = {**stack["env"], "PREFECT_API_URL": stack["prefect"], "PREFECT_HOME": str(stack["dir"] / "prefect")}
    deploy = subprocess.run([str(Path(sys.executable).parent / "prefect"), "--no-prompt", "deploy", "--all",
                             "--prefect-file", "infra/prefect.yaml"], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=180)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    spec = yaml.safe_load((REPO / "infra" / "prefect.yaml").read_text())
    api_url = stack["prefect"]
    for dep in spec["deployments"]:
        flow_name = dep["entrypoint"].rpartition(":")[2]
        found = api(f"{api_url}/deployments/name/{flow_name}/{dep['name']}")
        assert found["work_pool_name"] == dep["work_pool"]["name"] and set(found["tags"]) == set(dep["tags"])

    missing = "/nonexistent/infra-test/params.yaml"
    runs = {}
    for flow_name, pool in (("validate", "cpu"), ("synthesize", "gpu")):
        dep = api(f"{api_url}/deployments/name/{flow_name}/{pool}")
        runs[pool] = api(f"{api_url}/deployments/{dep['id']}/create_flow_run", {"parameters": {"params_path": missing}})
    deadline = time.monotonic() + 120
    states = {}
    while time.monotonic() < deadline:
        states = {pool: api(f"{api_url}/flow_runs/{r['id']}")["state_type"] for pool, r in runs.items()}
        if all(s in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for s in states.values()):
            break
        remember(stack)
        time.sleep(1)
    assert states == {"cpu": "FAILED", "gpu": "FAILED"}, states
    for pool, r in runs.items():
        flow_run = api(f"{api_url}/flow_runs/{r['id']}")
        assert flow_run["work_pool_name"] == pool
        # a run's logs reach the server in batches and may land after its final state: wait for them
        deadline, found = time.monotonic() + 30, False
        while not found and time.monotonic() < deadline:
            logs = api(f"{api_url}/logs/filter", {"logs": {"flow_run_id": {"any_": [r["id"]]}}})
            found = any(f"{missing}: params file not found" in log["message"] for log in logs)
            time.sleep(0 if found else 1)
        assert found, pool


def test_up_again_says_already_up(stack):
    before, t0 = (stack["dir"] / "pids.json").read_text(), time.time()
    again = run(UP, *stack["args"])
    assert again.returncode == 0 and "already up" in again.stdout, again.stdout + again.stderr
    assert (stack["dir"] / "pids.json").read_text() == before
    recorded = {p["pid"] for p in stack["state"]["processes"]}
    started = []  # processes of the state dir started by the second `up` (not children of the recorded ones)
    for p in ours(stack["dir"]):
        try:
            if p.create_time() >= t0 - 0.5 and not {a.pid for a in p.parents()} & recorded:
                started.append(p.cmdline())
        except psutil.NoSuchProcess:
            pass
    assert started == []


@pytest.mark.parametrize("taken", ["prefect", "mlflow", "dask"])
def test_a_taken_port_is_a_one_line_error_and_starts_nothing(tmp_path, taken):
    ports = dict(zip(("prefect", "mlflow", "dask", "dask-dashboard"), free_ports(4)))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports[taken]))
        blocker.listen()
        args = ["--state-dir", str(tmp_path)] + [a for k, v in ports.items() for a in (f"--{k}-port", str(v))]
        res = run(UP, *args)
    assert res.returncode == 2
    service = {"prefect": "Prefect server", "mlflow": "MLflow server", "dask": "Dask scheduler"}[taken]
    assert res.stderr.count("\n") == 1 and f"port {ports[taken]} ({service})" in res.stderr, res.stderr
    assert not (tmp_path / "pids.json").exists()
    assert ours(tmp_path) == []


def test_a_service_that_does_not_answer_stops_what_was_started(tmp_path):
    ports = dict(zip(("prefect", "mlflow", "dask", "dask-dashboard"), free_ports(4)))
    args = ["--state-dir", str(tmp_path), "--gpus", "1", "--timeout", "0.01"]
    res = run(UP, *args, *[a for k, v in ports.items() for a in (f"--{k}-port", str(v))])
    assert res.returncode == 1
    assert "did not answer within 0.01 s (a slow machine: raise --timeout)" in res.stderr, res.stderr
    assert "stopping what was started" in res.stderr
    assert not (tmp_path / "pids.json").exists()
    assert ours(tmp_path) == []


def _no_server_env() -> dict[str, str]:
    """This environment without PREFECT_API_URL: infra/repro.py then starts its own server."""
    return {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}


def _tiny_dvc_project(root: Path, code: str = "open('out.txt', 'w').write('ok')") -> Path:
    """A DVC project (no git) with one stage running ``python -c code`` (output out.txt), and a copy of infra/ whose
    repro.py runs it."""
    shutil.copytree(REPO / "infra", root / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=root, check=True)
    (root / "dvc.yaml").write_text(f"stages:\n  tiny:\n    cmd: python -c \"{code}\"\n"
                                   "    outs:\n      - out.txt:\n          cache: false\n")
    return root / "infra" / "repro.py"


def test_repro_stopped_by_sigterm_stops_the_stage_and_the_server(tmp_path):
    """A SIGTERM to make repro reaches dvc and the stage it runs; then the shared server is stopped: nothing left."""
    repro = _tiny_dvc_project(tmp_path / "project", "import time; open('started', 'w').write('1'); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, str(repro), "--state-dir", str(tmp_path / "state")], env=_no_server_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "project" / "started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the stage never started"
        time.sleep(0.2)
    server = json.loads((tmp_path / "state" / "pids.json").read_text())["processes"][0]
    stage = [(p.pid, p.create_time()) for p in psutil.process_iter(["cmdline"])
             if "time.sleep(120)" in " ".join(p.info["cmdline"] or [])]
    assert stage and alive(server["pid"], server["create_time"])
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 143, err[-2000:]
    assert f"repro: Prefect server (pid {server['pid']}) stopped" in out
    assert not alive(server["pid"], server["create_time"])
    assert not any(alive(pid, created) for pid, created in stage)
    assert not (tmp_path / "state" / "pids.json").exists()


def test_repro_without_a_server_in_time_falls_back_and_leaves_nothing(tmp_path):
    """make repro (infra/repro.py): a Prefect server that does not answer in time is stopped, said in one line, and
    dvc repro runs the stages without it."""
    repro = _tiny_dvc_project(tmp_path / "project")
    res = run(repro, "--state-dir", str(tmp_path / "state"), "--timeout", "0.01", env=_no_server_env(), timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    said = [line for line in res.stderr.splitlines() if line.startswith("repro: no shared Prefect server")]
    assert len(said) == 1 and said[0].endswith("each stage starts its own"), res.stderr[-2000:]
    assert (tmp_path / "project" / "out.txt").read_text() == "ok"
    port = re.search(r"on port (\d+) did not answer within 0.01 s", said[0])[1]
    assert not (tmp_path / "state" / "pids.json").exists()
    assert [p for p in psutil.process_iter(["cmdline"]) if {"server", port} <= set(p.info["cmdline"] or [])] == []


def test_down_stops_every_process_of_the_stack(stack):
    remember(stack)
    seen = dict(stack["seen"])
    assert len(seen) >= len(NAMES)
    t0 = time.monotonic()
    down = run(DOWN, "--state-dir", str(stack["dir"]), timeout=240)
    print(f"infra down: {time.monotonic() - t0:.1f} s")
    assert down.returncode == 0, down.stdout + down.stderr
    for name in NAMES:  # every process stopped on SIGTERM: none needed down.py's SIGKILL
        line = next((line for line in down.stdout.splitlines() if line.split()[:1] == [name]), "")
        assert ") stopped" in line, down.stdout
    for entry in stack["state"]["processes"]:  # and each Prefect worker ran its own graceful stop to the end
        if entry["role"] == "prefect-worker":
            log = Path(entry["log"]).read_text().rpartition("Received SIGTERM")[2].replace("\n", "")  # rich wraps
            assert re.search(r"Worker '[^']+' stopped!", log), f"{entry['log']}: no graceful stop after SIGTERM"
    left = [pid for pid, t in seen.items() if alive(pid, t)]
    assert left == [], f"still running: {left}"
    assert ours(stack["dir"]) == []
    assert not (stack["dir"] / "pids.json").exists() and not (stack["dir"] / "env").exists()
    for port in stack["ports"]:  # the ports are free again
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))


def test_down_when_nothing_is_up_is_a_noop(stack, tmp_path):
    for state_dir in (stack["dir"], tmp_path):
        res = run(DOWN, "--state-dir", str(state_dir))
        assert res.returncode == 0 and "nothing to stop" in res.stdout, res.stdout + res.stderr


def test_help_explains_the_flags():
    for script, flags in ((UP, ["--prefect-port", "--mlflow-port", "--dask-port", "--state-dir", "--gpus",
                                "--timeout", "--heartbeat", "--crash-after"]),
                          (DOWN, ["--state-dir", "--timeout"])):
        res = run(script, "--help")
        assert res.returncode == 0 and all(f in res.stdout for f in flags)


def test_compose_file_describes_the_stack():
    """infra/compose.yaml cannot run here (no Docker): it parses, and has the services, ports and GPU reservation."""
    spec = yaml.safe_load((REPO / "infra" / "compose.yaml").read_text())
    services = spec["services"]
    assert {"postgres", "minio", "prefect-server", "mlflow", "dask-scheduler", "dask-worker", "prefect-worker-cpu",
            "prefect-worker-gpu"} <= set(services)
    for name, svc in services.items():
        assert all(str(p).startswith("127.0.0.1:") for p in svc.get("ports", [])), name
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
    gpu = services["prefect-worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu[0]["driver"] == "nvidia" and gpu[0]["capabilities"] == ["gpu"]
    assert "gpu" in " ".join(services["prefect-worker-gpu"]["command"])
    assert "cpu" in " ".join(services["prefect-worker-cpu"]["command"])
    mlflow = " ".join(services["mlflow"]["command"])
    assert "postgresql://" in mlflow and "s3://" in mlflow and "--serve-artifacts" in mlflow
    assert "MLFLOW_S3_ENDPOINT_URL" in services["mlflow"]["environment"]
    assert "postgresql+asyncpg://" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert services["dask-worker"]["deploy"]["replicas"] == 2
    assert "prefect.yaml" in " ".join(services["prefect-init"]["command"])
    assert "infra/zombies.py" in " ".join(services["prefect-init"]["command"])
    assert services["prefect-worker-gpu"]["environment"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
