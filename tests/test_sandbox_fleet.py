"""Invariants of the sandbox's synthetic fleet, its polyline codec and its report files."""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections import Counter, defaultdict
from datetime import date, timedelta

import numpy as np
import pytest
from openpyxl import load_workbook

from sandbox import polyline
from sandbox.fleet import Fleet, job_progress
from sandbox.reports import render_csv, render_xlsx

TODAY = 20240320
# A full week before TODAY, Monday to Sunday, final by now.
WEEK = [20240311 + i for i in range(7)]
PROGRESS_CHAIN = (
    "tsCreated",
    "tsAssigned",
    "tsAccepted",
    "tsCheckIn",
    "tsCheckOut",
)
TS_FIELDS = (
    "tsCreated",
    "tsAssigned",
    "tsAccepted",
    "tsRejected",
    "tsCheckIn",
    "tsCheckOut",
    "tsDoneSuccess",
    "tsDoneFailed",
    "tsSignature",
)


def shift(day: int, n: int) -> int:
    d = date(day // 10000, day // 100 % 100, day % 100) + timedelta(days=n)
    return d.year * 10000 + d.month * 100 + d.day


def haversine_m(points: list[tuple[float, float]]) -> float:
    total = 0.0
    for (lat1, lng1), (lat2, lng2) in zip(points, points[1:], strict=False):
        p1, p2 = math.radians(lat1), math.radians(lat2)
        h = (
            math.sin((p2 - p1) / 2) ** 2
            + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
        )
        total += 2 * 6_371_008.8 * math.asin(math.sqrt(h))
    return total


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet(seed=7, members=25, today=TODAY)


@pytest.fixture(scope="module")
def week_jobs(fleet: Fleet) -> dict[int, list[dict]]:
    return {day: fleet.jobs(day) for day in WEEK}


@pytest.fixture(scope="module")
def week_tracks(fleet: Fleet) -> dict[int, list[dict]]:
    return {day: fleet.tracks(*fleet.day_window_ms(day)) for day in WEEK}


# ----------------------------------------------------------------------------- determinism


def test_same_arguments_give_the_same_fleet_in_any_order() -> None:
    first = Fleet(seed=11, members=30, today=TODAY)
    second = Fleet(seed=11, members=30, today=TODAY)
    days = [20240304, 20240305, 20240309, 20240319]
    forward = {d: (first.jobs(d), first.tracks(*first.day_window_ms(d))) for d in days}
    backward = {d: (second.jobs(d), second.tracks(*second.day_window_ms(d))) for d in days[::-1]}
    assert forward == backward
    assert first.company() == second.company()
    assert first.accounts() == second.accounts()
    assert first.all_members() == second.all_members()
    assert first.places() == second.places()
    assert first.report("mileage", days) == second.report("mileage", days)


def test_another_seed_gives_another_fleet() -> None:
    a, b = Fleet(seed=1, today=TODAY), Fleet(seed=2, today=TODAY)
    assert {m["uid"] for m in a.all_members()} != {m["uid"] for m in b.all_members()}
    assert [j["id"] for j in a.jobs(WEEK[0])] != [j["id"] for j in b.jobs(WEEK[0])]


def test_answers_are_fresh_objects(fleet: Fleet) -> None:
    day = WEEK[1]
    jobs = fleet.jobs(day)
    expected = Fleet(seed=7, members=25, today=TODAY).jobs(day)
    jobs[0]["customFields"].append({"key": "x", "val": "y"})
    jobs[0]["worker"] = "someone else"
    jobs.clear()
    tracks = fleet.tracks(*fleet.day_window_ms(day))
    tracks[0]["distance"] = -1
    accounts = fleet.accounts()
    accounts[0]["states"]["moving"] = "changed"
    places = fleet.places()
    places[0]["location"]["lat"] = 0
    company = fleet.company()
    company["teams_config"].clear()

    assert fleet.jobs(day) == expected
    assert fleet.tracks(*fleet.day_window_ms(day))[0]["distance"] > 0
    assert fleet.accounts()[0]["states"]["moving"] != "changed"
    assert fleet.places()[0]["location"]["lat"] != 0
    assert fleet.company()["teams_config"]


# ----------------------------------------------------------------------------- objects


def test_ids_are_unique_and_well_formed(
    fleet: Fleet, week_jobs: dict[int, list[dict]], week_tracks: dict[int, list[dict]]
) -> None:
    job_ids = [j["id"] for jobs in week_jobs.values() for j in jobs]
    assert len(job_ids) == len(set(job_ids))
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in job_ids)
    for jobs in week_jobs.values():
        assert [j["id"] for j in jobs] == sorted(j["id"] for j in jobs)

    track_ids = [t["id"] for tracks in week_tracks.values() for t in tracks]
    assert len(track_ids) == len(set(track_ids))
    assert all(isinstance(i, int) and i > 0 for i in track_ids)
    assert track_ids == sorted(track_ids)

    members, places = fleet.all_members(), fleet.places()
    uids = [m["uid"] for m in members] + [p["uid"] for p in places]
    assert len(uids) == len(set(uids))
    assert all(re.fullmatch(r"[a-z0-9]{6,8}", u) for u in uids)
    usernames = [m["username"] for m in members]
    assert len(usernames) == len(set(usernames))
    assert all(re.fullmatch(r"[a-z.0-9]+@[a-z0-9.-]+\.[a-z]+", u) for u in usernames)
    assert [m["uid"] for m in members] == sorted(m["uid"] for m in members)
    assert [p["uid"] for p in places] == sorted(p["uid"] for p in places)


