"""The whole sync job, run for real: a range of days into a temporary warehouse, from the sandbox.

Each test compares the warehouse with the sandbox fleet's ground truth table by table.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance

from sandbox.server import run_sandbox
from tests.pipeline_support import query, sync

FIRST, LAST = 20251006, 20251012
DAYS = list(range(FIRST, LAST + 1))


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """One sandbox and one warehouse holding FIRST..LAST, synced as a single range run."""
    warehouse = tmp_path_factory.mktemp("warehouse")
    with run_sandbox(seed=11, members=10, today=20251015, timezone="Europe/Vienna") as server:
        server.clear_log()
        result = sync(server, warehouse, FIRST, LAST, page_size=25)
        assert result.success
        yield server, warehouse, result


def ids_by_day(warehouse, table, column):
    found: dict[int, set] = {day: set() for day in DAYS}
    for day, key in query(warehouse, f"SELECT day, {column} FROM {table}"):
        found[day].add(key)
    return found


def test_jobs_equal_the_fleet_day_by_day(synced):
    server, warehouse, _ = synced
    expected = {day: {job["id"] for job in server.fleet.jobs(day)} for day in DAYS}
    assert ids_by_day(warehouse, "jobs", "job_id") == expected
    (rows,) = query(warehouse, "SELECT count(*) FROM jobs")
    assert rows[0] == sum(len(v) for v in expected.values())  # no duplicates


def test_tracks_equal_the_fleet_and_split_by_local_start_day(synced):
    server, warehouse, _ = synced
    fleet = server.fleet
    expected = {}
    for day in DAYS:
        start, end = fleet.day_window_ms(day)
        expected[day] = {t["id"] for t in fleet.tracks(start, end)}
    assert ids_by_day(warehouse, "tracks", "track_id") == expected


def test_track_points_match_waypoint_counts(synced):
    _, warehouse, _ = synced
    mismatched = query(
        warehouse,
        """SELECT t.track_id FROM tracks t
           LEFT JOIN (SELECT track_id, count(*) n, min(seq) lo, max(seq) hi
                      FROM track_points GROUP BY ALL) p USING (track_id)
           WHERE p.n IS DISTINCT FROM t.waypoint_count OR p.lo <> 0 OR p.hi <> p.n - 1""",
    )
    assert mismatched == []
    # Times are estimated inside each track's span.
    outside = query(
        warehouse,
        """SELECT count(*) FROM track_points p JOIN tracks t USING (track_id)
           WHERE p.ts < t.start_ts OR p.ts > t.end_ts""",
    )
    assert outside == [(0,)]


def test_snapshots_hold_the_roster_places_and_teams_each_day(synced):
    server, warehouse, _ = synced
    fleet = server.fleet
    roster = {m["uid"] for m in fleet.accounts()}
    for day, uids in ids_by_day(warehouse, "members", "member_uid").items():
        assert uids == roster, day
    places = {p["uid"] for p in fleet.places()}
    assert set(ids_by_day(warehouse, "places", "place_uid")[FIRST]) == places
    teams = {t["id"] for t in fleet.company()["teams_config"]}
    assert ids_by_day(warehouse, "teams", "team_id")[LAST] == teams


def test_reports_reconcile_with_the_raw_tables(synced):
    server, warehouse, _ = synced
    assert ids_by_day(warehouse, "report_jobs", "job_id") == ids_by_day(warehouse, "jobs", "job_id")
    _, rows = server.fleet.report("mileage", DAYS)
    (loaded,) = query(warehouse, "SELECT count(*) FROM report_mileage")
    assert loaded[0] == len(rows)


def test_a_range_run_asks_for_tracks_and_reports_once(synced):
    server, _, _ = synced
    # One gettracks listing for the whole week (pages of 25 plus the empty page that ends it),
    # not one per day; one createreport per report type.
    reports = server.requests("createreport")
    assert len([r for r in reports if r.http_status == 200]) == 3
    tracks = [r for r in server.requests("gettracks") if r.status == 0]
    total = sum(r.rows or 0 for r in tracks)
    assert len(tracks) == -(-total // 25) + 1


def test_every_day_is_one_parquet_file_per_table(synced):
    _, warehouse, _ = synced
    for table in ("jobs", "tracks", "track_points", "members", "report_jobs"):
        files = sorted((warehouse / "parquet" / table).glob("day=*/*.parquet"))
        assert [f.parent.name for f in files] == [f"day={d}" for d in DAYS]
        assert all(f.name == "part-0.parquet" for f in files)
    table = pq.read_table(warehouse / "parquet" / "jobs" / f"day={FIRST}" / "part-0.parquet")
    assert table.schema.field("ts_created").type.unit == "ms"


def test_a_range_run_gives_each_day_its_own_row_count(synced):
    _, warehouse, result = synced
    counts: dict[str, dict[int, int]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.partition is None:
            continue  # the fleet chart, drawn once for the whole run
        table = event.asset_key.to_user_string()
        day = int(materialization.partition)
        assert day not in counts.setdefault(table, {}), (table, day)
        counts[table][day] = materialization.metadata["dagster/row_count"].value
        assert materialization.metadata["days"].value == f"{DAYS[0]}..{DAYS[-1]} ({len(DAYS)})"
    for table in ("jobs", "tracks", "track_points", "members", "report_jobs", "worker_day"):
        loaded = dict(query(warehouse, f"SELECT day, count(*) FROM {table} GROUP BY day"))
        assert set(counts[table]) == set(DAYS), table
        assert {day: n for day, n in counts[table].items() if n} == loaded, table
    # Days of different sizes, so one count copied onto every day would have failed above.
    assert len(set(counts["jobs"].values())) > 1
    # One materialization per asset and day, and no per-day observations beside them.
    assert not [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]


def test_rerunning_a_day_leaves_identical_tables(tmp_path):
    with run_sandbox(seed=11, members=6, today=20251015, timezone="Europe/Vienna") as server:
        assert sync(server, tmp_path, 20251009).success
        before = _snapshot(tmp_path)
        result = sync(server, tmp_path, 20251009)
        assert result.success
        assert _snapshot(tmp_path) == before
    # A one-day run's count is the day's, shown by Dagster as the partition's row count.
    for event in result.get_asset_materialization_events():
        table = event.asset_key.to_user_string()
        if table in ("jobs", "tracks", "track_points", "worker_day"):
            count = event.materialization.metadata["dagster/row_count"].value
            stored = query(tmp_path, f"SELECT count(*) FROM {table} WHERE day = 20251009")
            assert [(count,)] == stored and count > 0, table


def test_a_day_emptied_at_the_source_empties_in_the_warehouse(tmp_path):
    day = 20251009
    with run_sandbox(seed=11, members=6, today=20251015, timezone="Europe/Vienna") as server:
        assert sync(server, tmp_path, day).success
    assert query(tmp_path, "SELECT count(*) FROM jobs WHERE day = ?", [day])[0][0] > 0
    # The same account, but with no history before the 10th: the 9th now has nothing.
    from sandbox.fleet import Fleet

    empty = Fleet(seed=11, members=6, today=20251015, timezone="Europe/Vienna", start_day=20251010)
    with run_sandbox(empty) as server:
        assert sync(server, tmp_path, day).success
    for table in ("jobs", "tracks", "track_points", "report_jobs"):
        assert query(tmp_path, f"SELECT count(*) FROM {table} WHERE day = ?", [day]) == [(0,)]
    loads = query(tmp_path, "SELECT table_name, row_count FROM _loads WHERE day = ?", [day])
    assert dict(loads)["jobs"] == 0  # the day is known to be loaded, and empty


def test_two_syncs_in_one_instance_are_recorded(tmp_path):
    instance = DagsterInstance.ephemeral()
    with run_sandbox(seed=11, members=4, today=20251015, timezone="Europe/Vienna") as server:
        sync(server, tmp_path, 20251008, instance=instance)
        sync(server, tmp_path, 20251009, instance=instance)
    assert len(instance.get_runs()) == 2


def _snapshot(warehouse) -> dict[str, list[tuple]]:
    tables = [row[0] for row in query(warehouse, "SHOW TABLES") if row[0] != "_loads"]
    snapshot = {}
    for table in tables:
        columns = [
            row[0]
            for row in query(warehouse, f"DESCRIBE {table}")
            if row[0] != "fetched_at"  # the one column that is meant to change
        ]
        listed = ", ".join(f'"{c}"' for c in columns)
        snapshot[table] = query(warehouse, f"SELECT {listed} FROM {table} ORDER BY ALL")
    return snapshot


def test_a_member_whose_roster_record_was_quarantined_still_has_tracks_asked_for(tmp_path):
    from assets.jobs import JOBS
    from assets.members import MEMBERS
    from assets.normalize import normalize, quarantine_table
    from assets.tracks import known_members
    from resources.warehouse import WarehouseResource

    warehouse = WarehouseResource(directory=str(tmp_path))
    day = 20251009
    roster = [{"uid": "kept"}, {"uid": "spoiled", "email_verified": "maybe"}]
    members = normalize(MEMBERS, roster, day)
    assert members.quarantined == 1  # the record is set aside, the member is not forgotten
    warehouse.write_day("members", day, members.table)
    warehouse.load_days("members", [day], quarantine_table(members.quarantine))
    warehouse.write_day("jobs", day, JOBS.schema().empty_table())  # a day without jobs
    warehouse.load_days("jobs", [day])

    assert known_members(warehouse, [day]) == ["kept", "spoiled"]
