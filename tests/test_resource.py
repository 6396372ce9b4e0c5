"""The Hellotracks client against the sandbox over loopback: complete answers, pacing, the key,
stats, prefetching and the Dagster resource."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dagster as dg
import orjson
import pytest

from resources import hellotracks
from resources.hellotracks import (
    HellotracksAuthError,
    HellotracksClient,
    HellotracksResource,
)
from sandbox.server import Faults, SandboxServer, run_sandbox

API_KEY = "k-7f3b2a91-loopback-secret"
DAY = 20251010
PAGE = 7


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with run_sandbox(
        seed=7, members=12, today=20251015, timezone="Europe/Vienna", api_key=API_KEY
    ) as sandbox:
        yield sandbox


def client_for(server: SandboxServer, **overrides: Any) -> HellotracksClient:
    """A client on the sandbox with small pages and fast backoff; `overrides` win."""
    settings: dict[str, Any] = {
        "page_size": PAGE,
        "min_interval_seconds": 0.0,
        "timeout_seconds": 10.0,
        "max_retries": 4,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.2,
    }
    settings.update(overrides)
    key = settings.pop("api_key", API_KEY)
    return HellotracksClient(server.url, key, **settings)


def drain(pages: Iterable[list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[int]]:
    """All rows of a listing, and the size of each page."""
    rows: list[dict[str, Any]] = []
    sizes: list[int] = []
    for page in pages:
        rows.extend(page)
        sizes.append(len(page))
    return rows, sizes


def as_served(rows: list[dict[str, Any]], id_key: str) -> list[dict[str, Any]]:
    """Ground-truth rows as they look after a trip through JSON, ordered by id."""
    return sorted(orjson.loads(orjson.dumps(rows)), key=lambda row: str(row[id_key]))


def pages_needed(rows: int, page: int = PAGE) -> int:
    """Requests a clean listing takes: full and partial pages, then the empty one."""
    return -(-rows // page) + 1


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in zip(times, times[1:], strict=False)]


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "inline"])
def test_every_read_action_returns_exactly_the_fleet(server: SandboxServer, prefetch: bool) -> None:
    fleet = server.fleet
    from_ms, until_ms = fleet.day_window_ms(DAY)
    uids = [member["uid"] for member in fleet.accounts()]
    chunks = [uids[start : start + 5] for start in range(0, len(uids), 5)]
    truth = {
        "getjobs": (fleet.jobs(DAY), "id"),
        "gettracks": (fleet.tracks(from_ms, until_ms, uids), "id"),
        "getaccounts": (fleet.accounts(), "uid"),
        "getplaces": (fleet.places(), "uid"),
    }
    # Every listing must span several pages, or this test would not exercise paging.
    assert all(len(rows) > PAGE for rows, _ in truth.values())
    assert len(chunks) > 1

    with client_for(server, prefetch=prefetch, uids_per_request=5) as client:
        got = {
            "getjobs": drain(client.getjobs(DAY)),
            "gettracks": drain(client.gettracks(from_ms, until_ms, uids)),
            "getaccounts": drain(client.getaccounts()),
            "getplaces": drain(client.getplaces()),
        }
        company = client.getcompany()

    for action, (expected, id_key) in truth.items():
        rows, sizes = got[action]
        ids = [str(row[id_key]) for row in rows]
        assert len(ids) == len(set(ids)), f"{action} repeated a row"
        assert sorted(rows, key=lambda row: str(row[id_key])) == as_served(expected, id_key)
        assert max(sizes) <= PAGE and len(sizes) > 1
    assert company == orjson.loads(orjson.dumps(fleet.company()))

    # Each listing stops at its first empty page: no request more, none fewer.
    requests = Counter(record.action for record in server.requests())
    assert requests["getjobs"] == pages_needed(len(truth["getjobs"][0]))
    assert requests["getaccounts"] == pages_needed(len(truth["getaccounts"][0]))
    assert requests["getplaces"] == pages_needed(len(truth["getplaces"][0]))
    assert requests["gettracks"] == sum(
        pages_needed(len(fleet.tracks(from_ms, until_ms, chunk))) for chunk in chunks
    )
    assert requests["getcompany"] == 1


def test_no_uids_means_no_track_request(server: SandboxServer) -> None:
    with client_for(server) as client:
        assert list(client.gettracks(0, 1, [])) == []
    assert server.requests() == []


def test_createreport_returns_the_file(server: SandboxServer) -> None:
    header, rows = server.fleet.report("jobs", [DAY])
    with client_for(server) as client:
        csv = client.createreport("jobs", "csv", day=DAY)
        xlsx = client.createreport("mileage", "xlsx", from_day=DAY - 2, until_day=DAY)
        with pytest.raises(ValueError):
            client.createreport("jobs", day=DAY, from_day=DAY, until_day=DAY)

    lines = csv.decode("utf-8-sig").splitlines()
    assert lines[0].split(",") == header
    assert len(lines) == len(rows) + 1
    assert {line.split(",")[1] for line in lines[1:]} == {row[1] for row in rows}
    assert xlsx[:2] == b"PK"
    assert len(server.requests("createreport")) == 2


def test_requests_start_at_least_the_minimum_interval_apart_across_threads(
    server: SandboxServer,
) -> None:
    interval = 0.1
    with client_for(server, min_interval_seconds=interval) as client:
        # Two listings at once through one client share one pace.
        other = threading.Thread(target=lambda: drain(client.getaccounts()))
        other.start()
        drain(client.getjobs(DAY))
        other.join()

    records = server.requests()
    assert {record.action for record in records} == {"getjobs", "getaccounts"}
    assert len(records) >= 8
    times = [record.time for record in records]
    # The log stamps arrival, which the sandbox (sharing this process and its GIL) records late
    # when the machine is busy, shortening the gap after a late stamp by as much: the overall
    # pace is exact, and no two requests went out together (a pacer shared without its lock
    # lets two threads claim one slot: a gap of a few milliseconds).
    assert times[-1] - times[0] >= (len(times) - 1) * interval - 0.03
    assert min(gaps(times)) >= interval / 2


def test_throttling_widens_the_pace_for_the_rest_of_the_run(server: SandboxServer) -> None:
    # Four requests per second, a burst of four: the client's 0.05 s pace trips it early.
    server.faults = Faults(rate_limit_per_second=4.0)
    with client_for(
        server, page_size=3, min_interval_seconds=0.05, backoff_max_seconds=0.5
    ) as client:
        rows, _ = drain(client.getjobs(DAY))
        stats = client.stats.snapshot()

    assert sorted(row["id"] for row in rows) == sorted(job["id"] for job in server.fleet.jobs(DAY))
    records = server.requests()
    throttled = [n for n, record in enumerate(records) if record.status == -9]
    assert throttled and stats.throttled == len(throttled)
    spacing = gaps([record.time for record in records])
    before, after = spacing[: throttled[0]], spacing[throttled[-1] :]
    assert len(before) >= 2 and len(after) >= 5
    assert min(after) > max(before)


def test_a_wrong_key_stops_after_one_request_and_is_never_shown(
    server: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-4c1d9e-not-the-key"
    client = client_for(server, api_key=wrong)
    with pytest.raises(HellotracksAuthError) as raised:
        drain(client.getjobs(DAY))
    client.close()

    assert len(server.requests()) == 1
    error = raised.value
    assert (error.action, error.status, error.http_status) == ("getjobs", -8, 200)
    assert "-8" in str(error) and "HELLOTRACKS_API_KEY" in str(error)
    assert any(record.name == "hellotracks.client" for record in caplog.records)
    shown = [str(error), repr(error), repr(client), repr(client.stats)]
    shown += [str(client.stats.as_metadata())]
    shown += [record.getMessage() for record in caplog.records]
    shown += [caplog.text]
    assert not [text for text in shown if wrong in text]


def test_the_right_key_stays_out_of_logs_reprs_and_metadata(
    server: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Faults make the client log its warnings too.
    server.faults = Faults(server_error_rate=0.3, html_error_rate=0.2, truncate_rate=0.2, seed=5)
    resource = HellotracksResource(api_key=API_KEY, base_url=server.url)
    with client_for(server, max_retries=10) as client:
        drain(client.getjobs(DAY))
        client.getcompany()

    assert any(record.levelno == logging.WARNING for record in caplog.records)
    shown = [repr(client), repr(client.stats), str(client.stats.as_metadata()), caplog.text]
    shown += [repr(resource), str(resource)]
    assert not [text for text in shown if API_KEY in text]


def test_stats_agree_with_the_request_log(server: SandboxServer) -> None:
    # Seed 1: the first request already meets a server error.
    server.faults = Faults(server_error_rate=0.25, html_error_rate=0.1, seed=1)
    with client_for(server, max_retries=10) as client:
        drain(client.getjobs(DAY))
        drain(client.getaccounts())
        client.getcompany()
        stats = client.stats.snapshot()
        before = client.stats.snapshot()
        client.getcompany()
        step = client.stats.since(before)

    records = server.requests()[:-1]  # the last getcompany is measured by `step`
    answered = sum(record.http_status == 200 and record.status == 0 for record in records)
    assert stats.requests == len(records)
    assert stats.by_action == dict(Counter(record.action for record in records))
    assert stats.server_errors == sum(record.http_status >= 500 for record in records) > 0
    html_pages = sum("html_error" in (record.fault or "") for record in records)
    assert stats.retries == len(records) - answered == stats.server_errors + html_pages
    assert stats.bytes_received == sum(record.bytes_out for record in records)
    assert stats.throttled == stats.timeouts == 0
    assert stats.wait_seconds > 0

    metadata = stats.as_metadata()
    assert metadata["requests"] == len(records)
    assert metadata["requests_getjobs"] == len(server.requests("getjobs"))
    assert metadata["server_errors"] == stats.server_errors
    assert all(isinstance(value, int | float) for value in metadata.values())
    assert (step.requests, step.by_action) == (1, {"getcompany": 1})


def test_prefetch_stays_one_page_ahead_and_stops_with_the_caller(server: SandboxServer) -> None:
    with client_for(server) as client:
        pages = client.getjobs(DAY)
        first = next(pages)
        # While the caller holds page 1, page 2 is fetched, and nothing beyond it.
        wait_until(lambda: len(server.requests()) == 2)
        time.sleep(0.2)
        assert len(server.requests()) == 2
        pages.close()
        alive = [thread for thread in threading.enumerate() if thread.name.endswith("prefetch")]

    assert len(first) == PAGE
    assert alive == []
    assert len(server.requests()) == 2


def test_the_resource_shares_one_client_and_closes_it_on_teardown(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELLOTRACKS_API_KEY", API_KEY)
    resource = HellotracksResource(
        api_key=dg.EnvVar("HELLOTRACKS_API_KEY"),
        base_url=server.url,
        page_size=PAGE,
        min_interval_seconds=0.0,
    )
    clients: list[HellotracksClient] = []

    @dg.asset
    def member_count(hellotracks: HellotracksResource) -> int:
        client = hellotracks.get_client()
        assert client is hellotracks.get_client()
        clients.append(client)
        return sum(len(page) for page in client.getaccounts())

    result = dg.materialize([member_count], resources={"hellotracks": resource})

    assert result.success
    assert result.output_for_node("member_count") == len(server.fleet.accounts())
    assert len(clients) == 1 and clients[0].closed


# Successive pages of one listing, each with what a server may do to it.
PAGES_OF_ONE_LISTING = [
    [{"id": "a", "n": 1}, {"id": "b", "n": 2}],  # plain: answered without a loop
    [{"id": "b", "n": 2}, {"id": "c", "n": 3}],  # b again: the server paged badly
    [{"id": "d", "n": 4}, {"id": "d", "n": 4}],  # an exact copy on one page
    [{"id": "e", "n": 5}, {"id": "e", "n": 6}],  # one id, two records: kept for quarantine
    [{"id": 7, "n": 7}, {"id": 8, "n": 8}],  # integer ids, plain
    [{"id": "7", "n": 7}, {"n": 9}],  # "7" is 7 again; a row without an id is kept
    [{"n": 9}, {"id": "", "n": 10}, "not an object"],  # the same id-less row again; an empty id
    [],
]


def test_a_listing_keeps_the_same_rows_with_or_without_its_fast_path() -> None:
    fast = hellotracks._Listing("getjobs", limit=2, floor=0)
    slow = hellotracks._Listing("getjobs", limit=2, floor=0)
    kept = []
    for page in PAGES_OF_ONE_LISTING:
        rows = fast.fresh(page)
        assert rows == slow._fresh_row_by_row(page)
        kept.append(rows)
    assert fast.seen == slow.seen
    assert kept == [
        PAGES_OF_ONE_LISTING[0],
        [{"id": "c", "n": 3}],
        [{"id": "d", "n": 4}],
        PAGES_OF_ONE_LISTING[3],
        PAGES_OF_ONE_LISTING[4],
        [{"n": 9}],
        [{"id": "", "n": 10}, "not an object"],
        [],
    ]
