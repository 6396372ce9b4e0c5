"""Read-only access to the warehouse for the command line: SQL, load status, the demo summary."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from resources.warehouse import DATABASE_FILE

# Statement types that only read. Anything else is refused before it reaches the database.
_READ_ONLY = {
    duckdb.StatementType.SELECT,
    duckdb.StatementType.EXPLAIN,
    duckdb.StatementType.PRAGMA,
}


# What precedes the statement an EXPLAIN explains: comments, the keyword, ANALYZE or options.
_EXPLAIN_PREFIX = re.compile(
    r"(?:\s+|/\*.*?\*/|--[^\n]*\n)*EXPLAIN\s*(?:ANALY[SZ]E\b|\([^)]*\))?", re.I | re.S
)


# How long a query waits for a sync's load to let go of the DuckDB file.
LOCK_WAIT_SECONDS = 60.0


class QueryError(Exception):
    """A query the warehouse cannot or will not run; the message says why."""


def connect_read_only(
    warehouse_dir: str, wait_seconds: float = LOCK_WAIT_SECONDS
) -> duckdb.DuckDBPyConnection:
    """A read-only connection, waiting up to `wait_seconds` while a sync holds the write lock.

    A sync holds the file only while it loads a table, so a query started meanwhile waits for
    that load rather than fail.
    """
    path = Path(warehouse_dir) / DATABASE_FILE
    if not path.exists():
        raise QueryError(f"no warehouse at {path}: run `hellotracks demo` or a sync first")
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            con = duckdb.connect(str(path), read_only=True)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise QueryError(f"cannot open {path}: {_first_line(exc)}") from None
            time.sleep(0.2)
    con.execute("SET TimeZone = 'UTC'")
    return con


def run_read_only(warehouse_dir: str, query: str) -> pa.Table:
    """The rows of one read-only statement; a statement that writes is refused."""
    con = connect_read_only(warehouse_dir)
    try:
        try:
            statements = con.extract_statements(query)
        except duckdb.Error as exc:
            raise QueryError(f"the query does not parse: {_first_line(exc)}") from None
        if len(statements) != 1:
            raise QueryError(f"give exactly one statement (got {len(statements)})")
        kind = _explained_kind(con, statements[0])
        if kind is None:
            raise QueryError("refused: cannot tell what this EXPLAIN would run")
        if kind not in _READ_ONLY:
            raise QueryError(
                f"refused: {kind.name} statements change the warehouse or write files; "
                "`hellotracks sql` only reads (re-sync a day to change it)"
            )
        try:
            return con.sql(query).to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(_first_line(exc)) from None
    finally:
        con.close()


def _explained_kind(con: duckdb.DuckDBPyConnection, statement) -> duckdb.StatementType | None:
    """The statement's type, or for an EXPLAIN the type of what it explains.

    EXPLAIN ANALYZE runs the statement it explains, so `EXPLAIN ANALYZE COPY ... TO` writes a file
    as surely as the COPY does. None when the explained statement cannot be made out.
    """
    if statement.type != duckdb.StatementType.EXPLAIN:
        return statement.type
    prefix = _EXPLAIN_PREFIX.match(statement.query)
    try:
        inner = con.extract_statements(statement.query[prefix.end() :]) if prefix else []
    except duckdb.Error:
        return None
    return _explained_kind(con, inner[0]) if len(inner) == 1 else None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def print_result(table: pa.Table, fmt: str) -> None:
    rows = table.to_pylist()
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, default=str, indent=2) + "\n")
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(table.column_names)
        writer.writerows([row[name] for name in table.column_names] for row in rows)
        sys.stdout.write(buffer.getvalue())
    else:
        out = Table(show_edge=False)
        for name in table.column_names:
            out.add_column(name)
        for row in rows:
            out.add_row(*("" if row[n] is None else str(row[n]) for n in table.column_names))
        console = Console()
        console.print(out)
        console.print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def loaded_days(warehouse_dir: str) -> dict[str, list[int]]:
    """The days loaded for each table, from the `_loads` book (empty days included)."""
    con = connect_read_only(warehouse_dir)
    try:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        if "_loads" not in tables:
            return {}
        result: dict[str, list[int]] = {}
        for table, day in con.execute(
            "SELECT table_name, day FROM _loads ORDER BY table_name, day"
        ).fetchall():
            result.setdefault(table, []).append(day)
        return result
    finally:
        con.close()


def gaps(days: list[int]) -> list[tuple[int, int]]:
    """Runs of missing days between the first and the last loaded day, as (first, last)."""
    found = []
    as_dates = [datetime.strptime(str(d), "%Y%m%d").date() for d in sorted(days)]
    for before, after in zip(as_dates, as_dates[1:], strict=False):
        if (after - before).days > 1:
            found.append((_key(before + timedelta(days=1)), _key(after - timedelta(days=1))))
    return found


def _key(day: date) -> int:
    return int(day.strftime("%Y%m%d"))


def print_status(warehouse_dir: str) -> None:
    days = loaded_days(warehouse_dir)
    console = Console()
    if not days:
        console.print("The warehouse has no loaded days yet.")
        return
    out = Table(show_edge=False)
    for name in ("table", "days", "first", "last", "gaps"):
        out.add_column(name)
    for table, loaded in sorted(days.items()):
        holes = gaps(loaded)
        text = ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in holes) or "none"
        out.add_row(table, str(len(loaded)), str(loaded[0]), str(loaded[-1]), text)
    console.print(out)


_SUMMARY_SQL = {
    "Jobs per day": """
        SELECT day, count(*) AS jobs,
               count(ts_done_success) AS done, count(ts_done_failed) AS failed,
               count(*) FILTER (WHERE worker_uid IS NULL OR worker_uid = '') AS unassigned
        FROM jobs GROUP BY day ORDER BY day""",
    "Busiest workers": """
        SELECT any_value(worker_name) AS worker, count(ts_done_success) AS jobs_done,
               round(sum(on_site_seconds) / 3600.0, 1) AS planned_hours_on_site
        FROM jobs WHERE worker_uid <> ''
        GROUP BY worker_uid ORDER BY jobs_done DESC LIMIT 5""",
    "Kilometres driven per day": """
        SELECT day, count(*) AS trips, round(sum(distance_m) / 1000, 1) AS km,
               count(DISTINCT member_uid) AS members
        FROM tracks GROUP BY day ORDER BY day""",
}


def print_summary(warehouse_dir: str, timezone: str) -> None:
    """A short look at what a sync loaded, for the end of `hellotracks demo`."""
    console = Console()
    con = connect_read_only(warehouse_dir)
    try:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        for title, query in _SUMMARY_SQL.items():
            if not {"jobs", "tracks"} <= tables:
                break
            result = con.sql(query).to_arrow_table()
            out = Table(title=title, show_edge=False, title_justify="left")
            for name in result.column_names:
                out.add_column(name, justify="right")
            for row in result.to_pylist():
                out.add_row(*(str(v) for v in row.values()))
            console.print(out)
        chart = Path(warehouse_dir) / "charts" / "fleet.png"
        console.print(f"\nWarehouse: {Path(warehouse_dir).resolve() / DATABASE_FILE}")
        if chart.exists():
            console.print(f"Chart: {chart.resolve()}")
        console.print(f"Days are cut at midnight {timezone}; timestamps are stored in UTC.")
    finally:
        con.close()
