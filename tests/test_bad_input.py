"""Bad input, from the server and from the user: a clear message and a known state, every time.

Three tables of cases:
- records the server spoils inside otherwise good answers: each ends in the `quarantine` table
  with its reason (or loads, when it can be typed without loss), counted in the metadata, while
  the rest of the day loads;
- answers the server spoils as a whole: the dataset fails with a message that says what came back,
  after as many requests as the answer deserves, and the day stays as it was loaded before;
- mistakes of the user at the command line: one clear line, no traceback, nothing changed.

Server answers the sandbox never sends come through `TamperingProxy`, a real HTTP server in front
of the sandbox that rewrites them; the client under test talks HTTP to it as to the API.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance, materialize

from assets.sync import hellotracks_tables
from pipelines.cli import cli
from pipelines.progress import failure_message
from resources.hellotracks import HellotracksResource
from resources.warehouse import WarehouseResource
from sandbox.server import run_sandbox
from tests.pipeline_support import QUIET, query, sync
from tests.reliability_proxy import Reply, Rule, canned, first_n, on_json, tampering
from tests.reliability_support import TABLE_KEYS, cli_command, cli_env, run_cli, sync_command

DAY = 20251010
HTML = b"<html><head><title>Error</title></head><body>Something went wrong</body></html>"

# --- records spoiled inside good answers --------------------------------------------------------

_DROP = object()


def setting(index: int, **fields) -> Callable[[list], object]:
    """Set `fields` on the index-th record; the quarantine then names that record's id."""

    def edit(rows: list) -> object:
        rows[index].update(fields)
        return _key(rows[index])

    return edit


def nested(index: int, field: str, inner: str, value: object) -> Callable[[list], object]:
    def edit(rows: list) -> object:
        rows[index][field][inner] = value
        return _key(rows[index])

    return edit


def copied(index: int, **changes) -> Callable[[list], object]:
    """Append a copy of the index-th record with `changes` (`_DROP` removes a field)."""

    def edit(rows: list) -> object:
        copy = dict(rows[index])
        for name, value in changes.items():
            if value is _DROP:
                copy.pop(name, None)
            else:
                copy[name] = value
        rows.append(copy)
        return _key(copy)

    return edit


def appended(item: object) -> Callable[[list], object]:
    def edit(rows: list) -> object:
        rows.append(item)
        return None

    return edit


def _key(record: dict) -> str | None:
    value = record.get("id") if "uid" not in record else record.get("uid")
    return None if value in (None, "") else str(value)


def csv_cell(index: int, column: str, value: str) -> Callable[[list], object]:
    """Set one cell of the index-th report row; the quarantine names the row's member."""

    def edit(rows: list) -> object:
        rows[index][column] = value
        return rows[index]["member_uid"]

    return edit


def csv_copy(index: int, **changes: str) -> Callable[[list], object]:
    def edit(rows: list) -> object:
        rows.append(rows[index] | changes)
        return None

    return edit


@dataclass(frozen=True)
class Spoil:
    action: str  # whose answer carries the spoiled record
    table: str  # where the record's trouble is recorded (the quarantine's `table_name`)
    edit: Callable[[list], object]  # changes the answer's records; returns the record's key
    reason: str | None  # a piece of the quarantine reason; None: nothing may be quarantined
    loads: bool = False  # the record's key is still in its typed table afterwards
    typed: str | None = None  # that typed table, when not `table`
    report: str | None = None  # the `reporttype`, for createreport
    marker: str | None = None  # a piece of the quarantined record, when it has no id to find it


