"""The Hellotracks actions of the sandbox: request validation, answers from the fleet, paging.

Everything here is transport-free: `SandboxApi.answer(action, data, faults)` turns one
authenticated request's `data` object into an `Answer` (a JSON envelope or a report file). The
HTTP layer in `sandbox.server` adds the transport faults (throttling, 5xx, HTML pages, truncated
bodies, latency) around it; the faults that shape an answer's content (paging quirks, the 504 of
`max_page_rows`, not-ready reports, schema drift, legacy tracks) are applied here and named in
`Answer.faults`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from threading import Lock
from typing import TYPE_CHECKING, Any

import orjson

from sandbox.reports import render_csv, render_xlsx
from sandbox.server_lists import (
    ID_FIELDS,
    ViewCache,
    drift_object,
    drift_rows,
    known_sort_field,
    sort_rows,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.fleet import Fleet
    from sandbox.server import Faults

JSON = "application/json"
HTML = "text/html; charset=utf-8"
REPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# A longer range is refused with -11 rather than generating years of synthetic days.
MAX_RANGE_DAYS = 366
_MS_PER_DAY = 86_400_000
_INTEGER = re.compile(r"-?[0-9]+")

STATUS_OK = 0
STATUS_FORMAT = -1
STATUS_NOT_READY = -7
STATUS_BAD_KEY = -8
STATUS_THROTTLED = -9
STATUS_DATA = -11
STATUS_UNKNOWN = -99


class ApiError(Exception):
    """A request the API answers with a non-zero `status` and an `error` text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Answer:
    """What one request gets back, before any transport fault is applied."""

    body: bytes
    content_type: str = JSON
    http_status: int = 200
    status: int | None = STATUS_OK
    rows: int | None = None
    faults: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


def envelope(status: int, message: str | None = None, **payload: Any) -> bytes:
    """The JSON answer `{"status": status, "error": message, **payload}` as bytes."""
    body: dict[str, Any] = {"status": status}
    if message is not None:
        body["error"] = message
    body.update(payload)
    return orjson.dumps(body)


def error_answer(status: int, message: str) -> Answer:
    """A JSON envelope answer carrying a non-zero status."""
    return Answer(envelope(status, message), status=status)


def html_page(code: int, title: str, detail: str = "") -> bytes:
    """A small HTML error page, as a proxy or load balancer in front of an API sends."""
    text = f"<html><head><title>{code} {title}</title></head><body><h1>{code} {title}</h1>"
    if detail:
        text += f"<p>{html.escape(detail)}</p>"
    return (text + "</body></html>\n").encode()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- parameters ---------------------------------------------------------------------------------


def _integer(data: dict[str, Any], name: str, *, minimum: int | None = None) -> int | None:
    """`data[name]` as an int (a JSON integer or a string of digits), None when absent."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        number = int(value)
    else:
        raise ApiError(STATUS_DATA, f"{name} must be an integer, got {_show(value)}")
    if minimum is not None and number < minimum:
        raise ApiError(STATUS_DATA, f"{name} must be at least {minimum}, got {number}")
    return number


def _day(data: dict[str, Any], name: str, *, allow_zero: bool = False) -> int | None:
    """`data[name]` as a YYYYMMDD int naming a real calendar date, None when absent."""
    value = data.get(name)
    if value is None:
        return None
    day = None
    if isinstance(value, int) and not isinstance(value, bool):
        day = value
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        day = int(value)
    if day == 0 and allow_zero:
        return 0
    if day is None or _as_date(day) is None:
        raise ApiError(STATUS_DATA, f"{name} must be a YYYYMMDD date, got {_show(value)}")
    return day


def _as_date(day: int) -> date | None:
    if not 10000101 <= day <= 99991231:
        return None
    try:
        return date(day // 10000, day // 100 % 100, day % 100)
    except ValueError:
        return None


def _strings(data: dict[str, Any], name: str) -> list[str] | None:
    """`data[name]` as a list of strings, None when absent."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ApiError(STATUS_DATA, f"{name} must be a list of strings, got {_show(value)}")
    return value


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(STATUS_DATA, f"{name} must be a string, got {_show(value)}")
    return value


def _refuse(data: dict[str, Any], names: tuple[str, ...]) -> None:
    # Documented filters the sandbox does not implement fail loudly instead of being ignored,
    # which would answer with more rows than the real API. Implementing them removes this.
    for name in names:
        if data.get(name) not in (None, False, 0, "", []):
            raise ApiError(STATUS_DATA, f"{name} is not supported by the sandbox")