def test_company_teams_and_roles(fleet: Fleet) -> None:
    company = fleet.company()
    assert company["type"] == "company"
    assert company["timezone"] == "Europe/Vienna"
    team_ids = {t["id"] for t in company["teams_config"]}
    assert len(team_ids) >= 2 and all(t["name"] for t in company["teams_config"])
    members = fleet.all_members()
    roles = Counter(m["role"] for m in members)
    assert roles["admin"] == 1 and roles["operator"] >= 1 and roles["worker"] > 15
    for m in members:
        assert set(m["teams"]) <= team_ids
        assert m["type"] == "person" and m["timezone"]
        assert "moving" in m["states"] and "moving" not in m
        assert m["timestamps"]["created"] > 0
    # A few members work in another zone than the company's.
    assert 1 <= sum(m["timezone"] != "Europe/Vienna" for m in members) < len(members) / 2
    assert len(fleet.places()) == 50


def test_leavers_keep_their_history(fleet: Fleet) -> None:
    current = {m["uid"] for m in fleet.accounts()}
    everyone = {m["uid"]: m for m in fleet.all_members()}
    leavers = [m for uid, m in everyone.items() if uid not in current]
    assert leavers, "the fleet should have a member who left before today"
    for leaver in leavers:
        assert leaver["active_status"] == "deactivated"
    worked = set()
    for day in range(20240101, 20240131):
        worked |= {j["receiverUid"] for j in fleet.jobs(day)}
        worked |= {t["owner_uid"] for t in fleet.tracks(*fleet.day_window_ms(day))}
    assert {m["uid"] for m in leavers} <= worked
    # Nothing new for them after they left.
    late = {j["receiverUid"] for day in WEEK for j in fleet.jobs(day)}
    assert not late & {m["uid"] for m in leavers}


def test_joiners_appear_from_their_first_day() -> None:
    early = Fleet(seed=7, members=25, today=20240110)
    later = Fleet(seed=7, members=25, today=TODAY)
    early_uids = {m["uid"] for m in early.all_members()}
    joined = [m for m in later.accounts() if m["uid"] not in early_uids]
    assert joined
    for m in joined:
        assert m["timestamps"]["created"] > early.day_window_ms(20240110)[1]
    assert not {j["receiverUid"] for j in early.jobs(20240110)} & {m["uid"] for m in joined}


