"""JSON records to typed rows: every upstream quirk maps to a kept value or a quarantined row."""

from __future__ import annotations

import orjson
import pytest

from assets.jobs import JOBS
from assets.members import MEMBERS
from assets.normalize import normalize, normalize_pages
from assets.tracks import TRACKS

DAY = 20251010
TS = 1_760_000_000_000  # 2025-10-09, a plausible event time


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
