"""The phases every daily dataset shares: which days a run covers, and how a day is stored.

The daily tables are synced in one step (`assets.sync`), dataset by dataset. A `Dataset` says
which tables it leaves, what it asks the API for (`request`, queued on the run's request stream)
and how it stores the answers (`store`): normalize, then `store_days` (Parquet per day, one
DuckDB transaction for the whole run, and the materialization's metadata). A listing that can be
large goes through `stream_day` instead of being normalized whole: its pages go to the day's
Parquet file as they come. Keeping these here means the datasets differ only in what they fetch.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
)

from assets.normalize import (
    Normalized,
    TableSpec,
    normalize,
    normalize_snapshot,
    quarantine_table,
)
from pipelines.partitions import daily_partitions
from resources.hellotracks import ClientStats, HellotracksStream
from resources.request_stream import Queued
from resources.warehouse import WarehouseResource

# Pool of the step that calls the API, so parallel runs do not multiply the request rate. Its
# limit lives in the instance (dagster.yaml) so operators can change it.
API_POOL = "hellotracks_api"

# What every daily asset declares: day partitions, and one run for a whole range of days.
DAILY = {"partitions_def": daily_partitions, "backfill_policy": BackfillPolicy.single_run()}

_SQL_TYPES = {
    pa.string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("ms"): "TIMESTAMP",
}


def run_days(context: AssetExecutionContext) -> list[int]:
    """The YYYYMMDD days this run materializes: one, or a whole range in a single-run backfill."""
    return [int(key) for key in context.partition_keys]


@dataclass
class SyncRun:
    """What the datasets of one sync step share: the run's days, the API and the warehouse.

    `api` is the step's request stream: what a dataset queues there is fetched in order, while
    the datasets before it are stored. `selected` holds the tables the run materializes and
    `selected_checks` the checks it runs; a subset run asks only for what they need.
    """

    context: AssetExecutionContext
    days: list[int]
    api: HellotracksStream
    warehouse: WarehouseResource
    selected: frozenset[str]
    selected_checks: frozenset[AssetCheckKey] = field(default_factory=frozenset)

    @classmethod
    def of(
        cls, context: AssetExecutionContext, api: HellotracksStream, warehouse: WarehouseResource
    ) -> SyncRun:
        return cls(
            context=context,
            days=run_days(context),
            api=api,
            warehouse=warehouse,
            selected=frozenset(key.to_user_string() for key in context.selected_asset_keys),
            selected_checks=frozenset(context.selected_asset_check_keys),
        )

    @property
    def timezone(self) -> str:
        return daily_partitions.timezone

    def wants(self, checks: Checks) -> bool:
        """Whether the run was asked to run any of `checks`."""
        return any(spec.key in self.selected_checks for spec in checks.specs)

    def selected_results(self, results: Iterable[AssetCheckResult]) -> list[AssetCheckResult]:
        """Of `results`, those of the checks the run was asked to run."""
        return [
            result
            for result in results
            if AssetCheckKey(result.asset_key, result.check_name) in self.selected_checks
        ]


@dataclass(frozen=True)
class Checks:
    """Asset checks that query the warehouse, evaluated once the tables they read are stored.

    `evaluate(run)` returns one result per spec. A table of `reads` that the run does not
    select is taken as the warehouse has it.
    """

    specs: tuple[AssetCheckSpec, ...]
    reads: tuple[str, ...]
    evaluate: Callable[[SyncRun], list[AssetCheckResult]]


@dataclass(frozen=True)
class Dataset:
    """One part of the sync step: the tables it leaves, its checks, its requests, its storing.

    `request(run)` queues what the dataset asks the API for on `run.api` and returns it (or
    anything `store` needs; nothing is asked for what the run does not select). `store(run,
    requested)` reads it, loads the tables, and returns their materializations; a dataset of
    several tables yields each one's as soon as it is loaded, so that a failure in a later one
    does not hide what the earlier ones loaded. `after` names tables `request` is worked out
    from: the step stores them before it queues this dataset.
    """

    specs: tuple[AssetSpec, ...]
    request: Callable[[SyncRun], Any]
    store: Callable[[SyncRun, Any], Iterable[MaterializeResult]]
    checks: tuple[Checks, ...] = ()
    after: tuple[str, ...] = ()

    @property
    def tables(self) -> frozenset[str]:
        return frozenset(spec.key.to_user_string() for spec in self.specs)

    @property
    def check_specs(self) -> list[AssetCheckSpec]:
        return [spec for checks in self.checks for spec in checks.specs]


def day_window_ms(day: int, timezone: str) -> tuple[int, int]:
    """The half-open window [local midnight, next local midnight) of `day`, in ms."""
    zone = ZoneInfo(timezone)
    first = date(day // 10000, day // 100 % 100, day % 100)
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    nxt = first + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def days_window_ms(days: Sequence[int], timezone: str) -> tuple[int, int]:
    """One window from the first local midnight of `days` to the one after the last."""
    return day_window_ms(min(days), timezone)[0], day_window_ms(max(days), timezone)[1]


def local_day_of_ms(ts_ms: int, timezone: str) -> int:
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).astimezone(ZoneInfo(timezone))
    return moment.year * 10000 + moment.month * 100 + moment.day


def table_asset(schema: pa.Schema) -> dict[str, Any]:
    """What an asset stored as a daily table declares: its group, kinds and column schema.

    The columns are fixed by the table's spec, so they are declared once on the asset (the UI
    shows them there) rather than written into the materialization of every day.
    """
    return {
        "group_name": "hellotracks",
        "kinds": {"duckdb", "parquet"},
        "metadata": {"dagster/column_schema": column_schema(schema)},
    }


def column_schema(schema: pa.Schema) -> TableSchema:
    return TableSchema(
        columns=[TableColumn(f.name, _SQL_TYPES.get(f.type, str(f.type))) for f in schema]
    )


# Rows gathered before `stream_day` writes them out as one Parquet row group: large enough for
# good compression and fast scans, small enough that a huge day costs no more memory than this.
ROW_GROUP_ROWS = 50_000


@dataclass
class Written(Normalized):
    """A day whose rows are already in its Parquet file: `table` is empty, the rest is the day's."""

    parquet_seconds: float = 0.0


