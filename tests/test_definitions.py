"""The Dagster definitions: they load, validate, and say what the users were promised."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import BackfillPolicy, DagsterInstance, build_schedule_context, build_sensor_context

from pipelines.definitions import defs
from pipelines.schedules import daily_sync_schedule, resync_range
from pipelines.sensors import intraday_refresh_sensor
from pipelines.settings import SettingsError, load_settings

PROJECT = Path(__file__).resolve().parent.parent

DAILY_TABLES = {
    "jobs",
    "members",
    "places",
    "company",
    "teams",
    "tracks",
    "track_points",
    "report_jobs",
    "report_mileage",
    "report_timesheet",
}


def test_every_table_is_a_daily_asset_with_a_single_run_backfill_policy():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert DAILY_TABLES <= keys
    for name in DAILY_TABLES:
        node = graph.get(next(k for k in graph.get_all_asset_keys() if k.to_user_string() == name))
        partitions = node.partitions_def
        assert partitions.fmt == "%Y%m%d" and partitions.timezone == "Europe/Vienna", name
        assert node.backfill_policy == BackfillPolicy.single_run(), name


def test_one_step_in_the_api_pool_syncs_every_table_and_no_other_step_is_in_it():
    graph = defs.resolve_asset_graph()
    steps: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.assets_def_for_key(key).node_def.name
        steps.setdefault(node, set()).add(key.to_user_string())
    pooled = {
        node for node, tables in steps.items() if _pools(graph, tables) == {"hellotracks_api"}
    }
    # Every request of a run goes through that step's one client, whatever the executor.
    assert pooled == {"hellotracks_tables"} and steps["hellotracks_tables"] == DAILY_TABLES
    others = set(steps) - pooled
    assert others and all(not _pools(graph, steps[node]) for node in others), steps


def _pools(graph, tables: set[str]) -> set[str]:
    keys = [k for k in graph.get_all_asset_keys() if k.to_user_string() in tables]
    return set().union(*(graph.get(key).pools or set() for key in keys))


def test_dagster_definitions_validate_passes(tmp_path):
    env = dict(os.environ) | {
        "HELLOTRACKS_TIMEZONE": "Europe/Vienna",
        "DAGSTER_HOME": str(tmp_path),  # dagster's CLI needs an existing instance directory
    }
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("now", "days", "expected"),
    [
        # At 02:15 on the 6th the last complete day is the 5th; three days back is the 3rd.
        (datetime(2025, 10, 6, 2, 15), 3, ("20251003", "20251005")),
        # Across a month boundary.
        (datetime(2025, 11, 1, 2, 15), 3, ("20251029", "20251031")),
        # Never before the first partition.
        (datetime(2024, 1, 2, 2, 15), 3, ("20240101", "20240101")),
    ],
)
def test_resync_window(now, days, expected):
    assert resync_range(now, days, 20240101) == expected


def test_schedule_requests_one_range_run_in_the_fleet_time_zone():
    moment = datetime(2025, 10, 6, 2, 15, tzinfo=ZoneInfo("Europe/Vienna"))
    context = build_schedule_context(scheduled_execution_time=moment)
    (request,) = list(daily_sync_schedule(context))
    assert request.partition_key_range.start == "20251003"
    assert request.partition_key_range.end == "20251005"
    assert daily_sync_schedule.execution_timezone == "Europe/Vienna"


def test_intraday_sensor_is_off_by_default_and_polls_politely():
    assert intraday_refresh_sensor.default_status.value == "STOPPED"
    assert intraday_refresh_sensor.minimum_interval_seconds >= 30
    with DagsterInstance.ephemeral() as instance:
        result = intraday_refresh_sensor(build_sensor_context(instance=instance))
    today = datetime.now(ZoneInfo("Europe/Vienna")).strftime("%Y%m%d")
    assert result.partition_key == today


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        # The API asks for 30-60 s between polls: a faster sensor is refused.
        ("HELLOTRACKS_POLL_SECONDS", "10", "below the minimum of 30"),
        ("HELLOTRACKS_TIMEZONE", "Vienna", "not an IANA time zone"),
        ("HELLOTRACKS_START_DAY", "2024-01-01", "not a date in YYYYMMDD form"),
        ("HELLOTRACKS_PAGE_SIZE", "many", "is not a whole number"),
    ],
)
def test_bad_settings_are_named(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=message) as error:
        load_settings()
    assert variable in str(error.value) or "HELLOTRACKS_START_DAY" in str(error.value)
