"""The marts: SQL models over the daily tables, for the questions asked every morning.

Each mart is one SELECT in `assets/sql/<mart>.sql` that builds the rows of the days in `$days`.
Its header comment documents it: a description, then a `Columns:` list (name, colon, meaning)
that becomes the column descriptions shown in Dagster. `_member_profile.sql` is not a mart: it
is a temporary table of each member's name, time zone and teams that the marts share.

One run rebuilds its days of every mart in a single transaction, in the order of `MARTS`
(later marts read `job_timeline`), so a reader never sees one mart rebuilt and another not.
"""

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import duckdb
from dagster import (
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    multi_asset,
)

from assets.common import row_counts, run_days
from pipelines.partitions import daily_partitions
from resources.warehouse import WarehouseResource

SQL_DIR = Path(__file__).with_name("sql")

_COLUMN = re.compile(r"--   (\w+): (.*)")
_CONTINUATION = re.compile(r"--     (.*)")
_PARAMETER = re.compile(r"\$(\w+)")


@dataclass(frozen=True)
class Mart:
    """One SQL model: the table it leaves behind and the tables (or marts) its SQL reads."""

    name: str
    reads: tuple[str, ...]

    @property
    def path(self) -> Path:
        return SQL_DIR / f"{self.name}.sql"

    @cached_property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def sql(self) -> str:
        """The SELECT, ready to wrap in a statement: without a trailing semicolon, and without
        comments (`--` to the end of a line, so the SQL must not hold `--` inside a string)."""
        lines = (line.split("--", 1)[0].rstrip() for line in self.text.splitlines())
        return "\n".join(line for line in lines if line).rstrip(";")

    @property
    def parameters(self) -> frozenset[str]:
        return frozenset(_PARAMETER.findall(self.sql))

    @property
    def description(self) -> str:
        """The header's first paragraph, without its leading `<name>: `."""
        lines = []
        for line in self.text.splitlines():
            if not line.startswith("--") or line.strip() == "--":
                break
            lines.append(line[2:].strip())
        text = " ".join(lines).removeprefix(f"{self.name}: ")
        return text[:1].upper() + text[1:]

    @property
    def column_docs(self) -> dict[str, str]:
        """Column name to meaning, as the header's `Columns:` list gives them, in order."""
        docs: dict[str, str] = {}
        current = None
        in_list = False
        for line in self.text.splitlines():
            if line.strip() == "-- Columns:":
                in_list = True
                continue
            if not in_list:
                continue
            if (match := _COLUMN.fullmatch(line)) is not None:
                current = match.group(1)
                docs[current] = match.group(2).strip()
            elif current and (match := _CONTINUATION.fullmatch(line)) is not None:
                docs[current] += " " + match.group(1).strip()
            else:
                break
        return docs


# Build order: every mart after the marts it reads.
MARTS: tuple[Mart, ...] = (
    Mart("job_timeline", ("jobs", "members", "company")),
    Mart("worker_day", ("job_timeline", "tracks", "members", "company")),
    Mart("team_day", ("job_timeline", "tracks", "members", "teams")),
    Mart("place_visits", ("job_timeline", "places")),
    Mart("mileage_reconciliation", ("tracks", "report_mileage", "members")),
)
MEMBER_PROFILE = Mart("_member_profile", ("members",))

_MART_NAMES = frozenset(m.name for m in MARTS)
SOURCE_TABLES = frozenset(t for m in (*MARTS, MEMBER_PROFILE) for t in m.reads) - _MART_NAMES

# The company's zone, as the latest snapshot gives it; checked against DuckDB's list of zones.
_COMPANY_ZONE = """
SELECT timezone FROM company
QUALIFY row_number() OVER (ORDER BY fetched_at DESC NULLS LAST, day DESC) = 1
"""
_KNOWN_ZONE = "SELECT count(*) FROM pg_timezone_names() WHERE name = ?"


class MartSourceError(RuntimeError):
    """The warehouse lacks a table the marts read, or a mart table no longer fits its SQL."""


@dataclass
class MartBuild:
    """What one build did: rows per mart and day, each mart's columns, and the zone it fell
    back to for members without one."""

    default_zone: str
    members_on_default_zone: int
    rows: dict[str, dict[int, int]]
    columns: dict[str, list[tuple[str, str]]]

    def schema(self, mart: Mart) -> TableSchema:
        docs = mart.column_docs
        return TableSchema(
            columns=[
                TableColumn(name, sql_type, description=docs.get(name))
                for name, sql_type in self.columns[mart.name]
            ]
        )


def build_marts(
    warehouse: WarehouseResource, days: Sequence[int], partition_zone: str
) -> MartBuild:
    """Replace `days` of every mart with rows computed from the loaded tables, atomically.

    Mart tables are created on first use and gain columns their SQL has gained (a column the
    SQL no longer has stays, null in rebuilt days). A day with no source rows leaves no mart
    rows. Raises `MartSourceError` before changing anything when a source table is missing, and
    rolls everything back if any mart fails.
    """
    days = sorted(set(days))
    with warehouse.connect() as con:
        missing = sorted(SOURCE_TABLES - _main_tables(con))
        if missing:
            raise MartSourceError(
                f"the marts read {', '.join(missing)}, which the warehouse does not hold yet: "
                "sync these days (or any day) first"
            )
        con.execute("BEGIN TRANSACTION")
        try:
            zone = default_zone(con, partition_zone)
            _run(con, MEMBER_PROFILE, "CREATE OR REPLACE TEMP TABLE member_profile AS", days, zone)
            on_default = con.execute(
                "SELECT count(*) FROM member_profile WHERE NOT zone_from_roster"
            ).fetchone()[0]
            rows = {mart.name: _rebuild(con, mart, days, zone) for mart in MARTS}
            columns = {
                mart.name: [
                    (row[0], row[1])
                    for row in con.execute(f'DESCRIBE main."{mart.name}"').fetchall()
                ]
                for mart in MARTS
            }
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return MartBuild(zone, on_default, rows, columns)


