"""JSON records from the API become typed Arrow rows here, and nowhere else.

Each table declares its columns once (`TableSpec`): a column name, a kind, and the API field (or
fields, first present wins) it comes from. Conversion runs column by column: the common case, where
the server sent the documented types, goes through one `pa.array` call per column; only a column
that fails that fast path is converted value by value.

Nothing is dropped silently:
- a top-level field the spec does not know is kept in the row's `extras` JSON column and counted;
- a value that cannot be converted without loss (text where a number belongs, a fractional count,
  an absurd timestamp) sends its whole row to the quarantine, with the reason;
- a row without its id, or with an id already seen, goes to the quarantine too.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import combinations, repeat
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

# Timestamps outside these bounds (ms since the epoch) are not plausible fleet events: year 2000
# to year 2100. Anything else is quarantined rather than loaded as a nonsense date.
_TS_MIN_MS = 946_684_800_000
_TS_MAX_MS = 4_102_444_800_000

# The exact Python types (as orjson makes them) that a kind converts in one `pa.array` call.
_NONE = type(None)
_FAST_TYPES: dict[str, set[type]] = {
    "int": {int, _NONE},
    "day": {int, _NONE},
    "float": {int, float, _NONE},
    "str": {str, _NONE},
    "bool": {bool, _NONE},
}
_LOCAL_DT_FORMAT = "%Y-%m-%d %H:%M:%S"

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
        fields = [pa.field("day", pa.int32(), nullable=False)]
        if self.snapshot:
            fields.append(pa.field("fetched_at", pa.timestamp("ms")))
        fields += [pa.field(c.name, c.arrow_type) for c in self.columns]
        fields.append(pa.field("extras", pa.string()))
        return pa.schema(fields)

    @property
    def known_fields(self) -> frozenset[str]:
        """Top-level API fields that some column reads (the rest go to `extras`)."""
        return frozenset(path.split(".", 1)[0] for c in self.columns for path in c.source)

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
) -> Normalized:
    """Turn raw API records into an Arrow table of `spec`'s schema for `day`.

    `seen` carries the ids of earlier pages of the same listing, so duplicates across pages are
    caught too. The result's `seconds` is the time the conversion took.
    """
    started = time.perf_counter()
    result = _normalize(spec, records, day, fetched_at, set() if seen is None else seen)
    result.seconds = time.perf_counter() - started
    return result


def _normalize(
    spec: TableSpec,
    records: Sequence[dict[str, Any]],
    day: int,
    fetched_at: datetime | None,
    seen: set[str],
) -> Normalized:
    # This runs at about 40,000 job records a second, the largest per-row cost of a sync (see
    # docs/benchmarks.md): every value passes through a Python dict first. Decoding a page's raw
    # JSON straight into Arrow (pyarrow.json with the explicit schema, the checks below done with
    # Arrow compute) would remove that, at the price of the client handing out raw pages.
    records, quarantine = _dedupe(spec, records, day, seen)
    if not records:
        return Normalized(spec.schema().empty_table(), quarantine)

    rejected: dict[int, str] = {}
    arrays: dict[str, pa.Array] = {}
    fields = set().union(*records)
    for column in spec.columns:
        if fields.isdisjoint(path.split(".", 1)[0] for path in column.source):
            # A documented field the server does not send: nothing to look up or convert.
            arrays[column.name] = pa.nulls(len(records), column.arrow_type)
            continue
        values = _extract(records, column.source)
        arrays[column.name] = _convert(column, values, rejected)

    extra_fields: Counter[str] = Counter()
    extras = _extras(spec, records, fields, extra_fields)

    n = len(records)
    columns: dict[str, pa.Array] = {"day": pa.array([day] * n, pa.int32())}
    if spec.snapshot:
        stamp = (fetched_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
        columns["fetched_at"] = pa.array([stamp] * n, pa.timestamp("ms"))
    columns.update(arrays)
    columns["extras"] = pa.array(extras, pa.string())
    table = pa.table(columns, schema=spec.schema())

    if rejected:
        key_values = _extract(records, spec.key_column.source)
        for index in sorted(rejected):
            quarantine.append(
                quarantine_row(spec, day, key_values[index], rejected[index], records[index])
            )
        keep = pa.array([i not in rejected for i in range(n)])
        table = table.filter(keep)
    return Normalized(table, quarantine, extra_fields)


def quarantine_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """The quarantine rows of one or more `Normalized` results, as an Arrow table."""
    from resources.warehouse import QUARANTINE_SCHEMA

    return pa.Table.from_pylist(list(rows), schema=QUARANTINE_SCHEMA)


def _dedupe(
    spec: TableSpec, records: Sequence[dict[str, Any]], day: int, seen: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Keep the first record of each id; records without an id or repeating one are quarantined."""
    kept: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    source = spec.key_column.source
    for record in records:
        if not isinstance(record, dict):
            quarantine.append(quarantine_row(spec, day, None, "record is not an object", record))
            continue
        key = _lookup(record, source)
        if key is None or key == "":
            quarantine.append(quarantine_row(spec, day, None, f"missing {source[0]}", record))
        elif str(key) in seen:
            quarantine.append(quarantine_row(spec, day, key, f"duplicate {source[0]}", record))
        else:
            seen.add(str(key))
            kept.append(record)
    return kept, quarantine


