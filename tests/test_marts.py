"""The marts and the fleet chart, built for real over synced days and checked against the fleet.

One sandbox fleet is synced for Thursday 23 to Tuesday 28 October 2025 (the clocks go back in
Vienna on the Sunday), the marts and the chart are materialized for that range, and every mart
row is compared with figures computed here, in plain Python, from the fleet's ground truth.
The edge cases the marts promise to handle each have a test that first shows the case occurs.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import matplotlib.image
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult, materialize

from assets.chart import CHART_FILE, fleet_chart, read_fleet_series
from assets.marts import MARTS, MartSourceError, build_marts, marts
from pipelines.schedules import range_tags
from resources.warehouse import WarehouseResource
from sandbox.fleet import Fleet, job_progress
from sandbox.server import run_sandbox
from tests.pipeline_support import QUIET, query, sync

FIRST, LAST = 20251023, 20251028
DAYS = [20251023, 20251024, 20251025, 20251026, 20251027, 20251028]
ZONE = "Europe/Vienna"
DOCS = Path(__file__).resolve().parent.parent / "README.md"

# One sync serves every test here: keep the module on one xdist worker.
pytestmark = pytest.mark.xdist_group("marts")


@dataclass
class Built:
    fleet: Fleet
    warehouse: Path
    result: ExecuteInProcessResult


def materialize_marts(warehouse: Path, first: int, last: int) -> ExecuteInProcessResult:
    return materialize(
        [marts, fleet_chart],
        tags=range_tags(str(first), str(last)),
        resources={"warehouse": WarehouseResource(directory=str(warehouse))},
        instance=DagsterInstance.ephemeral(),
        run_config=QUIET,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    """A warehouse synced for FIRST..LAST, with the marts and the chart built for the range."""
    warehouse = tmp_path_factory.mktemp("marts")
    with run_sandbox(seed=7, members=16, today=20251029, timezone=ZONE) as server:
        assert sync(server, warehouse, FIRST, LAST).success
        fleet = server.fleet
    # Built here whether or not the sync job already includes the marts: a rebuild must not
    # change them (test_rebuilding_days_changes_nothing).
    result = materialize_marts(warehouse, FIRST, LAST)
    assert result.success
    return Built(fleet, warehouse, result)


# ----------------------------------------------------------------------------- ground truth


def ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.replace(tzinfo=UTC).timestamp() * 1000)


def local_ms(day: int, hhmm: int, zone: str) -> int:
    """The instant of wall-clock `hhmm` on `day` in `zone`; 2400 is the next local midnight."""
    midnight = datetime(day // 10000, day // 100 % 100, day % 100, tzinfo=ZoneInfo(zone))
    return int((midnight + timedelta(minutes=hhmm // 100 * 60 + hhmm % 100)).timestamp() * 1000)


def minutes(a: int, b: int) -> float:
    return (b - a) / 60_000


class Truth:
    """What the marts should say, worked out from the fleet's own jobs, tracks and roster."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.roster = {m["uid"]: m for m in fleet.accounts()}
        self.company_zone = fleet.company()["timezone"]
        self.jobs = {day: fleet.jobs(day) for day in DAYS}
        self.tracks = {day: fleet.tracks(*fleet.day_window_ms(day)) for day in DAYS}

    def zone(self, uid: str) -> str:
        member = self.roster.get(uid)
        return member["timezone"] if member else self.company_zone

    def window(self, day: int, job: dict) -> tuple[int, int] | None:
        start, end = job["windowStart"], job["windowEnd"]
        if start == 0 and end == 0:
            return None
        zone = self.zone(job["receiverUid"])
        return local_ms(day, start, zone), local_ms(day, end, zone)

    def on_time(self, day: int, job: dict, zone: str | None = None) -> bool | None:
        window = self.window(day, job)
        if zone is not None and window is not None:
            window = local_ms(day, job["windowStart"], zone), local_ms(day, job["windowEnd"], zone)
        if not job["tsCheckIn"] or window is None:
            return None
        return window[0] <= job["tsCheckIn"] <= window[1]

    @staticmethod
    def on_site(job: dict) -> float | None:
        if job["tsCheckIn"] and job["tsCheckOut"] and job["tsCheckOut"] >= job["tsCheckIn"]:
            return minutes(job["tsCheckIn"], job["tsCheckOut"])
        return None

    def job_figures(self, day: int, jobs: list[dict]) -> dict:
        """The job counts that worker_day, team_day share, for one group of a day's jobs."""
        verdicts = [self.on_time(day, j) for j in jobs]
        timed = [j for j in jobs if self.on_site(j) is not None]
        with_window = sum(v is not None for v in verdicts)
        on_time = sum(v is True for v in verdicts)
        return {
            "jobs_assigned": sum(bool(j["receiverUid"]) for j in jobs),
            "jobs_archived": sum(j.get("status") == "archived" for j in jobs),
            "jobs_done": sum(bool(j["tsDoneSuccess"]) for j in jobs),
            "jobs_failed": sum(bool(j["tsDoneFailed"]) and not j["tsDoneSuccess"] for j in jobs),
            "jobs_rejected": sum(bool(j["tsRejected"]) for j in jobs),
            "arrivals": sum(bool(j["tsCheckIn"]) for j in jobs),
            "arrivals_with_window": with_window,
            "arrivals_on_time": on_time,
            "on_time_rate": on_time / with_window if with_window else None,
            "timed_visits": len(timed),
            "on_site_minutes": sum(self.on_site(j) for j in timed),
            "planned_on_site_minutes": sum(j["onSiteSeconds"] / 60 for j in timed),
        }

    @staticmethod
    def track_figures(tracks: list[dict]) -> dict:
        return {
            "drives": len(tracks),
            "km_driven": sum(t["distance"] for t in tracks) / 1000,
            "minutes_driven": sum(minutes(t["start_ts"], t["end_ts"]) for t in tracks),
        }

    @staticmethod
    def stamps(jobs: list[dict], tracks: list[dict]) -> list[int]:
        out = [t[k] for t in tracks for k in ("start_ts", "end_ts")]
        return out + [j[k] for j in jobs for k in ("tsCheckIn", "tsCheckOut") if j[k]]

    def worker_day(self) -> dict[tuple[int, str], dict]:
        rows = {}
        for day in DAYS:
            jobs, tracks = defaultdict(list), defaultdict(list)
            for job in self.jobs[day]:
                if job["receiverUid"]:
                    jobs[job["receiverUid"]].append(job)
            for track in self.tracks[day]:
                tracks[track["owner_uid"]].append(track)
            for uid in jobs.keys() | tracks.keys():
                stamps = self.stamps(jobs[uid], tracks[uid])
                zone = ZoneInfo(self.zone(uid))
                first = datetime.fromtimestamp(min(stamps) / 1000, zone).replace(tzinfo=None)
                rows[day, uid] = {
                    "timezone": self.zone(uid),
                    **self.job_figures(day, jobs[uid]),
                    **self.track_figures(tracks[uid]),
                    "first_activity_at": min(stamps),
                    "last_activity_at": max(stamps),
                    "first_activity_local": first,
                }
        return rows

    def team_day(self) -> dict[tuple[int, int], dict]:
        rows = {}
        for day in DAYS:
            jobs, tracks = defaultdict(list), defaultdict(list)
            for job in self.jobs[day]:
                jobs[job["teamId"]].append(job)
            for track in self.tracks[day]:
                member = self.roster.get(track["owner_uid"])
                for team in (member and member["teams"]) or [0]:
                    tracks[team].append(track)
            for team in jobs.keys() | tracks.keys():
                rows[day, team] = {
                    "jobs_total": len(jobs[team]),
                    "jobs_unassigned": sum(not j["receiverUid"] for j in jobs[team]),
                    "workers": len({j["receiverUid"] for j in jobs[team] if j["receiverUid"]}),
                    **self.job_figures(day, jobs[team]),
                    **self.track_figures(tracks[team]),
                    "drivers": len({t["owner_uid"] for t in tracks[team]}),
                }
        return rows

    def place_visits(self) -> dict[tuple[int, str], dict]:
        rows = {}
        for day in DAYS:
            by_place = defaultdict(list)
            for job in self.jobs[day]:
                if job["placeUid"]:
                    by_place[job["placeUid"]].append(job)
            for place, jobs in by_place.items():
                visited = [j for j in jobs if j["tsCheckIn"]]
                timed = [self.on_site(j) for j in jobs if self.on_site(j) is not None]
                rows[day, place] = {
                    "jobs": len(jobs),
                    "visits": len(visited),
                    "visitors": len({j["receiverUid"] for j in visited}),
                    "timed_visits": len(timed),
                    "on_site_minutes": sum(timed),
                    "avg_on_site_minutes": sum(timed) / len(timed) if timed else None,
                    "first_check_in_at": min((j["tsCheckIn"] for j in visited), default=None),
                }
        return rows


