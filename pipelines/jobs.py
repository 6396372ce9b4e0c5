"""The sync job: every Hellotracks table and the marts built on them, for a day or a range."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, in_process_executor

SYNC_JOB_NAME = "hellotracks_sync"

# One process per run: the marts and the chart follow the sync step without starting another
# process, and DuckDB writes happen one after the other. Every API request is made by the one sync
# step and its client, so another executor (k8s_job_executor, celery) set in the run config puts
# the steps in separate pods without changing the request pace.
hellotracks_sync = define_asset_job(
    SYNC_JOB_NAME,
    selection=AssetSelection.all(),
    executor_def=in_process_executor,
    description="Pull jobs, members, places, teams, tracks and reports for the chosen days into "
    "Parquet and DuckDB, then rebuild the marts for those days.",
)