def quarantine_row(spec: TableSpec, day: int, key: Any, reason: str, record: Any) -> dict:
    """A row of the `quarantine` table: what could not be stored as typed, and why."""
    return {
        "table_name": spec.name,
        "day": day,
        "record_id": None if key is None else str(key),
        "reason": reason,
        "record": orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS).decode(),
    }


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


def _extras(
    spec: TableSpec, records: Sequence[dict[str, Any]], fields: set[str], counts: Counter[str]
) -> list[str | None]:
    """Each record's `extras` JSON (None when it has nothing to keep); counts the fields kept.

    Kept are the top-level fields no column reads, and the shadowed spellings (`_shadowed`);
    `fields` are the top-level fields of all the records. Most pages have neither, which is
    found without a loop over the records in Python.
    """
    unknown = fields - spec.known_fields
    shadowed: dict[int, dict[str, Any]] = {}
    for column in spec.columns:
        if len(column.source) > 1:
            for index, found in _shadowed(records, column.source).items():
                shadowed.setdefault(index, {}).update(found)
    extras: list[str | None] = [None] * len(records)
    if not unknown and not shadowed:
        return extras
    for index, record in enumerate(records):
        kept = {k: record[k] for k in unknown if k in record}
        kept.update(shadowed.get(index, ()))
        if kept:
            counts.update(kept.keys())
            extras[index] = orjson.dumps(dict(sorted(kept.items()))).decode()
    return extras


def _shadowed(
    records: Sequence[dict[str, Any]], source: tuple[str, ...]
) -> dict[int, dict[str, Any]]:
    """By record index, the values of a column's later sources that differ from the one taken.

    Two spellings of one field (`label`/`labels`, `moving` in or out of `states`) normally agree
    or only one is sent; when both come with different values, the one not stored in the column
    is kept in `extras` under its path instead of being dropped.
    """
    found = [_extract(records, (path,)) for path in source]
    # Something differs from the value taken exactly when two present values differ, which is
    # rare: the pairs are compared column against column before any record is looked at.
    candidates: set[int] = set()
    for one, other in combinations(found, 2):
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
    # `dict.get` mapped over the records runs without a Python frame per record: this is the
    # inner loop of every page. The records are dicts here (`_dedupe` quarantined the rest).
    n = len(records)
    if len(source) == 1:
        return list(map(dict.get, records, repeat(source[0], n)))
    values = list(map(dict.get, records, repeat(source[-1], n)))
    for path in reversed(source[:-1]):
        found = map(dict.get, records, repeat(path, n), repeat(_MISSING, n))
        pairs = zip(found, values, strict=True)
        values = [value if value is not _MISSING else later for value, later in pairs]
    return values