SPOILS = {
    # Text where the API documents an integer.
    "job_priority_as_a_word": Spoil(
        "getjobs", "jobs", setting(0, priority="urgent"), "priority: 'urgent' is not an integer"
    ),
    # A fraction where a count of seconds belongs: rounding would invent data.
    "job_fractional_seconds": Spoil(
        "getjobs", "jobs", setting(1, onSiteSeconds=12.5), "is not a whole number"
    ),
    # A timestamp some 300,000 years ahead: microseconds where milliseconds belong.
    "job_timestamp_far_future": Spoil(
        "getjobs", "jobs", setting(2, tsCreated=10**16), "not a plausible timestamp"
    ),
    # A negative timestamp.
    "job_timestamp_negative": Spoil(
        "getjobs", "jobs", setting(3, tsCheckIn=-5), "not a plausible timestamp"
    ),
    # A boolean where a radius in metres belongs.
    "job_boolean_radius": Spoil(
        "getjobs", "jobs", setting(4, radius=True), "True is not an integer"
    ),
    # An object where a latitude belongs.
    "job_object_latitude": Spoil(
        "getjobs", "jobs", setting(5, destinationLat={"deg": 48}), "is not a number"
    ),
    # A day that is not on the calendar.
    "job_impossible_day": Spoil(
        "getjobs", "jobs", setting(6, day=20251399), "is not a YYYYMMDD day"
    ),
    # An ISO date string where milliseconds belong.
    "job_iso_timestamp": Spoil(
        "getjobs", "jobs", setting(7, tsDoneSuccess="2025-10-10T12:00:00Z"), "is not an integer"
    ),
    # A job without its id: nothing to load it under.
    "job_missing_id": Spoil(
        "getjobs",
        "jobs",
        copied(8, id=_DROP, destinationName="no id"),
        "missing id",
        marker='"no id"',
    ),
    # An id that is null.
    "job_null_id": Spoil(
        "getjobs",
        "jobs",
        copied(8, id=None, destinationName="null id"),
        "missing id",
        marker='"null id"',
    ),
    # An id that is empty.
    "job_empty_id": Spoil(
        "getjobs",
        "jobs",
        copied(8, id="", destinationName="empty id"),
        "missing id",
        marker='"empty id"',
    ),
    # Two different records under one id: the first loads, the second is kept aside.
    "job_conflicting_duplicate": Spoil(
        "getjobs", "jobs", copied(9, destinationName="other"), "duplicate id", loads=True
    ),
    # The same record twice: a repeat, not a conflict; it loads once, nothing is quarantined.
    "job_exact_repeat": Spoil("getjobs", "jobs", copied(10), None, loads=True),
    # A string where a job object belongs.
    "job_not_an_object": Spoil(
        "getjobs", "jobs", appended("job 12345"), "record is not an object", marker="job 12345"
    ),
    # A number sent as text converts without loss, so it loads.
    "job_number_as_text": Spoil("getjobs", "jobs", setting(11, priority="2"), None, loads=True),
    # A field the schema does not know loads, kept in `extras` and counted.
    "job_unknown_field": Spoil("getjobs", "jobs", setting(12, x_new_field=1), None, loads=True),
    # A track without a start time has no day to be filed under.
    "track_without_start": Spoil(
        "gettracks", "tracks", setting(0, start_ts=None), "start_ts missing or not a number"
    ),
    # A distance that is a word.
    "track_distance_as_a_word": Spoil(
        "gettracks", "tracks", setting(1, distance="far"), "is not a number"
    ),
    # A path that is not a polyline: the track loads, its points are quarantined.
    "track_broken_path": Spoil(
        "gettracks",
        "track_points",
        setting(2, path_encoded="not a polyline!"),
        "path_encoded is not a polyline",
        loads=True,
        typed="tracks",
    ),
    # A track id that is not a number.
    "track_id_as_a_word": Spoil("gettracks", "tracks", setting(3, id="abc"), "is not an integer"),
    # A yes/no field answered with "maybe".
    "member_maybe_boolean": Spoil(
        "getaccounts", "members", setting(0, email_verified="maybe"), "is not a boolean"
    ),
    # A nested timestamp that is a word.
    "member_nested_timestamp": Spoil(
        "getaccounts",
        "members",
        nested(1, "location", "ts", "yesterday"),
        "location.ts: 'yesterday' is not an integer",
    ),
    # A place radius that is a word.
    "place_radius_as_a_word": Spoil(
        "getplaces", "places", setting(0, radius="big"), "is not an integer"
    ),
    # A report cell that is not a number.
    "mileage_distance_not_a_number": Spoil(
        "createreport",
        "report_mileage",
        csv_cell(0, "distance_km", "n/a"),
        "is not a number",
        report="mileage",
    ),
    # A report row for a day the sync did not ask for.
    "jobs_report_row_of_another_day": Spoil(
        "createreport",
        "report_jobs",
        csv_copy(0, day="20251001"),
        "outside the requested range",
        report="jobs",
        marker="20251001",
    ),
    # A report's hours that are a dash.
    "timesheet_hours_a_dash": Spoil(
        "createreport",
        "report_timesheet",
        csv_cell(0, "hours", "-"),
        "is not a number",
        report="timesheet",
    ),
}