def stream_day(
    warehouse: WarehouseResource,
    spec: TableSpec,
    day: int,
    pages: Iterable[Sequence[dict[str, Any]]],
    fetched_at: datetime | None = None,
) -> Written:
    """Normalize a day's listing page by page straight into the day's Parquet file.

    At most about `ROW_GROUP_ROWS` rows are held as Arrow, however large the day, and the file
    replaces the old one only once the listing has ended without an error. Ids are de-duplicated
    across pages. The file is in place before `store_days` loads it: if the run fails in between,
    DuckDB keeps the day as it was until the day is synced again.
    """
    seen: set[str] = set()
    written = Written(spec.schema().empty_table())
    pending: list[pa.Table] = []
    with warehouse.day_writer(spec.name, day, spec.schema()) as writer:

        def flush() -> None:
            started = time.perf_counter()
            writer.write_table(pa.concat_tables(pending))
            pending.clear()
            written.parquet_seconds += time.perf_counter() - started

        for page in pages:
            part = normalize(spec, page, day, fetched_at, seen=seen)
            pending.append(part.table)
            written.quarantine.extend(part.quarantine)
            written.extra_fields.update(part.extra_fields)
            written.seconds += part.seconds
            if sum(table.num_rows for table in pending) >= ROW_GROUP_ROWS:
                flush()
        if pending:
            flush()
    return written