@pytest.fixture(scope="module")
def truth(built) -> Truth:
    return Truth(built.fleet)


def rows(warehouse: Path, table: str) -> list[dict]:
    con = duckdb.connect(str(warehouse / "hellotracks.duckdb"), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        relation = con.sql(f"SELECT * FROM {table} ORDER BY ALL")
        names = relation.columns
        return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]
    finally:
        con.close()


def assert_figures(actual: dict, expected: dict, where: object) -> None:
    """Every expected figure equals the mart's: counts exactly, minutes and km to 1e-6."""
    for name, value in expected.items():
        got = actual[name]
        if isinstance(got, datetime) and isinstance(value, int):
            got = ms(got)
        if isinstance(value, float):
            assert got == pytest.approx(value, abs=1e-6), (where, name)
        else:
            assert got == value, (where, name)


# ----------------------------------------------------------------------------- whole marts


def test_job_timeline_matches_the_fleet_job_by_job(built, truth):
    found = {(r["day"], r["job_id"]): r for r in rows(built.warehouse, "job_timeline")}
    expected = {(day, j["id"]): j for day in DAYS for j in truth.jobs[day]}
    assert found.keys() == expected.keys()
    for (day, _), job in expected.items():
        row = found[day, job["id"]]
        assert row["worker_uid"] == (job["receiverUid"] or None)
        assert row["progress"] == job_progress(job)
        assert row["timezone"] == truth.zone(job["receiverUid"])
        assert row["on_time"] == truth.on_time(day, job)
        assert row["on_site_minutes"] == pytest.approx(truth.on_site(job))
        assert row["planned_on_site_minutes"] == pytest.approx(job["onSiteSeconds"] / 60)
        window = truth.window(day, job)
        assert (ms(row["window_start_at"]), ms(row["window_end_at"])) == (window or (None, None))
        for column, field in (
            ("minutes_to_assigned", "tsAssigned"),
            ("minutes_to_accepted", "tsAccepted"),
            ("minutes_to_rejected", "tsRejected"),
            ("minutes_to_check_in", "tsCheckIn"),
        ):
            want = minutes(job["tsCreated"], job[field]) if job[field] else None
            assert row[column] == pytest.approx(want), (job["id"], column)
        done = job["tsDoneSuccess"] or job["tsDoneFailed"]
        want = minutes(job["tsCreated"], done) if done else None
        assert row["minutes_to_done"] == pytest.approx(want)