_LIST_KEYS = {
    "getjobs": "jobs",
    "gettracks": "tracks",
    "getaccounts": "accounts",
    "getplaces": "places",
}


def spoiling(keys: dict[str, object]) -> dict[str, Rule]:
    """Rules that apply every case of SPOILS to the first page of its action's answer."""

    def listing(action: str) -> Rule:
        def change(envelope: dict, data: dict) -> None:
            rows = envelope.get(_LIST_KEYS[action])
            if data.get("skip", 0) or not rows:
                return
            for name, spoil in SPOILS.items():
                if spoil.action == action:
                    keys[name] = spoil.edit(rows)

        return on_json(change)

    def report(reply: Reply) -> Reply:
        kind = reply.data.get("reporttype")
        reader = csv.DictReader(io.StringIO(reply.body.decode("utf-8-sig")))
        rows = list(reader)
        for name, spoil in SPOILS.items():
            if spoil.report == kind:
                keys[name] = spoil.edit(rows)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=reader.fieldnames)
        writer.writeheader()
        writer.writerows(rows)
        reply.body = out.getvalue().encode()
        return reply

    return {action: listing(action) for action in _LIST_KEYS} | {"createreport": report}


@pytest.fixture(scope="module")
def sandbox_fleet():
    with run_sandbox(seed=17, members=5, today=20251015) as server:
        yield server


@pytest.fixture(scope="module")
def spoiled(sandbox_fleet, tmp_path_factory):
    """One day synced through answers carrying every spoiled record of SPOILS at once."""
    warehouse = tmp_path_factory.mktemp("spoiled")
    keys: dict[str, object] = {}
    with tampering(sandbox_fleet, spoiling(keys)) as proxy:
        result = sync(proxy, warehouse, DAY, raise_on_error=False)
    return warehouse, result, keys


def test_a_day_with_spoiled_records_still_syncs(spoiled):
    _, result, keys = spoiled
    assert result.success
    assert set(keys) == set(SPOILS), "some case never met its record"


@pytest.mark.parametrize("name", list(SPOILS))
def test_each_spoiled_record_ends_in_a_known_place(spoiled, name):
    warehouse, _, keys = spoiled
    spoil, key = SPOILS[name], keys[name]
    rows = query(
        warehouse,
        "SELECT record_id, reason, record FROM quarantine WHERE table_name = ? AND day = ?",
        [spoil.table, DAY],
    )
    if key is None:
        mine = [reason for record_id, reason, record in rows if spoil.marker in record]
    else:
        mine = [reason for record_id, reason, _ in rows if record_id == key]
    if spoil.reason is None:
        assert mine == []
    else:
        assert len(mine) == 1 and spoil.reason in mine[0], rows
    if key is None:
        return
    typed = spoil.typed or spoil.table
    column = TABLE_KEYS[typed]
    found = query(
        warehouse,
        f'SELECT count(*) FROM "{typed}" WHERE day = ? AND CAST("{column}" AS VARCHAR) = ?',
        [DAY, key],
    )[0][0]
    assert found == (1 if spoil.loads else 0)


