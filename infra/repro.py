#!/usr/bin/env python
"""`make repro`: `dvc repro` with one local Prefect server shared by all stages.

Each stage command runs a Prefect flow. With no PREFECT_API_URL, every stage process starts its own temporary Prefect
server and stops it again (about 10 s per stage on a 2-core machine). This script starts one `prefect server start`
on a free loopback port instead (PREFECT_HOME as configured, so the flow runs land in the same database the temporary
servers use), runs `dvc repro ARGS...` with PREFECT_API_URL pointing at it, and stops the server's process group when
dvc ends, however it ends: SIGINT or SIGTERM sent to this script go to dvc's process group (dvc and the stage it
runs), which gets 30 s to exit before it is killed; then the server stops. Its pid and log are under --state-dir
(default .infra/repro/): after a hard kill (SIGKILL), `python infra/down.py --state-dir .infra/repro` stops it.

With PREFECT_API_URL already set (a team's server), dvc repro runs against that server and nothing is started. A
server that does not come up within --timeout seconds is reported in one line and dvc repro runs without it (each
stage then starts its own temporary server). Exit status: dvc's.

Usage: python infra/repro.py [--state-dir DIR] [--timeout S] [-- DVC_REPRO_ARGS...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from down import stop_processes  # noqa: E402
from up import QUIET_ENV, REPO, Stack, StartError, _http_ok, _tool  # noqa: E402

DEFAULT_STATE_DIR = REPO / ".infra" / "repro"
GROUP_GRACE_S = 30.0  # after a forwarded signal: how long dvc's process group may take to exit


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_server(state_dir: Path, timeout_s: float) -> tuple[Stack, str]:
    """Start `prefect server start` on a free loopback port and wait for /api/health: (its Stack, API URL)."""
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    host, port = "127.0.0.1", free_port()
    api = f"http://{host}:{port}/api"
    stack = Stack(state_dir, {"purpose": "make repro", "prefect_api_url": api})
    env = {**os.environ, **QUIET_ENV}
    env.pop("PREFECT_API_URL", None)
    stack.start("prefect-server", "server",
                [_tool("prefect"), "server", "start", "--host", host, "--port", str(port), "--analytics-off"],
                env, REPO)
    try:
        stack.wait("prefect-server", f"the Prefect server on port {port}", lambda: _http_ok(f"{api}/health"),
                   timeout_s)
    except StartError:
        stop(stack, state_dir)
        raise
    return stack, api


def stop(stack: Stack, state_dir: Path) -> None:
    """Stop the server's process group (SIGTERM, SIGKILL after 30 s) and forget its pid file."""
    stop_processes(stack.processes, say=lambda line: None)
    for proc in stack.handles.values():  # reap it: a child left unreaped stays a zombie under an init that never waits
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    (state_dir / "pids.json").unlink(missing_ok=True)


def run_dvc(cmd: list[str], env: dict[str, str]) -> int:
    """Run dvc in its own process group and wait for it; SIGINT/SIGTERM sent to this script go to that whole group
    (dvc and the stage it runs), so the caller's cleanup runs after they are gone. Returns dvc's exit status
    (128 + N when a signal N ended it)."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True)
    forwarded = []

    def forward(signum, frame):
        forwarded.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        rc = proc.wait()
        if forwarded:  # the stage's flow may still be reporting its end: give it GROUP_GRACE_S, then kill
            deadline = time.monotonic() + GROUP_GRACE_S
            with contextlib.suppress(ProcessLookupError):
                while time.monotonic() < deadline:
                    os.killpg(proc.pid, 0)
                    time.sleep(0.2)
                os.killpg(proc.pid, signal.SIGKILL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - rc if rc < 0 else rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help="pids.json and the server log (default: .infra/repro)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for the server's /api/health (default: 120)")
    parser.add_argument("dvc_args", nargs="*", help="passed to `dvc repro` (put them after --)")
    args = parser.parse_args(argv)
    dvc = [_tool("dvc"), "repro", *args.dvc_args]
    # stage commands run `python` from PATH: this interpreter's (the project's venv) first
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    if os.environ.get("PREFECT_API_URL"):
        print(f"repro: stages report to PREFECT_API_URL={os.environ['PREFECT_API_URL']}", flush=True)
        return run_dvc(dvc, env)
    t0 = time.monotonic()
    try:
        stack, api = start_server(args.state_dir.resolve(), args.timeout)
    except StartError as err:
        reason = str(err).splitlines()[0]
        print(f"repro: no shared Prefect server ({reason}); each stage starts its own", file=sys.stderr, flush=True)
        return run_dvc(dvc, env)
    pid = stack.processes[0]["pid"]
    print(f"repro: Prefect server at {api} (pid {pid}, up in {time.monotonic() - t0:.1f} s)", flush=True)
    try:
        return run_dvc(dvc, {**env, "PREFECT_API_URL": api})
    finally:
        stop(stack, args.state_dir.resolve())
        print(f"repro: Prefect server (pid {pid}) stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