def test_worker_day_matches_the_fleet_member_by_member(built, truth):
    found = {(r["day"], r["member_uid"]): r for r in rows(built.warehouse, "worker_day")}
    expected = truth.worker_day()
    assert found.keys() == expected.keys()
    for key, figures in expected.items():
        assert_figures(found[key], figures, key)
    # Several members on several days, so the comparison above is not a vacuous one.
    assert len({uid for _, uid in expected}) >= 8 and len({day for day, _ in expected}) == 6


def test_team_day_matches_the_fleet_team_by_team(built, truth):
    found = {(r["day"], r["team_id"]): r for r in rows(built.warehouse, "team_day")}
    expected = truth.team_day()
    assert found.keys() == expected.keys()
    for key, figures in expected.items():
        assert_figures(found[key], figures, key)
    names = {t["id"]: t["name"] for t in built.fleet.company()["teams_config"]}
    assert {r["team_name"] for r in found.values() if r["team_id"]} == set(names.values())
    assert len({team for _, team in expected if team}) == 2


def test_place_visits_match_the_fleet_place_by_place(built, truth):
    found = {(r["day"], r["place_uid"]): r for r in rows(built.warehouse, "place_visits")}
    expected = truth.place_visits()
    assert found.keys() == expected.keys()
    for key, figures in expected.items():
        assert_figures(found[key], figures, key)
    names = {p["uid"]: p["name"] for p in built.fleet.places()}
    assert all(r["place_name"] == names[r["place_uid"]] for r in found.values())
    assert any(r["visits"] > 1 for r in found.values())