def test_the_rest_of_the_day_loads_and_the_counts_are_in_the_metadata(spoiled, sandbox_fleet):
    warehouse, result, keys = spoiled
    fleet = sandbox_fleet.fleet
    # Jobs: every job of the day but those whose own record was spoiled beyond typing.
    lost = {keys[n] for n, s in SPOILS.items() if s.table == "jobs" and s.reason and not s.loads}
    expected = sorted({job["id"] for job in fleet.jobs(DAY)} - lost)
    loaded = [row[0] for row in query(warehouse, "SELECT job_id FROM jobs ORDER BY job_id")]
    assert loaded == expected
    # Tracks: all but the spoiled ones that cannot load (one of them lost its id to "abc").
    start, end = fleet.day_window_ms(DAY)
    truth = {str(track["id"]) for track in fleet.tracks(start, end)}
    tracks = [row[0] for row in query(warehouse, "SELECT CAST(track_id AS VARCHAR) FROM tracks")]
    spoiled_tracks = [s for s in SPOILS.values() if s.table == "tracks" and not s.loads]
    assert set(tracks) <= truth and len(tracks) == len(set(tracks))
    assert len(tracks) == len(truth) - len(spoiled_tracks)
    # Every quarantined row is counted in its asset's materialization.
    counted = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if "quarantined" in materialization.metadata:
            name = materialization.asset_key.to_user_string()
            counted[name] = materialization.metadata["quarantined"].value
    in_table = dict(query(warehouse, "SELECT table_name, count(*) FROM quarantine GROUP BY ALL"))
    assert {name: counted.get(name, 0) for name in in_table} == in_table
    assert sum(in_table.values()) == sum(1 for s in SPOILS.values() if s.reason)
    unknown = next(
        e.materialization.metadata["unknown_fields"].value
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == AssetKey("jobs")
    )
    assert unknown.get("x_new_field") == 1


# --- answers spoiled as a whole -----------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    action: str  # whose answers are replaced
    tables: tuple[str, ...]  # what the run materializes
    rule: Rule
    message: str | None  # a piece of the failure message; None: the run must succeed
    requests: int  # answers of `action` the client asks for, retries included


