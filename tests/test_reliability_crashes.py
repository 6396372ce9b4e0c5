"""Syncs killed at random moments, then run again, leave the truth; no reader ever sees half.

`hellotracks sync` runs in a subprocess that gets SIGKILL a seeded random time after its first
API request, ten times over, while a reader thread keeps opening every Parquet file and counting
each day in DuckDB. Then one sync runs to the end. Each Parquet file must read whole, and hold all
of its day; each table's day in DuckDB must hold nothing or all of its rows.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from sandbox.server import run_sandbox
from tests.reliability_support import (
    TABLE_KEYS,
    cli_env,
    differences,
    expected_keys,
    expected_points,
    loaded_keys,
    loaded_points,
    run_cli,
    start_cli,
    sync_command,
)

FIRST, LAST = 20251009, 20251011
DAYS = list(range(FIRST, LAST + 1))
KILLS = 10
SEED = 1009
# Kill moments are drawn from [0, span) seconds after the first request. The span starts as a
# guess and shrinks to the length of any sync that finishes before its kill, so a fast machine
# does not spend its trials on syncs that are already done.
FIRST_SPAN_SECONDS = 8.0


class Reader(threading.Thread):
    """Reads the warehouse over and over while it is written; collects what should not be."""

    def __init__(self, warehouse: Path, truth: dict, points: dict[int, int]) -> None:
        super().__init__(name="warehouse-reader", daemon=True)
        self.warehouse = warehouse
        self.expected = {
            table: {d: len(keys) for d, keys in days.items()} for table, days in truth.items()
        }
        self.expected["track_points"] = points
        self.stop = threading.Event()
        self.problems: list[str] = []
        self.files_read = 0
        self.database_reads = 0
        self.complete_days_seen = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.read_parquet()
            self.read_duckdb()
            self.stop.wait(0.25)

    def read_parquet(self) -> None:
        for path in sorted((self.warehouse / "parquet").glob("*/day=*/*.parquet")):
            table, day = path.parent.parent.name, int(path.parent.name.removeprefix("day="))
            try:
                rows = pq.read_table(path).num_rows
            except Exception as exc:  # any failure to read is what this test looks for
                self.problems.append(f"{path}: unreadable: {exc}")
                continue
            self.files_read += 1
            wanted = self.expected.get(table, {}).get(day)
            if wanted is not None and rows != wanted:
                self.problems.append(f"{path}: {rows} rows, the day has {wanted}")

    def read_duckdb(self) -> None:
        database = self.warehouse / "hellotracks.duckdb"
        if not database.exists():
            return
        try:
            con = duckdb.connect(str(database), read_only=True)
        except duckdb.IOException:
            return  # a sync holds the write lock; look again later
        try:
            tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
            for table, per_day in self.expected.items():
                if table not in tables:
                    continue
                counts = dict(
                    con.execute(f'SELECT day, count(*) FROM "{table}" GROUP BY day').fetchall()
                )
                for day, wanted in per_day.items():
                    found = counts.get(day, 0)
                    if found == wanted:
                        self.complete_days_seen += found > 0
                    elif found:
                        self.problems.append(f"{table} {day}: {found} rows, the day has {wanted}")
            if "_loads" in tables:
                # The book of loaded days must agree with the rows it vouches for.
                for table, day, booked in con.execute(
                    "SELECT table_name, day, row_count FROM _loads"
                ).fetchall():
                    found = con.execute(
                        f'SELECT count(*) FROM "{table}" WHERE day = ?', [day]
                    ).fetchone()[0]
                    if found != booked:
                        self.problems.append(f"_loads says {table} {day} has {booked}: {found}")
            self.database_reads += 1
        finally:
            con.close()


@pytest.mark.slow
def test_killed_syncs_then_one_more_leave_the_ground_truth(tmp_path):
    rng = random.Random(SEED)
    with run_sandbox(seed=13, members=5, today=20251015) as server:
        truth = expected_keys(server.fleet, DAYS)
        points = expected_points(server.fleet, DAYS)
        env = cli_env(tmp_path, server.url, server.api_key)
        command = [*sync_command(FIRST, LAST), "--quiet"]
        reader = Reader(tmp_path / "warehouse", truth, points)
        reader.start()
        try:
            kills, span = 0, FIRST_SPAN_SECONDS
            for _ in range(3 * KILLS):
                if kills == KILLS:
                    break
                delay = rng.uniform(0, span)
                seen = len(server.requests())
                process = start_cli(command, env)
                if not _reaches_api(server, seen, process):
                    process.kill()
                    process.communicate()
                    pytest.fail("the sync never reached the API: held back by a killed run?")
                started = time.monotonic()
                try:
                    process.communicate(timeout=delay)
                    span = min(span, time.monotonic() - started)
                except subprocess.TimeoutExpired:
                    process.kill()
                    kills += 1
                _, stderr = process.communicate()
                assert process.returncode in (0, -9), stderr
            assert kills == KILLS

            final = run_cli(command, env)
        finally:
            reader.stop.set()
            reader.join()

        assert final.returncode == 0, final.stderr
        assert reader.problems == []
        # The reader did look, and some of what it saw was loaded.
        assert reader.files_read > 0 and reader.database_reads > 0
        assert reader.complete_days_seen > 0
        warehouse = tmp_path / "warehouse"
        assert differences(truth, loaded_keys(warehouse, DAYS)) == []
        assert loaded_points(warehouse, DAYS) == points
        assert set(TABLE_KEYS) <= set(_loaded_tables(warehouse))


def _reaches_api(server, seen: int, process: subprocess.Popen, within: float = 120) -> bool:
    """Wait for the sandbox's first request past `seen`, or for `process` to end.

    A killed run that kept its slot of the API pool would hold every later sync back for good;
    `within` seconds is far more than a sync needs to start.
    """
    deadline = time.monotonic() + within
    while len(server.requests()) == seen and process.poll() is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _loaded_tables(warehouse: Path) -> list[str]:
    con = duckdb.connect(str(warehouse / "hellotracks.duckdb"), read_only=True)
    try:
        return [row[0] for row in con.execute("SELECT DISTINCT table_name FROM _loads").fetchall()]
    finally:
        con.close()
