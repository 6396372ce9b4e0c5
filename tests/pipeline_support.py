"""Running the real sync job in tests: a sandbox, a temporary warehouse, a real Dagster instance.

The partitions' time zone is fixed to the test fleets' (Europe/Vienna) in conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from dagster import DagsterInstance, ExecuteInProcessResult

from pipelines.definitions import defs
from pipelines.jobs import SYNC_JOB_NAME
from pipelines.schedules import range_tags
from resources.hellotracks import HellotracksResource
from resources.warehouse import WarehouseResource
from sandbox.server import SandboxServer

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def sync(
    server: SandboxServer,
    warehouse_dir: Path | str,
    first: int,
    last: int | None = None,
    *,
    instance: DagsterInstance | None = None,
    raise_on_error: bool = True,
    **client_settings,
) -> ExecuteInProcessResult:
    """Run the sync job for first..last against `server` into `warehouse_dir`."""
    settings = {
        "min_interval_seconds": 0.0,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.2,
        **client_settings,
    }
    job = defs.resolve_job_def(SYNC_JOB_NAME)
    resources = {
        "hellotracks": HellotracksResource(api_key=server.api_key, base_url=server.url, **settings),
        "warehouse": WarehouseResource(directory=str(warehouse_dir)),
    }
    return job.execute_in_process(
        instance=instance or DagsterInstance.ephemeral(),
        tags=range_tags(str(first), str(last or first)),
        resources=resources,
        run_config=QUIET,
        raise_on_error=raise_on_error,
    )


def query(warehouse_dir: Path | str, sql: str, params=None) -> list[tuple]:
    """Rows of a read-only query on the warehouse's DuckDB file."""
    con = duckdb.connect(str(Path(warehouse_dir) / "hellotracks.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()