# ----------------------------------------------------------------------------- jobs


def test_job_timestamps_follow_progress(week_jobs: dict[int, list[dict]]) -> None:
    for jobs in week_jobs.values():
        for job in jobs:
            stamps = [job[f] for f in PROGRESS_CHAIN if job[f]]
            done = job["tsDoneSuccess"] or job["tsDoneFailed"]
            if done:
                stamps.append(done)
            assert stamps == sorted(stamps), job["id"]
            assert not (job["tsDoneSuccess"] and job["tsDoneFailed"])
            assert not (job["tsAccepted"] and job["tsRejected"])
            assert job["tsCheckOut"] == 0 or job["tsCheckIn"] > 0
            assert job["tsSaved"] >= max(job[f] for f in TS_FIELDS)
            assert job.get("status", "archived") == "archived"
            if not job["worker"]:
                assert job["receiverUid"] == job["workerName"] == ""
                assert not any(job[f] for f in TS_FIELDS[1:])


def test_tssaved_is_the_last_change(week_jobs: dict[int, list[dict]]) -> None:
    # Later edits (archive, carry-over) move tsSaved beyond every progress stamp.
    later = [
        j
        for jobs in week_jobs.values()
        for j in jobs
        if j["tsSaved"] > max(j[f] for f in TS_FIELDS)
    ]
    assert any(j.get("status") == "archived" for j in later)
    assert any(j["carryOver"] == 1 for j in later)


def test_job_fields_look_like_the_api(week_jobs: dict[int, list[dict]]) -> None:
    jobs = [j for js in week_jobs.values() for j in js]
    for job in jobs:
        assert isinstance(job["day"], int) and job["day"] in WEEK
        for f in ("windowStart", "windowEnd"):
            hh, mm = divmod(job[f], 100)
            assert 0 <= hh <= 24 and 0 <= mm < 60
        assert 0 <= job["priority"] <= 10 and job["onSiteSeconds"] > 0
        assert all(set(c) == {"key", "val"} for c in job["customFields"])
        assert bool(job["placeUid"]) == bool(job["placeName"])
    assert sum(bool(j["placeUid"]) for j in jobs) > len(jobs) / 4
    windows = Counter((j["windowStart"], j["windowEnd"]) for j in jobs)
    assert windows[(0, 2400)] and windows[(0, 0)] and len(windows) > 10
    assert len({j["teamId"] for j in jobs}) >= 2


def test_progress_mix_over_a_week(week_jobs: dict[int, list[dict]]) -> None:
    mix = Counter(job_progress(j) for jobs in week_jobs.values() for j in jobs)
    expected = {"scheduled", "accepted", "in_progress", "done", "failed", "rejected"}
    assert expected | {"archived", "unassigned"} <= set(mix)
    assert mix["done"] > sum(mix.values()) / 2
    # Weekdays are busier than the weekend.
    per_day = {day: len(jobs) for day, jobs in week_jobs.items()}
    assert min(per_day[d] for d in WEEK[:5]) > max(per_day[WEEK[5]], per_day[WEEK[6]])


def test_late_jobs_check_out_after_midnight(fleet: Fleet, week_jobs: dict[int, list[dict]]) -> None:
    late = [
        j
        for day, jobs in week_jobs.items()
        for j in jobs
        if j["tsCheckOut"] >= fleet.day_window_ms(day)[1]
    ]
    assert late
    assert all(fleet.day_of_ms(j["tsCheckOut"]) == shift(j["day"], 1) for j in late)


