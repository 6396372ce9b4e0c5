"""Shared by the reliability tests: the ground truth of a synced range, and the CLI in a subprocess.

`expected_keys` says which rows each table must hold per day, from the sandbox fleet alone;
`loaded_keys` reads the same from a warehouse. Both are multisets (sorted lists), so a duplicate
row shows up as a difference, not only a missing one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import duckdb

from sandbox.fleet import Fleet
from sandbox.polyline import decode

PROJECT = Path(__file__).resolve().parent.parent

# The identifying column of each table the sync loads straight from the API.
TABLE_KEYS = {
    "jobs": "job_id",
    "tracks": "track_id",
    "members": "member_uid",
    "places": "place_uid",
    "teams": "team_id",
    "company": "company_uid",
    "report_jobs": "job_id",
    "report_mileage": "member_uid",
    "report_timesheet": "member_uid",
}

Keys = dict[str, dict[int, list[str]]]


def expected_keys(fleet: Fleet, days: list[int]) -> Keys:
    """The sorted keys each table must hold on each of `days`, from the fleet alone."""
    roster = sorted(m["uid"] for m in fleet.accounts())
    places = sorted(p["uid"] for p in fleet.places())
    company = fleet.company()
    teams = sorted(str(t["id"]) for t in company["teams_config"])
    truth: Keys = {table: {} for table in TABLE_KEYS}
    for day in days:
        start, end = fleet.day_window_ms(day)
        truth["jobs"][day] = sorted(job["id"] for job in fleet.jobs(day))
        truth["tracks"][day] = sorted(str(t["id"]) for t in fleet.tracks(start, end))
        truth["members"][day] = roster
        truth["places"][day] = places
        truth["teams"][day] = teams
        truth["company"][day] = [company["uid"]]
        for kind, column in (("jobs", "job_id"), ("mileage", "member_uid"), ("timesheet", None)):
            header, rows = fleet.report(kind, [day])
            index = header.index(column or "member_uid")
            truth[f"report_{kind}"][day] = sorted(str(row[index]) for row in rows)
    return truth


def expected_points(fleet: Fleet, days: list[int]) -> dict[int, int]:
    """How many decoded GPS points `track_points` must hold on each of `days`."""
    counts = {}
    for day in days:
        start, end = fleet.day_window_ms(day)
        counts[day] = sum(len(decode(t["path_encoded"])) for t in fleet.tracks(start, end))
    return counts


def loaded_keys(warehouse_dir: Path | str, days: list[int]) -> Keys:
    """The sorted keys each table holds on each of `days` (a missing table holds nothing)."""
    found: Keys = {table: {day: [] for day in days} for table in TABLE_KEYS}
    with _read(warehouse_dir) as con:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        for table, column in TABLE_KEYS.items():
            if table not in tables:
                continue
            rows = con.execute(
                f'SELECT day, CAST("{column}" AS VARCHAR) FROM "{table}" '
                "WHERE day IN (SELECT unnest(?))",
                [days],
            ).fetchall()
            grouped: dict[int, list[str]] = defaultdict(list)
            for day, key in rows:
                grouped[day].append(key)
            for day in days:
                found[table][day] = sorted(grouped.get(day, []))
    return found


def loaded_points(warehouse_dir: Path | str, days: list[int]) -> dict[int, int]:
    with _read(warehouse_dir) as con:
        rows = dict(
            con.execute(
                "SELECT day, count(*) FROM track_points WHERE day IN (SELECT unnest(?)) "
                "GROUP BY day",
                [days],
            ).fetchall()
        )
    return {day: rows.get(day, 0) for day in days}


def differences(expected: Keys, actual: Keys) -> list[str]:
    """One line per table and day where `actual` differs from `expected`; empty when equal."""
    lines = []
    for table, per_day in expected.items():
        for day, keys in per_day.items():
            got = actual.get(table, {}).get(day, [])
            if got != keys:
                missing = len(set(keys) - set(got))
                extra = len(got) - len(set(got))
                lines.append(
                    f"{table} {day}: {len(got)} rows, expected {len(keys)} "
                    f"({missing} missing, {extra} duplicated)"
                )
    return lines


class _read:
    """A short read-only DuckDB connection to a warehouse, as a context manager."""

    def __init__(self, warehouse_dir: Path | str) -> None:
        self.path = Path(warehouse_dir) / "hellotracks.duckdb"

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.con = duckdb.connect(str(self.path), read_only=True)
        return self.con

    def __exit__(self, *exc: object) -> None:
        self.con.close()


def cli_env(root: Path, base_url: str, api_key: str, **extra: str) -> dict[str, str]:
    """The environment of a `hellotracks` subprocess with its instance and warehouse in `root`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HELLOTRACKS_")}
    return clean | {
        "DAGSTER_HOME": str(root / "dagster_home"),
        "HELLOTRACKS_WAREHOUSE_DIR": str(root / "warehouse"),
        "HELLOTRACKS_TIMEZONE": "Europe/Vienna",
        "HELLOTRACKS_START_DAY": "20240101",
        "HELLOTRACKS_MIN_INTERVAL": "0",
        "HELLOTRACKS_BASE_URL": base_url,
        "HELLOTRACKS_API_KEY": api_key,
        **extra,
    }


def cli_command(*args: str) -> list[str]:
    """`hellotracks ARGS...` as the current interpreter runs it."""
    return [sys.executable, "-m", "pipelines", *args]


def sync_command(first: int, last: int) -> list[str]:
    return cli_command("sync", "--from", str(first), "--to", str(last))


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run `python -m pipelines ...` to its end, its output captured as text."""
    return subprocess.run(
        args, env=env, cwd=PROJECT, capture_output=True, text=True, timeout=timeout
    )


def start_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start `python -m pipelines ...` with its output captured as text."""
    return subprocess.Popen(
        args,
        env=env,
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
