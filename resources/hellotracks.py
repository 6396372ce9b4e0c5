"""The one way this project reaches the Hellotracks API: `HellotracksClient` and its resource.

Every HTTP decision lives here: base URL, the `API-Key` header, one reused connection pool,
timeouts, pacing, retries, status checks and paging. Assets ask for pages of raw rows
(`getjobs`, `gettracks`, ...) or a report file and never see HTTP.

Requests are `POST {base_url}/{action}` with `{"data": {...}, "ver": 2}`. The answer is a JSON
envelope whose `status` is 0 on success; `createreport` answers with the file itself. How the
client reacts to each status, and which server quirks it survives, follows the project's API
contract (`docs/api-contract.md`): a server that ignores `skip` or `limit`, caps `limit`,
repeats rows, answers `gettracks` in the legacy keyed form, throttles, is not ready, fails with a
5xx, times out, cuts a body short or sends an HTML page with HTTP 200.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import dagster as dg
import httpx
import orjson
from pydantic import Field, PrivateAttr

from resources.hellotracks_errors import (
    HellotracksAuthError,
    HellotracksError,
    HellotracksRequestError,
    HellotracksUnavailableError,
)
from resources.request_stream import Queued, RequestStream

__all__ = [
    "DEFAULT_BASE_URL",
    "ClientStats",
    "HellotracksAuthError",
    "HellotracksClient",
    "HellotracksError",
    "HellotracksRequestError",
    "HellotracksResource",
    "HellotracksUnavailableError",
]

DEFAULT_BASE_URL = "https://api.hellotracks.com/api"

log = logging.getLogger("hellotracks.client")

# The list each read action answers with, and the field that identifies one of its rows.
_LIST_KEYS = {
    "getjobs": "jobs",
    "gettracks": "tracks",
    "getaccounts": "accounts",
    "getplaces": "places",
}
_ID_KEYS = {"getjobs": "id", "gettracks": "id", "getaccounts": "uid", "getplaces": "uid"}

_AUTH_STATUSES = {
    -3: "authentication failed",
    -5: "permission denied",
    -8: "invalid, missing or disabled API key",
    -12: "the session is no longer valid (forced logout)",
}
# How a row without an id is told apart from others: by all of its content, in a fixed order.
_CONTENT_KEY = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_AUTH_ADVICE = (
    "check HELLOTRACKS_API_KEY, enable API access in Hellotracks under More -> API & Integrations, "
    "and make sure the account behind the key has permission to read this data"
)
_STATUS_NAMES = {
    -1: "format error",
    -2: "user unknown",
    -4: "user already exists",
    -6: "unregistered",
    -10: "clock mismatch",
    -11: "data error",
    -99: "unknown request",
}
_STATUS_THROTTLED = -9
_STATUS_NOT_READY = -7

# 504 means "asked for too much": pages shrink by half down to this many rows (or page_size if
# that is smaller), and gettracks windows are split in two down to this many milliseconds.
_PAGE_FLOOR = 10
_MIN_TRACK_WINDOW_MS = 60_000
# The last guard against a server that never sends an empty page: 100 million rows at the
# default page size, far beyond any real listing.
_MAX_PAGES_PER_LISTING = 100_000
# A server asking for more than this is treated as asking for this: one step should not sleep
# for hours on one header.
_MAX_RETRY_AFTER_SECONDS = 300.0
# Throttling widens the pace to at least this, so a client configured with no pacing slows too.
_THROTTLED_MIN_INTERVAL = 0.25
_FAILURES_REPORTED = 3
# getplaces documents `max` (default 500) but no skip; the one request that replaces paging on a
# server that ignores skip asks for every place.
_UNPAGED_EXTRA: dict[str, dict[str, Any]] = {"getplaces": {"max": 1_000_000}}


_COUNTERS = (
    "requests",
    "retries",
    "throttled",
    "server_errors",
    "timeouts",
    "bytes_received",
    "wait_seconds",
    "http_seconds",
    "parse_seconds",
)


@dataclass
class ClientStats:
    """Counters for everything one client did, shared by all threads using it.

    `requests` counts HTTP attempts (every retry included), `retries` the re-sends of a request
    (including a smaller page or a split time window after a 504), `throttled` the `-9` and
    HTTP 429 answers, `server_errors` the HTTP 5xx answers, `timeouts` the requests that timed
    out, `bytes_received` the body bytes read, and `wait_seconds` the time spent sleeping for
    pacing and backoff. `http_seconds` is the time from sending a request to holding its whole
    answer (or its failure), and `parse_seconds` the time spent decoding JSON answers; with
    prefetching both run in a background thread, alongside the caller's own work.
    """

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    server_errors: int = 0
    timeouts: int = 0
    bytes_received: int = 0
    wait_seconds: float = 0.0
    http_seconds: float = 0.0
    parse_seconds: float = 0.0
    by_action: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def add(self, action: str | None = None, **counts: float) -> None:
        """Add `counts` to the named counters; with `action`, count one request of it too."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)
            if action is not None:
                self.by_action[action] = self.by_action.get(action, 0) + 1

    def snapshot(self) -> ClientStats:
        """A consistent copy, safe to read while the client keeps working."""
        with self._lock:
            return ClientStats(
                **{name: getattr(self, name) for name in _COUNTERS}, by_action=dict(self.by_action)
            )

    def since(self, earlier: ClientStats) -> ClientStats:
        """What happened between `earlier` (a snapshot) and now, e.g. during one asset step."""
        return self.snapshot() - earlier

    def __add__(self, other: ClientStats) -> ClientStats:
        return self._combine(other, 1)

    def __sub__(self, other: ClientStats) -> ClientStats:
        return self._combine(other, -1)

    def _combine(self, other: ClientStats, sign: int) -> ClientStats:
        mine, theirs = self.snapshot(), other.snapshot()
        actions = {
            action: mine.by_action.get(action, 0) + sign * theirs.by_action.get(action, 0)
            for action in mine.by_action.keys() | theirs.by_action.keys()
        }
        return ClientStats(
            **{name: getattr(mine, name) + sign * getattr(theirs, name) for name in _COUNTERS},
            by_action={action: count for action, count in actions.items() if count},
        )

    def as_metadata(self) -> dict[str, int | float]:
        """The counters as flat Dagster metadata values: `requests`, `retries`, `throttled`,
        `server_errors`, `timeouts`, `bytes_received`, `wait_seconds`, `http_seconds`,
        `parse_seconds` and one `requests_<action>` per action used. Callers add their own
        prefix."""
        now = self.snapshot()
        flat: dict[str, int | float] = {
            "requests": now.requests,
            "retries": now.retries,
            "throttled": now.throttled,
            "server_errors": now.server_errors,
            "timeouts": now.timeouts,
            "bytes_received": now.bytes_received,
            "wait_seconds": round(now.wait_seconds, 3),
            "http_seconds": round(now.http_seconds, 3),
            "parse_seconds": round(now.parse_seconds, 3),
        }
        for action, count in sorted(now.by_action.items()):
            flat[f"requests_{action}"] = count
        return flat