def test_days_out_of_range(fleet: Fleet) -> None:
    assert fleet.jobs(20231231) == []
    assert fleet.tracks(*fleet.day_window_ms(20231231)) == []
    for day in (shift(TODAY, 1), shift(TODAY, 2)):
        jobs = fleet.jobs(day)
        assert jobs, "jobs planned ahead are visible"
        assert {job_progress(j) for j in jobs} <= {"scheduled", "unassigned", "archived"}
        assert fleet.tracks(*fleet.day_window_ms(day)) == []
    # Far ahead nothing has been planned yet.
    assert fleet.jobs(shift(TODAY, 30)) == []


def test_today_changes_only_recent_days() -> None:
    x = TODAY
    now, later = Fleet(seed=7, today=x), Fleet(seed=7, today=shift(x, 2))
    old = shift(x, -7)
    assert now.jobs(old) == later.jobs(old)
    assert now.tracks(*now.day_window_ms(old)) == later.tracks(*later.day_window_ms(old))
    assert now.report("jobs", [old]) == later.report("jobs", [old])
    recent = [shift(x, -1), x]
    changed = [d for d in recent if now.jobs(d) != later.jobs(d)]
    assert changed, "a re-sync of a recent day finds the later edits"
    for day in changed:
        before = {j["id"]: j for j in now.jobs(day)}
        after = {j["id"]: j for j in later.jobs(day)}
        assert set(before) <= set(after)
        edited = [i for i in before if before[i] != after[i]]
        assert all(after[i]["tsSaved"] > before[i]["tsSaved"] for i in edited)


# ----------------------------------------------------------------------------- tracks


def test_track_paths_match_their_numbers(week_tracks: dict[int, list[dict]]) -> None:
    tracks = [t for day in WEEK[:3] for t in week_tracks[day]]
    assert len(tracks) > 200
    for t in tracks:
        points = polyline.decode(t["path_encoded"])
        assert len(points) == t["waypoint_count"] >= 2
        length = haversine_m(points)
        assert abs(length - t["distance"]) <= 0.01 * t["distance"], t["id"]
        assert points[0] == (t["start_lat"], t["start_lng"])
        assert points[-1] == (t["end_lat"], t["end_lng"])
        seconds = (t["end_ts"] - t["start_ts"]) / 1000
        assert seconds > 0
        assert t["speed_avg"] == pytest.approx(t["distance"] / seconds, rel=0.01, abs=0.01)
        assert 0 < t["speed_avg"] < t["speed_max"] < 45
        assert t["altitude_min"] <= t["altitude_max"]
        assert t["kind"] == "track_entry" and isinstance(t["labels"], int)
        # Points are about 100-300 m apart.
        assert 50 < t["distance"] / (len(points) - 1) < 400


def test_tracks_fall_in_their_window(fleet: Fleet, week_tracks: dict[int, list[dict]]) -> None:
    for day, tracks in week_tracks.items():
        start, end = fleet.day_window_ms(day)
        assert all(start <= t["start_ts"] < end for t in tracks)
    two_days = fleet.tracks(fleet.day_window_ms(WEEK[0])[0], fleet.day_window_ms(WEEK[1])[1])
    assert two_days == week_tracks[WEEK[0]] + week_tracks[WEEK[1]]
    # An arbitrary window cuts the same way.
    noon = fleet.day_window_ms(WEEK[2])[0] + 12 * 3_600_000
    afternoon = fleet.tracks(noon, noon + 3_600_000)
    assert afternoon == [
        t for t in week_tracks[WEEK[2]] if noon <= t["start_ts"] < noon + 3_600_000
    ]


def test_midnight_crossing_track_belongs_to_its_start_day(
    fleet: Fleet, week_tracks: dict[int, list[dict]]
) -> None:
    crossing = [
        (day, t)
        for day, tracks in week_tracks.items()
        for t in tracks
        if t["end_ts"] >= fleet.day_window_ms(day)[1]
    ]
    assert crossing
    all_ids = Counter(t["id"] for tracks in week_tracks.values() for t in tracks)
    for day, t in crossing:
        assert all_ids[t["id"]] == 1
        assert fleet.day_of_ms(t["start_ts"]) == day
        assert fleet.day_of_ms(t["end_ts"]) == shift(day, 1)


