"""The warehouse: one Parquet file per table per day, and a DuckDB database loaded from them.

Layout under the warehouse directory::

    parquet/<table>/day=YYYYMMDD/part-0.parquet   one file per table and day, written atomically
    hellotracks.duckdb                             one table per dataset, each with `day INTEGER`

Loading a set of days replaces exactly those days in one transaction, together with their rows in
the `quarantine` table and their entries in `_loads` (the book of which days are loaded, empty
ones included). A reader therefore sees either the old day or the new one, never a mix.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableResource

DATABASE_FILE = "hellotracks.duckdb"

# A `.tmp` file beside a day's Parquet file that is older than this was left by a process killed
# mid-write (no write of one day takes an hour); the next write of that day removes it.
STALE_TMP_SECONDS = 3600.0

QUARANTINE_SCHEMA = pa.schema(
    [
        ("table_name", pa.string()),
        ("day", pa.int32()),
        ("record_id", pa.string()),
        ("reason", pa.string()),
        ("record", pa.string()),
    ]
)

_LOADS_DDL = """
CREATE TABLE IF NOT EXISTS _loads (
    table_name VARCHAR NOT NULL,
    day INTEGER NOT NULL,
    row_count BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    loaded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (table_name, day)
)
"""


class WarehouseLockedError(RuntimeError):
    """Another process holds the DuckDB file for writing longer than we were willing to wait."""


class WarehouseResource(ConfigurableResource):
    """Parquet files and the DuckDB database of one warehouse directory.

    DuckDB admits one writing process per file. Writers here hold the file only for the length of
    one load transaction and wait for each other (up to `lock_timeout_seconds`), so parallel
    steps and overlapping runs queue rather than fail.
    """

    directory: str = "warehouse"
    lock_timeout_seconds: float = 300.0
    # DuckDB takes up to 80% of the machine's memory by default, and loading a day holds all of
    # it in memory until the commit: a 400,000-job day took 600 MB. Under this limit it spills to
    # `<database>.tmp` instead, at little cost in time, so a sync's memory stays flat with the day.
    memory_limit: str = "256MB"

    @property
    def root(self) -> Path:
        return Path(self.directory).expanduser().resolve()

    @property
    def database_path(self) -> Path:
        return self.root / DATABASE_FILE

    def parquet_path(self, table: str, day: int) -> Path:
        return self.root / "parquet" / table / f"day={day}" / "part-0.parquet"

    def write_day(self, table: str, day: int, data: pa.Table) -> Path:
        """Write one table's rows for one day, replacing any earlier file for that day.

        The file is written beside its final name and renamed over it, so a reader (or a crash)
        never meets half a file.
        """
        with self.day_writer(table, day, data.schema) as writer:
            writer.write_table(data)
        return self.parquet_path(table, day)

    @contextmanager
    def day_writer(self, table: str, day: int, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
        """A Parquet writer for one table's day, to be fed part by part (e.g. page by page).

        The parts go to a file beside the final name, which replaces the day's file only when
        the block ends without an error; an error leaves the earlier file as it was. A block that
        writes nothing leaves a file with the schema and no rows.
        """
        path = self.parquet_path(table, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_tmp(path)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                yield writer
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection, waiting with backoff while another process holds the write lock."""
        self.root.mkdir(parents=True, exist_ok=True)
        if read_only and not self.database_path.exists():
            raise FileNotFoundError(f"no warehouse at {self.database_path}: run a sync first")
        deadline = time.monotonic() + self.lock_timeout_seconds
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.database_path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseLockedError(
                        f"{self.database_path} stayed locked by another process for "
                        f"{self.lock_timeout_seconds:.0f} s; is a long query or another "
                        "`dagster dev` holding it?"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET memory_limit = ?", [self.memory_limit])
            yield con
        finally:
            con.close()

    def load_days(
        self,
        table: str,
        days: Sequence[int],
        quarantine: pa.Table | None = None,
    ) -> dict[int, int]:
        """Replace `days` of `table` in DuckDB with the day files already written to Parquet.

        The table is created from the first file's schema when missing, and gains any column the
        files have that it lacks. Returns the row count loaded per day.
        """
        files = {day: self.parquet_path(table, day) for day in days}
        missing = [str(path) for path in files.values() if not path.exists()]
        if missing:
            raise FileNotFoundError(f"cannot load {table}: no Parquet file at {missing[0]}")
        paths = [str(path) for path in files.values()]
        day_list = list(files)
        quarantine = quarantine if quarantine is not None else QUARANTINE_SCHEMA.empty_table()
        with self.connect() as con:
            # A table's rows have no order in SQL; letting DuckDB insert row groups as its
            # threads finish them halves the load of a wide table (B's and C's jobs).
            con.execute("SET preserve_insertion_order = false")
            con.execute("BEGIN TRANSACTION")
            try:
                _ensure_table(con, table, pq.read_schema(paths[0]))
                _ensure_table(con, "quarantine", QUARANTINE_SCHEMA)
                con.execute(_LOADS_DDL)
                con.execute(f'DELETE FROM "{table}" WHERE day IN (SELECT unnest(?))', [day_list])
                con.execute(
                    f'INSERT INTO "{table}" BY NAME '
                    "SELECT * FROM read_parquet(?, union_by_name = true)",
                    [paths],
                )
                con.execute(
                    "DELETE FROM quarantine WHERE table_name = ? AND day IN (SELECT unnest(?))",
                    [table, day_list],
                )
                con.register("_incoming_quarantine", quarantine)
                con.execute("INSERT INTO quarantine BY NAME SELECT * FROM _incoming_quarantine")
                con.unregister("_incoming_quarantine")
                counts = dict(
                    con.execute(
                        f'SELECT day, count(*) FROM "{table}" WHERE day IN (SELECT unnest(?)) '
                        "GROUP BY day",
                        [day_list],
                    ).fetchall()
                )
                bad = dict(
                    con.execute(
                        "SELECT day, count(*) FROM quarantine WHERE table_name = ? "
                        "AND day IN (SELECT unnest(?)) GROUP BY day",
                        [table, day_list],
                    ).fetchall()
                )
                now = datetime.now(UTC).replace(tzinfo=None)
                con.executemany(
                    "INSERT OR REPLACE INTO _loads VALUES (?, ?, ?, ?, ?)",
                    [(table, day, counts.get(day, 0), bad.get(day, 0), now) for day in day_list],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return {day: counts.get(day, 0) for day in day_list}

    def query(self, sql: str, params: Sequence | None = None) -> pa.Table:
        """Run a read-only query and return its rows as Arrow."""
        with self.connect(read_only=True) as con:
            return con.execute(sql, params or []).to_arrow_table()


def _remove_stale_tmp(path: Path) -> None:
    """Remove the `.tmp` files a killed writer of `path` left, once they are surely abandoned.

    A younger one may belong to a writer still at work (another run syncing the same day).
    """
    cutoff = time.time() - STALE_TMP_SECONDS
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except FileNotFoundError:
            pass  # removed by another writer of the same day meanwhile


def _ensure_table(con: duckdb.DuckDBPyConnection, table: str, schema: pa.Schema) -> None:
    """Create `table` from an Arrow schema, or add the columns it lacks."""
    existing = {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
        ).fetchall()
    }
    con.register("_schema_probe", schema.empty_table())
    try:
        if not existing:
            con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM _schema_probe')
            return
        probe = con.execute("DESCRIBE SELECT * FROM _schema_probe").fetchall()
        for name, sql_type, *_ in probe:
            if name not in existing:
                con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {sql_type}')
    finally:
        con.unregister("_schema_probe")
