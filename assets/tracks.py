"""`tracks`: every GPS track entry (one driving segment) that starts in the day, and its points.

One dataset leaves both tables: `track_points` decodes each track's path as the tracks come, so
a paced sync decodes them while it waits for the next page.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from itertools import repeat

import numpy as np
from dagster import AssetCheckResult, AssetCheckSpec, AssetSpec, MaterializeResult

from assets.common import (
    Checks,
    Dataset,
    SyncRun,
    api_metadata,
    day_window_ms,
    days_window_ms,
    store_days,
    table_asset,
)
from assets.normalize import Normalized, TableSpec, col, merge, normalize, quarantine_row
from assets.track_points import SCHEMA as POINTS_SCHEMA
from assets.track_points import TABLE as POINTS
from assets.track_points import DayPoints, points_of_stored_tracks, store_points
from resources.request_stream import Queued
from resources.warehouse import WarehouseResource

TRACKS = TableSpec(
    name="tracks",
    key="track_id",
    columns=(
        col("track_id", "int", "id"),
        col("member_uid", "str", "owner_uid"),
        col("kind", "str"),
        col("labels", "int", "labels", "label"),
        col("start_ts", "ts_ms"),
        col("end_ts", "ts_ms"),
        col("start_lat", "float"),
        col("start_lng", "float"),
        col("end_lat", "float"),
        col("end_lng", "float"),
        col("distance_m", "float", "distance"),
        col("waypoint_count", "int"),
        col("speed_avg_mps", "float", "speed_avg"),
        col("speed_max_mps", "float", "speed_max"),
        col("altitude_min_m", "float", "altitude_min"),
        col("altitude_max_m", "float", "altitude_max"),
        # Google encoded polyline at 1e-5 degrees; `track_points` holds it decoded.
        col("path_encoded", "str"),
        col("course_encoded", "str"),
    ),
)

# A member whose roster record was quarantined (a field that would not convert) is still a
# member: their uid is in the quarantine's `record_id`, so their tracks are asked for too.
_KNOWN_MEMBERS = """
SELECT member_uid FROM members WHERE member_uid IS NOT NULL
UNION SELECT worker_uid FROM jobs
WHERE day IN (SELECT unnest(?)) AND worker_uid IS NOT NULL AND worker_uid <> ''
UNION SELECT record_id FROM quarantine
WHERE table_name = 'members' AND record_id IS NOT NULL AND record_id <> ''
"""


def _request(run: SyncRun) -> tuple[list[str], Queued[list[dict]] | None] | None:
    """The tracks of every member the warehouse knows, for the run's whole window at once.

    Members come from every roster snapshot loaded so far and from the days' job assignees, not
    only today's roster: members who left still have history. One window for a range takes
    fewer requests than one per day. None when the run syncs `track_points` alone.
    """
    if "tracks" not in run.selected:
        return None
    uids = known_members(run.warehouse, run.days)
    run.context.log.info(f"tracks: asking for {len(uids)} member(s) over {len(run.days)} day(s)")
    from_ms, until_ms = days_window_ms(run.days, run.timezone)
    return uids, run.api.gettracks(from_ms, until_ms, uids) if uids else None


def _store(
    run: SyncRun, requested: tuple[list[str], Queued[list[dict]] | None] | None
) -> Iterator[MaterializeResult]:
    """The tracks, then their points, each table's materialization as soon as it is loaded."""
    if requested is None:
        yield store_points(run.context, points_of_stored_tracks(run.warehouse, run.days))
        return
    uids, listing = requested
    with_points = POINTS in run.selected
    with DayPoints(run.warehouse, run.days) if with_points else nullcontext() as points:
        splitter = _DaySplitter(run.days, run.timezone, points)
        for page in listing or ():
            splitter.add(page)
    if splitter.outside:
        run.context.log.warning(
            f"tracks: {splitter.outside} entries start outside the asked window; they belong to "
            "other days and are stored when those days are synced"
        )

    api = api_metadata([listing] if listing is not None else [])
    metadata = store_days(run.context, run.warehouse, TRACKS, splitter.result(), api=api)
    metadata["members_asked"] = len(uids)
    yield MaterializeResult(asset_key="tracks", metadata=metadata)
    if points is not None:
        yield store_points(run.context, points)


def known_members(warehouse: WarehouseResource, days: Sequence[int]) -> list[str]:
    """Every member uid in a roster snapshot or assigned a job on one of `days`."""
    with warehouse.connect(read_only=True) as con:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        if not {"members", "jobs", "quarantine"} <= tables:
            return []
        return sorted(row[0] for row in con.execute(_KNOWN_MEMBERS, [list(days)]).fetchall())