class _TooLarge(Exception):
    """A 504 the caller may answer by asking for less (a smaller page, a shorter window)."""


class _Cancelled(Exception):
    """The consumer of a prefetching listing stopped; the producer thread winds down."""


@dataclass
class _Outcome:
    """What one HTTP attempt came to, before the retry policy decides what to do about it."""

    kind: str  # ok | transient | throttled | too_large | not_ready | fatal
    reason: str = ""
    payload: dict[str, Any] | bytes | None = None
    http_status: int | None = None
    status: int | None = None
    rows: int | None = None
    retry_after: float | None = None
    error: HellotracksError | None = None


@dataclass
class _Listing:
    """The state of one listing, shared by its pages, chunks and split windows."""

    action: str
    limit: int
    floor: int
    seen: set[str] = field(default_factory=set)
    pages: int = 0

    @property
    def list_key(self) -> str:
        return _LIST_KEYS[self.action]

    @property
    def id_key(self) -> str:
        return _ID_KEYS[self.action]

    def fresh(self, rows: list[Any]) -> list[Any]:
        """The rows of this page not seen on an earlier page of the listing, in order.

        A row seen on an earlier page is the server paging badly, and is dropped. An id twice
        in one page is the server's data: an exact copy is dropped, a different record is kept
        for the normalizer to quarantine as a duplicate. A row without an id, or not an object,
        is known by its whole content and kept too: the normalizer quarantines it, and a page
        that repeats it still counts as repeated.
        """
        if set(map(type, rows)) == {dict}:
            # The usual page, answered without a Python loop: ids all present, all text or all
            # integers, none empty, none repeated, none seen before.
            ids = list(map(dict.get, rows, repeat(self.id_key, len(rows))))
            kinds = set(map(type, ids))
            if kinds == {str} or kinds == {int}:
                keys = ids if kinds == {str} else list(map(str, ids))
                distinct = set(keys)
                if (
                    len(distinct) == len(keys)
                    and "" not in distinct
                    and distinct.isdisjoint(self.seen)
                ):
                    self.seen.update(distinct)
                    return list(rows)
        return self._fresh_row_by_row(rows)

    def _fresh_row_by_row(self, rows: list[Any]) -> list[Any]:
        new = []
        on_page: dict[str, Any] = {}
        for row in rows:
            key = self._key(row)
            if key in on_page:
                if row != on_page[key]:
                    new.append(row)
            elif key not in self.seen:
                self.seen.add(key)
                on_page[key] = row
                new.append(row)
        return new

    def _key(self, row: Any) -> str:
        ident = row.get(self.id_key) if isinstance(row, dict) else None
        if ident is None or ident == "":
            return "row:" + orjson.dumps(row, option=_CONTENT_KEY).decode()
        # str() makes 123 and "123" one id: a drifting server may send numbers as text.
        return str(ident)