def test_mileage_reconciles_to_within_rounding(built, truth):
    found = {
        (r["day"], r["member_uid"]): r for r in rows(built.warehouse, "mileage_reconciliation")
    }
    _, report = built.fleet.report("mileage", DAYS)
    reported = {(day, uid): km for day, uid, _name, km, _trips in report}
    assert found.keys() == reported.keys()
    for key, row in found.items():
        tracks = [t for t in truth.tracks[key[0]] if t["owner_uid"] == key[1]]
        assert row["tracks_km"] == pytest.approx(sum(t["distance"] for t in tracks) / 1000)
        assert row["report_km"] == reported[key] and row["in_report"]
        # The report rounds to whole metres.
        assert abs(row["difference_km"]) <= 0.0005 + 1e-9, key
        assert row["matches"], key


# ----------------------------------------------------------------------------- edge cases


def timeline(built: Built) -> dict[str, dict]:
    return {r["job_id"]: r for r in rows(built.warehouse, "job_timeline")}


def test_a_job_without_check_in_is_no_arrival_and_has_no_verdict(built, truth):
    by_id = timeline(built)
    absent = [
        (day, j)
        for day in DAYS
        for j in truth.jobs[day]
        if j["receiverUid"] and not j["tsCheckIn"] and truth.window(day, j)
    ]
    assert absent, "the fleet should have jobs with a window that nobody checked in to"
    for _, job in absent:
        row = by_id[job["id"]]
        assert row["window_kind"] in ("window", "all_day")
        assert row["on_time"] is None and row["arrival"] is None and row["minutes_late"] is None
    day, job = absent[0]
    (member,) = [
        r
        for r in rows(built.warehouse, "worker_day")
        if (r["day"], r["member_uid"]) == (day, job["receiverUid"])
    ]
    mine = [j for j in truth.jobs[day] if j["receiverUid"] == job["receiverUid"]]
    assert member["arrivals"] == sum(bool(j["tsCheckIn"]) for j in mine) < len(mine)


def test_jobs_without_a_window_stay_out_of_the_on_time_rate(built, truth):
    by_id = timeline(built)
    open_ended = [j for day in DAYS for j in truth.jobs[day] if j["tsCheckIn"]]
    open_ended = [j for j in open_ended if (j["windowStart"], j["windowEnd"]) == (0, 0)]
    assert open_ended, "the fleet should have checked-in jobs without a window (0/0)"
    for job in open_ended:
        row = by_id[job["id"]]
        assert row["window_kind"] == "none" and row["on_time"] is None
    arrivals = sum(r["arrivals"] for r in rows(built.warehouse, "worker_day"))
    with_window = sum(r["arrivals_with_window"] for r in rows(built.warehouse, "worker_day"))
    assert with_window == arrivals - len(open_ended)


def test_a_job_checked_out_after_midnight_keeps_its_minutes_on_its_day(built, truth):
    by_id = timeline(built)
    crossing = []
    for day in DAYS:
        for job in truth.jobs[day]:
            if not (job["receiverUid"] and job["tsCheckOut"]):
                continue
            next_midnight = local_ms(day, 2400, truth.zone(job["receiverUid"]))
            if job["tsCheckOut"] >= next_midnight:
                crossing.append((day, job))
    assert crossing, "the fleet should have jobs checked out after local midnight"
    worker_days = {(r["day"], r["member_uid"]): r for r in rows(built.warehouse, "worker_day")}
    for day, job in crossing:
        whole = minutes(job["tsCheckIn"], job["tsCheckOut"])
        assert by_id[job["id"]]["on_site_minutes"] == pytest.approx(whole)
        assert by_id[job["id"]]["day"] == day
        assert worker_days[day, job["receiverUid"]]["on_site_minutes"] >= whole - 1e-6


