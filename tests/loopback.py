"""Helpers of the tests that talk to real servers on 127.0.0.1: free ports, JSON over HTTP, whether a server's
process still runs."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))
from rest import json_request  # noqa: E402


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports nobody listens on right now (bound together, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def api(url: str, body: dict | None = None, method: str | None = None):
    """JSON over HTTP (infra/rest.py: 503 retried); GET without a body, POST with one, unless ``method`` says."""
    return json_request(url, method or ("GET" if body is None else "POST"), body)


def alive(pid: int, create_time: float | None = None) -> bool:
    """``pid`` runs and is the same process (zombies count as gone: an orphan's init may never reap them)."""
    try:
        p = psutil.Process(pid)
        return (p.status() != psutil.STATUS_ZOMBIE
                and (create_time is None or abs(p.create_time() - create_time) < 1.0))
    except psutil.NoSuchProcess:
        return False