class _DaySplitter:
    """Buckets track entries by the local day of their `start_ts`, normalizing as pages arrive,
    and hands each day's part to `points` (when given) to decode."""

    def __init__(self, days: Sequence[int], timezone: str, points: DayPoints | None = None) -> None:
        self.points = points
        self.days = sorted(days)
        windows = [day_window_ms(day, timezone) for day in self.days]
        self.starts = [start for start, _ in windows]
        self.ends = [end for _, end in windows]
        self.parts: dict[int, list[Normalized]] = defaultdict(list)
        self.seen: set[str] = set()
        self.outside = 0

    def day_of(self, entry: dict) -> int | None:
        try:
            ts = int(entry.get("start_ts"))
        except (TypeError, ValueError):
            return None
        index = bisect.bisect_right(self.starts, ts) - 1
        if index < 0 or ts >= self.ends[index]:
            self.outside += 1
            return 0
        return self.days[index]

    def add(self, page: Sequence[dict]) -> None:
        placed = self._place_at_once(page)
        buckets, unplaced = placed if placed is not None else self._place_one_by_one(page)
        for day, entries in buckets.items():
            part = normalize(TRACKS, entries, day, seen=self.seen)
            self.parts[day].append(part)
            if self.points is not None and part.table.num_rows:
                self.points.add(day, part.table)
        if unplaced:
            # No readable start time means no day to file it under: keep it in the quarantine of
            # the first day of the run rather than lose it.
            first = self.days[0]
            part = normalize(TRACKS, [], first)
            for entry in unplaced:
                key = entry.get("id") if isinstance(entry, dict) else None
                reason = "start_ts missing or not a number: the entry has no day"
                part.quarantine.append(quarantine_row(TRACKS.name, first, key, reason, entry))
            self.parts[first].append(part)

    def _place_one_by_one(self, page: Sequence[dict]) -> tuple[dict[int, list[dict]], list[dict]]:
        """The page's entries by day, in page order, and those without a readable start."""
        buckets: dict[int, list[dict]] = defaultdict(list)
        unplaced: list[dict] = []
        for entry in page:
            day = self.day_of(entry) if isinstance(entry, dict) else None
            if day is None:
                unplaced.append(entry)
            elif day:
                buckets[day].append(entry)
        return buckets, unplaced

    def _place_at_once(self, page: Sequence[dict]) -> tuple[dict[int, list[dict]], list] | None:
        """`_place_one_by_one` for a page of objects whose starts are all 64-bit integers, the
        usual page, with no Python code per entry; None for any other page."""
        if not page or set(map(type, page)) != {dict}:
            return None
        starts = list(map(dict.get, page, repeat("start_ts", len(page))))
        if set(map(type, starts)) != {int}:
            return None
        try:
            ts = np.array(starts, np.int64)
        except OverflowError:
            return None
        index = np.searchsorted(np.array(self.starts, np.int64), ts, side="right") - 1
        inside = index >= 0
        inside[inside] = ts[inside] < np.array(self.ends, np.int64)[index[inside]]
        self.outside += int(np.count_nonzero(~inside))
        groups = [
            np.flatnonzero(inside & (index == slot)).tolist()
            for slot in np.unique(index[inside]).tolist()
        ]
        # Days in the order the page first reaches them, as one by one: of two entries with
        # one id on different days, the one normalized first is kept.
        groups.sort(key=lambda positions: positions[0])
        buckets = {self.days[index[group[0]]]: [page[i] for i in group] for group in groups}
        return buckets, []

    def result(self) -> dict[int, Normalized]:
        return {day: merge(TRACKS, self.parts.get(day, [])) for day in self.days}


def _unique_check(run: SyncRun) -> list[AssetCheckResult]:
    with run.warehouse.connect(read_only=True) as con:
        duplicates = con.execute(
            "SELECT count(*) FROM (SELECT track_id FROM tracks WHERE day IN (SELECT unnest(?)) "
            "GROUP BY track_id HAVING count(*) > 1)",
            [run.days],
        ).fetchone()[0]
    return [
        AssetCheckResult(
            asset_key="tracks",
            check_name="track_ids_unique",
            passed=duplicates == 0,
            metadata={"duplicates": duplicates},
        )
    ]


DATASET = Dataset(
    specs=(
        AssetSpec(
            "tracks",
            deps=["members", "jobs"],
            description="Track entries of every member the warehouse knows, split by the local "
            "day they start.",
            **table_asset(TRACKS.schema()),
        ),
        AssetSpec(
            POINTS,
            deps=["tracks"],
            description="Decoded GPS points of every track of the day.",
            **table_asset(POINTS_SCHEMA),
        ),
    ),
    checks=(
        Checks(
            specs=(AssetCheckSpec("track_ids_unique", asset="tracks", blocking=True),),
            reads=("tracks",),
            evaluate=_unique_check,
        ),
    ),
    request=_request,
    store=_store,
    after=("members", "jobs"),
)