@dataclass(frozen=True)
class _Paging:
    sort: str | None
    skip: int
    limit: int | None


def _paging(data: dict[str, Any]) -> _Paging:
    sort = _text(data, "sort")
    if sort is not None and sort.removeprefix("-") == "":
        raise ApiError(STATUS_DATA, f"sort must name a field, got {_show(sort)}")
    skip = _integer(data, "skip", minimum=0) or 0
    limit = _integer(data, "limit", minimum=1)
    return _Paging(sort, skip, limit)


# --- the actions --------------------------------------------------------------------------------


class SandboxApi:
    """Answers the read actions of the Hellotracks API from a `Fleet`.

    Thread-safe: the caches and the not-ready counters are guarded, and the fleet's methods
    return fresh objects that are never changed once cached.
    """

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        # Room for a 10,000-member day: its jobs (~400k rows) and its tracks, asked for in 20
        # chunks of member uids, stay cached. A list that does not fit is sorted again for every
        # page, which costs seconds per request at that size.
        self._views = ViewCache(max_entries=64, max_rows=1_000_000)
        self._reports = ViewCache(max_entries=8, max_rows=1_000_000)
        self._report_requests: dict[tuple, int] = {}
        self._report_lock = Lock()
        self._handlers: dict[str, Callable[[dict[str, Any], Faults], Answer]] = {
            "getjobs": self._getjobs,
            "gettracks": self._gettracks,
            "getaccounts": self._getaccounts,
            "getplaces": self._getplaces,
            "getcompany": self._getcompany,
            "createreport": self._createreport,
        }

    @property
    def actions(self) -> frozenset[str]:
        """The action names this API answers; any other gets -99."""
        return frozenset(self._handlers)

    def answer(self, action: str, data: dict[str, Any], faults: Faults) -> Answer:
        """The answer to `action` with request `data`; errors become their status envelope."""
        handler = self._handlers.get(action)
        if handler is None:
            return error_answer(STATUS_UNKNOWN, f"unknown action {_show(action)}")
        try:
            return handler(data, faults)
        except _TooLarge as exc:
            page = html_page(504, "Gateway Timeout", exc.message)
            faults_met = [*exc.names, "http504"]
            return Answer(page, HTML, http_status=504, status=None, faults=faults_met)
        except ApiError as exc:
            return error_answer(exc.status, exc.message)

    # Each list action builds a view key from its validated filters and a function computing the
    # filtered rows; `_list_page` does sorting, caching and the paging window for all of them.

    def _getjobs(self, data: dict[str, Any], faults: Faults) -> Answer:
        _refuse(data, ("id", "ids", "orderId", "orderIds", "progressSuccess", "progressActive"))
        day = _day(data, "day", allow_zero=True)
        day = self.fleet.today if day is None else day
        worker = _text(data, "worker")
        worker = "*" if worker is None else worker
        team = _integer(data, "team")
        paging = _paging(data)

        def compute() -> list[dict[str, Any]]:
            # Day 0 asks for jobs without a date; the fleet dates every job.
            jobs = self.fleet.jobs(day) if day else []
            if worker != "*":
                jobs = [job for job in jobs if job.get("worker", "") == worker]
            if team is not None:
                jobs = [job for job in jobs if job.get("teamId") == team]
            return jobs

        page, names = self._list_page("getjobs", (day, worker, team), compute, paging, faults)
        return self._list_answer("jobs", "job", page, names, faults)

    def _gettracks(self, data: dict[str, Any], faults: Faults) -> Answer:
        if data.get("withCourse"):
            raise ApiError(STATUS_DATA, "withCourse is not supported by the sandbox")
        start = _integer(data, "from", minimum=0)
        until = _integer(data, "until", minimum=0)
        if start is None or until is None:
            raise ApiError(STATUS_DATA, "from and until (ms since the epoch) are required")
        if start > until:
            raise ApiError(STATUS_DATA, f"from ({start}) is after until ({until})")
        if until - start > MAX_RANGE_DAYS * _MS_PER_DAY:
            raise ApiError(STATUS_DATA, f"from..until spans more than {MAX_RANGE_DAYS} days")
        uids = _strings(data, "uids")
        accounts = _strings(data, "accounts") if uids is None else None
        paging = _paging(data)

        # A legacy answer is keyed by each account as the request named it (uid or username).
        pairs: list[tuple[str, str]] | None = None
        wanted: tuple[str, ...] | None = None if uids is None else tuple(uids)
        if accounts is not None:
            by_name = {m["username"]: m["uid"] for m in self.fleet.all_members()}
            pairs = [(name, by_name.get(name, name)) for name in dict.fromkeys(accounts)]
            wanted = tuple(uid for _, uid in pairs)
        elif faults.legacy_tracks and uids is not None:
            pairs = [(uid, uid) for uid in dict.fromkeys(uids)]

        def compute() -> list[dict[str, Any]]:
            if wanted is not None and not wanted:
                return []
            return self.fleet.tracks(start, until, None if wanted is None else list(wanted))

        page, names = self._list_page("gettracks", (start, until, wanted), compute, paging, faults)
        if accounts is None and not faults.legacy_tracks:
            return self._list_answer("tracks", "track", page, names, faults)

        if accounts is None:
            names.append("legacy_tracks")
        if faults.schema_drift:
            page = drift_rows("track", page)
            names.append("schema_drift")
        by_owner: dict[str, list[dict[str, Any]]] = {}
        for entry in page:
            by_owner.setdefault(entry["owner_uid"], []).append(entry)
        if pairs is None:
            grouped = by_owner
        else:
            grouped = {name: by_owner.get(uid, []) for name, uid in pairs}
        return Answer(envelope(STATUS_OK, tracks=grouped), rows=len(page), faults=names)

    def _getaccounts(self, data: dict[str, Any], faults: Faults) -> Answer:
        uids = _strings(data, "uids")
        paging = _paging(data)
        wanted = None if uids is None else frozenset(uids)

        def compute() -> list[dict[str, Any]]:
            if wanted is None:
                return self.fleet.accounts()
            # Asked by uid, members who have left are found too, as the real API does for
            # callers allowed to see archived members.
            return [m for m in self.fleet.all_members() if m["uid"] in wanted]

        key = None if wanted is None else tuple(sorted(wanted))
        page, names = self._list_page("getaccounts", (key,), compute, paging, faults)
        return self._list_answer("accounts", "member", page, names, faults)

    def _getplaces(self, data: dict[str, Any], faults: Faults) -> Answer:
        uids = _strings(data, "uids")
        query = _text(data, "query")
        most = _integer(data, "max", minimum=1)
        paging = _paging(data)
        wanted = None if uids is None else frozenset(uids)
        needle = (query or "").casefold()

        def compute() -> list[dict[str, Any]]:
            places = self.fleet.places()
            if wanted is not None:
                places = [p for p in places if p["uid"] in wanted]
            if needle:
                places = [p for p in places if needle in str(p.get("name", "")).casefold()]
            return places

        # The real API defaults `max` to 500 and orders by distance from the caller; the sandbox
        # applies `max` only when given (a cap per answer, like `limit`) and orders by uid, so a
        # paged listing of a large fleet sees every place.
        if most is not None:
            limit = most if paging.limit is None else min(most, paging.limit)
            paging = _Paging(paging.sort, paging.skip, limit)
        key = (None if wanted is None else tuple(sorted(wanted)), needle)
        page, names = self._list_page("getplaces", key, compute, paging, faults)
        return self._list_answer("places", "place", page, names, faults)

    def _getcompany(self, data: dict[str, Any], faults: Faults) -> Answer:
        company = self.fleet.company()
        names = []
        if faults.schema_drift:
            company = drift_object("company", company)
            names.append("schema_drift")
        return Answer(envelope(STATUS_OK, company=company), faults=names)

    def _list_page(
        self,
        action: str,
        filters: tuple,
        compute: Callable[[], list[dict[str, Any]]],
        paging: _Paging,
        faults: Faults,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The page of rows a list request gets, and the names of the faults that shaped it.

        Raises ApiError for a sort on an unknown field, and `_TooLarge` (answered with HTTP 504)
        when the page would exceed `faults.max_page_rows`.
        """
        base = self._views.get((action, filters, None), lambda: sort_rows(compute(), action, None))
        sort = paging.sort
        if sort is not None:
            field_name = sort.removeprefix("-")
            if not known_sort_field(action, field_name, base):
                raise ApiError(STATUS_DATA, f"sort: {action} objects have no field {field_name!r}")
            if sort != ID_FIELDS[action]:
                rows = self._views.get(
                    (action, filters, sort), lambda: sort_rows(base, action, sort)
                )
            else:
                rows = base
        else:
            rows = base

        names: list[str] = []
        skip, limit = paging.skip, paging.limit
        if faults.ignore_skip and skip:
            skip = 0
            names.append("skip_ignored")
        if faults.ignore_limit and limit is not None:
            limit = None
            names.append("limit_ignored")
        if limit is not None and limit > faults.limit_cap:
            limit = faults.limit_cap
            names.append("limit_capped")
        page = rows[skip:] if limit is None else rows[skip : skip + limit]
        if faults.max_page_rows is not None and len(page) > faults.max_page_rows:
            raise _TooLarge(len(page), faults.max_page_rows, names)
        return page, names

    def _list_answer(
        self,
        key: str,
        kind: str,
        page: list[dict[str, Any]],
        names: list[str],
        faults: Faults,
    ) -> Answer:
        if faults.schema_drift:
            page = drift_rows(kind, page)
            names.append("schema_drift")
        return Answer(envelope(STATUS_OK, **{key: page}), rows=len(page), faults=names)

    # --- reports --------------------------------------------------------------------------------

    def _createreport(self, data: dict[str, Any], faults: Faults) -> Answer:
        reporttype = _text(data, "reporttype")
        if not reporttype:
            raise ApiError(STATUS_DATA, "reporttype is required")
        fmt = _text(data, "format") or "xlsx"
        if fmt not in REPORT_TYPES:
            raise ApiError(STATUS_DATA, f"format {fmt!r} is not supported; use csv or xlsx")
        days = self._report_days(data)
        accounts = _strings(data, "accounts")
        key = (reporttype, fmt, days[0], days[-1], None if accounts is None else tuple(accounts))

        def build() -> tuple[bytes, int]:
            try:
                header, rows = self.fleet.report(reporttype, days, accounts or None)
            except ValueError as exc:
                raise ApiError(STATUS_DATA, f"reporttype {reporttype!r}: {exc}") from exc
            render = render_csv if fmt == "csv" else render_xlsx
            return render(header, rows), len(rows)

        # The report is made (and cached) on the first request even when the answer is "not
        # ready", so a bad reporttype is -11 at once and the later requests find it done.
        body, rows = self._reports.get(key, build, size=lambda built: built[1])
        with self._report_lock:
            seen = self._report_requests.get(key, 0)
            self._report_requests[key] = seen + 1
        if seen < faults.not_ready_reports:
            answer = error_answer(STATUS_NOT_READY, "the report is being generated; retry later")
            answer.faults.append("not_ready")
            return answer

        span = str(days[0]) if len(days) == 1 else f"{days[0]}-{days[-1]}"
        disposition = f'attachment; filename="{reporttype}_{span}.{fmt}"'
        return Answer(
            body,
            content_type=REPORT_TYPES[fmt],
            rows=rows,
            headers={"Content-Disposition": disposition},
        )

    def _report_days(self, data: dict[str, Any]) -> list[int]:
        """The days of a report: `day`, or `from` through `until`, both included."""
        day = _day(data, "day")
        first, last = _day(data, "from"), _day(data, "until")
        if day is not None and (first is not None or last is not None):
            raise ApiError(STATUS_DATA, "give either day or from/until, not both")
        if day is not None:
            return [day]
        if first is None or last is None:
            raise ApiError(STATUS_DATA, "day, or both from and until (YYYYMMDD), are required")
        start, end = _as_date(first), _as_date(last)
        assert start is not None and end is not None
        if start > end:
            raise ApiError(STATUS_DATA, f"from ({first}) is after until ({last})")
        count = (end - start).days + 1
        if count > MAX_RANGE_DAYS:
            raise ApiError(STATUS_DATA, f"from..until spans more than {MAX_RANGE_DAYS} days")
        return [int((start + timedelta(n)).strftime("%Y%m%d")) for n in range(count)]


class _TooLarge(ApiError):
    """A list answer larger than the server is willing to send: HTTP 504."""

    def __init__(self, rows: int, most: int, names: list[str]) -> None:
        super().__init__(STATUS_OK, f"{rows} rows is more than {most} per answer")
        self.names = names
