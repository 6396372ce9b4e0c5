"""`track_points`: each track's encoded path decoded to ordered points with estimated times.

A busy day holds millions of points, so decoding is vectorized with numpy over all of a day's
paths at once instead of looping over characters in Python.
"""

import re
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import AssetExecutionContext, MaterializeResult, asset

from assets.common import DAILY, row_counts, run_days, table_asset
from assets.normalize import quarantine_row, quarantine_table
from assets.tracks import TRACKS
from resources.warehouse import WarehouseResource

TABLE = "track_points"

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
        row = quarantine_row(TRACKS, day, ids[index], "path_encoded is not a polyline", record)
        bad.append(row | {"table_name": TABLE})
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


@asset(
    **DAILY,
    **table_asset(SCHEMA),
    deps=["tracks"],
)
def track_points(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Decoded GPS points of every track of the day, from the day's `tracks` Parquet file."""
    days = run_days(context)

    quarantine: list[dict] = []
    seconds: Counter[str] = Counter()
    for day in days:
        quarantine.extend(write_points(warehouse, day, seconds))

    started = time.perf_counter()
    loaded = warehouse.load_days(TABLE, days, quarantine_table(quarantine))
    seconds["duckdb_seconds"] += time.perf_counter() - started

    total = sum(loaded.values())
    context.log.info(f"track_points: {total} points for {len(days)} day(s)")
    return MaterializeResult(
        metadata={
            **row_counts(context, TABLE, loaded),
            "quarantined": len(quarantine),
            **{name: round(value, 3) for name, value in seconds.items()},
        }
    )


def write_points(warehouse: WarehouseResource, day: int, seconds: Counter[str]) -> list[dict]:
    """Decode one day's tracks into its `track_points` Parquet file, a batch of tracks at a time.

    Returns the quarantine rows of tracks whose path does not decode; adds the time spent to
    `seconds` (`decode_seconds`, `parquet_seconds`).
    """
    tracks = pq.ParquetFile(warehouse.parquet_path(TRACKS.name, day))
    bad: list[dict] = []
    with warehouse.day_writer(TABLE, day, SCHEMA) as writer:
        for batch in tracks.iter_batches(batch_size=_TRACKS_PER_BATCH, columns=_TRACK_COLUMNS):
            started = time.perf_counter()
            points, rejected = points_table(pa.Table.from_batches([batch]), day)
            decoded = time.perf_counter()
            writer.write_table(points)
            seconds["decode_seconds"] += decoded - started
            seconds["parquet_seconds"] += time.perf_counter() - decoded
            bad.extend(rejected)
    return bad