def test_tracks_filter_by_member(fleet: Fleet, week_tracks: dict[int, list[dict]]) -> None:
    tracks = week_tracks[WEEK[0]]
    owners = sorted({t["owner_uid"] for t in tracks})
    picked = owners[:2]
    window = fleet.day_window_ms(WEEK[0])
    assert fleet.tracks(*window, picked) == [t for t in tracks if t["owner_uid"] in picked]
    assert fleet.tracks(*window, []) == []
    assert fleet.tracks(*window, ["nobody"]) == []


def test_tracks_fit_between_site_visits(
    week_jobs: dict[int, list[dict]], week_tracks: dict[int, list[dict]]
) -> None:
    visits: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for jobs in week_jobs.values():
        for j in jobs:
            # A check-out recorded only the next morning is not when the worker left.
            if j["tsCheckIn"] and j["tsCheckIn"] < j["tsCheckOut"] < j["tsCheckIn"] + 6 * 3_600_000:
                visits[j["receiverUid"]].append((j["tsCheckIn"], j["tsCheckOut"]))
    drives: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for tracks in week_tracks.values():
        for t in tracks:
            drives[t["owner_uid"]].append((t["start_ts"], t["end_ts"]))
    checked = 0
    for uid, spans in drives.items():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), uid
        for start, end in spans:
            for check_in, check_out in visits[uid]:
                assert end <= check_in or start >= check_out, uid
                checked += 1
    assert checked > 1000
    # Some worker-days have jobs but no tracks at all.
    for day in WEEK[:5]:
        workers = {j["receiverUid"] for j in week_jobs[day] if j["tsCheckIn"]}
        drivers = {t["owner_uid"] for t in week_tracks[day]}
        if workers - drivers:
            break
    else:
        pytest.fail("every worker with check-ins had tracks on every weekday")


# ----------------------------------------------------------------------------- days


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        (20240330, 24),  # an ordinary Saturday
        (20240331, 23),  # clocks go forward in Vienna
        (20241027, 25),  # clocks go back
    ],
)
def test_day_windows_follow_local_midnight(day: int, hours: int) -> None:
    fleet = Fleet(today=20241231)
    start, end = fleet.day_window_ms(day)
    assert end - start == hours * 3_600_000
    assert fleet.day_window_ms(shift(day, 1))[0] == end
    assert fleet.day_of_ms(start) == day
    assert fleet.day_of_ms(end - 1) == day
    assert fleet.day_of_ms(end) == shift(day, 1)


def test_default_today_is_the_current_local_date() -> None:
    # The zone furthest ahead of UTC: its date differs from UTC's for most of each day.
    fleet = Fleet(timezone="Pacific/Kiritimati")
    start, end = fleet.day_window_ms(fleet.today)
    assert start <= time.time() * 1000 < end


# ----------------------------------------------------------------------------- reports


def test_jobs_report_agrees_with_getjobs(fleet: Fleet, week_jobs: dict[int, list[dict]]) -> None:
    header, rows = fleet.report("jobs", [WEEK[0], WEEK[2], WEEK[1]])
    assert header[:2] == ["day", "job_id"]
    col = {name: i for i, name in enumerate(header)}
    for day in WEEK[:3]:
        ids = [r[col["job_id"]] for r in rows if r[col["day"]] == day]
        assert ids == [j["id"] for j in week_jobs[day]]
    by_id = {j["id"]: j for day in WEEK[:3] for j in week_jobs[day]}
    for r in rows:
        job = by_id[r[col["job_id"]]]
        assert r[col["status"]] == job_progress(job)
        assert r[col["member_uid"]] == job["receiverUid"]
        assert (r[col["check_in"]] != "") == bool(job["tsCheckIn"])
        assert (r[col["done_at"]] != "") == bool(job["tsDoneSuccess"] or job["tsDoneFailed"])


