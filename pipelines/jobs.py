"""The sync job: every Hellotracks table and the marts built on them, for a day or a range."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, in_process_executor

SYNC_JOB_NAME = "hellotracks_sync"

# One process per run: every step shares one API client, so the request pace holds across the
# whole run, and DuckDB writes happen one after the other. A deployment that wants steps in
# separate pods sets another executor (k8s_job_executor, celery) in its run config.
hellotracks_sync = define_asset_job(
    SYNC_JOB_NAME,
    selection=AssetSelection.all(),
    executor_def=in_process_executor,
    description="Pull jobs, members, places, teams, tracks and reports for the chosen days into "
    "Parquet and DuckDB, then rebuild the marts for those days.",
)
