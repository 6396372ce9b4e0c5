"""Sorted list views, their cache, and the schema-drift rewrite of the sandbox's list answers.

The list actions (getjobs, gettracks, getaccounts, getplaces) share one shape: a filtered list of
objects, sorted once by the requested field, from which each request cuts a `skip`/`limit`
window. Sorting a 100k-job day costs far more than serializing a 1,000-row page, so the sorted
list is kept in a small LRU and successive pages only slice it. Cached lists hold the objects the
fleet returned; nothing here mutates them (drift copies before it changes a field).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future
from threading import Lock
from typing import Any

import orjson

# Fields a `sort` may name even when the answer is empty or its first object lacks the field
# (e.g. a job's `status`, present only on archived jobs). Any key of a returned object counts too.
SORTABLE_FIELDS: dict[str, frozenset[str]] = {
    "getjobs": frozenset(
        """id uidSecondary type teamId destinationName destinationLat destinationLng
        destinationText destinationUrl textDispatcher notes textReceiver contactName contactPhone
        contactEmail fileNumber day priority number onSiteSeconds windowStart windowEnd orderId
        dispatcherUid dispatcherName placeUid placeName radius worker receiverUid workerName
        itemsToDropoff itemsToPickup status carryOver label labels scheduledStart scheduledEnd
        tsCreated tsSaved tsAssigned tsScheduled tsAccepted tsRejected tsCheckIn tsCheckOut
        tsCheckNFC1 tsCheckNFC2 tsDoneSuccess tsDoneFailed tsSignature""".split()
    ),
    "gettracks": frozenset(
        """id owner_uid kind labels start_ts end_ts start_lat start_lng end_lat end_lng distance
        waypoint_count speed_avg speed_max altitude_min altitude_max path_encoded""".split()
    ),
    "getaccounts": frozenset(
        """id uid username name email phone type color role active_status status_label timezone
        language unit_distance travel_mode battery_level battery_plugged""".split()
    ),
    "getplaces": frozenset(
        """uid name creator address city state postalcode country_code radius phone email color
        linkedForms""".split()
    ),
}

# The field that makes each list's order unique; ties of any other sort fall back to it.
ID_FIELDS: dict[str, str] = {
    "getjobs": "id",
    "gettracks": "id",
    "getaccounts": "uid",
    "getplaces": "uid",
}


def sort_key(field: str) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    """A key ordering objects by one field: missing or null first, then numbers, then text.

    Values of other types (lists, objects) compare by their JSON text, so a sort never raises on
    mixed data.
    """

    def key(row: dict[str, Any]) -> tuple[int, Any]:
        value = row.get(field)
        if value is None:
            return (0, 0)
        if isinstance(value, int | float):
            return (1, value)
        if isinstance(value, str):
            return (2, value)
        return (3, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))

    return key


def sort_rows(rows: list[dict[str, Any]], action: str, sort: str | None) -> list[dict[str, Any]]:
    """Return a new list of `rows` ordered by `sort` (leading `-` = descending), ties by id.

    The rows are first put in ascending id order; Python's sort is stable also with
    `reverse=True`, so ties keep that order in both directions.
    """
    by_id = sorted(rows, key=sort_key(ID_FIELDS[action]))
    if sort is None:
        return by_id
    field = sort.removeprefix("-")
    if field == ID_FIELDS[action] and not sort.startswith("-"):
        return by_id
    return sorted(by_id, key=sort_key(field), reverse=sort.startswith("-"))


def known_sort_field(action: str, field: str, rows: list[dict[str, Any]]) -> bool:
    """Whether `field` names a field of the objects of `action` (documented or present)."""
    return field in SORTABLE_FIELDS[action] or bool(rows and field in rows[0])


class ViewCache:
    """A thread-safe LRU of computed lists, bounded by entry count and by total rows.

    Concurrent misses of one key compute it once: the first caller computes, the others wait for
    its result (or its exception). The row bound keeps a few large fleet days in memory, not
    dozens; an entry larger than the bound is returned but not kept.
    """

    def __init__(self, max_entries: int = 16, max_rows: int = 300_000) -> None:
        self.max_entries = max_entries
        self.max_rows = max_rows
        self._lock = Lock()
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._pending: dict[Hashable, Future] = {}
        self._rows = 0

    def get(self, key: Hashable, compute: Callable[[], Any], size: Callable[[Any], int] = len):
        """Return the cached value of `key`, computing and storing it on a miss."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit[0]
            waiting = self._pending.get(key)
            if waiting is None:
                mine: Future = Future()
                self._pending[key] = mine
        if waiting is not None:
            return waiting.result()
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            mine.set_exception(exc)
            raise
        rows = size(value)
        with self._lock:
            del self._pending[key]
            if rows <= self.max_rows:
                self._entries[key] = (value, rows)
                self._rows += rows
                while len(self._entries) > self.max_entries or self._rows > self.max_rows:
                    _, (_, dropped) = self._entries.popitem(last=False)
                    self._rows -= dropped
        mine.set_result(value)
        return value

    def clear(self) -> None:
        """Forget every cached entry (computations under way still finish)."""
        with self._lock:
            self._entries.clear()
            self._rows = 0


# --- schema drift -------------------------------------------------------------------------------

DRIFT_NOTE = "schema drift: a field this client has never seen"

# Numeric fields that a drifting server sends as strings, per kind of object.
_NUMBERS_AS_TEXT: dict[str, tuple[str, ...]] = {
    "job": ("priority", "orderId", "onSiteSeconds", "radius", "day"),
    "track": ("distance", "speed_avg", "speed_max"),
    "member": ("battery_level",),
    "place": ("radius",),
    "company": (),
}


def drift_object(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """A drifted copy of one answer object; `obj` itself is left as it was.

    Every object gains `x_drift_note`; the numbers listed for its kind become strings; a job's
    `label` is renamed `labels`; a member's `states.moving` moves to the top level.
    """
    out = dict(obj)
    out["x_drift_note"] = DRIFT_NOTE
    for name in _NUMBERS_AS_TEXT[kind]:
        value = out.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = str(value)
    if kind == "job" and "label" in out:
        out["labels"] = out.pop("label")
    if kind == "member" and isinstance(out.get("states"), dict) and "moving" in out["states"]:
        states = dict(out["states"])
        out["moving"] = states.pop("moving")
        out["states"] = states
    return out


def drift_rows(kind: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drifted copies of `rows` (see `drift_object`)."""
    return [drift_object(kind, row) for row in rows]
