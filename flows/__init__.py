"""Prefect flows: one per DVC stage, plus the end-to-end ``pipeline`` flow. Wiring only."""

import tasks  # noqa: F401  (sets the offline/telemetry/start-up defaults before prefect is imported)
