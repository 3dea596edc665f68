"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# The modules whose tests take longest, scheduled first: with the suite spread over two cores (pytest-xdist, one
# module per worker at a time, `make test`), worker 1 takes test_stages (`dvc repro` of the whole pipeline; three
# tests, so xdist queues nothing behind it until its first test is done), worker 2 the `pipeline` flow run that
# test_stages compares with (one test, so xdist queues the mass-synthesis server stack behind it), and the other
# modules then fill the gaps, so that the workers finish together instead of a long module starting last.
LONGEST_FIRST = ("test_stages.py", "test_pipeline_flow.py", "test_mass_synthesis.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: the rest keep their order


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository (real public data, see its README.md), or skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not found: real-data tests need the shared data folder beside the repository")
    return SHARED_DATA


@pytest.fixture(scope="module")
def prefect_engine(tmp_path_factory):
    """A real Prefect engine with a temporary local server and database for the test module."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect_home"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture()
def one_torch_thread():
    """torch on one thread for the test (tiny networks run faster so, and do not fight other processes for the
    cores); the previous thread count afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