class _Pacer:
    """Keeps request starts at least `interval` apart across all threads of a client."""

    def __init__(self, interval: float, ceiling: float) -> None:
        self._interval = interval
        self._ceiling = ceiling
        self._next = 0.0
        self._last = 0.0
        self._lock = threading.Lock()

    @property
    def interval(self) -> float:
        return self._interval

    def reserve(self) -> float:
        """Claim the next start slot; returns how long the caller must sleep to reach it."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._last, self._next = start, start + self._interval
            return start - now

    def slow_down(self) -> float:
        """Double the interval (at least 0.25 s, at most the backoff ceiling) for good."""
        with self._lock:
            wider = max(self._interval * 2, _THROTTLED_MIN_INTERVAL)
            self._interval = min(wider, max(self._ceiling, self._interval))
            # The slot after the throttled request was booked at the old pace; the retry must
            # already keep the new one.
            self._next = max(self._next, self._last + self._interval)
            return self._interval


class HellotracksClient:
    """A paced, retrying client for the Hellotracks `/api` actions this project reads.

    One instance holds one `httpx.Client` (keep-alive) and may be shared by threads: pacing and
    stats are guarded by locks. The listing methods yield pages (lists of raw row dicts, exactly
    as the server sent them) de-duplicated by id across the whole listing; with `prefetch`, the
    next page is fetched in a background thread while the caller works on the current one.

    Errors: `HellotracksAuthError` for a refused key or account (never retried; once the key
    itself is refused, later requests are not even sent), `HellotracksRequestError` for a refused
    request, `HellotracksUnavailableError` once retries run out, `HellotracksError` for an answer
    the client cannot use.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        page_size: int = 1000,
        min_interval_seconds: float = 0.5,
        timeout_seconds: float = 60.0,
        max_retries: int = 8,
        backoff_base_seconds: float = 1.0,
        backoff_max_seconds: float = 60.0,
        not_ready_retries: int = 12,
        uids_per_request: int = 500,
        prefetch: bool = True,
    ) -> None:
        if not base_url:
            raise ValueError("base_url is empty")
        if page_size < 1 or uids_per_request < 1:
            raise ValueError("page_size and uids_per_request must be at least 1")
        if min(max_retries, not_ready_retries) < 0:
            raise ValueError("max_retries and not_ready_retries cannot be negative")
        if min(min_interval_seconds, backoff_base_seconds, backoff_max_seconds) < 0:
            raise ValueError("intervals and backoff times cannot be negative")
        if not timeout_seconds > 0:
            raise ValueError("timeout_seconds must be positive")
        self._base_url = base_url.rstrip("/")
        self._api_key = _clean_key(api_key)
        self._refused: HellotracksAuthError | None = None
        self._page_size = page_size
        self._max_retries = max_retries
        self._backoff_base = backoff_base_seconds
        self._backoff_max = backoff_max_seconds
        self._not_ready_retries = not_ready_retries
        self._uids_per_request = uids_per_request
        self._prefetch = prefetch
        self._pacer = _Pacer(min_interval_seconds, backoff_max_seconds)
        self._random = random.Random()
        self._local = threading.local()
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0)),
            follow_redirects=False,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "hellotracks-pipeline",
            },
        )
        self.stats = ClientStats()

    def __repr__(self) -> str:
        return f"HellotracksClient(base_url={self._base_url!r}, page_size={self._page_size})"

    def __enter__(self) -> HellotracksClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool; idempotent. A listing still running then fails."""
        self._http.close()

    @property
    def closed(self) -> bool:
        """Whether `close()` has run; a closed client sends nothing more."""
        return self._http.is_closed

    # --- public actions -------------------------------------------------------------------------

    def call(self, action: str, data: dict[str, Any]) -> dict[str, Any]:
        """Send one logical request and return its parsed JSON envelope (status 0).

        Retried as the module describes; a 504 is retried like other server errors, since a
        single call has no smaller page to ask for. `createreport` answers with a file: use
        the method of that name.
        """
        if action == "createreport":
            raise ValueError("createreport answers with a file; call createreport() instead")
        envelope = self._request(action, data)
        assert isinstance(envelope, dict)
        return envelope

    def getjobs(self, day: int) -> Iterator[list[dict[str, Any]]]:
        """Pages of the jobs of one `day` (YYYYMMDD) for all workers, asked for in id order."""
        return self._ahead(self._job_pages(day))

    def gettracks(
        self, from_ms: int, until_ms: int, uids: Sequence[str]
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of the track entries of `uids` from `from_ms` until `until_ms`, by id.

        The uids go out in chunks of `uids_per_request`, one listing each; ids stay unique across
        chunks. No uids means no request and no pages. A legacy answer keyed by account is
        flattened; an entry in it without `owner_uid` gets the key it was listed under.
        """
        return self._ahead(self._track_pages(from_ms, until_ms, _uid_list(uids)))

    def getaccounts(self) -> Iterator[list[dict[str, Any]]]:
        """Pages of every member the key may see, asked for in uid order."""
        return self._ahead(self._listing_pages("getaccounts", {}))

    def getplaces(self) -> Iterator[list[dict[str, Any]]]:
        """Pages of every place the key may see, asked for in uid order."""
        return self._ahead(self._listing_pages("getplaces", {}))

    def getcompany(self) -> dict[str, Any]:
        """The `company` object (names the teams in `teams_config`)."""
        envelope = self.call("getcompany", {})
        company = envelope.get("company")
        if not isinstance(company, dict):
            raise HellotracksError(
                "getcompany answered without a company object", action="getcompany"
            )
        return company

    def createreport(
        self,
        reporttype: str,
        fmt: str = "csv",
        *,
        day: int | None = None,
        from_day: int | None = None,
        until_day: int | None = None,
        accounts: Sequence[str] | None = None,
    ) -> bytes:
        """The bytes of one report file, for one `day` or `from_day` through `until_day`.

        A not-ready answer (`-7`) is waited out up to `not_ready_retries` times. An error comes
        as a JSON envelope and is raised like any other; an HTML page where a file was expected
        is retried as a server fault.
        """
        return self._report(_report_data(reporttype, fmt, day, from_day, until_day, accounts))

    def stream(self, ahead: int = 1) -> HellotracksStream:
        """The read actions queued on one background thread, `ahead` answers ahead of the reader
        (see `HellotracksStream`); close it, or use it as a context manager."""
        return HellotracksStream(self, ahead)

    def _report(self, data: dict[str, Any]) -> bytes:
        report = self._request("createreport", data, file_format=data["format"])
        assert isinstance(report, bytes)
        return report

    # --- listings -------------------------------------------------------------------------------

    def _new_listing(self, action: str) -> _Listing:
        return _Listing(action, limit=self._page_size, floor=min(_PAGE_FLOOR, self._page_size))

    def _listing_pages(self, action: str, base: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        yield from self._pages(self._new_listing(action), base)

    def _job_pages(self, day: int) -> Iterator[list[dict[str, Any]]]:
        return self._listing_pages("getjobs", {"day": day, "worker": "*"})

    def _track_pages(
        self, from_ms: int, until_ms: int, uids: list[str]
    ) -> Iterator[list[dict[str, Any]]]:
        listing = self._new_listing("gettracks")
        for start in range(0, len(uids), self._uids_per_request):
            chunk = uids[start : start + self._uids_per_request]
            yield from self._track_window(listing, from_ms, until_ms, chunk)

    def _track_window(
        self, listing: _Listing, from_ms: int, until_ms: int, uids: list[str]
    ) -> Iterator[list[dict[str, Any]]]:
        base = {"from": from_ms, "until": until_ms, "uids": uids}
        can_split = until_ms - from_ms >= 2 * _MIN_TRACK_WINDOW_MS
        try:
            yield from self._pages(listing, base, can_split=can_split)
        except _TooLarge:
            # Rows already yielded from this window come again from the halves; the listing's
            # seen-set drops them. The halves keep the page size reached so far (the floor).
            middle = from_ms + (until_ms - from_ms) // 2
            log.warning(
                "gettracks: HTTP 504 with %d-row pages; splitting %d..%d ms in two",
                listing.limit,
                from_ms,
                until_ms,
            )
            self.stats.add(retries=1)
            yield from self._track_window(listing, from_ms, middle, uids)
            yield from self._track_window(listing, middle, until_ms, uids)

    def _pages(
        self, listing: _Listing, base: dict[str, Any], *, can_split: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """Page through one listing with sort/limit/skip until an empty page.

        `skip` advances by the rows actually received, so a server that caps `limit` or ignores
        it loses nothing. A non-empty page with no new id means the server ignores `skip`; see
        `_unpaged`. A 504 halves the page down to the floor; past it, `_TooLarge` goes up to a
        caller that can shorten the time window (`can_split`), or the 504 is retried as a
        server error.
        """
        skip = 0
        while True:
            listing.pages += 1
            if listing.pages > _MAX_PAGES_PER_LISTING:
                raise HellotracksError(
                    f"{listing.action} still sends rows after {_MAX_PAGES_PER_LISTING} pages; "
                    "giving up rather than looping forever",
                    action=listing.action,
                )
            data = {**base, "sort": listing.id_key, "limit": listing.limit, "skip": skip}
            try:
                envelope = self._request(
                    listing.action, data, too_large_ok=can_split or listing.limit > listing.floor
                )
            except _TooLarge:
                if listing.limit <= listing.floor:
                    raise
                smaller = max(listing.floor, listing.limit // 2)
                log.warning(
                    "%s: HTTP 504 with %d-row pages; asking for %d rows per page",
                    listing.action,
                    listing.limit,
                    smaller,
                )
                listing.limit = smaller
                self.stats.add(retries=1)
                continue
            rows = self._rows(envelope, listing.action)
            if not rows:
                return
            skip += len(rows)
            fresh = listing.fresh(rows)
            if fresh:
                yield fresh
                continue
            yield from self._unpaged(listing, base, repeated=len(rows), skip=skip - len(rows))
            return

    def _unpaged(
        self, listing: _Listing, base: dict[str, Any], *, repeated: int, skip: int
    ) -> Iterator[list[dict[str, Any]]]:
        """Finish a listing on a server that ignores `skip`: one request without limit or skip.

        What it brings that is new ends the listing. If it brings nothing new, the repeated
        page decides: longer than the limit, the server ignores limit too and sent everything;
        shorter, it had no more rows; exactly full, more rows lie beyond what it will send, and
        the listing fails rather than return part of them.
        """
        log.warning(
            "%s: the page at skip=%d repeated %d known rows; the server seems to ignore skip, "
            "asking for the whole listing in one request",
            listing.action,
            skip,
            repeated,
        )
        data = {**base, "sort": listing.id_key, **_UNPAGED_EXTRA.get(listing.action, {})}
        fresh = listing.fresh(self._rows(self._request(listing.action, data), listing.action))
        if fresh:
            # A server that ignores skip and also caps an unlimited answer hides the rows past
            # its cap, and nothing in the API tells how many there are. A total count or a cursor
            # in the answer would let this check completeness; until then the warning says how
            # much one request brought.
            log.warning(
                "%s: one request without paging brought %d more rows (%d so far)",
                listing.action,
                len(fresh),
                len(listing.seen),
            )
            yield fresh
            return
        # A repeated page shorter than the limit could also be a server cap (below the limit)
        # hiding more rows; only a total count in the answer could tell the two apart.
        if repeated == listing.limit:
            raise HellotracksError(
                f"{listing.action}: the server ignores skip and paging cannot continue: every "
                f"page repeats the first {repeated} rows, and a request without limit brought "
                "nothing new",
                action=listing.action,
            )

    def _rows(self, envelope: dict[str, Any] | bytes, action: str) -> list[Any]:
        """The list of rows in a success envelope, the legacy keyed gettracks form flattened."""
        assert isinstance(envelope, dict)
        key = _LIST_KEYS[action]
        value = envelope.get(key)
        if isinstance(value, list):
            return value
        if action == "gettracks" and isinstance(value, dict):
            rows: list[Any] = []
            for owner, entries in value.items():
                if not isinstance(entries, list):
                    break
                for entry in entries:
                    if isinstance(entry, dict) and "owner_uid" not in entry:
                        entry["owner_uid"] = owner
                    rows.append(entry)
            else:
                return rows
        raise HellotracksError(
            f"{action} answered status 0 without a {key!r} list "
            f"(keys: {', '.join(sorted(map(str, envelope)))[:200]})",
            action=action,
        )

    def _ahead(self, pages: Iterator[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
        """Yield `pages`, fetching the next one in a background thread (one page ahead).

        The next page is asked for once the consumer has taken the previous one, so at most one
        page waits. When the consumer stops (exhausted, an error, `break`, `close()`), the thread
        is told to stop, its sleeps end at once, and it is joined; a request already in flight
        is allowed to finish (bounded by the timeout).
        """
        if not self._prefetch:
            yield from pages
            return
        with self.stream(ahead=1) as stream:
            yield from stream.add(pages)

    # --- one logical request --------------------------------------------------------------------

    def _request(
        self,
        action: str,
        data: dict[str, Any],
        *,
        file_format: str | None = None,
        too_large_ok: bool = False,
    ) -> dict[str, Any] | bytes:
        """Send one request until it succeeds, fails for good, or its retries run out.

        Returns the envelope (or, with `file_format`, the file). Throttling, 5xx, timeouts,
        broken bodies and HTML pages share `max_retries`; not-ready answers have their own
        `not_ready_retries`. With `too_large_ok`, a 504 raises `_TooLarge` at once.
        """
        if self._refused is not None:
            raise HellotracksAuthError(
                f"{action}: not sent, the key was refused on {self._refused.action} already",
                action=action,
                status=self._refused.status,
                http_status=self._refused.http_status,
            )
        url = f"{self._base_url}/{action}"
        body = orjson.dumps({"data": data, "ver": 2})
        failures: list[str] = []
        attempts = retries = not_ready = 0
        waited = 0.0
        while True:
            waited += self._sleep(self._pacer.reserve())
            attempts += 1
            outcome = self._attempt(action, url, body, file_format)
            if outcome.kind == "ok":
                assert outcome.payload is not None
                return outcome.payload
            if outcome.error is not None:
                # Once the key itself is refused, every later request would be too: none is sent.
                if outcome.error.refuses_key:
                    self._refused = outcome.error
                raise outcome.error
            failures.append(outcome.reason)
            if outcome.kind == "too_large" and too_large_ok:
                raise _TooLarge(outcome.reason)
            if outcome.kind == "throttled":
                before, after = self._pacer.interval, self._pacer.slow_down()
                if after > before:
                    log.warning(
                        "%s: throttled; requests now start at least %.2f s apart", action, after
                    )
            if outcome.kind == "not_ready":
                not_ready += 1
                budget, used = self._not_ready_retries, not_ready
            else:
                retries += 1
                budget, used = self._max_retries, retries
            if used > budget:
                raise self._gave_up(action, outcome, attempts, failures, waited)
            delay = self._backoff(used - 1)
            if outcome.retry_after is not None:
                delay = min(outcome.retry_after, _MAX_RETRY_AFTER_SECONDS)
            log.warning(
                "%s: %s; retry %d of %d in %.2f s", action, outcome.reason, used, budget, delay
            )
            self.stats.add(retries=1)
            waited += self._sleep(delay)

    def _attempt(self, action: str, url: str, body: bytes, file_format: str | None) -> _Outcome:
        """One HTTP exchange, classified; counts it and logs it at debug level."""
        started = time.monotonic()
        try:
            response = self._post(url, body)
        except httpx.TimeoutException as exc:
            self.stats.add(action, requests=1, timeouts=1)
            outcome = _Outcome("transient", reason=f"timeout ({type(exc).__name__})")
        except httpx.UnsupportedProtocol as exc:
            self.stats.add(action, requests=1)
            error = HellotracksRequestError(
                f"{action}: cannot reach {self._base_url!r}: {self._scrub(str(exc))}",
                action=action,
            )
            outcome = _Outcome("fatal", reason="unsupported protocol", error=error)
        except httpx.TransportError as exc:
            # Connection refused or reset, and a body cut short (RemoteProtocolError) land here.
            self.stats.add(action, requests=1)
            detail = self._scrub(str(exc))[:120]
            outcome = _Outcome("transient", reason=f"{type(exc).__name__}: {detail}")
        else:
            self.stats.add(action, requests=1, bytes_received=len(response.content))
            outcome = self._classify(action, response, file_format)
        log.debug(
            "%s: HTTP %s, status %s, %s rows, %.0f ms",
            action,
            outcome.http_status if outcome.http_status is not None else "-",
            outcome.status if outcome.status is not None else "-",
            outcome.rows if outcome.rows is not None else "-",
            (time.monotonic() - started) * 1000,
        )
        return outcome

    def _post(self, url: str, body: bytes) -> httpx.Response:
        """POST `body` and read the whole answer, counting the time it took, failed or not."""
        started = time.monotonic()
        try:
            return self._http.post(url, content=body, headers={"API-Key": self._api_key})
        finally:
            self.stats.add(http_seconds=time.monotonic() - started)

    def _classify(self, action: str, response: httpx.Response, file_format: str | None) -> _Outcome:
        code = response.status_code
        retry_after = _retry_after(response.headers.get("Retry-After"))
        content_type = response.headers.get("Content-Type", "").lower()
        if code == 429:
            self.stats.add(throttled=1)
            return _Outcome("throttled", "HTTP 429", http_status=code, retry_after=retry_after)
        if code == 504:
            self.stats.add(server_errors=1)
            return _Outcome("too_large", "HTTP 504", http_status=code, retry_after=retry_after)
        if code >= 500 and code != 501:
            self.stats.add(server_errors=1)
            return _Outcome("transient", f"HTTP {code}", http_status=code, retry_after=retry_after)
        if code in (401, 403):
            error = HellotracksAuthError(
                f"{action}: HTTP {code}: the key was refused; {_AUTH_ADVICE}",
                action=action,
                http_status=code,
            )
            return _Outcome("fatal", http_status=code, error=error)
        if not 200 <= code < 300:
            error = HellotracksRequestError(
                f"{action}: unexpected HTTP {code} from {self._base_url!r}",
                action=action,
                http_status=code,
            )
            return _Outcome("fatal", http_status=code, error=error)

        content = response.content
        started = time.monotonic()
        parsed = _json_object(content)
        self.stats.add(parse_seconds=time.monotonic() - started)
        envelope = parsed if parsed is not None and "status" in parsed else None
        if file_format is not None and envelope is None:
            if not content:
                return _Outcome("transient", "an empty body instead of a file", http_status=code)
            if "text/html" in content_type and file_format.lower() != "html":
                return _Outcome("transient", "an HTML page instead of a file", http_status=code)
            return _Outcome("ok", payload=content, http_status=code)
        if parsed is not None and envelope is None:
            # Well-formed JSON without a status is no transient glitch: sending again would get
            # the same answer, and guessing success could hide an error.
            keys = ", ".join(sorted(map(str, parsed)))[:200]
            error = HellotracksError(
                f"{action} answered JSON without a status field (keys: {keys})", action=action
            )
            return _Outcome("fatal", http_status=code, error=error)
        if envelope is None:
            shown = content_type.split(";")[0] or "no content type"
            return _Outcome(
                "transient", f"HTTP {code} answer that is not JSON ({shown})", http_status=code
            )
        status = _as_status(envelope.get("status"))
        rows = _count_rows(envelope, action)
        outcome = _Outcome("ok", http_status=code, status=status, rows=rows, payload=envelope)
        if status == 0:
            if file_format is not None:
                outcome.kind = "fatal"
                outcome.error = HellotracksError(
                    f"{action} answered a success envelope instead of a file", action=action
                )
            return outcome
        if status == _STATUS_THROTTLED:
            self.stats.add(throttled=1)
            outcome.kind, outcome.reason = "throttled", "status -9"
            outcome.retry_after = retry_after
            return outcome
        if status == _STATUS_NOT_READY:
            outcome.kind, outcome.reason = "not_ready", "status -7 (not ready)"
            return outcome
        outcome.kind = "fatal"
        server_text = envelope.get("error") or envelope.get("message")
        said = f" ({self._scrub(str(server_text))[:300]})" if server_text else ""
        if status in _AUTH_STATUSES:
            outcome.error = HellotracksAuthError(
                f"{action}: status {status}, {_AUTH_STATUSES[status]}{said}; {_AUTH_ADVICE}",
                action=action,
                status=status,
                http_status=code,
            )
        else:
            meaning = _STATUS_NAMES.get(status, "unknown status") if status is not None else None
            what = f"status {status} ({meaning})" if meaning else "no numeric status"
            outcome.error = HellotracksRequestError(
                f"{action}: the server refused the request: {what}{said}",
                action=action,
                status=status,
                http_status=code,
            )
        return outcome

    def _gave_up(
        self, action: str, last: _Outcome, attempts: int, failures: list[str], waited: float
    ) -> HellotracksUnavailableError:
        recent = "; ".join(failures[-_FAILURES_REPORTED:])
        return HellotracksUnavailableError(
            f"{action}: gave up after {attempts} requests and {waited:.1f} s of waiting "
            f"(max_retries={self._max_retries}, not_ready_retries={self._not_ready_retries}); "
            f"last failures: {recent}",
            action=action,
            status=last.status,
            http_status=last.http_status,
        )

    def _backoff(self, retry: int) -> float:
        """Full jitter: uniform between 0 and base * 2**retry, capped at backoff_max."""
        ceiling = min(self._backoff_max, self._backoff_base * math.pow(2, min(retry, 60)))
        return self._random.uniform(0, ceiling)

    def _use_cancel(self, cancel: threading.Event) -> None:
        """Let this thread's sleeps end early once `cancel` is set (a stream closing)."""
        self._local.cancel = cancel

    def _sleep(self, seconds: float) -> float:
        """Sleep and count it; in a prefetch thread, stop early when the consumer has gone."""
        if seconds <= 0:
            return 0.0
        self.stats.add(wait_seconds=seconds)
        cancel: threading.Event | None = getattr(self._local, "cancel", None)
        if cancel is None:
            time.sleep(seconds)
        elif cancel.wait(seconds):
            raise _Cancelled
        return seconds

    def _scrub(self, text: str) -> str:
        """`text` with the API key blanked out, for anything that ends up in a message."""
        return text.replace(self._api_key, "***") if self._api_key else text


class HellotracksStream(RequestStream):
    """A client's read actions queued on one `RequestStream`.

    Each action returns at once a `Queued` listing (pages, or for `getcompany` and
    `createreport` the one answer); one background thread fetches the queued listings in order,
    pacing and retries as the client does them, at most `ahead` answers ahead of the reader. A
    listing's `spent` is the client's stats for its requests alone, so each table of a step that
    reads several can report its own. Read the listings in the order they were queued.
    """

    def __init__(self, client: HellotracksClient, ahead: int) -> None:
        super().__init__(
            ahead=ahead,
            name="hellotracks-prefetch",
            prepare=client._use_cancel,
            cancelled=(_Cancelled,),
            measure=client.stats.snapshot,
            nothing=ClientStats(),
        )
        self._client = client

    def getjobs(self, day: int) -> Queued[list[dict[str, Any]]]:
        """`HellotracksClient.getjobs`, queued."""
        return self.add(self._client._job_pages(day))

    def gettracks(
        self, from_ms: int, until_ms: int, uids: Sequence[str]
    ) -> Queued[list[dict[str, Any]]]:
        """`HellotracksClient.gettracks`, queued."""
        return self.add(self._client._track_pages(from_ms, until_ms, _uid_list(uids)))

    def getaccounts(self) -> Queued[list[dict[str, Any]]]:
        """`HellotracksClient.getaccounts`, queued."""
        return self.add(self._client._listing_pages("getaccounts", {}))

    def getplaces(self) -> Queued[list[dict[str, Any]]]:
        """`HellotracksClient.getplaces`, queued."""
        return self.add(self._client._listing_pages("getplaces", {}))

    def getcompany(self) -> Queued[dict[str, Any]]:
        """`HellotracksClient.getcompany`, queued: the listing's one item is the company."""
        return self.call(self._client.getcompany)

    def createreport(
        self,
        reporttype: str,
        fmt: str = "csv",
        *,
        day: int | None = None,
        from_day: int | None = None,
        until_day: int | None = None,
        accounts: Sequence[str] | None = None,
    ) -> Queued[bytes]:
        """`HellotracksClient.createreport`, queued: the listing's one item is the file."""
        data = _report_data(reporttype, fmt, day, from_day, until_day, accounts)
        return self.call(lambda: self._client._report(data))


def _uid_list(uids: Sequence[str]) -> list[str]:
    wanted = list(uids)
    if isinstance(uids, str) or not all(isinstance(uid, str) for uid in wanted):
        raise TypeError("uids must be a sequence of member uid strings")
    return wanted


def _report_data(
    reporttype: str,
    fmt: str,
    day: int | None,
    from_day: int | None,
    until_day: int | None,
    accounts: Sequence[str] | None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"reporttype": reporttype, "format": fmt}
    if day is not None and from_day is None and until_day is None:
        data["day"] = day
    elif day is None and from_day is not None and until_day is not None:
        data["from"], data["until"] = from_day, until_day
    else:
        raise ValueError("give either day, or both from_day and until_day")
    if accounts is not None:
        data["accounts"] = list(accounts)
    return data


def _clean_key(key: str) -> str:
    """The key without the whitespace a copy and paste brings along; refuses what cannot be one.

    A key travels in an HTTP header, which cannot carry control or non-ASCII characters: left
    in, they fail every request in the HTTP library, whose message would quote the key.
    """
    key = key.strip()
    if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise HellotracksAuthError(
            "the API key holds spaces, control or non-ASCII characters, which no key has; "
            "copy it again from Hellotracks (More -> API & Integrations) into HELLOTRACKS_API_KEY"
        )
    return key


def _json_object(content: bytes) -> dict[str, Any] | None:
    """The body parsed as a JSON object, or None if it is not one (HTML, a file, cut short)."""
    if not content or content.lstrip()[:1] != b"{":
        return None
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _as_status(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _count_rows(envelope: dict[str, Any], action: str) -> int | None:
    value = envelope.get(_LIST_KEYS.get(action, ""))
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict):
        return sum(len(v) for v in value.values() if isinstance(v, list))
    return None


def _retry_after(header: str | None) -> float | None:
    """Seconds from a `Retry-After` header; the HTTP-date form is left to the backoff."""
    if not header:
        return None
    try:
        seconds = float(header.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


_CLIENT_LOCK = threading.Lock()


class HellotracksResource(dg.ConfigurableResource):
    """The Hellotracks API for assets: configuration plus one shared `HellotracksClient`.

    The client is created on the first `get_client()` and closed when the step's resources are
    torn down. The key is masked in the resource's repr; set it through
    `EnvVar("HELLOTRACKS_API_KEY")` so the UI hides it too.
    """

    api_key: str = Field(description="Hellotracks API key (from HELLOTRACKS_API_KEY).")
    base_url: str = Field(default=DEFAULT_BASE_URL, description="Base URL ending in /api.")
    page_size: int = Field(default=1000, description="Rows asked for per page.")
    min_interval_seconds: float = Field(
        default=0.5, description="Least time between the starts of two requests."
    )
    timeout_seconds: float = Field(default=60.0, description="Timeout of one HTTP request.")
    max_retries: int = Field(
        default=8, description="Re-sends after throttling, 5xx, timeouts or broken answers."
    )
    backoff_base_seconds: float = Field(default=1.0, description="First backoff ceiling.")
    backoff_max_seconds: float = Field(default=60.0, description="Largest backoff ceiling.")
    not_ready_retries: int = Field(
        default=12, description="Re-sends of a report the server is still generating."
    )

    _client: HellotracksClient | None = PrivateAttr(default=None)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, ("***" if name == "api_key" else value)

    def get_client(self) -> HellotracksClient:
        """The client of this resource instance, created on first use."""
        with _CLIENT_LOCK:
            if self._client is None:
                self._client = HellotracksClient(
                    self.base_url,
                    self.api_key,
                    page_size=self.page_size,
                    min_interval_seconds=self.min_interval_seconds,
                    timeout_seconds=self.timeout_seconds,
                    max_retries=self.max_retries,
                    backoff_base_seconds=self.backoff_base_seconds,
                    backoff_max_seconds=self.backoff_max_seconds,
                    not_ready_retries=self.not_ready_retries,
                )
            return self._client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        with _CLIENT_LOCK:
            client, self._client = self._client, None
        if client is not None:
            client.close()