RETRIES = 2
JOBS, COMPANY, TRACKS, MILEAGE = ("jobs",), ("company", "teams"), ("tracks",), ("report_mileage",)
BROKEN = {
    # A JSON body cut off mid-record, every time: retried, then given up on.
    "truncated_json": Broken(
        "getjobs",
        JOBS,
        canned(b'{"status": 0, "jobs": [{"id": "j1"'),
        "gave up after 3 requests",
        RETRIES + 1,
    ),
    # A proxy's HTML error page with HTTP 200, every time.
    "html_page_with_200": Broken(
        "getjobs",
        JOBS,
        canned(HTML, content_type="text/html"),
        "not JSON (text/html)",
        RETRIES + 1,
    ),
    # The same page once: retried, and the day loads.
    "html_page_once": Broken(
        "getjobs", JOBS, first_n(1, canned(HTML, content_type="text/html")), None, 3
    ),
    # An empty body with HTTP 200, every time.
    "empty_body": Broken("getjobs", JOBS, canned(b""), "gave up after 3 requests", RETRIES + 1),
    # Well-formed JSON without a status: asking again would get the same.
    "json_without_status": Broken(
        "getjobs", JOBS, canned(b'{"jobs": []}'), "without a status field", 1
    ),
    # Success without the list it promises.
    "success_without_list": Broken(
        "getjobs", JOBS, canned(b'{"status": 0}'), "without a 'jobs' list", 1
    ),
    # The list as an object.
    "list_as_an_object": Broken(
        "getjobs", JOBS, canned(b'{"status": 0, "jobs": {"a": 1}}'), "without a 'jobs' list", 1
    ),
    # A data error, with the server's own words.
    "data_error": Broken(
        "getjobs",
        JOBS,
        canned(b'{"status": -11, "error": "day is out of range"}'),
        "status -11 (data error) (day is out of range)",
        1,
    ),
    # A status no document lists.
    "unknown_status": Broken(
        "getjobs", JOBS, canned(b'{"status": -42}'), "status -42 (unknown status)", 1
    ),
    # The status as text "0" is still success.
    "status_as_text": Broken(
        "getjobs", JOBS, on_json(lambda envelope, _: envelope.update(status="0")), None, 2
    ),
    # A 404: the base URL points somewhere else.
    "http_404": Broken("getjobs", JOBS, canned(HTML, 404, "text/html"), "unexpected HTTP 404", 1),
    # A 401 from a gateway in front of the API.
    "http_401": Broken(
        "getjobs", JOBS, canned(b"", 401, "text/plain"), "HTTP 401: the key was refused", 1
    ),
    # getcompany without its company object.
    "company_missing": Broken(
        "getcompany", COMPANY, canned(b'{"status": 0}'), "without a company object", 1
    ),
    # Legacy keyed tracks whose values are not lists.
    "tracks_keyed_by_nonsense": Broken(
        "gettracks",
        TRACKS,
        canned(b'{"status": 0, "tracks": {"u1": "x"}}'),
        "without a 'tracks' list",
        1,
    ),
    # A report file without its `day` column.
    "report_without_day_column": Broken(
        "createreport",
        MILEAGE,
        canned(b"member_uid,distance_km\nu1,1.5\n", content_type="text/csv"),
        "the report has no `day` column",
        1,
    ),
    # A report refused with an error envelope.
    "report_refused": Broken(
        "createreport",
        MILEAGE,
        canned(b'{"status": -11, "error": "unknown reporttype"}'),
        "refused the request: status -11",
        1,
    ),
    # An HTML page where the report file belongs, every time.
    "report_as_html": Broken(
        "createreport",
        MILEAGE,
        canned(HTML, content_type="text/html"),
        "an HTML page instead of a file",
        RETRIES + 1,
    ),
}


def run_tables(target, warehouse, tables: tuple[str, ...]):
    """Materialize `tables` for DAY through `target` (a sandbox or a proxy), errors kept."""
    client = HellotracksResource(
        api_key=target.api_key,
        base_url=target.url,
        min_interval_seconds=0.0,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.05,
        max_retries=RETRIES,
    )
    return materialize(
        [hellotracks_tables],
        selection=list(tables),
        partition_key=str(DAY),
        instance=DagsterInstance.ephemeral(),
        resources={"hellotracks": client, "warehouse": WarehouseResource(directory=str(warehouse))},
        run_config=QUIET,
        raise_on_error=False,
    )


def day_state(warehouse, table: str) -> tuple[list, list]:
    """The table's rows of DAY (their keys) and its entry in the `_loads` book."""
    column = TABLE_KEYS[table]
    keys = query(warehouse, f'SELECT "{column}" FROM "{table}" WHERE day = ? ORDER BY 1', [DAY])
    book = query(warehouse, "SELECT * FROM _loads WHERE table_name = ? AND day = ?", [table, DAY])
    return keys, book