def test_a_member_without_tracks_drove_zero_km_rather_than_missing(built, truth):
    quiet = []
    for day in DAYS:
        drivers = {t["owner_uid"] for t in truth.tracks[day]}
        workers = {j["receiverUid"] for j in truth.jobs[day] if j["receiverUid"]}
        quiet += [(day, uid) for uid in workers - drivers]
    assert quiet, "the fleet should have a member with jobs but no tracks on some day"
    worker_days = {(r["day"], r["member_uid"]): r for r in rows(built.warehouse, "worker_day")}
    for key in quiet:
        row = worker_days[key]
        assert (row["drives"], row["km_driven"], row["minutes_driven"]) == (0, 0.0, 0.0)


def test_unassigned_jobs_are_in_team_day_and_not_in_worker_day(built, truth):
    unassigned = sum(not j["receiverUid"] for day in DAYS for j in truth.jobs[day])
    assigned = sum(bool(j["receiverUid"]) for day in DAYS for j in truth.jobs[day])
    assert unassigned > 0
    worker_days = rows(built.warehouse, "worker_day")
    assert all(r["member_uid"] is not None for r in worker_days)
    assert sum(r["jobs_assigned"] for r in worker_days) == assigned
    assert sum(r["jobs_unassigned"] for r in rows(built.warehouse, "team_day")) == unassigned


def test_windows_are_read_in_the_workers_own_time_zone(built, truth):
    by_id = timeline(built)
    abroad = [
        (day, j)
        for day in DAYS
        for j in truth.jobs[day]
        if j["tsCheckIn"] and truth.window(day, j) and truth.zone(j["receiverUid"]) != ZONE
    ]
    assert abroad, "the fleet should have checked-in jobs of workers outside Vienna"
    # The verdict must be the one in the worker's zone, and for some jobs the company's zone
    # would have said otherwise: reading every window in Vienna time would fail here.
    differs = 0
    for day, job in abroad:
        assert by_id[job["id"]]["on_time"] == truth.on_time(day, job)
        differs += truth.on_time(day, job) != truth.on_time(day, job, zone=ZONE)
    assert differs > 0


@pytest.fixture
def scratch(built, tmp_path) -> Path:
    """A copy of the built warehouse that a test may change."""
    shutil.copy(built.warehouse / "hellotracks.duckdb", tmp_path / "hellotracks.duckdb")
    return tmp_path


def edit(warehouse: Path, sql: str, params: list | None = None) -> None:
    con = duckdb.connect(str(warehouse / "hellotracks.duckdb"))
    try:
        con.execute(sql, params or [])
    finally:
        con.close()


def rebuild_one(warehouse: Path, day: int, partition_zone: str = ZONE) -> dict[str, dict]:
    build_marts(WarehouseResource(directory=str(warehouse)), [day], partition_zone)
    return {r["job_id"]: r for r in rows(warehouse, "job_timeline") if r["day"] == day}


def hhmm_of(ts_ms: int, zone: str) -> int:
    moment = datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(zone))
    return moment.hour * 100 + moment.minute


# Windows as functions of the hour `h` (HHMM, minutes dropped) in which the job was checked in to.
WINDOW_CASES = [
    # window, window_kind, on_time, arrival
    (lambda h: (0, 0), "none", None, None),  # 0/0: no window, so out of the on-time rate
    (lambda h: (None, None), "none", None, None),  # missing fields: no window either
    (lambda h: (0, 2400), "all_day", True, "on_time"),  # any check-in on the day
    (lambda h: (h - 100, h + 100), "window", True, "on_time"),
    (lambda h: (h - 200, h - 100), "window", False, "late"),
    (lambda h: (h + 100, 2400), "window", False, "early"),
    (lambda h: (1275, 1400), "invalid", None, None),  # 75 is no minute
    (lambda h: (1400, 1300), "invalid", None, None),  # ends before it starts
    (lambda h: (-5, 100), "invalid", None, None),
    (lambda h: (0, 2401), "invalid", None, None),
    (lambda h: (0, 10**15), "invalid", None, None),  # far out of range: no overflow either
]


