"""Dask clients: a local cluster by default, an existing scheduler when an address is given."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

from distributed import Client, LocalCluster

from ubf_core.errors import UBFInputError

SCHEDULER_ENV = "UBF_DASK_SCHEDULER"


@contextmanager
def dask_client(scheduler_address: str | None = None, n_workers: int = 2, threads_per_worker: int = 1,
                processes: bool = True, connect_timeout_s: float = 10.0) -> Iterator[Client]:
    """Yield a Dask client, closed (and its local cluster stopped) on exit.

    ``scheduler_address`` (or the environment variable UBF_DASK_SCHEDULER) connects to an existing scheduler,
    e.g. ``tcp://10.0.0.5:8786``; an unreachable one is a UBFInputError naming it after ``connect_timeout_s``.
    Without an address a LocalCluster of ``n_workers`` workers is started (processes by default).
    """
    address = scheduler_address or os.environ.get(SCHEDULER_ENV) or None
    logging.getLogger("distributed").setLevel(logging.WARNING)  # start/stop chatter would drown the stage's log
    # a task's exception is re-raised in the caller with its own message; the worker's copy is noise
    logging.getLogger("distributed.worker").setLevel(logging.CRITICAL)
    if address:
        try:
            client = Client(address, timeout=f"{connect_timeout_s}s")
        except (OSError, TimeoutError) as err:
            raise UBFInputError(address, f"Dask scheduler not reachable within {connect_timeout_s:g} s ({err})") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
