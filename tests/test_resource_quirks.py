"""Every status the API can answer, and every server quirk of docs/api-contract.md, pinned one
case per row: what the client does about it, and how many requests that takes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from resources.hellotracks import (
    HellotracksAuthError,
    HellotracksClient,
    HellotracksError,
    HellotracksRequestError,
    HellotracksUnavailableError,
)
from sandbox.server import Faults, RequestRecord, SandboxServer, run_sandbox

API_KEY = "k-quirks-91c0aa55"
DAY = 20251010
PAGE = 7


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with run_sandbox(
        seed=7, members=12, today=20251015, timezone="Europe/Vienna", api_key=API_KEY
    ) as sandbox:
        yield sandbox


def client_for(server: SandboxServer, **overrides: Any) -> HellotracksClient:
    settings: dict[str, Any] = {
        "page_size": PAGE,
        "min_interval_seconds": 0.0,
        "timeout_seconds": 5.0,
        "max_retries": 2,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.2,
        "not_ready_retries": 3,
    }
    settings.update(overrides)
    base_url = settings.pop("base_url", server.url)
    key = settings.pop("api_key", API_KEY)
    return HellotracksClient(base_url, key, **settings)


def failed(record: RequestRecord) -> bool:
    """Whether the sandbox answered this request with anything but a usable answer."""
    broken = any(name in (record.fault or "") for name in ("html_error", "truncated"))
    return broken or record.http_status != 200 or record.status not in (0, None)


def logged(server: SandboxServer, count: int) -> list[RequestRecord]:
    """The log once it holds `count` records: a request the client gave up on (a timeout) is
    logged only when the sandbox finishes answering it."""
    deadline = time.monotonic() + 5.0
    while len(server.requests()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.requests()


# --- each status -> what the client does ---------------------------------------------------------


@dataclass(frozen=True)
class StatusCase:
    name: str
    run: Callable[[HellotracksClient], object]
    faults: Faults = field(default_factory=Faults)
    client: dict[str, Any] = field(default_factory=dict)
    raises: type[Exception] | None = None
    says: tuple[str, ...] = ()
    # For a raise: exactly this many requests. For a success: this many logical requests, plus
    # one per failed answer in the log; `failures` says how many (None: at least one).
    requests: int = 1
    failures: int | None = 0


def _jobs(client: HellotracksClient) -> object:
    return [row for page in client.getjobs(DAY) for row in page]


def _company_five_times(client: HellotracksClient) -> object:
    return [client.getcompany() for _ in range(5)]


STATUS_CASES = [
    # 0: the envelope comes back as it was sent.
    StatusCase("status 0", lambda c: c.call("getcompany", {})),
    # -1: a body without a `data` object; the client never sends one, so force it.
    StatusCase(
        "-1 format error",
        lambda c: c.call("getjobs", None),  # type: ignore[arg-type]
        raises=HellotracksRequestError,
        says=("getjobs", "-1", "format error"),
    ),
    # -8: a wrong key is final; the message says which variable to fix.
    StatusCase(
        "-8 invalid key",
        _jobs,
        client={"api_key": "not-the-key"},
        raises=HellotracksAuthError,
        says=("-8", "HELLOTRACKS_API_KEY", "More -> API & Integrations"),
    ),
    # -11: invalid data is final, and the server's own explanation is passed on.
    StatusCase(
        "-11 data error",
        lambda c: c.call("gettracks", {"from": 1}),
        raises=HellotracksRequestError,
        says=("gettracks", "-11", "from and until"),
    ),
    # -99: an action the server does not know.
    StatusCase(
        "-99 unknown request",
        lambda c: c.call("getnothing", {}),
        raises=HellotracksRequestError,
        says=("getnothing", "-99"),
    ),
    # -9: throttled after a burst of four, then served once the pace has slowed.
    StatusCase(
        "-9 throttled, then served",
        _company_five_times,
        faults=Faults(rate_limit_per_second=4.0),
        client={"backoff_max_seconds": 0.5},
        requests=5,
        failures=None,
    ),
    # -9 on every request: gives up after max_retries re-sends.
    StatusCase(
        "-9 throttled for good",
        lambda c: c.getcompany(),
        faults=Faults(rate_limit_per_second=0),
        raises=HellotracksUnavailableError,
        says=("getcompany", "3 requests", "status -9"),
        requests=3,
    ),
    # HTTP 429 with Retry-After: waits as told, then served.
    StatusCase(
        "429 throttled, then served",
        _company_five_times,
        faults=Faults(
            rate_limit_per_second=4.0, throttle_with_http429=True, retry_after_seconds=0.3
        ),
        requests=5,
        failures=None,
    ),
    # HTTP 429 on every request: gives up after max_retries re-sends.
    StatusCase(
        "429 throttled for good",
        lambda c: c.getcompany(),
        faults=Faults(
            rate_limit_per_second=0, throttle_with_http429=True, retry_after_seconds=0.01
        ),
        raises=HellotracksUnavailableError,
        says=("HTTP 429",),
        requests=3,
    ),
    # -7: a report still being generated is asked for again until it is ready.
    StatusCase(
        "-7 not ready twice, then the file",
        lambda c: c.createreport("jobs", day=DAY),
        faults=Faults(not_ready_reports=2),
        failures=2,
    ),
    # -7 for longer than not_ready_retries allows.
    StatusCase(
        "-7 not ready for good",
        lambda c: c.createreport("jobs", day=DAY),
        faults=Faults(not_ready_reports=10),
        client={"not_ready_retries": 2},
        raises=HellotracksUnavailableError,
        says=("createreport", "-7"),
        requests=3,
    ),
    # HTTP 500/502/503 with an HTML body, now and then (seed 1: from the first request on):
    # retried until served.
    StatusCase(
        "5xx now and then",
        _company_five_times,
        faults=Faults(server_error_rate=0.4, seed=1),
        client={"max_retries": 10},
        requests=5,
        failures=None,
    ),
    # HTTP 500/502/503 on every request.
    StatusCase(
        "5xx for good",
        lambda c: c.getcompany(),
        faults=Faults(server_error_rate=1.0),
        raises=HellotracksUnavailableError,
        says=("getcompany", "HTTP 50"),
        requests=3,
    ),
    # HTTP 504 on every page: 40 -> 20 -> 10 rows (the floor), then retried as a server error.
    StatusCase(
        "504 even for the smallest page",
        _jobs,
        faults=Faults(max_page_rows=0),
        client={"page_size": 40},
        raises=HellotracksUnavailableError,
        says=("getjobs", "HTTP 504"),
        requests=5,
    ),
    # HTTP 200 with an HTML page instead of JSON, every time.
    StatusCase(
        "HTML page with HTTP 200 for good",
        lambda c: c.getcompany(),
        faults=Faults(html_error_rate=1.0),
        raises=HellotracksUnavailableError,
        says=("not JSON", "text/html"),
        requests=3,
    ),
    # Bodies cut short (full Content-Length announced, half sent), every time.
    StatusCase(
        "body cut short for good",
        lambda c: c.getcompany(),
        faults=Faults(truncate_rate=1.0),
        raises=HellotracksUnavailableError,
        says=("RemoteProtocolError",),
        requests=3,
    ),
    # Every answer slower than the timeout.
    StatusCase(
        "timeout for good",
        lambda c: c.getcompany(),
        faults=Faults(latency_seconds=0.3),
        client={"timeout_seconds": 0.1},
        raises=HellotracksUnavailableError,
        says=("timeout", "ReadTimeout"),
        requests=3,
    ),
    # HTTP 404 (a wrong base URL) is final: retrying cannot fix configuration.
    StatusCase(
        "404 wrong base URL",
        lambda c: c.getcompany(),
        client={"base_url": "wrong-path"},
        raises=HellotracksRequestError,
        says=("HTTP 404",),
    ),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=[case.name for case in STATUS_CASES])
def test_each_status_gets_its_behaviour(server: SandboxServer, case: StatusCase) -> None:
    server.faults = case.faults
    overrides = dict(case.client)
    if overrides.get("base_url") == "wrong-path":
        overrides["base_url"] = server.url.removesuffix("/api") + "/nope"
    with client_for(server, **overrides) as client:
        if case.raises is None:
            result = case.run(client)
            assert result
        else:
            with pytest.raises(case.raises) as raised:
                case.run(client)
            for text in case.says:
                assert text in str(raised.value)
            assert API_KEY not in str(raised.value)
        stats = client.stats.snapshot()

    records = logged(server, case.requests)
    failures = sum(failed(record) for record in records)
    if case.raises is None:
        assert len(records) == case.requests + failures
        if case.failures is None:
            assert failures >= 1
        else:
            assert failures == case.failures
    else:
        assert len(records) == case.requests
    assert stats.requests == len(records)


# Refusals a key the sandbox knows meets only when told to (`Faults.refuse_with`): each is one
# request, never retried, with an error that says what to do and does not show the key.
REFUSAL_CASES = [
    # -3: authentication failed.
    (-3, HellotracksAuthError, "HELLOTRACKS_API_KEY"),
    # -5: the account lacks permission.
    (-5, HellotracksAuthError, "permission"),
    # -12: forced logout.
    (-12, HellotracksAuthError, "More -> API & Integrations"),
    # -2: an unknown user is a refused request, not a key problem.
    (-2, HellotracksRequestError, "user unknown"),
    # -10: clock mismatch.
    (-10, HellotracksRequestError, "clock mismatch"),
    # A status nobody documented is still refused loudly.
    (-42, HellotracksRequestError, "unknown status"),
]


@pytest.mark.parametrize(("status", "error", "says"), REFUSAL_CASES, ids=str)
def test_refusals_fail_at_once_and_say_what_to_do(
    server: SandboxServer, status: int, error: type[HellotracksError], says: str
) -> None:
    server.faults = Faults(refuse_with=status)
    with client_for(server) as client, pytest.raises(HellotracksError) as raised:
        list(client.getjobs(DAY))

    assert type(raised.value) is error
    assert raised.value.status == status
    message = str(raised.value)
    assert says in message and f"status {status}" in message
    assert API_KEY not in message
    (record,) = logged(server, 1)
    assert record.status == status and record.fault == f"refused{status}"


# --- the survival cases of docs/api-contract.md ------------------------------------------


@dataclass(frozen=True)
class Survival:
    name: str
    faults: Faults
    listing: str  # jobs | tracks | accounts | places
    client: dict[str, Any] = field(default_factory=dict)
    # A fault name the log must show, so the case proves the quirk really happened.
    fault: str | None = None
    # The requests the listing takes, from the number of rows it holds.
    requests: Callable[[int], int] | None = None
    check: Callable[[list[dict[str, Any]], list[RequestRecord]], None] | None = None


def _pages_at_most(rows: int) -> Callable[[list[dict[str, Any]], list[RequestRecord]], None]:
    def check(_: list[dict[str, Any]], records: list[RequestRecord]) -> None:
        assert all(record.rows is None or record.rows <= rows for record in records)

    return check


def _drifted(rows: list[dict[str, Any]], _: list[RequestRecord]) -> None:
    # Unknown fields and numbers-as-text reach the caller untouched.
    assert all(row["x_drift_note"] for row in rows)
    assert all(isinstance(row["day"], str) for row in rows)


def _owned(rows: list[dict[str, Any]], _: list[RequestRecord]) -> None:
    assert all(isinstance(row["owner_uid"], str) and row["owner_uid"] for row in rows)


def _waited_after_429(_: list[dict[str, Any]], records: list[RequestRecord]) -> None:
    # Retry-After (0.3 s) is honoured before the next request.
    for earlier, later in zip(records, records[1:], strict=False):
        if earlier.http_status == 429:
            assert later.time - earlier.time >= 0.3 - 0.01


SURVIVALS = [
    # skip ignored: page 2 repeats page 1; one request without limit/skip brings the rest.
    Survival(
        "ignores skip",
        Faults(ignore_skip=True),
        "jobs",
        fault="skip_ignored",
        requests=lambda rows: 3,
    ),
    # skip ignored by a listing that is barely longer than a page.
    Survival("ignores skip, 8 rows", Faults(ignore_skip=True), "accounts", fault="skip_ignored"),
    # limit ignored: everything at once, then an empty page.
    Survival(
        "ignores limit",
        Faults(ignore_limit=True),
        "jobs",
        fault="limit_ignored",
        requests=lambda rows: 2,
    ),
    # both ignored: the same full answer twice, then once more unpaged, nothing lost or doubled.
    Survival(
        "ignores skip and limit",
        Faults(ignore_skip=True, ignore_limit=True),
        "jobs",
        fault="skip_ignored",
        requests=lambda rows: 3,
    ),
    # limit capped below the page size: skip advances by the rows received.
    Survival(
        "caps limit below the page",
        Faults(limit_cap=3),
        "jobs",
        fault="limit_capped",
        requests=lambda rows: -(-rows // 3) + 1,  # pages of 3, then the empty one
        check=_pages_at_most(3),
    ),
    # capped and skip ignored: the unpaged request is not capped, so it completes the listing.
    Survival(
        "caps limit and ignores skip",
        Faults(limit_cap=5, ignore_skip=True),
        "tracks",
        fault="skip_ignored",
    ),
    # legacy gettracks: an object keyed by account instead of a flat list.
    Survival(
        "legacy gettracks",
        Faults(legacy_tracks=True),
        "tracks",
        fault="legacy_tracks",
        check=_owned,
    ),
    # schema drift: day and numbers as text, an unknown field, `labels` for `label`.
    Survival(
        "schema drift", Faults(schema_drift=True), "jobs", fault="schema_drift", check=_drifted
    ),
    # schema drift on members (`moving` at the top level): ids still unique and complete.
    Survival("schema drift, members", Faults(schema_drift=True), "accounts", fault="schema_drift"),
    # HTTP 500/502/503 now and then (seed 1: from the first request on).
    Survival("5xx", Faults(server_error_rate=0.3, seed=1), "tracks", fault="http50"),
    # HTTP 429 with Retry-After.
    Survival(
        "429 with Retry-After",
        Faults(rate_limit_per_second=5.0, throttle_with_http429=True, retry_after_seconds=0.3),
        "jobs",
        fault="throttled",
        check=_waited_after_429,
    ),
    # -9 in an HTTP 200 answer, after a burst of three.
    Survival("-9", Faults(rate_limit_per_second=3.0), "places", fault="throttled"),
    # bodies cut short now and then (seed 4: from the first request on).
    Survival("cut bodies", Faults(truncate_rate=0.3, seed=4), "jobs", fault="truncated"),
    # HTML error pages with HTTP 200 now and then (seed 2: from the first request on).
    Survival("HTML with 200", Faults(html_error_rate=0.3, seed=2), "places", fault="html_error"),
    # 504 for pages over 12 rows: pages shrink 1000 -> ... -> 15 -> 10.
    Survival(
        "504 halves the page",
        Faults(max_page_rows=12),
        "jobs",
        client={"page_size": 1000},
        fault="http504",
        check=_pages_at_most(10),
    ),
    # 504 for pages over 4 rows: at the 10-row floor, track windows are split in two.
    Survival(
        "504 splits the track window",
        Faults(max_page_rows=4),
        "tracks",
        client={"page_size": 1000, "uids_per_request": 3},
        fault="http504",
        check=_pages_at_most(4),
    ),
]


def _listing(client: HellotracksClient, server: SandboxServer, listing: str) -> tuple[list, list]:
    """The rows the client lists, and the ground truth's, both as served JSON."""
    fleet = server.fleet
    from_ms, until_ms = fleet.day_window_ms(DAY)
    uids = [member["uid"] for member in fleet.accounts()]
    pages, truth = {
        "jobs": (lambda: client.getjobs(DAY), lambda: fleet.jobs(DAY)),
        "tracks": (
            lambda: client.gettracks(from_ms, until_ms, uids),
            lambda: fleet.tracks(from_ms, until_ms, uids),
        ),
        "accounts": (client.getaccounts, fleet.accounts),
        "places": (client.getplaces, fleet.places),
    }[listing]
    return [row for page in pages() for row in page], orjson.loads(orjson.dumps(truth()))


