"""The API key ends up nowhere: not in output, logs, run records, metadata or warehouse files.

Three `hellotracks sync` runs share one instance and one warehouse: one that succeeds, one whose
key was pasted with a newline and whose server quotes the key back in an error, and one whose key
has a space inside. Then every byte under the instance and the warehouse (SQLite files included),
every event and run record read back through Dagster, and everything the command printed, are
searched for the key.
"""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, serialize_value

from sandbox.server import run_sandbox
from tests.reliability_proxy import canned, tampering
from tests.reliability_support import cli_command, cli_env, run_cli, sync_command

KEY = "sk-LEAKCHECK-1234567890"
# The part no other text contains: a key cut short, or printed as bytes, still shows it.
MARK = "LEAKCHECK"
ECHO = b'{"status": -11, "error": "key sk-LEAKCHECK-1234567890 may not read jobs of this day"}'


@pytest.fixture(scope="module")
def after_three_syncs(tmp_path_factory):
    root = tmp_path_factory.mktemp("secrets")
    printed: list[str] = []
    with run_sandbox(seed=23, members=4, today=20251015, api_key=KEY) as server:
        env = cli_env(root, server.url, KEY)
        ok = run_cli(sync_command(20251009, 20251010), env)
        with tampering(server, {"getjobs": canned(ECHO)}) as proxy:
            echoed = run_cli(
                [*sync_command(20251011, 20251011), "--quiet"],
                cli_env(root, proxy.url, KEY + "\n"),
            )
        spaced = run_cli(
            [*sync_command(20251011, 20251011), "--quiet"],
            cli_env(root, server.url, KEY.replace("-", " ", 1)),
        )
        status = run_cli(cli_command("status"), env)
    for done in (ok, echoed, spaced, status):
        printed += [done.stdout, done.stderr]
    return root, (ok, echoed, spaced), printed


def test_the_three_syncs_went_as_expected(after_three_syncs):
    _, (ok, echoed, spaced), _ = after_three_syncs
    assert ok.returncode == 0, ok.stderr
    # The server's complaint reaches the user, with the key blanked out of it.
    assert echoed.returncode != 0
    assert "key *** may not read jobs" in echoed.stderr
    # Only jobs failed: the pasted newline did not stop the key from working elsewhere.
    assert "failed jobs" in echoed.stderr and "failed members" not in echoed.stderr
    assert spaced.returncode != 0
    assert "the API key holds spaces" in spaced.stderr


def test_nothing_printed_holds_the_key(after_three_syncs):
    _, _, printed = after_three_syncs
    assert [text for text in printed if MARK in text] == []


def test_no_file_of_the_instance_or_the_warehouse_holds_the_key(after_three_syncs):
    root, _, _ = after_three_syncs
    files = [path for path in root.rglob("*") if path.is_file()]
    # The instance's SQLite databases and the warehouse's files are all among them.
    assert any(path.suffix == ".db" for path in files)
    assert any(path.suffix == ".duckdb" for path in files)
    assert any(path.suffix == ".parquet" for path in files)
    assert [str(path) for path in files if MARK.encode() in path.read_bytes()] == []


def test_no_run_record_event_or_metadata_entry_holds_the_key(after_three_syncs):
    root, _, _ = after_three_syncs
    instance = DagsterInstance.from_config(str(root / "dagster_home"))
    runs = instance.get_runs()
    assert len(runs) == 3
    events = 0
    for run in runs:
        assert MARK not in serialize_value(run)
        for entry in instance.all_logs(run.run_id):
            events += 1
            assert MARK not in serialize_value(entry), entry.user_message
    assert events > 0
