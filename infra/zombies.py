#!/usr/bin/env python
"""Mark flow runs whose process died as Crashed: a Prefect automation on flow-run heartbeats.

A flow run started by a deployment sends a `prefect.flow-run.heartbeat` event every
PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (set on the workers; at least 30) until it ends. When its machine,
container or worker is killed, no terminal state ever reaches the server and the run would stay Running forever.
The automation created here watches every deployment's flow run that has sent a heartbeat (runs started in a
person's own process, e.g. `dvc repro` against this server, are left alone: their heartbeat interval is not ours to
know): if neither another heartbeat nor a terminal event (Completed, Failed, Cancelled, Crashed) follows within
--crash-after seconds, the server sets the run to Crashed. A rerun of a crashed mass_synthesis run then resumes from the blocks on disk.

`infra/up.py` creates it on the local stack; against another server (the compose stack, a shared one) run once:
    python infra/zombies.py --api-url http://HOST:4200/api [--crash-after 90]
Running it again updates the automation in place (matched by name).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
from datetime import timedelta

from rest import json_request

NAME = "ubf: crash flow runs without heartbeats"
TERMINAL_EVENTS = ("prefect.flow-run.Completed", "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
                   "prefect.flow-run.Crashed")
MIN_HEARTBEAT_S = 30   # Prefect's lower bound for PREFECT_FLOWS_HEARTBEAT_FREQUENCY


def automation_body(crash_after_s: float) -> dict:
    """The automation as the Prefect REST API takes it (POST /automations/): a proactive event trigger per flow
    run, the action ChangeFlowRunState(CRASHED)."""
    from prefect.automations import AutomationCore
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    automation = AutomationCore(
        name=NAME,
        description=f"A flow run that sent a heartbeat and then nothing for {crash_after_s:g} s is marked Crashed "
                    f"(its process is gone). Created by infra/zombies.py.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *TERMINAL_EVENTS},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification({"prefect.resource.role": "deployment"}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=crash_after_s),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {crash_after_s:g} s: the flow run's process is gone "
                                            f"(worker or machine killed); rerun to resume")],
    )
    return automation.model_dump(mode="json")


def ensure_automation(api: str, crash_after_s: float) -> str:
    """Create the automation on the Prefect server at ``api`` (…/api), or update the one of the same name;
    its id."""
    body = automation_body(crash_after_s)
    found = json_request(f"{api}/automations/filter", "POST", {}) or []
    same = [a for a in found if a.get("name") == NAME]
    if same:
        update = {k: v for k, v in body.items() if k != "owner_resource"}   # not part of an update
        json_request(f"{api}/automations/{same[0]['id']}", "PUT", update)
        return same[0]["id"]
    return json_request(f"{api}/automations/", "POST", body)["id"]


def check_timing(heartbeat_s: int, crash_after_s: float) -> str | None:
    """An error message when the heartbeat and the crash delay do not fit together, else None."""
    if heartbeat_s < MIN_HEARTBEAT_S:
        return f"--heartbeat must be at least {MIN_HEARTBEAT_S} s (Prefect's minimum), not {heartbeat_s}"
    if crash_after_s < 1.5 * heartbeat_s:
        return (f"--crash-after ({crash_after_s:g} s) must be at least 1.5 × the heartbeat ({heartbeat_s} s), "
                f"or a live run whose heartbeat is late would be marked crashed")
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python infra/zombies.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--api-url", required=True, help="the Prefect API, e.g. http://127.0.0.1:4200/api")
    p.add_argument("--heartbeat", type=int, default=30,
                   help="PREFECT_FLOWS_HEARTBEAT_FREQUENCY of the workers, seconds (default: 30)")
    p.add_argument("--crash-after", type=float, default=90.0,
                   help="seconds without a heartbeat before a run is marked crashed (default: 90)")
    args = p.parse_args(argv)
    problem = check_timing(args.heartbeat, args.crash_after)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    api = args.api_url.rstrip("/")
    try:
        automation_id = ensure_automation(api, args.crash_after)
    except (urllib.error.URLError, OSError) as err:
        print(f"error: {api}: Prefect server not reachable ({err})", file=sys.stderr)
        return 1
    print(f"automation {NAME!r} ({automation_id}) on {api}: crash after {args.crash_after:g} s without a "
          f"heartbeat; set PREFECT_FLOWS_HEARTBEAT_FREQUENCY={args.heartbeat} on every worker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
