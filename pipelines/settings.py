"""Settings read from the environment, in one place, with the defaults a new user gets.

- HELLOTRACKS_API_KEY: the account's API key (read by the resource through `EnvVar`).
- HELLOTRACKS_BASE_URL: the API (default the real one), or a sandbox's URL.
- HELLOTRACKS_TIMEZONE: the account's time zone, where a day starts and ends (default UTC).
- HELLOTRACKS_START_DAY: the first day partition, YYYYMMDD (default 20240101).
- HELLOTRACKS_WAREHOUSE_DIR: where Parquet files and the DuckDB file live (default ./warehouse).
- HELLOTRACKS_MIN_INTERVAL: seconds between two requests (default 0.5).
- HELLOTRACKS_PAGE_SIZE: rows asked per page (default 1000).
- HELLOTRACKS_RESYNC_DAYS: days the daily schedule syncs again, as jobs change late (default 3).
- HELLOTRACKS_POLL_SECONDS: the intraday sensor's interval, 30 at least (default 60).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from resources.hellotracks import DEFAULT_BASE_URL

MIN_POLL_SECONDS = 30
_KIND_NAMES = {int: "whole number", float: "number"}


class SettingsError(ValueError):
    """A setting has a value the pipeline cannot work with; the message names it."""


@dataclass(frozen=True)
class Settings:
    base_url: str
    timezone: str
    start_day: int
    warehouse_dir: str
    min_interval_seconds: float
    page_size: int
    resync_days: int
    poll_seconds: int

    @property
    def uses_sandbox(self) -> bool:
        return self.base_url.rstrip("/") != DEFAULT_BASE_URL


def parse_day(text: str, what: str = "day") -> int:
    """A YYYYMMDD day that exists on the calendar, or a SettingsError naming `what`."""
    try:
        parsed = datetime.strptime(str(text).strip(), "%Y%m%d")
    except ValueError:
        raise SettingsError(f"{what} {text!r} is not a date in YYYYMMDD form") from None
    if len(str(text).strip()) != 8:
        raise SettingsError(f"{what} {text!r} is not a date in YYYYMMDD form")
    return parsed.year * 10000 + parsed.month * 100 + parsed.day


def _number(name: str, default: str, kind: type, minimum: float) -> int | float:
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a {_KIND_NAMES[kind]}") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} is below the minimum of {minimum}")
    return value


def load_settings() -> Settings:
    """Read and check every setting; a wrong one raises SettingsError with its name."""
    timezone = os.environ.get("HELLOTRACKS_TIMEZONE", "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"HELLOTRACKS_TIMEZONE={timezone!r} is not an IANA time zone (e.g. Europe/Vienna)"
        ) from None
    return Settings(
        base_url=os.environ.get("HELLOTRACKS_BASE_URL", DEFAULT_BASE_URL).rstrip("/"),
        timezone=timezone,
        start_day=parse_day(
            os.environ.get("HELLOTRACKS_START_DAY", "20240101"), "HELLOTRACKS_START_DAY"
        ),
        warehouse_dir=os.environ.get("HELLOTRACKS_WAREHOUSE_DIR", "warehouse"),
        min_interval_seconds=_number("HELLOTRACKS_MIN_INTERVAL", "0.5", float, 0.0),
        page_size=int(_number("HELLOTRACKS_PAGE_SIZE", "1000", int, 1)),
        resync_days=int(_number("HELLOTRACKS_RESYNC_DAYS", "3", int, 1)),
        poll_seconds=int(_number("HELLOTRACKS_POLL_SECONDS", "60", int, MIN_POLL_SECONDS)),
    )