@pytest.mark.parametrize("name", list(BROKEN))
def test_each_broken_answer_ends_in_a_clear_message_and_a_known_state(
    name, spoiled, sandbox_fleet, tmp_path
):
    case = BROKEN[name]
    warehouse = tmp_path / "warehouse"
    shutil.copytree(spoiled[0], warehouse)
    tables = list(case.tables)
    before = {table: day_state(warehouse, table) for table in tables}

    with tampering(sandbox_fleet, {case.action: case.rule}) as proxy:
        result = run_tables(proxy, warehouse, case.tables)
        asked = len(proxy.requests(case.action))

    failures = [
        failure_message(e.step_failure_data.error) for e in result.all_events if e.is_step_failure
    ]
    assert asked == case.requests, failures
    if case.message is None:
        assert result.success, failures
        keys, _ = day_state(warehouse, tables[0])
        assert [k for (k,) in keys] == sorted(j["id"] for j in sandbox_fleet.fleet.jobs(DAY))
        return
    assert not result.success
    assert len(failures) == 1 and case.message in failures[0], failures
    # The day keeps what the last good load left, book entry and all.
    assert {table: day_state(warehouse, table) for table in tables} == before


# --- the wrong key ------------------------------------------------------------------------------


def test_a_wrong_key_stops_at_the_first_answer_and_writes_nothing(sandbox_fleet, tmp_path):
    sandbox_fleet.clear_log()
    env = cli_env(tmp_path, sandbox_fleet.url, "not-the-key")
    out = run_cli([*sync_command(DAY, DAY), "--quiet"], env)

    assert out.returncode != 0
    assert "invalid, missing or disabled API key" in out.stderr
    assert "HELLOTRACKS_API_KEY" in out.stderr
    assert "Traceback" not in out.stderr and "Stack Trace" not in out.stderr
    # One answer said the key is wrong: nothing was asked twice, nothing else was asked at all.
    assert len(sandbox_fleet.requests()) == 1
    warehouse = tmp_path / "warehouse"
    assert not (warehouse / "hellotracks.duckdb").exists()
    assert list(warehouse.glob("parquet/**/*.parquet")) == []


# --- mistakes at the command line ---------------------------------------------------------------


@dataclass(frozen=True)
class Mistake:
    args: tuple[str, ...]
    message: str  # a piece of the one clear line the user gets
    env: tuple[tuple[str, str], ...] = ()
    # Run as its own process, as a user would: a sync reads its settings when the process starts,
    # so one test process cannot give each case different ones. The other cases run in-process,
    # which is quicker and shows an escaping exception as such.
    process: bool = False


