"""Is the server we are pointed at there? One quick probe per server, before any work, instead of a client library
retrying for minutes: a server that does not answer is a one-line error naming its URL."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from ubf_core.errors import UBFInputError

DEFAULT_TIMEOUT_S = 10.0   # env UBF_SERVER_TIMEOUT_S


def probe(url: str, health_url: str, what: str, hint: str, timeout_s: float | None = None) -> str:
    """GET ``health_url`` within ``timeout_s`` seconds (connection, DNS and reply together; default
    $UBF_SERVER_TIMEOUT_S, else 10); anything but HTTP 200 is a UBFInputError naming ``url``. Returns ``url``."""
    if timeout_s is None:
        timeout_s = float(os.environ.get("UBF_SERVER_TIMEOUT_S", DEFAULT_TIMEOUT_S))

    def get() -> None:
        with urllib.request.urlopen(health_url, timeout=timeout_s) as reply:
            if reply.status != 200:
                raise OSError(f"HTTP {reply.status}")

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="server-probe")
    try:
        pool.submit(get).result(timeout=timeout_s)
    except FutureTimeout:
        raise UBFInputError(url, f"{what} did not answer within {timeout_s:g} s ({hint})") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise UBFInputError(url, f"{what} not reachable ({reason}; waited at most {timeout_s:g} s; {hint})") from None
    finally:
        pool.shutdown(wait=False)
    return url


def check_prefect_server(url: str | None = None, timeout_s: float | None = None) -> str | None:
    """Probe the Prefect API in ``url`` (default $PREFECT_API_URL, e.g. http://host:4200/api) at ``<url>/health``;
    None (nothing to probe) when no server is configured: the flow then runs on a temporary local server."""
    url = url if url is not None else os.environ.get("PREFECT_API_URL", "")
    if not url:
        return None
    return probe(url, url.rstrip("/") + "/health", "Prefect server", "check PREFECT_API_URL", timeout_s)


def check_tracking_server(uri: str | None = None, timeout_s: float | None = None) -> str:
    """Probe an MLflow server (``<uri>/health``, default $MLFLOW_TRACKING_URI) and return ``uri``. Local stores
    (sqlite:, file:, a path) are not probed."""
    uri = uri if uri is not None else os.environ.get("MLFLOW_TRACKING_URI", "")
    if timeout_s is None and "UBF_MLFLOW_TIMEOUT_S" in os.environ:
        timeout_s = float(os.environ["UBF_MLFLOW_TIMEOUT_S"])
    if not uri.lower().startswith(("http://", "https://")):
        return uri
    return probe(uri, uri.rstrip("/") + "/health", "MLflow tracking server",
                 "check MLFLOW_TRACKING_URI; UBF_SERVER_TIMEOUT_S sets the wait", timeout_s)