def default_zone(con: duckdb.DuckDBPyConnection, partition_zone: str) -> str:
    """The zone for members without a usable one: the company's, else the partitions'."""
    found = con.execute(_COMPANY_ZONE).fetchone()
    company = found[0] if found else None
    if company and con.execute(_KNOWN_ZONE, [company]).fetchone()[0]:
        return company
    return partition_zone


def _main_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        row[0]
        for row in con.execute(
            "SELECT table_name FROM duckdb_tables() "
            "WHERE NOT temporary AND schema_name = 'main' AND database_name = current_database()"
        ).fetchall()
    }


def _run(
    con: duckdb.DuckDBPyConnection, mart: Mart, prefix: str, days: list[int], zone: str
) -> None:
    values = {"days": days, "default_zone": zone}
    con.execute(f"{prefix}\n{mart.sql}", {name: values[name] for name in mart.parameters})


def _rebuild(
    con: duckdb.DuckDBPyConnection, mart: Mart, days: list[int], zone: str
) -> dict[int, int]:
    """Replace `days` of one mart; returns its rows per day (days without rows are 0)."""
    _run(con, mart, "CREATE OR REPLACE TEMP TABLE _mart_rows AS", days, zone)
    stray = con.execute(
        "SELECT count(*) FROM _mart_rows WHERE day IS NULL OR day NOT IN (SELECT unnest(?))",
        [days],
    ).fetchone()[0]
    if stray:
        # The DELETE below only clears `days`: rows of other days would pile up on every run.
        raise MartSourceError(f"{mart.path.name} produced {stray} row(s) outside $days")
    _ensure_table(con, mart)
    con.execute(f'DELETE FROM main."{mart.name}" WHERE day IN (SELECT unnest(?))', [days])
    con.execute(f'INSERT INTO main."{mart.name}" BY NAME SELECT * FROM _mart_rows')
    counts = dict(con.execute("SELECT day, count(*) FROM _mart_rows GROUP BY day").fetchall())
    con.execute("DROP TABLE _mart_rows")
    return {day: counts.get(day, 0) for day in days}


def _ensure_table(con: duckdb.DuckDBPyConnection, mart: Mart) -> None:
    """Create the mart's table from the new rows' columns, or add the columns it lacks."""
    incoming = [(row[0], row[1]) for row in con.execute("DESCRIBE _mart_rows").fetchall()]
    if mart.name not in _main_tables(con):
        con.execute(f'CREATE TABLE main."{mart.name}" AS SELECT * FROM _mart_rows LIMIT 0')
        return
    existing = dict(
        (row[0], row[1]) for row in con.execute(f'DESCRIBE main."{mart.name}"').fetchall()
    )
    for name, sql_type in incoming:
        if name not in existing:
            con.execute(f'ALTER TABLE main."{mart.name}" ADD COLUMN "{name}" {sql_type}')
        elif existing[name] != sql_type:
            # Converting stored days in place could lose data silently. Dropping the table and
            # rebuilding every loaded day removes this (the marts hold nothing of their own).
            raise MartSourceError(
                f"{mart.name}.{name} is {existing[name]} in the warehouse but {sql_type} in "
                f"{mart.path.name}: drop table {mart.name} and rebuild the marts for all days"
            )


@multi_asset(
    name="marts",
    specs=[
        AssetSpec(
            mart.name,
            deps=list(mart.reads),
            group_name="marts",
            kinds={"duckdb"},
            description=mart.description,
        )
        for mart in MARTS
    ],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
)
def marts(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[MaterializeResult]:
    """Rebuild the run's days of every mart from the tables loaded for them."""
    days = run_days(context)

    built = build_marts(warehouse, days, daily_partitions.timezone)

    if built.members_on_default_zone:
        context.log.warning(
            f"marts: {built.members_on_default_zone} member(s) have no time zone DuckDB knows; "
            f"their windows are read in {built.default_zone}"
        )
    counts = ", ".join(f"{name} {sum(rows.values())}" for name, rows in built.rows.items())
    context.log.info(f"marts: rebuilt {len(days)} day(s) {days[0]}..{days[-1]}: {counts} rows")
    for mart in MARTS:
        # The columns are known only once the SQL has run. Copied onto every day of a range
        # they cost about as much as the rest of the build; the UI reads them from the latest
        # materialization, which is the run's last day.
        context.add_asset_metadata(
            {"dagster/column_schema": built.schema(mart)},
            asset_key=mart.name,
            partition_key=str(days[-1]),
        )
        yield MaterializeResult(
            asset_key=mart.name,
            metadata={
                **row_counts(context, mart.name, built.rows[mart.name]),
                "default_zone": MetadataValue.text(built.default_zone),
                "members_on_default_zone": built.members_on_default_zone,
                "sql": MetadataValue.path(str(mart.path)),
                "duckdb": MetadataValue.path(str(warehouse.database_path)),
            },
        )