MISTAKES = {
    # A day that is not on the calendar.
    "impossible_day": Mistake(
        ("sync", "--from", "20251340", "--to", "20251341"), "not a date in YYYYMMDD form"
    ),
    # A word instead of a day.
    "word_for_a_day": Mistake(
        ("sync", "--from", "yesterday", "--to", "20251010"), "not a date in YYYYMMDD form"
    ),
    # The ISO form of a day.
    "iso_day": Mistake(
        ("sync", "--from", "2025-10-10", "--to", "20251010"), "not a date in YYYYMMDD form"
    ),
    # A day with a digit too many.
    "nine_digit_day": Mistake(
        ("sync", "--from", "202510101", "--to", "20251010"), "not a date in YYYYMMDD form"
    ),
    # The range the wrong way round.
    "reversed_range": Mistake(("sync", "--from", "20251012", "--to", "20251010"), "is after --to"),
    # Days before the first partition.
    "before_the_first_day": Mistake(
        ("sync", "--from", "20200101", "--to", "20200102"), "before the first day partition"
    ),
    # Days that have not happened.
    "future_days": Mistake(("sync", "--from", "20251010", "--to", "29990101"), "in the future"),
    # The end of the range left out.
    "missing_to": Mistake(("sync", "--from", "20251010"), "Missing option '--to'"),
    # A table that does not exist.
    "unknown_table": Mistake(
        ("sql", "SELECT * FROM no_such_table"), "no_such_table does not exist"
    ),
    # Deleting rows.
    "sql_delete": Mistake(("sql", "DELETE FROM jobs"), "refused: DELETE"),
    # Dropping a table.
    "sql_drop": Mistake(("sql", "DROP TABLE jobs"), "refused: DROP"),
    # Attaching another database to write into.
    "sql_attach": Mistake(("sql", "ATTACH 'elsewhere.duckdb' AS other"), "refused: ATTACH"),
    # A read followed by a write.
    "sql_two_statements": Mistake(("sql", "SELECT 1; DROP TABLE jobs"), "exactly one statement"),
    # EXPLAIN ANALYZE runs what it explains: here, a file write.
    "sql_explain_analyze_copy": Mistake(
        ("sql", "EXPLAIN ANALYZE COPY (SELECT 42) TO 'leak.csv'"), "refused: COPY"
    ),
    # An output format that does not exist.
    "sql_unknown_format": Mistake(("sql", "SELECT 1", "--format", "xml"), "'xml' is not one of"),
    # A page size of nothing.
    "page_size_zero": Mistake(
        ("sync", "--from", "20251010", "--to", "20251010"),
        "HELLOTRACKS_PAGE_SIZE",
        (("HELLOTRACKS_PAGE_SIZE", "0"),),
    ),
    # A pace given in words.
    "interval_in_words": Mistake(
        ("status",), "HELLOTRACKS_MIN_INTERVAL", (("HELLOTRACKS_MIN_INTERVAL", "fast"),)
    ),
    # A start day that is only a year.
    "start_day_a_year": Mistake(
        ("status",), "HELLOTRACKS_START_DAY", (("HELLOTRACKS_START_DAY", "2024"),)
    ),
    # A time zone that does not exist.
    "unknown_timezone": Mistake(
        ("status",), "HELLOTRACKS_TIMEZONE", (("HELLOTRACKS_TIMEZONE", "Mars/Olympus"),)
    ),
    # An empty key.
    "empty_key": Mistake(
        ("sync", "--from", "20251010", "--to", "20251010"),
        "HELLOTRACKS_API_KEY is not set",
        (("HELLOTRACKS_API_KEY", ""),),
    ),
    # A key pasted with a space inside: refused before any request.
    "key_with_a_space": Mistake(
        ("sync", "--from", "20251010", "--to", "20251010"),
        "the API key holds spaces",
        (("HELLOTRACKS_API_KEY", "test key"),),
        process=True,
    ),
    # A base URL without its scheme.
    "url_without_scheme": Mistake(
        ("sync", "--from", "20251010", "--to", "20251010"),
        "missing an 'http://' or 'https://' protocol",
        (("HELLOTRACKS_BASE_URL", "api.hellotracks.com/api"),),
        process=True,
    ),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_each_user_mistake_gets_a_clear_line_and_changes_nothing(
    name, spoiled, sandbox_fleet, tmp_path, monkeypatch
):
    case = MISTAKES[name]
    warehouse = tmp_path / "warehouse"
    shutil.copytree(spoiled[0], warehouse)
    monkeypatch.chdir(tmp_path)  # where a relative path in the SQL would land
    env = cli_env(tmp_path, sandbox_fleet.url, sandbox_fleet.api_key) | dict(case.env)
    before = _everything(warehouse)
    asked = len(sandbox_fleet.requests())

    if case.process:
        done = run_cli(cli_command(*case.args), env)
        code, output = done.returncode, done.stdout + done.stderr
    else:
        result = CliRunner().invoke(cli, list(case.args), env=env)
        code, output = result.exit_code, result.output
        # A clean exit with a message, never an exception escaping to a traceback.
        assert result.exception is None or isinstance(result.exception, SystemExit), output

    assert code != 0
    assert case.message in output, output
    assert "Traceback" not in output and "Stack Trace" not in output
    assert _everything(warehouse) == before
    assert not (tmp_path / "leak.csv").exists()
    if name == "key_with_a_space":
        assert len(sandbox_fleet.requests()) == asked


def _everything(warehouse) -> dict[str, list]:
    """Every row of every table, for telling that nothing changed."""
    tables = [row[0] for row in query(warehouse, "SHOW TABLES")]
    return {table: query(warehouse, f'SELECT * FROM "{table}" ORDER BY ALL') for table in tables}