def test_mileage_report_sums_track_distance(
    fleet: Fleet, week_tracks: dict[int, list[dict]]
) -> None:
    header, rows = fleet.report("mileage", WEEK[:2])
    assert header == ["day", "member_uid", "member", "distance_km", "trips"]
    for day in WEEK[:2]:
        expected: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        for t in week_tracks[day]:
            expected[t["owner_uid"]][0] += t["distance"]
            expected[t["owner_uid"]][1] += 1
        got = {r[1]: (r[3], r[4]) for r in rows if r[0] == day}
        assert set(got) == set(expected)
        for uid, (metres, trips) in expected.items():
            assert got[uid] == (round(metres / 1000, 3), trips)


def test_timesheet_covers_tracks_and_visits(
    fleet: Fleet, week_tracks: dict[int, list[dict]]
) -> None:
    day = WEEK[3]
    header, rows = fleet.report("timesheet", [day])
    assert header == ["day", "member_uid", "member", "first_activity", "last_activity", "hours"]
    drivers = {t["owner_uid"] for t in week_tracks[day]}
    assert drivers <= {r[1] for r in rows}
    for r in rows:
        assert r[3] <= r[4] and r[5] >= 0
        assert r[3].startswith("2024-03-14")


def test_reports_filter_by_uid_or_username(fleet: Fleet) -> None:
    member = next(m for m in fleet.accounts() if m["role"] == "worker")
    for key in (member["uid"], member["username"]):
        for kind in ("jobs", "mileage", "timesheet"):
            header, rows = fleet.report(kind, WEEK[:2], [key])
            col = header.index("member_uid")
            assert rows and {r[col] for r in rows} == {member["uid"]}
    _, everyone = fleet.report("jobs", WEEK[:1], [])
    assert len(everyone) == len(fleet.jobs(WEEK[0]))
    with pytest.raises(ValueError):
        fleet.report("payroll", WEEK[:1])


def test_report_files_read_back(fleet: Fleet) -> None:
    header, rows = fleet.report("jobs", WEEK[:1])
    _, mileage = fleet.report("mileage", WEEK[:1])
    text = render_csv(header, rows).decode("utf-8")
    read = list(csv.reader(io.StringIO(text, newline="")))
    assert read[0] == header
    assert read[1:] == [[str(v) for v in r] for r in rows]

    for head, body in ((header, rows), (["day", "m", "n", "km", "trips"], mileage)):
        book = load_workbook(io.BytesIO(render_xlsx(head, body)), read_only=True)
        values = [list(r) for r in book.active.iter_rows(values_only=True)]
        assert values[0] == head
        assert values[1:] == [[None if v == "" else v for v in r] for r in body]


# ----------------------------------------------------------------------------- polyline


def test_polyline_matches_the_published_example() -> None:
    points = [(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)]
    assert polyline.encode(points) == "_p~iF~ps|U_ulLnnqC_mqNvxq`@"
    assert polyline.decode("_p~iF~ps|U_ulLnnqC_mqNvxq`@") == points


@pytest.mark.parametrize(
    "points",
    [
        [],
        [(0.0, 0.0)],
        [(-33.86882, 151.20929), (-33.86882, 151.20929)],  # a repeated point: zero deltas
        [(89.99999, -179.99999), (-89.99999, 179.99999)],  # the largest deltas
        [(0.000005, -0.000005), (0.000015, -0.000015)],  # halves round away from zero
    ],
)
def test_polyline_round_trip(points: list[tuple[float, float]]) -> None:
    decoded = polyline.decode(polyline.encode(points))
    assert len(decoded) == len(points)
    for (lat, lng), (d_lat, d_lng) in zip(points, decoded, strict=True):
        assert abs(lat - d_lat) <= 0.5e-5 + 1e-12 and abs(lng - d_lng) <= 0.5e-5 + 1e-12
    assert polyline.encode(points, precision=6) != polyline.encode(points) or len(points) < 2


