"""Running a flow as a DVC stage command: ``python -m flows.<stage> [--params params.yaml]``.

Bad input ends the process with its one-line message on stderr and exit status 2 (1 for failed data checks).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

import tasks  # noqa: F401  (sets offline/telemetry defaults before prefect is used)
from ubf_core.errors import UBFInputError


def run_stage(flow_fn: Callable, description: str, argv: list[str] | None = None) -> int:
    """Parse ``--params``, run the flow (ephemeral Prefect, or the server in PREFECT_API_URL), map errors."""
    parser = argparse.ArgumentParser(prog=f"python -m flows.{flow_fn.__name__}",
                                     description=flow_description(description))
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    try:
        from tasks.servers import check_prefect_server, check_tracking_server
        from ubf_core.config import load_params

        load_params(args.params)   # a bad params file stops here, before any server or flow run starts

        check_prefect_server()     # a configured server that does not answer: one line, not minutes of retries
        check_tracking_server()
        flow_fn(params_path=args.params)
    except UBFInputError as err:
        from tasks.validate import DataValidationError

        _stop_ephemeral_prefect()  # so that the error is the last line a person sees
        print(f"error: {err}", file=sys.stderr)
        return 1 if isinstance(err, DataValidationError) else 2
    return 0


def flow_description(doc: str | None) -> str:
    """A flow's docstring without its ``Args:`` section (which describes each parameter in Prefect's Run form): the
    description of a stage command (``--help``) and of a deployment."""
    lines = (doc or "").expandtabs().splitlines()
    cut = next((i for i, line in enumerate(lines) if line.strip() == "Args:"), len(lines))
    return "\n".join(lines[:cut]).strip()


def _stop_ephemeral_prefect() -> None:
    """Stop the temporary local Prefect server of this process now rather than at exit (no-op with a server)."""
    try:
        from prefect.logging.handlers import APILogHandler
        from prefect.server.api.server import SubprocessASGIServer

        if not SubprocessASGIServer._instances:
            return
        loggers = [logging.getLogger()] + [lg for lg in logging.root.manager.loggerDict.values()
                                           if isinstance(lg, logging.Logger)]
        for handler in {h for lg in loggers for h in lg.handlers if isinstance(h, APILogHandler)}:
            handler.flush()  # send the run's logs while the server still listens

        for server in list(SubprocessASGIServer._instances.values()):
            server.stop()
    except Exception:  # private API: at worst the server stops at exit as usual
        pass
