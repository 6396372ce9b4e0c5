"""Intraday refresh of today's partition, off by default.

The API asks clients not to poll more often than every 30-60 seconds; the interval comes from
`HELLOTRACKS_POLL_SECONDS` (60 by default) and settings refuse anything under 30. A tick that
finds today's previous refresh still running requests nothing, so refreshes never pile up.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from pipelines.jobs import SYNC_JOB_NAME, hellotracks_sync
from pipelines.settings import load_settings

_settings = load_settings()

_ACTIVE = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


@sensor(
    name="hellotracks_intraday_refresh",
    job=hellotracks_sync,
    minimum_interval_seconds=_settings.poll_seconds,
    default_status=DefaultSensorStatus.STOPPED,
    description=f"Refresh today's partition every {_settings.poll_seconds} s while turned on.",
)
def intraday_refresh_sensor(context: SensorEvaluationContext):
    today = datetime.now(ZoneInfo(_settings.timezone)).strftime("%Y%m%d")
    running = context.instance.get_runs(
        filters=RunsFilter(
            job_name=SYNC_JOB_NAME, statuses=_ACTIVE, tags={"dagster/partition": today}
        ),
        limit=1,
    )
    if running:
        return SkipReason(f"today's refresh ({today}) is still running")
    return RunRequest(partition_key=today)
