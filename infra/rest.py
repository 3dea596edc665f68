"""JSON over HTTP for the infra scripts (and the tests that talk to the same servers): the standard library only."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request


def json_request(url: str, method: str = "GET", body: dict | None = None) -> object:
    """Send ``body`` as JSON with ``method`` to ``url`` and return the decoded answer (None when empty).
    A 503 (Prefect's answer to a busy SQLite database) is retried up to 10 times, as Prefect's own client does;
    other HTTP errors raise urllib.error.HTTPError."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    for attempt in range(10):
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as err:
            if err.code != 503 or attempt == 9:
                raise
            time.sleep(0.5 * (attempt + 1))
