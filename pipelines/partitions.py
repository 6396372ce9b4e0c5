"""The one partitioning of every dataset: a day in the account's time zone, keyed YYYYMMDD.

The key is the API's own `day` value, so partition 20251008 is `getjobs` with `day: 20251008`.
Today is a partition too (`end_offset=1`), so the intraday sensor can refresh it while it is
still going on; the daily schedule only asks for complete days.
"""

from __future__ import annotations

from dagster import DailyPartitionsDefinition

from pipelines.settings import load_settings

_settings = load_settings()

daily_partitions = DailyPartitionsDefinition(
    start_date=str(_settings.start_day),
    fmt="%Y%m%d",
    timezone=_settings.timezone,
    end_offset=1,
)
