"""`report_jobs`, `report_mileage`, `report_timesheet`: Hellotracks' own reports, from CSV.

The reports are what the account's users see in the Hellotracks app. Loading them beside the raw
tables lets the warehouse reconcile the two: the checks here compare the jobs report with
`jobs` and the mileage report with the summed distance of `tracks`.

Reports come as files, not JSON. Their columns (fixed in the sandbox's `sandbox.fleet` docstring,
since the public docs list none) are read by name; a column the spec does not know is kept in
`extras` like any unknown field.
"""

import csv
import io
from collections import defaultdict
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetSpec,
    MaterializeResult,
)

from assets.common import Checks, Dataset, SyncRun, api_metadata, store_days, table_asset
from assets.normalize import (
    Normalized,
    TableSpec,
    col,
    merge,
    normalize,
    normalize_text_table,
    quarantine_row,
)
from resources.request_stream import Queued

REPORT_JOBS = TableSpec(
    name="report_jobs",
    key="job_id",
    columns=(
        col("job_id", "str"),
        col("member_uid", "str"),
        col("member", "str"),
        col("title", "str"),
        col("place_uid", "str"),
        col("status", "str"),
        col("check_in_local", "local_dt", "check_in"),
        col("check_out_local", "local_dt", "check_out"),
        col("done_at_local", "local_dt", "done_at"),
    ),
)

REPORT_MILEAGE = TableSpec(
    name="report_mileage",
    key="member_uid",
    columns=(
        col("member_uid", "str"),
        col("member", "str"),
        col("distance_km", "float"),
        col("trips", "int"),
    ),
)

REPORT_TIMESHEET = TableSpec(
    name="report_timesheet",
    key="member_uid",
    columns=(
        col("member_uid", "str"),
        col("member", "str"),
        col("first_activity_local", "local_dt", "first_activity"),
        col("last_activity_local", "local_dt", "last_activity"),
        col("hours", "float"),
    ),
)

_JOBS_COUNT_MISMATCH = """
SELECT count(*) FROM (
    SELECT day, count(*) AS n FROM jobs WHERE day IN (SELECT unnest($days)) GROUP BY day
) AS j FULL JOIN (
    SELECT day, count(*) AS n FROM report_jobs WHERE day IN (SELECT unnest($days)) GROUP BY day
) AS r USING (day)
WHERE coalesce(j.n, 0) <> coalesce(r.n, 0)
"""

# Within 1%, and within 1 m for very short days where rounding to 3 decimals of a km dominates.
_MILEAGE_MISMATCH = """
SELECT count(*) FROM (
    SELECT day, member_uid, sum(distance_m) / 1000 AS km FROM tracks
    WHERE day IN (SELECT unnest($days)) GROUP BY ALL
) AS t FULL JOIN (
    SELECT day, member_uid, distance_km AS km FROM report_mileage
    WHERE day IN (SELECT unnest($days))
) AS r USING (day, member_uid)
WHERE abs(coalesce(t.km, 0) - coalesce(r.km, 0)) > greatest(0.01 * coalesce(t.km, 0), 0.001)
"""


# Report lines normalized together: bounds the dicts held for a report of any size.
_ROWS_PER_CHUNK = 20_000


def parse_report_csv(spec: TableSpec, content: bytes, days: list[int]) -> dict[int, Normalized]:
    """Split a report file by its `day` column and normalize each day's rows.

    Empty cells mean "no value". A row whose day is not one of `days`, or not a day at all, is
    quarantined under the first day rather than dropped.

    A plain report (every row as wide as the header, every day one asked for, every column
    known, ids unique) is read by Arrow's CSV reader and converted column by column: several
    times faster than a dict per line, on reports of hundreds of thousands of lines. Anything
    else is read line by line (`read_report_rows`), which gives the same result for a plain one.
    """
    try:
        plain = _read_plain_report(spec, content, days)
        return plain if plain is not None else read_report_rows(spec, content, days)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{spec.name}: the report is not UTF-8 text ({exc})") from None