def test_time_window_quirks(scratch, truth):
    day = 20251024
    jobs = []
    for job in truth.jobs[day]:
        if job["tsCheckIn"] and job["receiverUid"]:
            hour = hhmm_of(job["tsCheckIn"], truth.zone(job["receiverUid"])) // 100 * 100
            if 200 <= hour <= 2100:  # room for the windows around it
                jobs.append((job, hour))
    assert len(jobs) >= len(WINDOW_CASES)
    con = duckdb.connect(str(scratch / "hellotracks.duckdb"))
    try:
        for (job, hour), (window, *_) in zip(jobs, WINDOW_CASES, strict=False):
            con.execute(
                "UPDATE jobs SET window_start_hhmm = ?, window_end_hhmm = ? WHERE job_id = ?",
                [*window(hour), job["id"]],
            )
    finally:
        con.close()

    by_id = rebuild_one(scratch, day)

    for (job, hour), (window, kind, on_time, arrival) in zip(jobs, WINDOW_CASES, strict=False):
        row = by_id[job["id"]]
        got = (row["window_kind"], row["on_time"], row["arrival"])
        assert got == (kind, on_time, arrival), window(hour)
        if arrival == "late":
            end = local_ms(day, hour - 100, truth.zone(job["receiverUid"]))
            assert row["minutes_late"] == pytest.approx(minutes(end, job["tsCheckIn"]))
        elif arrival is not None:
            assert row["minutes_late"] == 0


# Each company zone with the members' zones tried under it: a member's zone in the roster (None:
# not in any snapshot) and the zone their window must be read in. The partitions' zone is UTC.
ZONE_CASES = {
    "Asia/Tokyo": [
        ("America/Chicago", "America/Chicago"),  # the member's own zone
        ("Not/AZone", "Asia/Tokyo"),  # a name DuckDB does not know: the company's
        ("", "Asia/Tokyo"),
        (None, "Asia/Tokyo"),  # a worker no snapshot lists
    ],
    "": [("", "UTC")],  # no company zone either: the partitions'
    "Mars/Olympus": [("", "UTC")],
}


def test_time_zone_fallbacks(scratch, truth):
    day = 20251024
    first_jobs = {}
    for job in truth.jobs[day]:
        if job["tsCheckIn"] and job["receiverUid"] and job["windowEnd"]:
            first_jobs.setdefault(job["receiverUid"], job)
    jobs = list(first_jobs.values())
    for company_zone, members in ZONE_CASES.items():
        edit(scratch, "UPDATE company SET timezone = ?", [company_zone])
        for job, (member_zone, _) in zip(jobs, members, strict=False):
            if member_zone is None:
                edit(scratch, "DELETE FROM members WHERE member_uid = ?", [job["receiverUid"]])
            else:
                edit(
                    scratch,
                    "UPDATE members SET timezone = ? WHERE member_uid = ?",
                    [member_zone, job["receiverUid"]],
                )

        by_id = rebuild_one(scratch, day, partition_zone="UTC")

        for job, (member_zone, expected) in zip(jobs, members, strict=False):
            row = by_id[job["id"]]
            assert row["timezone"] == expected, (company_zone, member_zone)
            assert ms(row["window_start_at"]) == local_ms(day, job["windowStart"], expected)
            # Without a roster entry the name comes from the job itself.
            assert row["worker_name"] == job["workerName"]


def test_missing_source_tables_fail_before_anything_is_written(tmp_path):
    edit(tmp_path, "CREATE TABLE jobs (day INTEGER)")
    with pytest.raises(MartSourceError, match="company.*members.*places.*report_mileage"):
        build_marts(WarehouseResource(directory=str(tmp_path)), [FIRST], ZONE)
    assert query(tmp_path, "SELECT count(*) FROM duckdb_tables()") == [(1,)]


