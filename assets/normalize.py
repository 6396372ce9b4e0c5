"""JSON records from the API become typed Arrow rows here, and nowhere else.

Each table declares its columns once (`TableSpec`): a column name, a kind, and the API field (or
fields, first present wins) it comes from. Conversion runs column by column. In the common case,
where the server sent the documented types, a page's values are read out of the records in one
pass and each column becomes Arrow in a few calls that run in C, with no Python code per value;
only a column that fails that fast path is converted value by value. `normalize(...,
careful=True)` converts everything value by value: the reference the fast paths must agree with.
Records that arrive as columns of text (a CSV report read by Arrow) skip the dicts altogether
(`normalize_text_table`) unless one of them needs a look of its own.

Nothing is dropped silently:
- a top-level field the spec does not know is kept in the row's `extras` JSON column and counted;
- a value that cannot be converted without loss (text where a number belongs, a fractional count,
  an absurd timestamp, an integer wider than 64 bits where text belongs) sends its whole row to
  the quarantine, with the reason;
- a row without its id, or with an id already seen, goes to the quarantine too.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, partial
from itertools import combinations, repeat
from operator import ne
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

# Timestamps outside these bounds (ms since the epoch) are not plausible fleet events: year 2000
# to year 2100. Anything else is quarantined rather than loaded as a nonsense date.
_TS_MIN_MS = 946_684_800_000
_TS_MAX_MS = 4_102_444_800_000

_NONE = type(None)
# The exact types a kind converts in one call; a bool is not a number here, as in JSON.
_INT_TYPES = {int, _NONE}
_FLOAT_TYPES = {int, float, _NONE}
_LOCAL_DT_FORMAT = "%Y-%m-%d %H:%M:%S"
# Records turned from rows into columns at a time: a few hundred new objects at once stay below
# the garbage collector's threshold (700), so no collection walks them. A whole 1,000-row page at
# once measured 20-50% slower on B's jobs, through collections that also promote the rows
# towards a full collection of the heap.
_ROWS_PER_TURN = 128
# What `pa.array` raises for values it will not convert to the type asked for.
_REFUSED = (pa.ArrowException, TypeError, ValueError, OverflowError)
_dumps = partial(orjson.dumps, option=orjson.OPT_NON_STR_KEYS)

_ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "ts_ms": pa.timestamp("ms"),
    "json": pa.string(),
    "day": pa.int32(),
    "local_dt": pa.timestamp("s"),
}


@dataclass(frozen=True)
class Column:
    """One output column: its name, its kind, and the API field paths it is read from.

    Kinds: `str`, `int`, `float`, `bool`, `json` (any value, stored as JSON text), `day`
    (a YYYYMMDD integer, also accepted as a string), `ts_ms` (milliseconds since the epoch,
    stored as a UTC timestamp; 0 means "did not happen" and becomes null) and `local_dt` (a
    report's local `YYYY-MM-DD HH:MM:SS` text, stored as a timestamp without time zone).
    """

    name: str
    kind: str
    source: tuple[str, ...]

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES[self.kind]

    @cached_property
    def roots(self) -> frozenset[str]:
        """The top-level API fields this column reads."""
        return frozenset(path.split(".", 1)[0] for path in self.source)


def col(name: str, kind: str, *source: str) -> Column:
    """Shorthand for a column; `source` defaults to the column's own name."""
    if kind not in _ARROW_TYPES:
        raise ValueError(f"unknown column kind {kind!r} for {name}")
    return Column(name, kind, source or (name,))


@dataclass(frozen=True)
class TableSpec:
    """The explicit schema of one warehouse table and how API records map onto it."""

    name: str
    key: str
    columns: tuple[Column, ...]
    snapshot: bool = False  # rows carry `fetched_at`: the time the listing was read

    def schema(self) -> pa.Schema:
        return self._schema

    @cached_property
    def _schema(self) -> pa.Schema:
        fields = [pa.field("day", pa.int32(), nullable=False)]
        if self.snapshot:
            fields.append(pa.field("fetched_at", pa.timestamp("ms")))
        fields += [pa.field(c.name, c.arrow_type) for c in self.columns]
        fields.append(pa.field("extras", pa.string()))
        return pa.schema(fields)

    @cached_property
    def known_fields(self) -> frozenset[str]:
        """Top-level API fields that some column reads (the rest go to `extras`)."""
        return frozenset().union(*(c.roots for c in self.columns))

    @property
    def key_column(self) -> Column:
        return next(c for c in self.columns if c.name == self.key)


@dataclass
class Normalized:
    """The typed rows of one table for one day, and what did not fit."""

    table: pa.Table
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    extra_fields: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0  # time spent turning records into `table`

    @property
    def quarantined(self) -> int:
        return len(self.quarantine)


class _Rejected(Exception):
    pass


def normalize_pages(
    spec: TableSpec,
    pages: Iterable[Sequence[dict[str, Any]]],
    day: int,
    fetched_at: datetime | None = None,
) -> Normalized:
    """Normalize a listing page by page, so a large day is never held as dicts all at once."""
    seen: set[str] = set()
    return merge(spec, [normalize(spec, page, day, fetched_at, seen=seen) for page in pages])


def normalize_snapshot(
    spec: TableSpec,
    pages: Iterable[Sequence[dict[str, Any]]],
    days: Sequence[int],
    fetched_at: datetime,
) -> dict[int, Normalized]:
    """One listing stored under each of `days` (a roster has no history): normalized once, and
    each further day a copy with its own `day`."""
    first = normalize_pages(spec, pages, days[0], fetched_at)
    result = {days[0]: first}
    for day in days[1:]:
        days_column = pa.array([day] * first.table.num_rows, pa.int32())
        table = first.table.set_column(0, first.table.schema.field("day"), days_column)
        quarantine = [row | {"day": day} for row in first.quarantine]
        result[day] = Normalized(table, quarantine, Counter(first.extra_fields))
    return result


def merge(spec: TableSpec, parts: Sequence[Normalized]) -> Normalized:
    """One `Normalized` from several of the same table and day (pages of one listing)."""
    if not parts:
        return Normalized(spec.schema().empty_table())
    started = time.perf_counter()
    merged = Normalized(pa.concat_tables([p.table for p in parts]).combine_chunks())
    for part in parts:
        merged.quarantine.extend(part.quarantine)
        merged.extra_fields.update(part.extra_fields)
    merged.seconds = sum(p.seconds for p in parts) + time.perf_counter() - started
    return merged


def normalize(
    spec: TableSpec,
    records: Sequence[dict[str, Any]],
    day: int,
    fetched_at: datetime | None = None,
    *,
    seen: set[str] | None = None,
    careful: bool = False,
) -> Normalized:
    """Turn raw API records into an Arrow table of `spec`'s schema for `day`.

    `seen` carries the ids of earlier pages of the same listing, so duplicates across pages are
    caught too. The result's `seconds` is the time the conversion took. `careful` reads and
    converts every value on its own, skipping all fast paths: the same result, several times
    slower; it is the yardstick the fast paths are tested against.
    """
    started = time.perf_counter()
    result = _normalize(spec, records, day, fetched_at, set() if seen is None else seen, careful)
    result.seconds = time.perf_counter() - started
    return result


def _normalize(
    spec: TableSpec,
    records: Sequence[dict[str, Any]],
    day: int,
    fetched_at: datetime | None,
    seen: set[str],
    careful: bool,
) -> Normalized:
    # What is left is work on Python objects: reading ~60 values per job out of dicts and
    # converting them takes about as long as orjson takes to make the dicts, and in a sync it
    # shares one interpreter lock with the page fetching. pyarrow's JSON reader on the raw page
    # measured slower still (14-19 ms per 1,000 jobs, against ~6 ms for orjson plus ~10 ms
    # here), so what would remove it is converting outside this interpreter: a listing fetched,
    # converted and written by a process of its own.
    dedupe = _dedupe_carefully if careful else _dedupe
    kept, quarantine = dedupe(spec, records, day, seen)
    if not kept:
        return Normalized(spec.schema().empty_table(), quarantine)

    n = len(kept)
    page = _Page(kept, transpose=not careful)
    rejected: dict[int, str] = {}
    arrays: dict[str, pa.Array] = {}
    for column in spec.columns:
        if page.fields.isdisjoint(column.roots):
            # A documented field the server does not send: nothing to look up or convert.
            arrays[column.name] = pa.nulls(n, column.arrow_type)
            continue
        arrays[column.name] = _convert(column, page.values(column.source), rejected, careful)

    extra_fields: Counter[str] = Counter()
    extras = pa.array(_extras(spec, page, extra_fields), pa.string())
    key_values = page.values(spec.key_column.source) if rejected else []
    table = _assemble(
        spec, day, fetched_at, arrays, extras, rejected, quarantine, key_values, kept.__getitem__
    )
    return Normalized(table, quarantine, extra_fields)


def _assemble(
    spec: TableSpec,
    day: int,
    fetched_at: datetime | None,
    arrays: dict[str, pa.Array],
    extras: pa.Array,
    rejected: dict[int, str],
    quarantine: list[dict[str, Any]],
    key_values: Sequence[Any],
    record: Callable[[int], Any],
) -> pa.Table:
    """The table of `spec` from its converted columns, without the rows in `rejected`, which
    are appended to `quarantine` with their id (`key_values`) and their raw `record(index)`."""
    n = len(extras)
    columns: dict[str, pa.Array] = {"day": pa.array([day] * n, pa.int32())}
    if spec.snapshot:
        stamp = (fetched_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
        columns["fetched_at"] = pa.array([stamp] * n, pa.timestamp("ms"))
    columns.update(arrays)
    columns["extras"] = extras
    table = pa.table(columns, schema=spec.schema())
    if not rejected:
        return table
    for index in sorted(rejected):
        quarantine.append(
            quarantine_row(spec.name, day, key_values[index], rejected[index], record(index))
        )
    return table.filter(pa.array([i not in rejected for i in range(n)]))


def normalize_text_table(
    spec: TableSpec, table: pa.Table, day: int, *, seen: set[str]
) -> Normalized | None:
    """`normalize` for records that came as columns of text (a CSV file read by Arrow), without
    a dict per record.

    `table` has one nullable string column per field, in the order the source gave them. None
    when the answer needs a look at single records: a column no spec column reads (`extras`),
    two spellings of one field, or ids missing, empty or repeated. The caller then makes the
    records and calls `normalize`, which gives the same result a record at a time.
    """
    started = time.perf_counter()
    fields = set(table.column_names)
    if fields - spec.known_fields or any(
        len(fields.intersection(column.source)) > 1 for column in spec.columns
    ):
        return None
    if table.num_rows == 0:
        return Normalized(spec.schema().empty_table())
    key = spec.key_column.source[0]
    if key not in fields:
        return None
    ids = table.column(key)
    if ids.null_count or pc.any(pc.equal(ids, "")).as_py():
        return None
    keys = ids.to_pylist()
    fresh = set(keys)
    if len(fresh) != len(keys) or not fresh.isdisjoint(seen):
        return None

    n = table.num_rows
    rejected: dict[int, str] = {}
    arrays: dict[str, pa.Array] = {}
    for column in spec.columns:
        name = next((path for path in column.source if path in fields), None)
        if name is None:
            arrays[column.name] = pa.nulls(n, column.arrow_type)
            continue
        text = table.column(name).combine_chunks().cast(pa.string())
        converted = None
        if column.kind == "str":
            converted = text
        elif column.kind == "local_dt":
            converted = _exact_local_dt(text)
        if converted is None:
            converted = _convert(column, text.to_pylist(), rejected, careful=False)
        arrays[column.name] = converted

    def record(index: int) -> dict[str, Any]:
        return {name: table.column(name)[index].as_py() for name in table.column_names}

    quarantine: list[dict[str, Any]] = []
    extras = pa.nulls(n, pa.string())
    result = _assemble(spec, day, None, arrays, extras, rejected, quarantine, keys, record)
    seen.update(fresh)
    return Normalized(result, quarantine, seconds=time.perf_counter() - started)


def quarantine_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """The quarantine rows of one or more `Normalized` results, as an Arrow table."""
    from resources.warehouse import QUARANTINE_SCHEMA

    return pa.Table.from_pylist(list(rows), schema=QUARANTINE_SCHEMA)


def _dedupe(
    spec: TableSpec, records: Sequence[dict[str, Any]], day: int, seen: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`_dedupe_carefully`, answered without a Python loop for a page with nothing to set aside.

    That is a page of objects whose ids are all present, text or integers, not empty, and new.
    """
    if set(map(type, records)) == {dict}:
        keys = _extract(records, spec.key_column.source)
        types = set(map(type, keys))
        if types <= {str, int} and "" not in keys:
            texts = keys if types == {str} else list(map(str, keys))
            fresh = set(texts)
            if len(fresh) == len(texts) and fresh.isdisjoint(seen):
                seen.update(fresh)
                return list(records), []
    return _dedupe_carefully(spec, records, day, seen)


def _dedupe_carefully(
    spec: TableSpec, records: Sequence[dict[str, Any]], day: int, seen: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Keep the first record of each id; records without an id or repeating one are quarantined."""
    kept: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    source = spec.key_column.source
    for record in records:
        if not isinstance(record, dict):
            quarantine.append(
                quarantine_row(spec.name, day, None, "record is not an object", record)
            )
            continue
        key = _lookup(record, source)
        if key is None or key == "":
            quarantine.append(quarantine_row(spec.name, day, None, f"missing {source[0]}", record))
        elif str(key) in seen:
            quarantine.append(quarantine_row(spec.name, day, key, f"duplicate {source[0]}", record))
        else:
            seen.add(str(key))
            kept.append(record)
    return kept, quarantine


def quarantine_row(table: str, day: int, key: Any, reason: str, record: Any) -> dict:
    """A row of the `quarantine` table: what `table` could not store as typed, and why."""
    return {
        "table_name": table,
        "day": day,
        "record_id": None if key is None else str(key),
        "reason": reason,
        "record": _lossless_json(record),
    }


def _lossless_json(value: Any) -> str:
    """JSON text of `value`, for what is kept as it came (`extras`, quarantined records).

    orjson refuses integers wider than 64 bits (which a decoder other than orjson can produce);
    the standard library writes them digit for digit. A value JSON has no form for (not from a
    JSON decoder) is kept as its `repr` text.
    """
    try:
        return _dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)


_MISSING = object()


def _lookup(record: dict[str, Any], source: tuple[str, ...]) -> Any:
    for path in source:
        value: Any = record
        for part in path.split("."):
            value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
            if value is _MISSING:
                break
        if value is not _MISSING:
            return value
    return None


class _Page:
    """The records of one page (all dicts) and their fields, read column by column.

    With `transpose`, the fields every record has at the same position in its key order are
    read out of all records in one pass; any other source is looked up per column (`_extract`).
    """

    def __init__(self, records: list[dict[str, Any]], transpose: bool) -> None:
        self.records = records
        # The distinct key orders of the records: a server builds its objects alike, so a page
        # has one or a few (the sandbox adds `status` at the end of some jobs).
        shapes = set(map(tuple, records))
        self.fields: set[str] = set().union(*shapes)
        self._read: dict[str, Sequence[Any]] = {}
        if not transpose:
            return
        # Each record's values in key order, then `zip` turns rows into columns: a record's
        # values are read in the order they lie in memory, with no key looked up at all. The
        # first `width` positions are as far as every record has values.
        width = min(map(len, shapes))
        columns: list[list[Any]] = [[] for _ in range(width)]
        for start in range(0, len(records), _ROWS_PER_TURN):
            rows = map(tuple, map(dict.values, records[start : start + _ROWS_PER_TURN]))
            for column, values in zip(columns, zip(*rows, strict=False), strict=False):
                column.extend(values)
        for names, values in zip(zip(*shapes, strict=False), columns, strict=False):
            # A position where the records' keys agree holds one field in every record.
            if len(set(names)) == 1:
                self._read[names[0]] = values

    def values(self, source: tuple[str, ...]) -> Sequence[Any]:
        """One column's values: per record, the first of `source`'s paths present, or None."""
        # A first source present in every record always wins over the later ones.
        read = self._read.get(source[0])
        return read if read is not None else _extract(self.records, source)


def _extras(spec: TableSpec, page: _Page, counts: Counter[str]) -> list[str | None]:
    """Each record's `extras` JSON (None when it has nothing to keep); counts the fields kept.

    Kept are the top-level fields no column reads, and the shadowed spellings (`_shadowed`).
    Most pages have neither, which is found without a loop over the records in Python.
    """
    unknown = page.fields - spec.known_fields
    shadowed: dict[int, dict[str, Any]] = {}
    for column in spec.columns:
        # Two spellings can disagree only where both are sent.
        if sum(path.split(".", 1)[0] in page.fields for path in column.source) > 1:
            for index, found in _shadowed(page, column.source).items():
                shadowed.setdefault(index, {}).update(found)
    extras: list[str | None] = [None] * len(page.records)
    if not unknown and not shadowed:
        return extras
    for index, record in enumerate(page.records):
        kept = {k: record[k] for k in unknown if k in record}
        kept.update(shadowed.get(index, ()))
        if kept:
            counts.update(kept.keys())
            extras[index] = _lossless_json(dict(sorted(kept.items())))
    return extras


def _shadowed(page: _Page, source: tuple[str, ...]) -> dict[int, dict[str, Any]]:
    """By record index, the values of a column's later sources that differ from the one taken.

    Two spellings of one field (`label`/`labels`, `moving` in or out of `states`) normally agree
    or only one is sent; when both come with different values, the one not stored in the column
    is kept in `extras` under its path instead of being dropped.
    """
    found = [page.values((path,)) for path in source]
    # Something differs from the value taken exactly when two present values differ, which is
    # rare: the pairs are compared column against column before any record is looked at.
    candidates: set[int] = set()
    for one, other in combinations(found, 2):
        if not any(map(ne, one, other)):
            continue
        candidates.update(
            index
            for index, (a, b) in enumerate(zip(one, other, strict=True))
            if a is not None and b is not None and a != b
        )
    differing: dict[int, dict[str, Any]] = {}
    for index in sorted(candidates):
        pairs = zip(source, (values[index] for values in found), strict=True)
        present = [(path, value) for path, value in pairs if value is not None]
        chosen = present[0][1]
        kept = {path: value for path, value in present[1:] if value != chosen}
        if kept:
            differing[index] = kept
    return differing


def _extract(records: Sequence[dict[str, Any]], source: tuple[str, ...]) -> list[Any]:
    """One column's values: per record, the first of `source`'s paths present in it, or None."""
    if any("." in path for path in source):
        return [_lookup(r, source) for r in records]
    # `dict.get` mapped over the records runs without a Python frame per record. The records
    # are dicts here (`_dedupe` quarantined the rest).
    n = len(records)
    if len(source) == 1:
        return list(map(dict.get, records, repeat(source[0], n)))
    values = list(map(dict.get, records, repeat(source[-1], n)))
    for path in reversed(source[:-1]):
        found = map(dict.get, records, repeat(path, n), repeat(_MISSING, n))
        pairs = zip(found, values, strict=True)
        values = [value if value is not _MISSING else later for value, later in pairs]
    return values


def _convert(
    column: Column, values: Sequence[Any], rejected: dict[int, str], careful: bool
) -> pa.Array:
    """Convert one column, in one call when the server sent the documented type."""
    kind = column.kind
    if kind == "ts_ms":
        return _convert_timestamps(column, values, rejected, careful)
    if kind == "json":
        return _convert_json(column, values, rejected, careful)
    if not careful:
        converted = _FAST[kind](values)
        if converted is not None:
            return converted
    return pa.array(_convert_slowly(column, values, rejected, _SLOW[kind]), column.arrow_type)


def _typed(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array | None:
    """`values` as `arrow_type` when pyarrow takes them all, else None.

    For text and booleans this needs no look at the types first: of what a JSON decoder makes,
    pyarrow takes only text as text (no number, boolean or nested value) and only booleans as
    booleans (no 0 or 1, no "true").
    """
    try:
        return pa.array(values, arrow_type)
    except _REFUSED:
        return None


def _fast_int(values: Sequence[Any]) -> pa.Array | None:
    """The values as int64 when all are Python ints within 64 bits or None, else None."""
    # The types are looked at first because both pyarrow and numpy, asked for int64, truncate
    # 7.5 to 7 and take True as 1. Without a None, numpy converts faster than pyarrow.
    types = set(map(type, values))
    if not types <= _INT_TYPES:
        return None
    try:
        if _NONE in types:
            return pa.array(values, pa.int64())
        return pa.array(np.array(values, np.int64))
    except _REFUSED:
        return None


def _fast_day(values: Sequence[Any]) -> pa.Array | None:
    days = _fast_int(values)
    if days is None:
        return None
    distinct = pc.unique(days).to_pylist()
    if not all(day == 0 or _is_real_day(day) for day in distinct if day is not None):
        return None
    return days.cast(pa.int32())


def _fast_float(values: Sequence[Any]) -> pa.Array | None:
    if not set(map(type, values)) <= _FLOAT_TYPES:
        return None
    return _typed(values, pa.float64())


def _convert_slowly(
    column: Column,
    values: Sequence[Any],
    rejected: dict[int, str],
    converter: Callable[[Any], Any],
) -> list[Any]:
    """Convert value by value; a value that does not fit rejects its row, with the reason."""
    out: list[Any] = []
    for index, value in enumerate(values):
        try:
            out.append(None if value is None else converter(value))
        except _Rejected as exc:
            rejected.setdefault(index, f"{column.source[0]}: {exc}")
            out.append(None)
    return out


def _convert_json(
    column: Column, values: Sequence[Any], rejected: dict[int, str], careful: bool
) -> pa.Array:
    if not careful:
        try:
            # Decoded at once: orjson's bytes, kept a thousand at a time, cost ten times more.
            texts = [None if v is None else _dumps(v).decode() for v in values]
            return pa.array(texts, pa.string())
        except TypeError:
            pass
    return pa.array(_convert_slowly(column, values, rejected, _json_text), pa.string())


def _fast_local_dt(values: Sequence[Any]) -> pa.Array | None:
    """Parse `YYYY-MM-DD HH:MM:SS` texts in one pass; None when any value is not such a text."""
    if not set(map(type, values)) <= {str, _NONE}:
        return None
    return _exact_local_dt(pa.array(values, pa.string()))


def _exact_local_dt(text: pa.Array) -> pa.Array | None:
    """`_fast_local_dt` for texts already in Arrow."""
    parsed = pc.strptime(text, format=_LOCAL_DT_FORMAT, unit="s", error_is_null=True)
    # strptime rolls 30 February over into March: only a value that prints back as it was
    # written is taken as parsed.
    exact = pc.fill_null(pc.equal(pc.strftime(parsed, format=_LOCAL_DT_FORMAT), text), False)
    if pc.all(pc.or_(exact, pc.is_null(text))).as_py():
        return parsed
    return None


def _convert_timestamps(
    column: Column, values: Sequence[Any], rejected: dict[int, str], careful: bool
) -> pa.Array:
    raw = None if careful else _fast_int(values)
    if raw is None:
        raw = pa.array(_convert_slowly(column, values, rejected, _to_int), pa.int64())
    # 0 and null both mean "did not happen"; as 0, the bounds check needs no null handling.
    ms = (raw.fill_null(0) if raw.null_count else raw).to_numpy()
    implausible = (ms != 0) & ((ms < _TS_MIN_MS) | (ms > _TS_MAX_MS))
    for index in np.flatnonzero(implausible).tolist():
        rejected.setdefault(
            index, f"{column.source[0]}: {values[index]!r} is not a plausible timestamp"
        )
    return pa.array(ms, pa.timestamp("ms"), mask=(ms == 0) | implausible)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Rejected(f"{value!r} is not an integer")
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise _Rejected(f"{value!r} is out of range")
        return value
    if isinstance(value, float):
        return _whole(value, value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return _to_int(int(text))
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise _Rejected(f"{value!r} is not an integer") from None
        return _whole(number, value)
    raise _Rejected(f"{value!r} is not an integer")


def _whole(number: float, value: Any) -> int:
    """`number` as an integer when it is a whole one within int64; `value` is what was sent."""
    if not number.is_integer():
        raise _Rejected(f"{value!r} is not a whole number")
    if not -(2.0**63) <= number < 2.0**63:
        raise _Rejected(f"{value!r} is out of range")
    return int(number)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Rejected(f"{value!r} is not a number")
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            raise _Rejected(f"{value!r} is out of range") from None
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _Rejected(f"{value!r} is not a number") from None
    raise _Rejected(f"{value!r} is not a number")


def _to_str(value: Any) -> str:
    # Numbers, booleans and nested values where text was documented are kept as their JSON
    # text: nothing is lost, and the column keeps one type.
    if isinstance(value, str):
        return value
    return _json_text(value)


def _json_text(value: Any) -> str:
    try:
        return _dumps(value).decode()
    except TypeError as exc:
        # orjson writes no integer wider than 64 bits. Such a value is not stored half-read in
        # a column: its row goes to the quarantine, which keeps the record digit for digit.
        raise _Rejected(f"{value!r} cannot be stored as JSON text ({exc})") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "0", "1"):
        return value.strip().lower() in ("true", "1")
    raise _Rejected(f"{value!r} is not a boolean")


def _to_day(value: Any) -> int:
    day = _to_int(value)
    if day != 0 and not _is_real_day(day):
        raise _Rejected(f"{value!r} is not a YYYYMMDD day")
    return day


def _is_real_day(day: int) -> bool:
    try:
        datetime.strptime(str(day), "%Y%m%d")
    except ValueError:
        return False
    return 19000101 <= day <= 29991231


def _to_local_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return datetime.fromisoformat(value.strip()).replace(tzinfo=None)
        except ValueError:
            pass
    raise _Rejected(f"{value!r} is not a local date and time")


# Per kind, the conversion of a whole column in one call (None when any value needs a look of
# its own) and the conversion of one value (raising `_Rejected` when it does not fit).
_FAST = {
    "local_dt": _fast_local_dt,
    "int": _fast_int,
    "float": _fast_float,
    "str": partial(_typed, arrow_type=pa.string()),
    "bool": partial(_typed, arrow_type=pa.bool_()),
    "day": _fast_day,
}
_SLOW = {
    "local_dt": _to_local_dt,
    "int": _to_int,
    "float": _to_float,
    "str": _to_str,
    "bool": _to_bool,
    "day": _to_day,
}
