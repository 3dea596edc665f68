"""Helpers of the tests that talk to real servers on 127.0.0.1: free ports, JSON over HTTP."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request


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
    """JSON over HTTP; retried on 503 (Prefect's answer to a busy SQLite database, as its own client does)."""
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 method=method or ("GET" if body is None else "POST"),
                                 headers={"content-type": "application/json"})
    for attempt in range(10):
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as err:
            if err.code != 503 or attempt == 9:
                raise
            time.sleep(0.5 * (attempt + 1))