# ----------------------------------------------------------------------------- rebuilds, docs


def test_materializations_report_rows_and_documented_columns(built):
    events = built.result.get_asset_materialization_events()
    metadata = {e.asset_key.to_user_string(): e.materialization.metadata for e in events}
    for mart in MARTS:
        per_day = dict(query(built.warehouse, f"SELECT day, count(*) FROM {mart.name} GROUP BY 1"))
        counted = {
            int(e.materialization.partition): e.materialization.metadata["dagster/row_count"].value
            for e in events
            if e.asset_key.to_user_string() == mart.name
        }
        assert {day: n for day, n in counted.items() if n} == per_day, mart.name
        assert metadata[mart.name]["rows_in_run"].value == sum(per_day.values()) > 0
        # The columns ride on the run's last day only, the latest materialization.
        (latest,) = [
            e.materialization
            for e in events
            if e.asset_key.to_user_string() == mart.name
            and "dagster/column_schema" in e.materialization.metadata
        ]
        assert latest.partition == str(LAST), mart.name
        schema = latest.metadata["dagster/column_schema"].schema
        names = [c.name for c in schema.columns]
        table_columns = [r[0] for r in query(built.warehouse, f"DESCRIBE {mart.name}")]
        assert names == table_columns == list(mart.column_docs), mart.name
        assert all(c.description for c in schema.columns), mart.name


def test_docs_describe_every_column_of_every_mart():
    text = DOCS.read_text(encoding="utf-8")
    sections = re.split(r"^### ", text, flags=re.MULTILINE)
    for mart in MARTS:
        (section,) = [s for s in sections if s.startswith(f"`{mart.name}`")]
        documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)
        assert documented == list(mart.column_docs), mart.name
        assert f"FROM {mart.name}" in section, f"{mart.name} needs an example query"


# ----------------------------------------------------------------------------- the chart


def test_the_chart_is_a_png_of_the_synced_days(built, truth):
    path = built.warehouse / CHART_FILE
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _channels = matplotlib.image.imread(path).shape
    assert 400 <= height <= 2000 and 600 <= width <= 3000
    assert [p.name for p in path.parent.iterdir()] == ["fleet.png"]  # no temporary files left

    events = [
        e
        for e in built.result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "fleet_chart"
    ]
    # One picture per run, not one copy per day: the chart is not partitioned.
    (event,) = events
    assert event.partition is None
    metadata = event.materialization.metadata
    embedded = re.search(r"base64,([A-Za-z0-9+/=]+)\)", metadata["chart"].value).group(1)
    assert base64.b64decode(embedded) == png
    assert Path(metadata["path"].value) == path
    assert metadata["days"].value == f"{FIRST}..{LAST} ({len(DAYS)})"


def test_the_chart_reads_the_figures_it_draws_from_the_marts(built, truth):
    con = duckdb.connect(str(built.warehouse / "hellotracks.duckdb"), read_only=True)
    try:
        series = read_fleet_series(con)
    finally:
        con.close()
    assert series.days == DAYS
    done = [sum(bool(j["tsDoneSuccess"]) for j in truth.jobs[day]) for day in DAYS]
    assert series.jobs_done == done
    km = [sum(t["distance"] for t in truth.tracks[day]) / 1000 for day in DAYS]
    assert series.km_driven == pytest.approx(km)
    per_member = defaultdict(int)
    for day in DAYS:
        for job in truth.jobs[day]:
            if job["tsDoneSuccess"] and job["receiverUid"]:
                per_member[job["workerName"]] += 1
    busiest = sorted(per_member.items(), key=lambda item: (-item[1], item[0]))[:10]
    assert series.busiest == busiest


# Last: it materializes again, so every test above sees the fixture's own run.
def test_rebuilding_days_changes_nothing(built):
    before = {mart.name: rows(built.warehouse, mart.name) for mart in MARTS}
    # One day of the range again: its rows are replaced, the other days' are left alone.
    assert materialize_marts(built.warehouse, 20251024, 20251024).success
    after = {mart.name: rows(built.warehouse, mart.name) for mart in MARTS}
    assert after == before
