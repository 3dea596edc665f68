#!/usr/bin/env python
"""Stop the local UBF stack that ``infra/up.py`` started: exactly the processes recorded in <state dir>/pids.json.

Each recorded process leads its own process group (up.py starts every one in a new session). Shutdown order:
Prefect workers first (their graceful stop talks to the server), then Dask workers, then the servers. Every group
gets SIGTERM; a group still alive after --timeout seconds gets SIGKILL, as does any child that left its group.
A recorded pid that now belongs to another program (checked by its start time) is never signalled. The pids file
is removed at the end; databases, artifacts and logs in the state dir are kept (delete the folder to start clean).
With nothing up this is a no-op that says so.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STATE_DIR = REPO / ".infra"
PIDS_FILE = "pids.json"
ENV_FILE = "env"
# lower stops first: workers before the servers they talk to
STOP_ORDER = {"prefect-worker": 0, "dask-worker": 1, "prefect-server": 2, "mlflow-server": 2, "dask-scheduler": 3}


def _create_time_matches(proc: psutil.Process, recorded: float | None) -> bool:
    return recorded is None or abs(proc.create_time() - recorded) < 1.0


def recorded_process(entry: dict) -> psutil.Process | None:
    """The live process of a pids.json entry, or None when it is gone or its pid now belongs to another program."""
    try:
        proc = psutil.Process(int(entry["pid"]))
        if proc.status() == psutil.STATUS_ZOMBIE or not _create_time_matches(proc, entry.get("create_time")):
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def group_members(entry: dict) -> list[psutil.Process]:
    """Live processes of the entry's group (and descendants of its leader), started no earlier than the leader."""
    pgid, t0 = int(entry.get("pgid", entry["pid"])), float(entry.get("create_time") or 0.0)
    leader = recorded_process(entry)
    members: dict[int, psutil.Process] = {}
    if leader is not None:
        members[leader.pid] = leader
        try:
            for child in leader.children(recursive=True):
                members[child.pid] = child
        except psutil.NoSuchProcess:
            pass
    else:
        try:  # the leader's pid is in use by another program: the group id is not ours any more
            if not _create_time_matches(psutil.Process(pgid), entry.get("create_time")):
                return []
        except psutil.NoSuchProcess:
            pass
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.create_time() >= t0 - 1.0:
                members[proc.pid] = proc
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return [p for p in members.values() if _alive(p)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal(entry: dict, members: list[psutil.Process], sig: int) -> None:
    """``sig`` to the entry's group, and once to each member that left the group (a second SIGTERM makes a
    Prefect worker skip its graceful stop)."""
    pgid = int(entry.get("pgid", entry["pid"]))
    outside = []
    for proc in members:
        try:
            if _alive(proc) and os.getpgid(proc.pid) != pgid:
                outside.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for proc in outside:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def stop_processes(entries: list[dict], timeout_s: float = 30.0, say=print) -> list[str]:
    """Stop the recorded processes (SIGTERM to each group, SIGKILL after ``timeout_s``) in STOP_ORDER; one report
    line per entry is passed to ``say`` and returned."""
    lines: list[str] = []
    stages: dict[int, list[dict]] = {}
    for entry in entries:
        stages.setdefault(STOP_ORDER.get(entry.get("role", ""), 2), []).append(entry)
    for _, stage in sorted(stages.items()):
        members = {e["name"]: group_members(e) for e in stage}
        for e in stage:
            if members[e["name"]]:
                _signal(e, members[e["name"]], signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(_alive(p) for ms in members.values() for p in ms):
            time.sleep(0.1)
        for e in stage:
            live = [p for p in members[e["name"]] if _alive(p)]
            if live:
                _signal(e, live, signal.SIGKILL)
                psutil.wait_procs(live, timeout=5)
            pid = f"pid {e['pid']}, group {e.get('pgid', e['pid'])}"
            if not members[e["name"]]:
                line = f"  {e['name']:<20} ({pid}) was not running"
            elif live:
                line = f"  {e['name']:<20} ({pid}) killed: still running {timeout_s:g} s after SIGTERM"
            else:
                line = f"  {e['name']:<20} ({pid}) stopped"
            lines.append(line)
            say(line)
    return lines


def read_state(state_dir: Path) -> dict | None:
    path = state_dir / PIDS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SystemExit(f"error: {path}: not valid JSON ({err}); stop the processes by hand and delete it")


def clear_state(state_dir: Path) -> None:
    for name in (PIDS_FILE, ENV_FILE):
        (state_dir / name).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python infra/down.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help="folder that holds pids.json (default: .infra in the repository root)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait after SIGTERM before SIGKILL, per stage (default: 30)")
    args = parser.parse_args(argv)
    state_dir = args.state_dir.resolve()
    state = read_state(state_dir)
    if state is None:
        print(f"UBF infra is not up (no {state_dir / PIDS_FILE}): nothing to stop")
        return 0
    t0 = time.monotonic()
    entries = state.get("processes", [])
    print(f"stopping UBF infra ({len(entries)} recorded processes, state dir {state_dir}):")
    stop_processes(entries, args.timeout)
    clear_state(state_dir)
    print(f"UBF infra is down ({time.monotonic() - t0:.1f} s); data and logs are kept in {state_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
