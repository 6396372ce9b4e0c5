"""The daily sync: after each local midnight, the last few complete days again.

Jobs change after their day (late check-outs, carried-over jobs), so the schedule syncs the last
`HELLOTRACKS_RESYNC_DAYS` days as one range run rather than only yesterday.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dagster import RunRequest, ScheduleEvaluationContext, schedule
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from pipelines.jobs import hellotracks_sync
from pipelines.settings import load_settings

_settings = load_settings()


def resync_range(now: datetime, days: int, start_day: int) -> tuple[str, str] | None:
    """The YYYYMMDD keys of the last `days` complete days before `now`'s date, oldest first."""
    last = now.date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    first_key, last_key = first.strftime("%Y%m%d"), last.strftime("%Y%m%d")
    if int(last_key) < start_day:
        return None
    return max(first_key, str(start_day)), last_key


def range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run cover the partition range first..last."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


@schedule(
    name="hellotracks_daily_sync",
    job=hellotracks_sync,
    cron_schedule="15 2 * * *",
    execution_timezone=_settings.timezone,
    description=f"At 02:15 {_settings.timezone}, sync the last {_settings.resync_days} complete "
    "days in one run.",
)
def daily_sync_schedule(context: ScheduleEvaluationContext):
    now = context.scheduled_execution_time.astimezone(ZoneInfo(_settings.timezone))
    window = resync_range(now, _settings.resync_days, _settings.start_day)
    if window is None:
        return
    first, last = window
    yield RunRequest(run_key=f"daily-{first}-{last}", tags=range_tags(first, last))
