"""JSON records to typed rows: every upstream quirk maps to a kept value or a quarantined row."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from assets.common import day_window_ms
from assets.jobs import JOBS
from assets.members import MEMBERS
from assets.normalize import (
    Normalized,
    TableSpec,
    merge,
    normalize,
    normalize_pages,
    normalize_snapshot,
)
from assets.places import PLACES
from assets.reports import REPORT_JOBS, REPORT_TIMESHEET
from assets.tracks import TRACKS
from resources.hellotracks import HellotracksClient
from sandbox.fleet import Fleet
from sandbox.server import Faults, SandboxServer

DAY = 20251010
TS = 1_760_000_000_000  # 2025-10-09, a plausible event time
WIDE = 2**70  # wider than 64 bits: orjson decodes such a number as a float, other decoders do not


def job(**fields):
    return {"id": "a" * 24, "day": DAY, "tsCreated": TS, "priority": 5, **fields}


@pytest.mark.parametrize(
    ("record", "column", "expected"),
    [
        # The documented types pass straight through.
        (job(), "priority", 5),
        # Numbers sent as strings (seen in the docs' own examples) are read as numbers.
        (job(priority="7"), "priority", 7),
        # A whole number sent as a float is still a whole number.
        (job(priority=7.0), "priority", 7),
        # `day` as a string, as the getjobs example sends it.
        (job(day="20251010"), "job_day", DAY),
        # 0 in a timestamp means "did not happen" and becomes null.
        (job(tsCheckIn=0), "ts_check_in", None),
        # A timestamp as a numeric string is still a timestamp.
        (job(tsCheckIn=str(TS)), "ts_check_in", TS),
        # `label` and `labels` both appear in the docs; either fills the one column.
        (job(label="urgent"), "labels", "urgent"),
        (job(labels="urgent,vip"), "labels", "urgent,vip"),
        # `notes` is an alias of `textDispatcher`.
        (job(notes="ring twice"), "text_dispatcher", "ring twice"),
        # A number where text was documented is kept as its text, not lost.
        (job(contactPhone=4155551234), "contact_phone", "4155551234"),
        # A nested value where text was documented is kept as JSON text.
        (job(manualChecks=[{"ts": 1}]), "manual_checks", '[{"ts":1}]'),
        # Custom fields are kept whole, as JSON.
        (
            job(customFields=[{"key": "PO", "val": "7"}]),
            "custom_fields",
            '[{"key":"PO","val":"7"}]',
        ),
    ],
)
def test_job_values_are_read_as_the_documented_types(record, column, expected):
    result = normalize(JOBS, [record], DAY)
    assert result.quarantined == 0
    value = result.table.column(column)[0].as_py()
    if column.startswith("ts_"):
        value = None if value is None else int(value.timestamp() * 1000)
    assert value == expected


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        # Text where an integer belongs cannot be converted without loss.
        ([job(priority="high")], "priority: 'high' is not an integer"),
        # A fractional count is not a count.
        ([job(priority=5.5)], "priority: 5.5 is not a whole number"),
        # A day that is not on the calendar.
        ([job(day=20251340)], "day: 20251340 is not a YYYYMMDD day"),
        # An absurd timestamp (year 33658) is not loaded as a date.
        ([job(tsCheckIn=999_999_999_999_999)], "is not a plausible timestamp"),
        # A job without an id cannot be identified, so it cannot be loaded.
        ([{"day": DAY, "priority": 5}], "missing id"),
        # An empty id is no id.
        ([job(id="")], "missing id"),
        # A repeated id keeps the first record; the second is kept aside, not dropped.
        ([job(), job(priority=9)], "duplicate id"),
        # Something that is not an object at all.
        (["not a job"], "record is not an object"),
    ],
)
def test_unconvertible_records_go_to_quarantine_with_a_reason(records, reason):
    result = normalize(JOBS, records, DAY)
    assert result.quarantined == 1
    row = result.quarantine[0]
    assert reason in row["reason"]
    assert row["table_name"] == "jobs" and row["day"] == DAY
    # The raw record is kept whole so nothing is lost.
    assert orjson.loads(row["record"]) == records[-1]
    assert result.table.num_rows == len(records) - 1


def test_unknown_fields_are_kept_in_extras_and_counted():
    result = normalize(JOBS, [job(x_new=1, custom_colour="red"), job(id="b" * 24)], DAY)
    extras = result.table.column("extras").to_pylist()
    assert orjson.loads(extras[0]) == {"custom_colour": "red", "x_new": 1}
    assert extras[1] is None
    assert result.extra_fields == {"x_new": 1, "custom_colour": 1}


def test_member_moving_is_read_from_states_or_from_the_top_level():
    records = [
        {"uid": "m1", "states": {"moving": "halted", "battery_save": True}},
        {"uid": "m2", "moving": "ontheway"},
    ]
    result = normalize(MEMBERS, records, DAY)
    assert result.table.column("moving").to_pylist() == ["halted", "ontheway"]
    # The nested object is kept whole beside the column pulled out of it.
    assert orjson.loads(result.table.column("states")[0].as_py())["battery_save"] is True
    assert result.table.column("extras").to_pylist() == [None, None]
    assert result.table.column("fetched_at").null_count == 0


def test_two_spellings_with_different_values_keep_both():
    record = {"uid": "m1", "states": {"moving": "halted"}, "moving": "ontheway"}
    result = normalize(MEMBERS, [record], DAY)
    assert result.table.column("moving").to_pylist() == ["halted"]
    assert orjson.loads(result.table.column("extras")[0].as_py()) == {"moving": "ontheway"}
    # The same value under both spellings is not worth an extra.
    same = normalize(JOBS, [job(worker="ann", assigneeUsername="ann")], DAY)
    assert same.table.column("extras").to_pylist() == [None]


def test_duplicates_across_pages_are_caught():
    pages = [[job()], [job(), job(id="b" * 24)]]
    result = normalize_pages(JOBS, pages, DAY)
    assert result.table.column("job_id").to_pylist() == ["a" * 24, "b" * 24]
    assert [row["reason"] for row in result.quarantine] == ["duplicate id"]


def test_track_numbers_as_strings_are_numbers():
    entry = {"id": "42", "owner_uid": "m1", "start_ts": TS, "distance": "1234.5"}
    result = normalize(TRACKS, [entry], DAY)
    assert result.table.column("track_id")[0].as_py() == 42
    assert result.table.column("distance_m")[0].as_py() == 1234.5


def test_an_empty_day_has_the_full_schema():
    result = normalize_pages(JOBS, [], DAY)
    assert result.table.num_rows == 0
    assert result.table.schema == JOBS.schema()


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        # Where text was documented, a number orjson cannot write has no JSON text to keep.
        (job(contactPhone=WIDE), f"contactPhone: {WIDE} cannot be stored as JSON text"),
        # The same inside a value stored as JSON.
        (job(customFields=[{"key": "n", "val": WIDE}]), "customFields: [{'key': 'n', 'val'"),
        # Where an integer was documented, it does not fit int64.
        (job(priority=WIDE), f"priority: {WIDE} is out of range"),
        # An unsigned 64-bit number (orjson decodes those as integers) in a timestamp.
        (job(tsCheckIn=2**64 - 1), f"tsCheckIn: {2**64 - 1} is out of range"),
        # A float whose whole number does not fit int64.
        (job(priority=1e300), "priority: 1e+300 is out of range"),
        # A number too large for a float.
        (job(destinationLat=10**400), "destinationLat: 1000"),
    ],
)
def test_numbers_beyond_64_bits_send_their_row_to_quarantine(record, reason):
    result = normalize(JOBS, [record, job(id="b" * 24)], DAY)
    assert [row["reason"][: len(reason)] for row in result.quarantine] == [reason]
    # The record is kept digit for digit (the standard library reads what orjson cannot).
    assert json.loads(result.quarantine[0]["record"]) == record
    assert result.table.column("job_id").to_pylist() == ["b" * 24]


def test_an_unknown_field_beyond_64_bits_is_kept_in_extras_digit_for_digit():
    result = normalize(JOBS, [job(x_count=WIDE, x_nested={"n": [-WIDE]})], DAY)
    assert result.quarantined == 0
    extras = result.table.column("extras")[0].as_py()
    assert json.loads(extras) == {"x_count": WIDE, "x_nested": {"n": [-WIDE]}}
    assert result.extra_fields == {"x_count": 1, "x_nested": 1}


# --- the fast paths against the careful one --------------------------------------------------

SERVED_DAY = 20251014
FETCHED_AT = datetime(2025, 10, 14, 18, 0, tzinfo=UTC)
KEY = "normalize-key"

# Values a server may send instead of the documented type. Each page of the comparison below
# puts one of them in every field, on a record of its own, so that a column holding one odd
# value among good ones shows whether its fast path lets through what the careful one would not.
ODD_VALUES = [
    "7",  # a number as text
    " 8 ",  # a number as text, with spaces
    7.0,  # a whole number as a float
    7.5,  # a fraction where a count belongs
    "high",  # text where a number belongs
    "",  # empty text
    True,  # a boolean where a number or text belongs
    0,  # zero: "did not happen" in a timestamp
    1,  # one: true where a boolean belongs
    [{"k": 1}],  # a nested value where a scalar belongs
    {"lat": "1.5"},  # an object where a scalar belongs
    2**63,  # beyond int64, though an unsigned 64-bit integer
    WIDE,  # beyond 64 bits
    1e300,  # a float too large for any integer
    999_999_999_999_999,  # an absurd timestamp (year 33658)
    20251340,  # a day that is not on the calendar
    "20251010",  # a day as text
    "2025-02-30 08:00:00",  # a local time that does not exist
    "2025-10-14T08:00:00",  # a local time in ISO form
    "1760000000000",  # a timestamp as text
]


@pytest.fixture(scope="module")
def served() -> Iterator[dict[str, list[list[Any]]]]:
    """Pages of each listing as the client receives them from the sandbox, plain and drifted.

    Drifted pages carry an extra field on every object, numbers as text and renamed fields.
    Small pages, so that ids are met again across pages too.
    """
    fleet = Fleet(7, 12, today=20251015, start_day=20251010, timezone="Europe/Vienna")
    start, end = day_window_ms(SERVED_DAY, "Europe/Vienna")
    pages: dict[str, list[list[Any]]] = {}
    with (
        SandboxServer(fleet, api_key=KEY) as server,
        HellotracksClient(server.url, KEY, page_size=25, min_interval_seconds=0) as client,
    ):
        uids = sorted(m["uid"] for page in client.getaccounts() for m in page)
        for drift in (False, True):
            server.faults = Faults(schema_drift=drift)
            name = "drifted " if drift else ""
            pages[name + "jobs"] = list(client.getjobs(SERVED_DAY))
            pages[name + "tracks"] = list(client.gettracks(start, end, uids))
            pages[name + "members"] = list(client.getaccounts())
            pages[name + "places"] = list(client.getplaces())
        for report in ("jobs", "timesheet"):
            content = client.createreport(report, "csv", day=SERVED_DAY)
            rows = csv.DictReader(io.StringIO(content.decode("utf-8-sig")))
            lines = [{k: v or None for k, v in row.items() if k != "day"} for row in rows]
            pages["report " + report] = [lines[i : i + 25] for i in range(0, len(lines), 25)]
    yield pages


SPECS: dict[str, TableSpec] = {
    "jobs": JOBS,
    "tracks": TRACKS,
    "members": MEMBERS,
    "places": PLACES,
    "report jobs": REPORT_JOBS,
    "report timesheet": REPORT_TIMESHEET,
}


def _spoiled(spec: TableSpec, served: list[list[Any]]) -> list[list[Any]]:
    """Pages made of the served records, one per odd value, with a quirk in every field.

    On page k, field j of record j gets odd value k + j, and every other page a null goes to the
    next record too; each page ends with records the dedupe must set aside.
    """
    records = [record for page in served for record in page]
    paths = sorted({path for column in spec.columns for path in column.source})
    key = spec.key_column.source[0]
    pages: list[list[Any]] = []
    for k in range(len(ODD_VALUES)):
        page = []
        for i in range(len(paths)):
            # A deep copy under an id of its own, so that no page repeats another's ids.
            record = orjson.loads(orjson.dumps(records[(k * len(paths) + i) % len(records)]))
            record[key] = _another(record.get(key), k * 1000 + i)
            page.append(record)
        for j, path in enumerate(paths):
            _put(page[j], path, ODD_VALUES[(k + j) % len(ODD_VALUES)])
            if (k + j) % 2:
                _put(page[(j + 1) % len(page)], path, None)
        first = page[0]
        first["x_late"] = 1  # a field no column reads
        page += [
            dict(first),  # an id seen on this page
            "not an object",
            {name: value for name, value in first.items() if name != key},  # no id
            # The same fields in another order, and fewer fields, under ids of their own.
            dict(reversed(first.items())) | {key: _another(first[key], -1)},
            {name: value for name, value in first.items() if name not in paths[:9]}
            | {key: _another(first[key], -2)},
        ]
        if pages:
            page.append(dict(pages[-1][1]))  # an id seen on the page before
        pages.append(page)
    return pages


def _another(key: Any, n: int) -> Any:
    return key + (n + 2) * 10**12 if isinstance(key, int) else f"{key}-{n}"


def _put(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, name = path.split(".")
    for part in parents:
        if not isinstance(record.get(part), dict):
            record[part] = {}
        record = record[part]
    record[name] = value


def _normalized(spec: TableSpec, pages: list[list[Any]], *, careful: bool) -> Normalized:
    seen: set[str] = set()
    parts = [normalize(spec, p, SERVED_DAY, FETCHED_AT, seen=seen, careful=careful) for p in pages]
    return merge(spec, parts)


LISTINGS = [
    "jobs",
    "tracks",
    "members",
    "places",
    "drifted jobs",
    "drifted tracks",
    "drifted members",
    "drifted places",
    "report jobs",
    "report timesheet",
]


def _agreed(spec: TableSpec, pages: list) -> Normalized:
    """The pages normalized with the fast paths, after checking the careful path agrees."""
    fast = _normalized(spec, pages, careful=False)
    careful = _normalized(spec, pages, careful=True)
    assert fast.table.schema == careful.table.schema == spec.schema()
    assert fast.table.equals(careful.table)
    assert fast.quarantine == careful.quarantine
    assert fast.extra_fields == careful.extra_fields
    return fast


@pytest.mark.parametrize("listing", LISTINGS)
def test_the_fast_paths_agree_with_the_careful_one_on_served_pages(served, listing):
    spec = SPECS[listing.removeprefix("drifted ")]
    # The first page comes again at the end, as from a server paging badly: all ids seen.
    pages = [*served[listing], served[listing][0]]
    fast = _agreed(spec, pages)
    assert fast.table.num_rows == sum(map(len, served[listing]))
    duplicate = f"duplicate {spec.key_column.source[0]}"
    assert [row["reason"] for row in fast.quarantine] == [duplicate] * len(pages[0])


@pytest.mark.parametrize("listing", LISTINGS)
def test_the_fast_paths_agree_with_the_careful_one_on_pages_mixing_quirks(served, listing):
    spec = SPECS[listing.removeprefix("drifted ")]
    pages = _spoiled(spec, served[listing])
    fast = _agreed(spec, pages)
    # The quirks were met: rows were set aside, a field was kept in extras, rows were loaded.
    assert fast.quarantined >= 3 * len(pages)
    assert fast.extra_fields["x_late"] > 0
    assert fast.table.num_rows > 0


def test_a_snapshot_is_normalized_once_and_copied_to_every_day():
    fetched_at = datetime(2025, 10, 14, 6, 0, tzinfo=UTC)
    pages = [
        [
            {"uid": "m1", "name": "Ana", "shoe_size": 41},
            {"name": "no uid"},
            {"uid": "m2", "name": "Bo", "last_seen": "x"},
        ],
        [{"uid": "m1", "name": "Ana again"}],
    ]
    days = [20251012, 20251013, 20251014]
    copied = normalize_snapshot(MEMBERS, pages, days, fetched_at)
    assert list(copied) == days
    for day in days:
        alone = normalize_pages(MEMBERS, pages, day, fetched_at)
        assert copied[day].table.equals(alone.table), day
        assert copied[day].quarantine == alone.quarantine, day
        assert copied[day].extra_fields == alone.extra_fields, day
    # Something of each kind is there to copy: rows, quarantined ones, an unknown field.
    assert copied[days[-1]].table.column("day").to_pylist() == [days[-1]] * 2
    assert {row["day"] for row in copied[days[-1]].quarantine} == {days[-1]}
    assert len(copied[days[-1]].quarantine) == 2 and copied[days[-1]].extra_fields