def _convert(column: Column, values: list[Any], rejected: dict[int, str]) -> pa.Array:
    """Convert one column, quickly when the server sent the documented type."""
    kind = column.kind
    if kind == "json":
        return pa.array(
            [
                None if v is None else orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()
                for v in values
            ],
            pa.string(),
        )
    if kind == "ts_ms":
        return _convert_timestamps(column, values, rejected)
    target = column.arrow_type
    if kind == "local_dt":
        return _convert_local_dt(column, values, rejected)
    # The set of the values' exact types is taken in C; a bool is not an int here, as in JSON.
    if set(map(type, values)) <= _FAST_TYPES[kind] and (
        kind != "day" or all(v == 0 or _is_real_day(v) for v in set(values) if v is not None)
    ):
        try:
            return pa.array(values, target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    return _convert_slowly(column, values, rejected)


def _convert_slowly(column: Column, values: list[Any], rejected: dict[int, str]) -> pa.Array:
    """Convert value by value; a value that does not fit rejects its row, with the reason."""
    converter = _SLOW[column.kind]
    out: list[Any] = []
    for index, value in enumerate(values):
        try:
            out.append(None if value is None else converter(value))
        except _Rejected as exc:
            rejected.setdefault(index, f"{column.source[0]}: {exc}")
            out.append(None)
    return pa.array(out, column.arrow_type)


def _convert_local_dt(column: Column, values: list[Any], rejected: dict[int, str]) -> pa.Array:
    """Parse `YYYY-MM-DD HH:MM:SS` texts in one pass; any other value goes value by value."""
    if not set(map(type, values)) <= _FAST_TYPES["str"]:
        return _convert_slowly(column, values, rejected)
    text = pa.array(values, pa.string())
    parsed = pc.strptime(text, format=_LOCAL_DT_FORMAT, unit="s", error_is_null=True)
    # strptime rolls 30 February over into March: only a value that prints back as it was
    # written is taken as parsed.
    exact = pc.fill_null(pc.equal(pc.strftime(parsed, format=_LOCAL_DT_FORMAT), text), False)
    if pc.all(pc.or_(exact, pc.is_null(text))).as_py():
        return parsed
    merged: list[Any] = parsed.to_pylist()
    for index in pc.indices_nonzero(pc.and_(pc.invert(exact), pc.is_valid(text))).to_pylist():
        try:
            merged[index] = _to_local_dt(values[index])
        except _Rejected as exc:
            rejected.setdefault(index, f"{column.source[0]}: {exc}")
            merged[index] = None
    return pa.array(merged, column.arrow_type)


def _convert_timestamps(column: Column, values: list[Any], rejected: dict[int, str]) -> pa.Array:
    ints: list[int | None] = values
    if not set(map(type, values)) <= _FAST_TYPES["int"]:
        ints = []
        for index, value in enumerate(values):
            if value is None or type(value) is int:
                ints.append(value)
                continue
            try:
                ints.append(_to_int(value))
            except _Rejected as exc:
                rejected.setdefault(index, f"{column.source[0]}: {exc}")
                ints.append(None)
    raw = pa.array(ints, pa.int64())
    zero_or_null = pc.fill_null(pc.equal(raw, 0), True)
    implausible = pc.and_kleene(
        pc.invert(zero_or_null),
        pc.or_(pc.less(raw, _TS_MIN_MS), pc.greater(raw, _TS_MAX_MS)),
    )
    if pc.any(implausible).as_py():
        for index in pc.indices_nonzero(implausible).to_pylist():
            rejected.setdefault(
                index, f"{column.source[0]}: {values[index]!r} is not a plausible timestamp"
            )
    cleaned = pc.if_else(pc.or_(zero_or_null, pc.fill_null(implausible, False)), None, raw)
    return cleaned.cast(pa.timestamp("ms"))


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Rejected(f"{value!r} is not an integer")
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise _Rejected(f"{value!r} is out of range")
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise _Rejected(f"{value!r} is not a whole number")
    if isinstance(value, str):
        text = value.strip()
        try:
            return _to_int(int(text))
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise _Rejected(f"{value!r} is not an integer") from None
            if number.is_integer():
                return int(number)
            raise _Rejected(f"{value!r} is not a whole number") from None
    raise _Rejected(f"{value!r} is not an integer")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Rejected(f"{value!r} is not a number")
    if isinstance(value, int | float):
        return float(value)
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
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


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


_SLOW = {
    "local_dt": _to_local_dt,
    "int": _to_int,
    "float": _to_float,
    "str": _to_str,
    "bool": _to_bool,
    "day": _to_day,
}
