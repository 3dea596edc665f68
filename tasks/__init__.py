"""Prefect tasks: each wraps one step of ubf_core with its inputs and outputs (store paths, registry URIs).

Importing this package turns off the telemetry of the tools it drives (the pipeline runs offline).
"""

import os

for _name, _value in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # the first ephemeral server of a fresh PREFECT_HOME migrates its database: more than the default 20 s here
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
}.items():
    os.environ.setdefault(_name, _value)
