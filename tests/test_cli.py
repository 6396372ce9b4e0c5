"""The `hellotracks` command line, run as a user runs it: in a subprocess, against the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.server import run_sandbox

PROJECT = Path(__file__).resolve().parent.parent


def hellotracks(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HELLOTRACKS_")}
    return clean | {
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "HELLOTRACKS_WAREHOUSE_DIR": str(tmp_path / "warehouse"),
        "HELLOTRACKS_TIMEZONE": "Europe/Vienna",
        "HELLOTRACKS_MIN_INTERVAL": "0",
    }


@pytest.fixture(scope="module")
def synced_env(tmp_path_factory):
    """A warehouse filled by a real `hellotracks sync` subprocess, and the env it used."""
    tmp = tmp_path_factory.mktemp("cli")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HELLOTRACKS_")}
    with run_sandbox(seed=5, members=6, today=20251015, timezone="Europe/Vienna") as server:
        env = clean | {
            "DAGSTER_HOME": str(tmp / "dagster_home"),
            "HELLOTRACKS_WAREHOUSE_DIR": str(tmp / "warehouse"),
            "HELLOTRACKS_TIMEZONE": "Europe/Vienna",
            "HELLOTRACKS_MIN_INTERVAL": "0",
            "HELLOTRACKS_BASE_URL": server.url,
            "HELLOTRACKS_API_KEY": server.api_key,
        }
        result = hellotracks("sync", "--from", "20251010", "--to", "20251012", "--quiet", env=env)
        yield env, result, server


def test_sync_subprocess_fills_the_warehouse_and_the_instance(synced_env):
    env, result, server = synced_env
    assert result.returncode == 0, result.stderr
    assert "Synced 20251010..20251012" in result.stderr
    out = hellotracks("sql", "SELECT count(*) AS n FROM jobs", "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    expected = sum(len(server.fleet.jobs(d)) for d in (20251010, 20251011, 20251012))
    assert json.loads(out.stdout) == [{"n": expected}]
    # The run is recorded in the instance under DAGSTER_HOME, so the UI shows it.
    runs = list((Path(env["DAGSTER_HOME"]) / "history" / "runs").glob("*.db"))
    assert runs, "no run storage written under DAGSTER_HOME"


def test_a_range_sync_announces_each_asset_once_and_marks_every_day(synced_env, monkeypatch):
    from dagster import AssetKey, DagsterEventType, DagsterInstance

    env, result, _ = synced_env
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        planned = instance.all_logs(
            run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        )
        keys = [e.dagster_event.event_specific_data.asset_key for e in planned]
        # One planned event per asset for the whole range, not one per asset and day.
        assert len(keys) == len(set(keys)) and AssetKey("jobs") in keys
        materialized = instance.get_materialized_partitions(AssetKey("jobs"))
        assert materialized == {"20251010", "20251011", "20251012"}


def test_status_lists_loaded_days_and_gaps(synced_env):
    env, _, _ = synced_env
    out = hellotracks("status", env=env)
    assert out.returncode == 0, out.stderr
    assert "jobs" in out.stdout and "20251010" in out.stdout and "20251012" in out.stdout


@pytest.mark.parametrize(
    ("query", "message"),
    [
        # Writing is refused before it reaches the database.
        ("DELETE FROM jobs", "refused: DELETE"),
        ("CREATE TABLE x AS SELECT 1", "refused: CREATE"),
        ("COPY jobs TO '/tmp/out.csv'", "refused: COPY"),
        # Two statements at once could hide a write behind a read.
        ("SELECT 1; SELECT 2", "exactly one statement"),
        # A typo gets DuckDB's own one-line explanation.
        ("SELEC 1", "does not parse"),
        ("SELECT * FROM no_such_table", "no_such_table"),
    ],
)
def test_sql_refuses_writes_and_explains_errors(synced_env, query, message):
    env, _, _ = synced_env
    out = hellotracks("sql", query, env=env)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_sql_csv_output(synced_env):
    env, _, _ = synced_env
    out = hellotracks("sql", "SELECT 1 AS a, 'x' AS b", "--format", "csv", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["a,b", "1,x"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # A day that does not exist on the calendar.
        (["sync", "--from", "20251340", "--to", "20251341"], "not a date in YYYYMMDD form"),
        # Reversed range.
        (["sync", "--from", "20251012", "--to", "20251010"], "is after --to"),
        # Before the first partition.
        (["sync", "--from", "20200101", "--to", "20200102"], "before the first day"),
        # Not a date at all.
        (["sync", "--from", "yesterday", "--to", "20251010"], "not a date in YYYYMMDD form"),
        # The future cannot be synced yet.
        (["sync", "--from", "20251010", "--to", "29990101"], "in the future"),
    ],
)
def test_bad_arguments_get_one_clear_line(env, args, message):
    env = env | {"HELLOTRACKS_API_KEY": "k", "HELLOTRACKS_BASE_URL": "http://127.0.0.1:9/api"}
    out = hellotracks(*args, env=env)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_sync_without_a_key_says_how_to_get_one(env):
    out = hellotracks("sync", "--from", "20251010", "--to", "20251010", env=env)
    assert out.returncode != 0
    assert "HELLOTRACKS_API_KEY is not set" in out.stderr and "hellotracks demo" in out.stderr
    assert not (Path(env["HELLOTRACKS_WAREHOUSE_DIR"]) / "hellotracks.duckdb").exists()


def test_a_bad_setting_is_named(env):
    out = hellotracks("status", env=env | {"HELLOTRACKS_TIMEZONE": "Mars/Olympus"})
    assert out.returncode != 0
    assert "HELLOTRACKS_TIMEZONE" in out.stderr and "Traceback" not in out.stderr


def test_sql_before_any_sync_says_what_to_do(env):
    out = hellotracks("sql", "SELECT 1", env=env)
    assert out.returncode != 0
    assert "run `hellotracks demo` or a sync first" in out.stderr
