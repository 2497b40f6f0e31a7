"""Admin API: bulk device jobs (DEV-9, DEV-10, DEV-12) and every job's results and export.

`create` answers `POST /jobs` and `POST /jobs/upload` (with `selection_file` for the CSV),
`runner` applies a job's actions in the background, `recovery` deals with jobs a stopped
server left IN PROGRESS (resumes or fails them), `results` reads and exports jobs.
"""

from __future__ import annotations

from server.api.jobs import create, results
from server.api.jobs.create import MAX_UPLOAD, create_job, upload_job
from server.api.jobs.recovery import (
    MAX_RESUMES,
    STALE_AFTER,
    SWEEP_SECONDS,
    Sweep,
    recovery_sweep,
    sweep_interrupted_jobs,
    sweep_loop,
)
from server.api.jobs.results import RESULT_FIELDS, export_job, get_job, list_jobs, result_json
from server.api.jobs.runner import BATCH, RUNNER_ID, _live, live_key, run_device_job, start_job
from server.api.jobs.selection_file import MAX_MACS, FileRow, parse_selection_csv
from server.api.routing import Api

# The OpenAPI document lists the routes in this order.
api = Api()
api.routes = [*create.api.routes, *results.api.routes]

__all__ = [
    "BATCH",
    "MAX_MACS",
    "MAX_RESUMES",
    "MAX_UPLOAD",
    "RESULT_FIELDS",
    "RUNNER_ID",
    "STALE_AFTER",
    "SWEEP_SECONDS",
    "FileRow",
    "Sweep",
    "_live",
    "api",
    "create_job",
    "export_job",
    "get_job",
    "list_jobs",
    "live_key",
    "parse_selection_csv",
    "recovery_sweep",
    "result_json",
    "run_device_job",
    "start_job",
    "sweep_interrupted_jobs",
    "sweep_loop",
    "upload_job",
]
