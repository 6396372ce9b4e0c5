"""Syncs that run at the same time share one warehouse and one Dagster instance safely."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import duckdb
import pytest
from dagster import DagsterInstance

from pipelines.cli import ensure_instance
from sandbox.server import run_sandbox
from tests.reliability_support import (
    PROJECT,
    cli_command,
    cli_env,
    differences,
    expected_keys,
    expected_points,
    loaded_keys,
    loaded_points,
    start_cli,
    sync_command,
)

POOL = "hellotracks_api"


@pytest.mark.slow
def test_two_overlapping_syncs_started_together_both_load_the_truth(tmp_path):
    ranges = [(20251006, 20251009), (20251008, 20251011)]
    days = list(range(20251006, 20251012))
    with run_sandbox(seed=21, members=5, today=20251015) as server:
        # One instance and one warehouse, neither created yet: the two syncs race to make both.
        env = cli_env(tmp_path, server.url, server.api_key)
        processes = [start_cli([*sync_command(*days_), "--quiet"], env) for days_ in ranges]
        outputs = [process.communicate(timeout=600) for process in processes]
        truth = expected_keys(server.fleet, days)
        points = expected_points(server.fleet, days)

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
    warehouse = tmp_path / "warehouse"
    assert differences(truth, loaded_keys(warehouse, days)) == []
    assert loaded_points(warehouse, days) == points
    runs = DagsterInstance.from_config(str(tmp_path / "dagster_home")).get_runs()
    assert sorted(run.status.value for run in runs) == ["SUCCESS", "SUCCESS"]


@pytest.mark.slow
def test_a_sync_waits_for_the_api_pool_and_says_so(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ensure_instance()
    instance = DagsterInstance.from_config(str(home))
    storage = instance.event_log_storage
    # Another run (say one launched from the UI) holds the pool's only slot.
    storage.initialize_concurrency_limit_to_default(POOL)
    assert storage.claim_concurrency_slot(POOL, "other-run", "jobs").is_claimed

    day = 20251010
    with run_sandbox(seed=21, members=4, today=20251015) as server:
        process = start_cli(
            [*sync_command(day, day), "--quiet"], cli_env(tmp_path, server.url, server.api_key)
        )
        lines: list[str] = []
        waiting = threading.Event()

        def follow() -> None:
            for line in process.stderr:
                lines.append(line)
                if line.startswith("waiting"):
                    waiting.set()

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        said_so = waiting.wait(timeout=300)
        requests_while_held = len(server.requests())
        storage.free_concurrency_slot_for_step("other-run", "jobs")
        process.wait(timeout=300)
        follower.join()
        truth = expected_keys(server.fleet, [day])

    stderr = "".join(lines)
    assert said_so, stderr
    assert f"another run holds the {POOL} pool" in stderr
    # While the slot was taken, no step of the sync reached the API.
    assert requests_while_held == 0
    assert process.returncode == 0, stderr
    assert differences(truth, loaded_keys(tmp_path / "warehouse", [day])) == []


# Holds the warehouse open for writing, as a sync's load does, until its stdin closes.
_WRITER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("INSERT INTO jobs VALUES (2)")
print("holding", flush=True)
sys.stdin.read()
"""


def test_a_query_during_a_load_waits_for_it_instead_of_failing(tmp_path):
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    database = warehouse / "hellotracks.duckdb"
    setup = duckdb.connect(str(database))
    setup.execute("CREATE TABLE jobs AS SELECT 1 AS x")
    setup.close()
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "holding"
        env = cli_env(tmp_path, "http://127.0.0.1:9/api", "unused")
        reader = start_cli(
            cli_command("sql", "SELECT sum(x) AS n FROM jobs", "--format", "csv"), env
        )
        time.sleep(4)
        # Still there: waiting for the lock, not failed on it.
        assert reader.poll() is None
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    assert out.splitlines() == ["n", "3"]


# Opens the instance the way a sync does, as soon as the starting gun (a file) appears.
_OPENER = """
import sys, time
from pathlib import Path
from pipelines.cli import open_instance
gun = Path(sys.argv[1])
print("ready", flush=True)
while not gun.exists():
    time.sleep(0.005)
open_instance()
"""


def test_syncs_opening_a_new_instance_at_the_same_moment_do_not_collide(tmp_path):
    gun = tmp_path / "go"
    env = cli_env(tmp_path, "http://127.0.0.1:9/api", "unused")
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", _OPENER, str(gun)],
            env=env,
            cwd=PROJECT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    # Each waits for the gun once its imports are done; a new instance's SQLite databases are
    # then created by three processes at once, which without a lock fails in some of them.
    assert [opener.stdout.readline().strip() for opener in openers] == ["ready"] * 3
    gun.touch()
    errors = [opener.communicate(timeout=120)[1] for opener in openers]
    assert [opener.returncode for opener in openers] == [0, 0, 0], errors
    assert (tmp_path / "dagster_home" / "history" / "runs.db").exists()