def store_days(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    spec: TableSpec,
    per_day: Mapping[int, Normalized],
    *,
    api: Mapping[str, float] | None = None,
) -> dict[str, object]:
    """Write each day's Parquet file, load all of them into DuckDB at once, and report.

    A `Written` day (from `stream_day`) already has its file and is only loaded.

    Returns the materialization metadata (see `row_counts`), with the seconds spent
    normalizing, writing Parquet and loading DuckDB.
    """
    started = time.perf_counter()
    streamed = 0.0
    for day, normalized in per_day.items():
        if isinstance(normalized, Written):
            streamed += normalized.parquet_seconds
        else:
            warehouse.write_day(spec.name, day, normalized.table)
    written = time.perf_counter()
    quarantined = quarantine_table(row for n in per_day.values() for row in n.quarantine)
    loaded = warehouse.load_days(spec.name, list(per_day), quarantined)
    timings = {
        "normalize_seconds": round(sum(n.seconds for n in per_day.values()), 3),
        "parquet_seconds": round(written - started + streamed, 3),
        "duckdb_seconds": round(time.perf_counter() - written, 3),
    }

    extras: Counter[str] = Counter()
    for normalized in per_day.values():
        extras.update(normalized.extra_fields)
    total = sum(loaded.values())
    bad = quarantined.num_rows
    days = sorted(per_day)
    context.log.info(
        f"{spec.name}: loaded {total} rows for {len(days)} day(s) {days[0]}..{days[-1]}"
        + (f", quarantined {bad}" if bad else "")
    )
    if bad:
        context.log.warning(
            f"{spec.name}: {bad} record(s) could not be stored as typed rows; they are in the "
            "`quarantine` table with the reason"
        )
    if extras:
        context.log.warning(
            f"{spec.name}: fields the schema does not know were kept in `extras`: "
            + ", ".join(f"{name} ({count})" for name, count in extras.most_common(10))
        )
    metadata: dict[str, object] = {
        **row_counts(context, spec.name, loaded),
        "quarantined": bad,
        "unknown_fields": MetadataValue.json(dict(extras)),
        "parquet": MetadataValue.path(str(warehouse.root / "parquet" / spec.name)),
        "duckdb": MetadataValue.path(str(warehouse.database_path)),
        **timings,
    }
    if api is not None:
        metadata.update(api)
    return metadata


def snapshot_dataset(
    spec: TableSpec, description: str, request: Callable[[HellotracksStream], Queued[Any]]
) -> Dataset:
    """The dataset of a listing the API keeps no history of, stored under every day of the run.

    `request` queues the listing. The rows carry `fetched_at`, the moment the listing was asked
    for: a backfill stores today's listing under past days.
    """

    def store(run: SyncRun, listing: Queued[list[dict[str, Any]]]) -> list[MaterializeResult]:
        pages = list(listing)
        fetched_at = listing.started_at or datetime.now(UTC)
        per_day = normalize_snapshot(spec, pages, run.days, fetched_at)
        api = api_metadata([listing])
        metadata = store_days(run.context, run.warehouse, spec, per_day, api=api)
        return [MaterializeResult(asset_key=spec.name, metadata=metadata)]

    return Dataset(
        specs=(AssetSpec(spec.name, description=description, **table_asset(spec.schema())),),
        request=lambda run: request(run.api),
        store=store,
    )


def row_counts(
    context: AssetExecutionContext, asset_key: str, per_day: Mapping[int, int]
) -> dict[str, object]:
    """Give each day's materialization its own row count, and return the run's.

    `dagster/row_count` (the count the UI shows for a partition) is set on each day's event
    alone, so a range run reports every day as a one-day run would. The returned entries (the
    run's days and its total rows) are the same for every day of the run.
    """
    days = sorted(per_day)
    for day in days:
        context.add_asset_metadata(
            {"dagster/row_count": per_day[day]}, asset_key=asset_key, partition_key=str(day)
        )
    return {
        "days": MetadataValue.text(f"{days[0]}..{days[-1]} ({len(days)})"),
        "rows_in_run": sum(per_day.values()),
    }


def api_metadata(listings: Iterable[Queued[Any]]) -> dict[str, float]:
    """What fetching `listings` cost, as `api_*` metadata entries.

    `api_awaited_seconds` is how long the step waited for their answers: the part of the
    fetching that its own work did not hide.
    """
    listings = list(listings)
    spent = sum((listing.spent for listing in listings), ClientStats())
    metadata = {f"api_{name}": round(value, 3) for name, value in spent.as_metadata().items()}
    metadata["api_awaited_seconds"] = round(sum(listing.awaited for listing in listings), 3)
    return metadata