def test_polyline_rejects_broken_strings() -> None:
    with pytest.raises(ValueError):
        polyline.decode("_p~iF~ps|U_")  # cut inside a value
    with pytest.raises(ValueError):
        polyline.decode("_p~iF")  # a latitude without its longitude
    with pytest.raises(ValueError):
        polyline.decode("_p~iF ")


def test_batch_encoder_agrees_with_the_scalar_one() -> None:
    rng = np.random.default_rng(3)
    counts = np.array([3, 0, 1, 7, 2])
    lat = rng.uniform(-80, 80, counts.sum())
    lng = rng.uniform(-179, 179, counts.sum())
    quantize = np.vectorize(polyline.quantize)
    encoded = polyline.encode_many(quantize(lat), quantize(lng), counts)
    begin = 0
    for n, text in zip(counts, encoded, strict=True):
        points = list(zip(lat[begin : begin + n], lng[begin : begin + n], strict=True))
        assert text == polyline.encode(points)
        begin += n


# ----------------------------------------------------------------------------- other fleets


@pytest.mark.parametrize(
    ("seed", "timezone", "members", "jobs_per_member"),
    [
        (1, "America/New_York", 40, 8.0),
        (2, "Australia/Sydney", 12, 5.0),  # summer time in the southern hemisphere
        (3, "Pacific/Auckland", 9, 20.0),  # a zone without a listed city
        (4, "UTC", 3, 8.0),  # too few members for operators
    ],
)
def test_other_fleets_keep_the_invariants(
    seed: int, timezone: str, members: int, jobs_per_member: float
) -> None:
    fleet = Fleet(seed, members, timezone=timezone, today=20240410, jobs_per_member=jobs_per_member)
    assert fleet.company()["timezone"] == timezone
    ids: set[str] = set()
    for day in range(20240401, 20240406):
        start, end = fleet.day_window_ms(day)
        jobs = fleet.jobs(day)
        assert jobs and not ids & {j["id"] for j in jobs}
        ids |= {j["id"] for j in jobs}
        for job in jobs:
            stamps = [job[f] for f in PROGRESS_CHAIN if job[f]]
            stamps.append(job["tsDoneSuccess"] or job["tsDoneFailed"] or stamps[-1])
            assert stamps == sorted(stamps) and job["tsSaved"] >= stamps[-1]
        spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for t in fleet.tracks(start, end):
            assert start <= t["start_ts"] < end < t["end_ts"] + 86_400_000
            length = haversine_m(polyline.decode(t["path_encoded"]))
            assert abs(length - t["distance"]) <= 0.01 * t["distance"]
            spans[t["owner_uid"]].append((t["start_ts"], t["end_ts"]))
        for drives in spans.values():
            assert all(a[1] <= b[0] for a, b in zip(drives, drives[1:], strict=False))
    # Weekday workload follows jobs_per_member.
    workers = [m for m in fleet.accounts() if m["role"] == "worker"]
    monday = [j for j in fleet.jobs(20240401) if j["worker"]]
    per_worker = len(monday) / len({j["receiverUid"] for j in monday})
    assert 0.6 * jobs_per_member < per_worker < 1.5 * jobs_per_member + 1
    assert len({j["receiverUid"] for j in monday}) <= len(workers)


def test_places_argument_sets_the_number_of_places() -> None:
    assert len(Fleet(members=10, places=7, today=TODAY).places()) == 7
    bare = Fleet(members=10, places=0, today=TODAY)
    # Only the team depots remain, and jobs then go to street addresses.
    assert all(p["name"].startswith("Depot") for p in bare.places())
    assert not any(j["placeUid"] for j in bare.jobs(WEEK[0]))
