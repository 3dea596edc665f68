"""A configured Prefect or MLflow server that does not answer: a stage stops at once with one line naming the URL,
after at most the stated timeout, instead of a client library retrying for minutes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopback import free_ports
from tasks.servers import check_prefect_server, check_tracking_server
from ubf_core.errors import UBFInputError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def silent_server():
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_probes_name_the_url_and_keep_the_timeout(silent_server):
    t0 = time.monotonic()
    with pytest.raises(UBFInputError) as err:
        check_prefect_server(silent_server + "/api", timeout_s=1.5)
    assert time.monotonic() - t0 < 3.0
    assert str(err.value).startswith(silent_server + "/api: Prefect server did not answer within 1.5 s")
    closed = f"http://127.0.0.1:{free_ports(1)[0]}"
    with pytest.raises(UBFInputError, match=f"{closed}: MLflow tracking server not reachable"):
        check_tracking_server(closed, timeout_s=1)
    assert check_tracking_server("sqlite:///x.db") == "sqlite:///x.db"    # local stores are not probed
    assert check_prefect_server("") is None                                # no server: ephemeral Prefect


@pytest.mark.parametrize("variable", ["PREFECT_API_URL", "MLFLOW_TRACKING_URI"])
def test_a_stage_against_a_silent_server_exits_2_naming_it(silent_server, variable, tmp_path):
    url = silent_server + ("/api" if variable == "PREFECT_API_URL" else "")
    env = {**os.environ, variable: url, "UBF_SERVER_TIMEOUT_S": "2", "PREFECT_HOME": str(tmp_path)}
    t0 = time.monotonic()
    # a valid params file: run_stage checks it first (tests/test_settings.py), then the servers
    run = subprocess.run([sys.executable, "-m", "flows.validate", "--params", str(REPO / "params.yaml")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    assert run.returncode == 2, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {url}: ") and "did not answer within 2 s" in last
    assert elapsed < 2 + 30   # the timeout plus interpreter and import start-up
