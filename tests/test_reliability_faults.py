"""A two-week sync against a sandbox that misbehaves in every way at once still loads the truth."""

from __future__ import annotations

from collections import Counter

import pytest

from sandbox.server import Faults, run_sandbox
from tests.pipeline_support import query, sync
from tests.reliability_support import (
    differences,
    expected_keys,
    expected_points,
    loaded_keys,
    loaded_points,
)

FIRST, LAST = 20251001, 20251014
DAYS = list(range(FIRST, LAST + 1))

HOSTILE = Faults(
    server_error_rate=0.10,  # HTTP 500/502/503 with an HTML body
    rate_limit_per_second=5.0,  # throttled (-9) whenever the client bursts past 5 requests/s
    truncate_rate=0.05,  # the body stops halfway through its announced length
    not_ready_reports=2,  # each report answers -7 twice before the file comes
    ignore_skip=True,  # every page is the first page again
    seed=20251014,
)


@pytest.fixture(scope="module")
def hostile_sync(tmp_path_factory):
    """Two weeks synced as one range run through every fault above, and the sandbox it used."""
    warehouse = tmp_path_factory.mktemp("hostile")
    with run_sandbox(seed=3, members=8, today=20251015, faults=HOSTILE) as server:
        result = sync(
            server,
            warehouse,
            FIRST,
            LAST,
            raise_on_error=False,
            page_size=20,
            max_retries=12,
            not_ready_retries=6,
            backoff_base_seconds=0.01,
            # Also the ceiling of the pace after throttling: 4 requests/s, under the limit.
            backoff_max_seconds=0.25,
        )
        yield server, warehouse, result


@pytest.mark.slow
def test_every_fault_was_met(hostile_sync):
    server, _, result = hostile_sync
    assert result.success
    faults = Counter(
        part for record in server.requests() if record.fault for part in record.fault.split("+")
    )
    # Without these the test below would prove nothing about surviving them.
    assert faults["http500"] + faults["http502"] + faults["http503"] >= 3, faults
    assert faults["truncated"] >= 1, faults
    assert faults["throttled"] >= 1, faults
    assert faults["not_ready"] == 2 * 3, faults  # three reports, two -7 answers each
    assert faults["skip_ignored"] >= 1, faults


@pytest.mark.slow
def test_the_warehouse_equals_the_ground_truth(hostile_sync):
    server, warehouse, result = hostile_sync
    assert result.success
    assert differences(expected_keys(server.fleet, DAYS), loaded_keys(warehouse, DAYS)) == []
    assert loaded_points(warehouse, DAYS) == expected_points(server.fleet, DAYS)
    # Nothing was wrong with the data itself, so nothing may sit in the quarantine.
    assert query(warehouse, "SELECT count(*) FROM quarantine") == [(0,)]
    loads = query(warehouse, "SELECT table_name, count(*) FROM _loads GROUP BY ALL")
    assert {table: n for table, n in loads if table in ("jobs", "tracks")} == {
        "jobs": len(DAYS),
        "tracks": len(DAYS),
    }


@pytest.mark.slow
def test_the_retries_are_on_the_record(hostile_sync):
    _, _, result = hostile_sync
    retried = 0
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        if "api_retries" in metadata:
            retried += metadata["api_retries"].value
    # Each materialization reports the retries of its own requests; some of them met a fault.
    assert retried > 0
