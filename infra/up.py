#!/usr/bin/env python
"""Start the local UBF stack on loopback: a Prefect server, one Prefect process worker per work pool (cpu, gpu),
an MLflow tracking server and a Dask scheduler with its workers. Stop it with ``python infra/down.py``.

Everything lives under the state dir (default .infra/ in the repository root, git-ignored):
  prefect/             PREFECT_HOME of the server and workers (SQLite database prefect.db)
  mlflow/mlflow.db     MLflow tracking and model-registry store (SQLite)
  mlflow/artifacts/    MLflow artifacts, served by the tracking server (--serve-artifacts)
  dask/                Dask worker scratch space
  logs/<process>.log   stdout and stderr of each process
  pids.json            every started process: name, pid, process group, command line, log file
  env                  the export lines printed at the end (`source .infra/env`)

Each process starts in its own session (process group); up.py waits until each service answers (Prefect
/api/health, MLflow /health, the Dask scheduler port and its workers, each Prefect worker registered with its pool)
within --timeout seconds, creates the work pools `cpu` and `gpu` (type process) and a tag concurrency limit `cuda`
equal to the number of GPUs (torch.cuda.device_count(), at least 1; --gpus overrides), and the automation of
infra/zombies.py that marks a flow run Crashed when its heartbeats stop (the workers and their flow runs send one
every --heartbeat seconds; a run silent for --crash-after seconds is crashed). Deployments are not
created: run `prefect --no-prompt deploy --all --prefect-file infra/prefect.yaml` with the printed environment.

A port in use is an error naming the port and the service, before anything starts (exit status 2); a service that
fails to start stops everything started so far (exit status 1). Running up.py again while the stack runs says so
and starts nothing.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rest import json_request  # noqa: E402
from zombies import check_timing, ensure_automation  # noqa: E402
from down import (DEFAULT_STATE_DIR, ENV_FILE, PIDS_FILE, clear_state, read_state, recorded_process,  # noqa: E402
                  stop_processes)

REPO = Path(__file__).resolve().parents[1]
POOLS = ("cpu", "gpu")
GPU_TAG = "cuda"
QUIET_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
             "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false",
             "HF_HUB_OFFLINE": "1"}


class StartError(Exception):
    """A service did not come up; the message is one line."""


def _tool(name: str) -> str:
    """The executable ``name`` beside this interpreter (the project's venv), else on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise StartError(f"`{name}` not found beside {sys.executable} or on PATH: run `make install`")
    return found


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT after `down` is free
        try:
            s.bind((host, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def gpu_count() -> int:
    """torch.cuda.device_count(), at least 1 (the `cuda` limit of 1 serialises GPU tasks on a CPU-only machine)."""
    try:
        import torch

        return max(1, int(torch.cuda.device_count()))
    except Exception:  # no torch or a broken driver: one slot
        return 1


def unignore_interrupts() -> None:
    """Give the processes up.py starts the default SIGINT and SIGQUIT. A script started in the background of a
    non-interactive shell (`python infra/up.py &`, some CI runners) inherits both ignored and so would everything it
    starts; a Prefect worker turns down.py's SIGTERM into a SIGINT to itself, and with SIGINT ignored it never begins
    its graceful stop (down.py then has to SIGKILL it). A signal this process catches is reset to its default in the
    programs it starts, so a Python handler here is enough."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)


class Stack:
    """The processes started so far, recorded in pids.json as they start."""

    def __init__(self, state_dir: Path, meta: dict):
        self.state_dir, self.meta, self.processes = state_dir, meta, []
        self.handles: dict[str, subprocess.Popen] = {}
        self.t0 = time.monotonic()

    def save(self) -> None:
        path = self.state_dir / PIDS_FILE
        tmp = path.with_name(".pids.json.tmp")
        tmp.write_text(json.dumps({**self.meta, "processes": self.processes}, indent=2))
        os.replace(tmp, path)

    def start(self, name: str, role: str, cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        log = self.state_dir / "logs" / f"{name}.log"
        with open(log, "ab") as out:
            out.write(f"\n--- {datetime.now(timezone.utc).isoformat()} {' '.join(cmd)}\n".encode())
            out.flush()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=env, cwd=str(cwd), start_new_session=True)
        try:
            create_time = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:
            create_time = None
        self.processes.append({"name": name, "role": role, "pid": proc.pid, "pgid": proc.pid,
                               "create_time": create_time, "cmd": cmd, "log": str(log),
                               "started": datetime.now(timezone.utc).isoformat()})
        self.handles[name] = proc
        self.save()
        return proc

    def wait(self, name: str, what: str, ready, timeout_s: float) -> None:
        """Poll ``ready()`` until true; a process that exits or a timeout is a StartError naming its log."""
        deadline = time.monotonic() + timeout_s
        while True:
            proc = self.handles[name]
            if ready():
                self.mark_ready(name)
                return
            if proc.poll() is not None:
                raise StartError(f"{what} exited with status {proc.returncode} during start-up: "
                                 f"see {self.log(name)}{self.tail(name)}")
            if time.monotonic() > deadline:
                raise StartError(f"{what} did not answer within {timeout_s:g} s (a slow machine: raise --timeout): "
                                 f"see {self.log(name)}{self.tail(name)}")
            time.sleep(0.25)

    def mark_ready(self, name: str) -> None:
        """Record when ``name`` answered (seconds since up.py started it all)."""
        next(p for p in self.processes if p["name"] == name)["ready_s"] = round(time.monotonic() - self.t0, 1)

    def log(self, name: str) -> str:
        return next(p["log"] for p in self.processes if p["name"] == name)

    def tail(self, name: str, n: int = 8) -> str:
        try:
            lines = [ln for ln in Path(self.log(name)).read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return ("\n  | " + "\n  | ".join(lines[-n:])) if lines else ""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python infra/up.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                   help="databases, artifacts, logs and pids.json (default: .infra in the repository root)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address every service binds to (default: 127.0.0.1; the services have no authentication)")
    p.add_argument("--prefect-port", type=int, default=4200, help="Prefect server API and UI (default: 4200)")
    p.add_argument("--mlflow-port", type=int, default=5000, help="MLflow tracking server (default: 5000)")
    p.add_argument("--dask-port", type=int, default=8786, help="Dask scheduler (default: 8786)")
    p.add_argument("--dask-dashboard-port", type=int, default=8787,
                   help="Dask dashboard (default: 8787; served only when bokeh is installed)")
    p.add_argument("--dask-workers", type=int, default=2, help="Dask worker processes (default: 2)")
    p.add_argument("--dask-threads", type=int, default=1, help="threads per Dask worker (default: 1)")
    p.add_argument("--mlflow-workers", type=int, default=2, help="MLflow server worker processes (default: 2)")
    p.add_argument("--gpus", type=int, default=None,
                   help="size of the `cuda` tag concurrency limit (default: torch.cuda.device_count(), at least 1)")
    p.add_argument("--heartbeat", type=int, default=30,
                   help="seconds between flow-run heartbeats of the workers' runs (default: 30, Prefect's minimum)")
    p.add_argument("--crash-after", type=float, default=90.0,
                   help="seconds without a heartbeat before a flow run is marked crashed (default: 90)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds each service may take to answer (default: 120)")
    return p


def env_lines(urls: dict) -> list[str]:
    return [f"export PREFECT_API_URL={urls['prefect_api']}", f"export MLFLOW_TRACKING_URI={urls['mlflow']}",
            f"export UBF_DASK_SCHEDULER={urls['dask']}"]


def print_summary(state: dict, state_dir: Path, header: str) -> None:
    urls = state["urls"]
    print(header)
    print(f"  Prefect UI      {urls['prefect_ui']}   (work pools {', '.join(POOLS)} with one worker each; "
          f"tag limit {GPU_TAG} = {state.get('gpus', '?')})")
    print(f"  MLflow          {urls['mlflow']}   (artifacts served from {state_dir / 'mlflow' / 'artifacts'})")
    if "crash_after_s" in state:
        print(f"  Crashed runs    a flow run without a heartbeat for {state['crash_after_s']:g} s is marked Crashed "
              f"(heartbeat every {state['heartbeat_s']} s)")
    dash = f"; dashboard {urls['dask_dashboard']}" if urls.get("dask_dashboard") else ""
    print(f"  Dask scheduler  {urls['dask']}   ({state.get('dask_workers', '?')} workers{dash})")
    ready = [f"{p['name']} {p['ready_s']:g} s" for p in state.get("processes", []) if "ready_s" in p]
    if ready:
        print(f"  answered after: {', '.join(ready)}")
    print(f"Export these (or `source {state_dir / ENV_FILE}`):")
    for line in env_lines(urls):
        print(f"  {line}")
    print("Stop with `make infra-down` (python infra/down.py"
          + ("" if state_dir == DEFAULT_STATE_DIR else f" --state-dir {state_dir}") + ").")


def already_up(state_dir: Path) -> int | None:
    """Exit status when pids.json describes a stack (fully or partly running); None when up.py may start one."""
    state = read_state(state_dir)
    if state is None:
        return None
    entries = state.get("processes", [])
    running = [e["name"] for e in entries if recorded_process(e) is not None]
    if not running:
        print(f"removing stale {state_dir / PIDS_FILE} (none of its {len(entries)} processes is running)")
        clear_state(state_dir)
        return None
    if len(running) == len(entries):
        print_summary(state, state_dir, f"UBF infra is already up ({len(entries)} processes, state dir {state_dir}); "
                                        f"nothing started:")
        return 0
    gone = sorted({e["name"] for e in entries} - set(running))
    print(f"error: UBF infra is partly up ({', '.join(gone)} not running): run `python infra/down.py"
          f"{'' if state_dir == DEFAULT_STATE_DIR else f' --state-dir {state_dir}'}` first", file=sys.stderr)
    return 1


def up(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    for flag, value in (("--gpus", 1 if args.gpus is None else args.gpus), ("--dask-workers", args.dask_workers),
                        ("--dask-threads", args.dask_threads), ("--mlflow-workers", args.mlflow_workers)):
        if value < 1:
            print(f"error: {flag} must be at least 1, not {value}", file=sys.stderr)
            return 2
    problem = check_timing(args.heartbeat, args.crash_after)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    status = already_up(state_dir)
    if status is not None:
        return status

    try:
        import bokeh  # noqa: F401

        dashboard = True
    except ImportError:
        dashboard = False
    host = args.host
    ports = {"Prefect server": args.prefect_port, "MLflow server": args.mlflow_port, "Dask scheduler": args.dask_port}
    if dashboard:
        ports["Dask dashboard"] = args.dask_dashboard_port
    seen: dict[int, str] = {}
    for service, port in ports.items():
        if port in seen:
            print(f"error: port {port} given to both {seen[port]} and {service}", file=sys.stderr)
            return 2
        seen[port] = service
        if _port_in_use(host, port):
            print(f"error: port {port} ({service}) on {host} is already in use: stop what listens there or pass "
                  f"--{service.split()[0].lower()}-{'dashboard-' if 'dashboard' in service else ''}port",
                  file=sys.stderr)
            return 2

    for sub in ("logs", "prefect", "mlflow/artifacts", "dask"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    urls = {"prefect_ui": f"http://{host}:{args.prefect_port}", "prefect_api": f"http://{host}:{args.prefect_port}/api",
            "mlflow": f"http://{host}:{args.mlflow_port}", "dask": f"tcp://{host}:{args.dask_port}",
            "dask_dashboard": f"http://{host}:{args.dask_dashboard_port}/status" if dashboard else None}
    meta = {"started": datetime.now(timezone.utc).isoformat(), "state_dir": str(state_dir), "host": host,
            "ports": {k: v for k, v in ports.items()}, "urls": urls, "dask_workers": args.dask_workers,
            "heartbeat_s": args.heartbeat, "crash_after_s": args.crash_after}
    unignore_interrupts()
    stack = Stack(state_dir, meta)
    base_env = {**os.environ, **QUIET_ENV, "PREFECT_HOME": str(state_dir / "prefect")}
    for var in ("PREFECT_API_URL", "PREFECT_PROFILE", "MLFLOW_TRACKING_URI", "UBF_DASK_SCHEDULER"):
        base_env.pop(var, None)  # the caller's settings must not leak into the servers
    client_env = {**base_env, "PREFECT_API_URL": urls["prefect_api"], "MLFLOW_TRACKING_URI": urls["mlflow"],
                  "UBF_DASK_SCHEDULER": urls["dask"], "UBF_HOME": str(REPO),
                  "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(args.heartbeat)}
    try:
        prefect, mlflow, dask = _tool("prefect"), _tool("mlflow"), _tool("dask")
        # the UI in the browser calls the API at PREFECT_SERVER_UI_API_URL, else at port 4200: say where it is
        stack.start("prefect-server", "prefect-server",
                    [prefect, "server", "start", "--host", host, "--port", str(args.prefect_port), "--analytics-off"],
                    {**base_env, "PREFECT_SERVER_UI_API_URL": urls["prefect_api"]}, state_dir)
        stack.start("mlflow-server", "mlflow-server",
                    [mlflow, "server", "--backend-store-uri", f"sqlite:///{state_dir / 'mlflow' / 'mlflow.db'}",
                     "--serve-artifacts", "--artifacts-destination", str(state_dir / "mlflow" / "artifacts"),
                     "--host", host, "--port", str(args.mlflow_port), "--workers", str(args.mlflow_workers)],
                    base_env, state_dir)
        stack.start("dask-scheduler", "dask-scheduler",
                    [dask, "scheduler", "--host", host, "--port", str(args.dask_port)]
                    + (["--dashboard-address", f"{host}:{args.dask_dashboard_port}"] if dashboard
                       else ["--no-dashboard"]),
                    base_env, state_dir)
        gpus = args.gpus if args.gpus is not None else gpu_count()  # imports torch while the servers start
        meta["gpus"] = gpus

        stack.wait("dask-scheduler", f"Dask scheduler ({urls['dask']})",
                   lambda: _port_open(host, args.dask_port), args.timeout)
        for i in range(args.dask_workers):
            stack.start(f"dask-worker-{i}", "dask-worker",
                        [dask, "worker", urls["dask"], "--host", host, "--name", f"ubf-{i}", "--nworkers", "1",
                         "--nthreads", str(args.dask_threads), "--no-dashboard",
                         "--local-directory", str(state_dir / "dask")],
                        client_env, REPO)

        stack.wait("prefect-server", f"Prefect server ({urls['prefect_api']}/health)",
                   lambda: _http_ok(urls["prefect_api"] + "/health"), args.timeout)
        create_pools_and_limit(urls["prefect_api"], gpus)
        try:
            ensure_automation(urls["prefect_api"], args.crash_after)
        except urllib.error.HTTPError as err:
            raise StartError(f"creating the crashed-run automation at {urls['prefect_api']}: HTTP {err.code} "
                             f"{err.read()[:200]!r}")
        for pool in POOLS:
            stack.start(f"prefect-worker-{pool}", "prefect-worker",
                        [prefect, "worker", "start", "--pool", pool, "--type", "process",
                         "--name", f"{pool}-{socket.gethostname()}", "--install-policy", "never"],
                        client_env, REPO)

        stack.wait("mlflow-server", f"MLflow server ({urls['mlflow']}/health)",
                   lambda: _http_ok(urls["mlflow"] + "/health"), args.timeout)
        wait_dask_workers(stack, urls["dask"], args.dask_workers, args.timeout)
        for pool in POOLS:
            stack.wait(f"prefect-worker-{pool}", f"Prefect worker of pool {pool}",
                       lambda pool=pool: _pool_has_worker(urls["prefect_api"], pool), args.timeout)
    except (StartError, KeyboardInterrupt, Exception) as err:
        msg = ("interrupted" if isinstance(err, KeyboardInterrupt) else str(err) if isinstance(err, StartError)
               else f"{type(err).__name__}: {err}")
        print(f"error: {msg}", file=sys.stderr)
        if stack.processes:
            print("stopping what was started:", file=sys.stderr)
            stop_processes(stack.processes, 10.0, say=lambda line: print(line, file=sys.stderr))
        clear_state(state_dir)
        return 130 if isinstance(err, KeyboardInterrupt) else 1

    (state_dir / ENV_FILE).write_text("\n".join(env_lines(urls)) + "\n")
    stack.save()
    print_summary({**meta, "processes": stack.processes}, state_dir,
                  f"UBF infra is up in {time.monotonic() - t0:.1f} s ({len(stack.processes)} processes, "
                  f"state dir {state_dir}, logs in {state_dir / 'logs'}):")
    return 0


def create_pools_and_limit(api: str, gpus: int) -> None:
    """Work pools cpu and gpu (type process, the process worker's default job template), and the tag concurrency
    limit `cuda` = gpus (upserted; Prefect ≥ 3.4.19 backs it by the global concurrency limit `tag:cuda`)."""
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    for pool in POOLS:
        try:
            json_request(f"{api}/work_pools/", "POST", {"name": pool, "type": "process",
                                                        "base_job_template": template})
        except urllib.error.HTTPError as err:
            if err.code != 409:  # 409: it exists from an earlier `up` with this state dir
                raise StartError(f"creating work pool {pool} at {api}: HTTP {err.code} {err.read()[:200]!r}")
    json_request(f"{api}/concurrency_limits/", "POST", {"tag": GPU_TAG, "concurrency_limit": gpus})


def _pool_has_worker(api: str, pool: str) -> bool:
    try:
        workers = json_request(f"{api}/work_pools/{pool}/workers/filter", "POST", {})
    except (urllib.error.URLError, OSError):
        return False
    return any(w.get("status") == "ONLINE" for w in workers or [])


def wait_dask_workers(stack: Stack, address: str, n: int, timeout_s: float) -> None:
    from distributed import Client

    with Client(address, timeout=f"{timeout_s}s") as client:
        deadline = time.monotonic() + timeout_s
        while len(client.scheduler_info(n_workers=-1)["workers"]) < n:
            for i in range(n):
                proc = stack.handles[f"dask-worker-{i}"]
                if proc.poll() is not None:
                    raise StartError(f"Dask worker {i} exited with status {proc.returncode}: "
                                     f"see {stack.log(f'dask-worker-{i}')}{stack.tail(f'dask-worker-{i}')}")
            if time.monotonic() > deadline:
                raise StartError(f"{n} Dask workers did not join {address} within {timeout_s:g} s: "
                                 f"see {stack.state_dir / 'logs'}")
            time.sleep(0.25)
    for i in range(n):
        stack.mark_ready(f"dask-worker-{i}")


def main(argv: list[str] | None = None) -> int:
    return up(_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
