"""The warehouse on a real DuckDB file: days replace exactly, files appear whole, writers queue."""

from __future__ import annotations

import os
import threading
import time

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources.warehouse import (
    QUARANTINE_SCHEMA,
    STALE_TMP_SECONDS,
    WarehouseLockedError,
    WarehouseResource,
)

SCHEMA = pa.schema([("day", pa.int32()), ("id", pa.string()), ("n", pa.int64())])


def rows(day: int, *ids: str) -> pa.Table:
    return pa.table(
        {"day": [day] * len(ids), "id": list(ids), "n": list(range(len(ids)))}, schema=SCHEMA
    )


@pytest.fixture
def warehouse(tmp_path) -> WarehouseResource:
    return WarehouseResource(directory=str(tmp_path), lock_timeout_seconds=5)


def table_rows(warehouse, sql):
    with warehouse.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def test_loading_a_day_replaces_exactly_that_day(warehouse):
    for day, ids in ((1, ["a", "b"]), (2, ["c"])):
        warehouse.write_day("t", day, rows(day, *ids))
    warehouse.load_days("t", [1, 2])
    warehouse.write_day("t", 1, rows(1, "z"))
    assert warehouse.load_days("t", [1]) == {1: 1}
    assert table_rows(warehouse, "SELECT day, id FROM t ORDER BY ALL") == [(1, "z"), (2, "c")]


def test_an_empty_day_clears_the_day_and_is_recorded_as_loaded(warehouse):
    warehouse.write_day("t", 1, rows(1, "a"))
    warehouse.load_days("t", [1])
    warehouse.write_day("t", 1, SCHEMA.empty_table())
    assert warehouse.load_days("t", [1]) == {1: 0}
    assert table_rows(warehouse, "SELECT count(*) FROM t") == [(0,)]
    assert table_rows(warehouse, "SELECT row_count FROM _loads WHERE day = 1") == [(0,)]


def test_a_write_removes_tmp_files_a_killed_writer_left_and_spares_live_ones(warehouse):
    final = warehouse.write_day("t", 1, rows(1, "a"))
    abandoned = final.with_name(f".{final.name}.0001.tmp")
    in_progress = final.with_name(f".{final.name}.0002.tmp")
    other_table = warehouse.parquet_path("u", 1).with_name(".part-0.parquet.0003.tmp")
    other_table.parent.mkdir(parents=True)
    long_ago = time.time() - STALE_TMP_SECONDS - 60
    for path in (abandoned, in_progress, other_table):
        path.write_bytes(b"half a file")
    for path in (abandoned, other_table):
        os.utime(path, (long_ago, long_ago))

    warehouse.write_day("t", 1, rows(1, "b"))

    assert not abandoned.exists()
    assert in_progress.exists() and other_table.exists()
    assert pq.read_table(final).column("id").to_pylist() == ["b"]


def test_quarantine_rows_are_replaced_with_their_day(warehouse):
    bad = pa.Table.from_pylist(
        [{"table_name": "t", "day": 1, "record_id": "x", "reason": "r", "record": "{}"}],
        schema=QUARANTINE_SCHEMA,
    )
    warehouse.write_day("t", 1, rows(1, "a"))
    warehouse.load_days("t", [1], bad)
    warehouse.load_days("t", [1], bad)
    assert table_rows(warehouse, "SELECT count(*) FROM quarantine") == [(1,)]
    assert table_rows(warehouse, "SELECT quarantined FROM _loads") == [(1,)]


def test_a_failed_load_leaves_the_previous_day_in_place(warehouse):
    warehouse.write_day("t", 1, rows(1, "a"))
    warehouse.load_days("t", [1])
    with pytest.raises(FileNotFoundError, match="no Parquet file"):
        warehouse.load_days("t", [1, 2])
    assert table_rows(warehouse, "SELECT id FROM t") == [("a",)]


def test_a_new_column_is_added_to_an_existing_table(warehouse):
    warehouse.write_day("t", 1, rows(1, "a"))
    warehouse.load_days("t", [1])
    wider = rows(2, "b").append_column("extra", pa.array(["x"]))
    warehouse.write_day("t", 2, wider)
    warehouse.load_days("t", [2])
    assert table_rows(warehouse, "SELECT id, extra FROM t ORDER BY id") == [("a", None), ("b", "x")]


def test_parquet_files_are_replaced_whole_and_leave_no_temporary_files(warehouse):
    path = warehouse.write_day("t", 1, rows(1, "a"))
    warehouse.write_day("t", 1, rows(1, "b", "c"))
    assert [p.name for p in path.parent.iterdir()] == ["part-0.parquet"]
    assert duckdb.sql(f"SELECT count(*) FROM '{path}'").fetchall() == [(2,)]


def test_a_writer_waits_for_the_lock_instead_of_failing(warehouse):
    warehouse.write_day("t", 1, rows(1, "a"))
    warehouse.load_days("t", [1])
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        # DuckDB locks the file per process; a second process is what a second run is.
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=_hold_lock, args=(str(warehouse.database_path), 1.5))
        proc.start()
        held.set()
        proc.join()
        release.set()

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    warehouse.write_day("t", 2, rows(2, "b"))
    assert warehouse.load_days("t", [2]) == {2: 1}
    thread.join()
    assert release.is_set()


def test_a_lock_held_too_long_gives_a_clear_error(tmp_path):
    warehouse = WarehouseResource(directory=str(tmp_path), lock_timeout_seconds=0.5)
    warehouse.write_day("t", 1, rows(1, "a"))
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(warehouse.database_path), 5.0, ready))
    proc.start()
    ready.wait(30)
    try:
        with pytest.raises(WarehouseLockedError, match="stayed locked"):
            warehouse.load_days("t", [1])
    finally:
        proc.terminate()
        proc.join()


def _hold_lock(path: str, seconds: float, ready=None) -> None:
    import time

    con = duckdb.connect(path)
    if ready is not None:
        ready.set()
    time.sleep(seconds)
    con.close()