def _read_plain_report(
    spec: TableSpec, content: bytes, days: list[int]
) -> dict[int, Normalized] | None:
    header = next(csv.reader(_text(content)), None)
    # A header spread over lines (a quoted newline) would make Arrow skip the wrong line.
    if (
        not header
        or "day" not in header
        or len(set(header)) != len(header)
        or any("\n" in name or "\r" in name for name in header)
    ):
        return None
    try:
        table = pacsv.read_csv(
            io.BytesIO(content),
            # The header is the one the csv module read (it knows the byte order mark); Arrow
            # reads the lines after it, every cell as text, only an empty one as no value.
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid:
        return None  # a line wider or narrower than the header, or text that is not UTF-8
    claimed = table.column("day")
    wanted = pa.array([str(day) for day in days], pa.string())
    if claimed.null_count or not pc.all(pc.is_in(claimed, value_set=wanted)).as_py():
        return None
    result: dict[int, Normalized] = {}
    for day, rows in _by_day(table, days):
        normalized = normalize_text_table(spec, rows, day, seen=set())
        if normalized is None:
            return None
        result[day] = normalized
    return result


def _by_day(table: pa.Table, days: list[int]) -> Iterator[tuple[int, pa.Table]]:
    """Each day's rows without the `day` column, in file order, for a table whose `day` texts
    are all days of `days` (so they sort as the days do): one stable sort, then slices."""
    if len(days) == 1:
        yield days[0], table.drop_columns(["day"])
        return
    ordered = table.take(pc.sort_indices(table.column("day"))).drop_columns(["day"])
    counts = pc.value_counts(table.column("day")).to_pylist()
    rows_of = {int(entry["values"]): entry["counts"] for entry in counts}
    start = 0
    for day in sorted(days):
        length = rows_of.get(day, 0)
        yield day, ordered.slice(start, length)
        start += length


def _text(content: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(content), encoding="utf-8-sig", newline="")


def read_report_rows(spec: TableSpec, content: bytes, days: list[int]) -> dict[int, Normalized]:
    """`parse_report_csv` a line at a time, for any report: rows are normalized in chunks as they
    are read, so a large report is never held as dicts all at once."""
    text = _text(content)
    reader = csv.DictReader(text)
    if reader.fieldnames is None or "day" not in reader.fieldnames:
        raise ValueError(
            f"{spec.name}: the report has no `day` column (columns: {reader.fieldnames})"
        )
    wanted = set(days)
    pending: dict[int, list[dict]] = defaultdict(list)
    seen: dict[int, set[str]] = defaultdict(set)
    parts: dict[int, list[Normalized]] = defaultdict(list)
    stray: list[dict] = []
    for row in reader:
        record = {k: (None if v == "" else v) for k, v in row.items() if k is not None}
        if None in row:
            record["_unnamed_cells"] = row[None]
        claimed = record.pop("day")
        try:
            day = int(claimed)
        except (TypeError, ValueError):
            day = None
        if day not in wanted:
            # The quarantine keeps the day the row claimed: it is why the row is there.
            stray.append({"day": claimed, **record})
            continue
        pending[day].append(record)
        if len(pending[day]) >= _ROWS_PER_CHUNK:
            parts[day].append(normalize(spec, pending.pop(day), day, seen=seen[day]))
    for day, records in pending.items():
        parts[day].append(normalize(spec, records, day, seen=seen[day]))
    result = {day: merge(spec, parts.get(day, [])) for day in days}
    for record in stray:
        reason = "report row for a day outside the requested range"
        result[days[0]].quarantine.append(quarantine_row(spec.name, days[0], None, reason, record))
    return result


def _report_dataset(reporttype: str, spec: TableSpec, *checks: Checks) -> Dataset:
    def request(run: SyncRun) -> Queued[bytes]:
        # One request for the whole range. No `accounts` filter: the sandbox then reports on
        # everyone, unassigned jobs included. An account whose server insists on `accounts`
        # answers -11, which fails the sync loudly; passing the known member uids would
        # remove that, at the cost of losing unassigned jobs from the jobs report.
        return run.api.createreport(reporttype, "csv", from_day=run.days[0], until_day=run.days[-1])

    def store(run: SyncRun, report: Queued[bytes]) -> list[MaterializeResult]:
        per_day = parse_report_csv(spec, report.one(), run.days)
        api = api_metadata([report])
        metadata = store_days(run.context, run.warehouse, spec, per_day, api=api)
        return [MaterializeResult(asset_key=spec.name, metadata=metadata)]

    return Dataset(
        specs=(
            AssetSpec(
                spec.name,
                description=f"The `{reporttype}` report of `createreport`, one row per its own "
                "line.",
                **table_asset(spec.schema()),
            ),
        ),
        checks=checks,
        request=request,
        store=store,
    )


def _count(run: SyncRun, sql: str) -> int:
    with run.warehouse.connect(read_only=True) as con:
        return con.execute(sql, {"days": run.days}).fetchone()[0]


def _jobs_checks(run: SyncRun) -> list[AssetCheckResult]:
    mismatched = _count(run, _JOBS_COUNT_MISMATCH)
    return [
        AssetCheckResult(
            asset_key=REPORT_JOBS.name,
            check_name="jobs_report_matches_jobs",
            passed=mismatched == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={"days_with_different_counts": mismatched},
        )
    ]


def _mileage_checks(run: SyncRun) -> list[AssetCheckResult]:
    mismatched = _count(run, _MILEAGE_MISMATCH)
    return [
        AssetCheckResult(
            asset_key=REPORT_MILEAGE.name,
            check_name="mileage_report_matches_tracks",
            passed=mismatched == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={"member_days_off_by_more_than_1pct": mismatched},
        )
    ]


# The reports come from the API, not from the tables they report on; their checks compare the
# two, so they read (and wait for) those tables too.
DATASETS = (
    _report_dataset(
        "jobs",
        REPORT_JOBS,
        Checks(
            specs=(
                AssetCheckSpec(
                    "jobs_report_matches_jobs", asset=REPORT_JOBS.name, additional_deps=["jobs"]
                ),
            ),
            reads=(REPORT_JOBS.name, "jobs"),
            evaluate=_jobs_checks,
        ),
    ),
    _report_dataset(
        "mileage",
        REPORT_MILEAGE,
        Checks(
            specs=(
                AssetCheckSpec(
                    "mileage_report_matches_tracks",
                    asset=REPORT_MILEAGE.name,
                    additional_deps=["tracks"],
                ),
            ),
            reads=(REPORT_MILEAGE.name, "tracks"),
            evaluate=_mileage_checks,
        ),
    ),
    _report_dataset("timesheet", REPORT_TIMESHEET),
)