@pytest.mark.parametrize("case", SURVIVALS, ids=[case.name for case in SURVIVALS])
def test_survives_what_contract_md_lists(server: SandboxServer, case: Survival) -> None:
    server.faults = case.faults
    settings = {"max_retries": 8, **case.client}
    with client_for(server, **settings) as client:
        rows, truth = _listing(client, server, case.listing)
        stats = client.stats.snapshot()

    id_key = "uid" if case.listing in ("accounts", "places") else "id"
    ids = [str(row[id_key]) for row in rows]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(str(row[id_key]) for row in truth)
    records = server.requests()
    if case.fault is not None:
        assert any(case.fault in (record.fault or "") for record in records)
    if case.requests is not None:
        assert len(records) == case.requests(len(truth))
    if case.check is not None:
        case.check(rows, records)
    assert stats.requests == len(records)


def test_a_report_not_ready_three_times_is_the_same_file(server: SandboxServer) -> None:
    with client_for(server) as client:
        clean = client.createreport("timesheet", "csv", from_day=DAY - 1, until_day=DAY)
    server.faults = Faults(not_ready_reports=3)
    with client_for(server, not_ready_retries=3) as client:
        # A different range: the sandbox counts not-ready answers per distinct report.
        waited = client.createreport("timesheet", "csv", from_day=DAY - 2, until_day=DAY)
        header, rows = server.fleet.report("timesheet", [DAY - 2, DAY - 1, DAY])

    assert clean.splitlines()[0] == waited.splitlines()[0]
    assert len(waited.decode().splitlines()) == len(rows) + 1
    assert [record.status for record in server.requests()][1:] == [-7, -7, -7, 0]
