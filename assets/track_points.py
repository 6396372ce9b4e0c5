"""`track_points`: each track's encoded path decoded to ordered points with estimated times.

A busy day holds millions of points, so decoding is vectorized with numpy over many paths at once
instead of looping over characters in Python. The points are decoded from the tracks as their
pages arrive (`DayPoints`, used by the tracks dataset), or, in a run that syncs `track_points`
without `tracks`, from the tracks' Parquet files already in the warehouse.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import ExitStack

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import AssetExecutionContext, MaterializeResult
from pyarrow.parquet import ParquetWriter

from assets.common import ROW_GROUP_ROWS, row_counts
from assets.normalize import quarantine_row, quarantine_table
from resources.warehouse import WarehouseResource

TABLE = "track_points"
# The table the points are decoded from.
TRACKS_TABLE = "tracks"

SCHEMA = pa.schema(
    [
        pa.field("day", pa.int32(), nullable=False),
        pa.field("track_id", pa.int64()),
        pa.field("member_uid", pa.string()),
        pa.field("seq", pa.int32()),
        pa.field("lat", pa.float64()),
        pa.field("lng", pa.float64()),
        # Interpolated along the path by distance between the track's start and end times.
        pa.field("ts", pa.timestamp("ms")),
    ]
)

_EARTH_RADIUS_M = 6_371_008.8
# Tracks decoded at once. The decode's arrays grow with the points of a batch, so a day of any
# size costs the memory of this many tracks (about 12 points each on the sandbox's fleets).
_TRACKS_PER_BATCH = 20_000
_TRACK_COLUMNS = ["track_id", "member_uid", "start_ts", "end_ts", "path_encoded"]
_POLYLINE_CHARS = re.compile(r"[?-~]*")  # the 64 characters a polyline is written in


def decode_polylines(
    paths: Sequence[str], precision: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode many Google encoded polylines at once.

    Returns `(valid, counts, lat, lng)`: whether each path is a well-formed polyline, its number
    of points (0 when not valid), and the points of all valid paths concatenated in order. A path
    is not valid when it has a character outside the polyline alphabet, ends inside a value, or
    holds an odd number of values.
    """
    valid = np.fromiter(
        (bool(_POLYLINE_CHARS.fullmatch(p)) and (not p or ord(p[-1]) - 63 < 0x20) for p in paths),
        bool,
        len(paths),
    )
    values, per_path = _values(paths, valid)
    odd = (per_path % 2).astype(bool)
    if odd.any():
        valid &= ~odd
        values, per_path = _values(paths, valid)
    counts = per_path // 2
    scale = 10.0**precision
    lat = _cumsum_per_group(values[0::2], counts) / scale
    lng = _cumsum_per_group(values[1::2], counts) / scale
    return valid, counts, lat, lng


def _values(paths: Sequence[str], valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The signed integers encoded in the valid paths, and how many each path holds."""
    lengths = np.fromiter((len(p) for p in paths), np.int64, len(paths)) * valid
    per_path = np.zeros(len(paths), np.int64)
    text = "".join(p for p, ok in zip(paths, valid, strict=True) if ok)
    if not text:
        return np.zeros(0, np.int64), per_path
    data = np.frombuffer(text.encode("ascii"), np.uint8).astype(np.int64) - 63
    is_last = (data & 0x20) == 0
    value_starts = np.flatnonzero(np.concatenate(([True], is_last[:-1])))
    value_of_byte = np.cumsum(np.concatenate(([0], is_last[:-1].astype(np.int64))))
    shift = 5 * (np.arange(data.size) - value_starts[value_of_byte])
    raw = np.add.reduceat((data & 0x1F) << shift, value_starts)
    values = np.where(raw & 1, ~(raw >> 1), raw >> 1)
    present = lengths > 0
    last_value = np.cumsum(is_last)[np.cumsum(lengths[present]) - 1]
    per_path[present] = np.diff(np.concatenate(([0], last_value)))
    return values, per_path


def _cumsum_per_group(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Running sums of `values` that restart at each group of `counts` (exact for integers)."""
    total = np.cumsum(values)
    starts = np.cumsum(counts) - counts
    before = np.concatenate((np.zeros(1, total.dtype), total))[starts]
    return total - np.repeat(before, counts)


def points_table(tracks: pa.Table, day: int) -> tuple[pa.Table, list[dict]]:
    """The points of one day's tracks; tracks whose path does not decode are quarantined."""
    ids = tracks.column("track_id").to_numpy(zero_copy_only=False)
    paths = [p or "" for p in tracks.column("path_encoded").to_pylist()]
    valid, counts, lat, lng = decode_polylines(paths)
    bad: list[dict] = []
    for index in np.flatnonzero(~valid):
        record = {"id": int(ids[index]), "path_encoded": paths[index]}
        bad.append(quarantine_row(TABLE, day, ids[index], "path_encoded is not a polyline", record))
    track_of_point = np.repeat(np.arange(len(paths)), counts)
    first_of_track = np.cumsum(counts) - counts
    seq = np.arange(lat.size) - np.repeat(first_of_track, counts)

    start = _epoch_ms(tracks.column("start_ts"))
    end = _epoch_ms(tracks.column("end_ts"))
    ts = _interpolate_times(lat, lng, counts, seq, start, end)

    members = tracks.column("member_uid").combine_chunks().take(pa.array(track_of_point))
    table = pa.table(
        {
            "day": pa.array(np.full(lat.size, day, np.int32)),
            "track_id": pa.array(ids[track_of_point].astype(np.int64)),
            "member_uid": members,
            "seq": pa.array(seq.astype(np.int32)),
            "lat": pa.array(lat),
            "lng": pa.array(lng),
            "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("ms")),
        },
        schema=SCHEMA,
    )
    return table, bad


def _epoch_ms(column: pa.ChunkedArray) -> np.ndarray:
    as_int = pc.cast(column, pa.int64())
    return np.asarray(as_int.to_numpy(zero_copy_only=False), dtype=np.float64)


def _interpolate_times(lat, lng, counts, seq, start, end) -> np.ndarray:
    """Each point's time, spread between its track's start and end in proportion to distance."""
    step = np.zeros(lat.size)
    if lat.size > 1:
        phi = np.radians(lat)
        dphi = np.diff(phi)
        dlmb = np.radians(np.diff(lng))
        a = np.sin(dphi / 2) ** 2 + np.cos(phi[:-1]) * np.cos(phi[1:]) * np.sin(dlmb / 2) ** 2
        step[1:] = 2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
    step[seq == 0] = 0.0
    track = np.repeat(np.arange(counts.size), counts)
    along = _cumsum_per_group(step, counts)
    total = np.zeros(counts.size)
    nonempty = counts > 0
    total[nonempty] = along[np.cumsum(counts)[nonempty] - 1]
    span = (end - start)[track]
    fraction = np.divide(along, total[track], out=np.zeros_like(along), where=total[track] > 0)
    times = start[track] + fraction * span
    # A track without a readable start or end time gets no point times rather than wrong ones.
    return np.where(np.isfinite(times), np.round(times), np.nan)


class DayPoints:
    """The points of tracks as they are stored, written to each day's `track_points` file.

    `add` decodes a part of a day's tracks; a day's points go to its file a row group at a time,
    so memory holds at most about `ROW_GROUP_ROWS` points per day. Leaving the `with` block
    without an error puts every day's file in place (an empty one for a day without points);
    an error leaves the earlier files as they were. A writer per day with points stays open
    until then: a run over more days than the process may open files would fail, which a
    backfill split into shorter runs (`BackfillPolicy.multi_run`) avoids.
    """

    def __init__(self, warehouse: WarehouseResource, days: Sequence[int]) -> None:
        self.warehouse = warehouse
        self.days = list(days)
        self.quarantine: list[dict] = []
        self.seconds: Counter[str] = Counter()
        self._files = ExitStack()
        self._writers: dict[int, ParquetWriter] = {}
        self._pending: dict[int, list[pa.Table]] = defaultdict(list)
        self._rows: Counter[int] = Counter()

    def __enter__(self) -> DayPoints:
        self._files.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> bool | None:
        if exc_info[0] is None:
            for day in self.days:
                self._flush(day)
        return self._files.__exit__(*exc_info)

    def add(self, day: int, tracks: pa.Table) -> None:
        started = time.perf_counter()
        points, rejected = points_table(tracks, day)
        self.seconds["decode_seconds"] += time.perf_counter() - started
        self.quarantine.extend(rejected)
        self._pending[day].append(points)
        self._rows[day] += points.num_rows
        if self._rows[day] >= ROW_GROUP_ROWS:
            self._flush(day)

    def _flush(self, day: int) -> None:
        if day not in self._writers:
            writer = self.warehouse.day_writer(TABLE, day, SCHEMA)
            self._writers[day] = self._files.enter_context(writer)
        pending = self._pending.pop(day, [])
        started = time.perf_counter()
        if pending:
            self._writers[day].write_table(pa.concat_tables(pending))
        self._rows[day] = 0
        self.seconds["parquet_seconds"] += time.perf_counter() - started


def points_of_stored_tracks(warehouse: WarehouseResource, days: Sequence[int]) -> DayPoints:
    """The points of the days' tracks files already in the warehouse, written to their files,
    a batch of tracks at a time."""
    with DayPoints(warehouse, days) as points:
        for day in days:
            tracks = pq.ParquetFile(warehouse.parquet_path(TRACKS_TABLE, day))
            batches = tracks.iter_batches(batch_size=_TRACKS_PER_BATCH, columns=_TRACK_COLUMNS)
            for batch in batches:
                points.add(day, pa.Table.from_batches([batch]))
    return points


def store_points(context: AssetExecutionContext, points: DayPoints) -> MaterializeResult:
    """Load the days' `track_points` files into DuckDB, with the tracks that did not decode."""
    seconds = points.seconds
    started = time.perf_counter()
    loaded = points.warehouse.load_days(TABLE, points.days, quarantine_table(points.quarantine))
    seconds["duckdb_seconds"] += time.perf_counter() - started

    total = sum(loaded.values())
    context.log.info(f"track_points: {total} points for {len(points.days)} day(s)")
    return MaterializeResult(
        asset_key=TABLE,
        metadata={
            **row_counts(context, TABLE, loaded),
            "quarantined": len(points.quarantine),
            **{name: round(value, 3) for name, value in seconds.items()},
        },
    )
