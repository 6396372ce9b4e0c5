"""`RequestStream` on plain iterators, and `HellotracksStream` against the sandbox over loopback:
order, how far ahead the thread runs, giving listings up, errors, closing, and what each listing
cost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from resources.request_stream import RequestStream, StreamStopped
from sandbox.server import SandboxServer, run_sandbox
from tests.test_resource import API_KEY, DAY, client_for, gaps, wait_until


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with run_sandbox(
        seed=7, members=12, today=20251015, timezone="Europe/Vienna", api_key=API_KEY
    ) as sandbox:
        yield sandbox


class Counted:
    """A source of `n` items that notes each item the moment the thread takes it."""

    def __init__(self, name: str, n: int, log: list[str], fail_at: int | None = None) -> None:
        self.name, self.n, self.log, self.fail_at = name, n, log, fail_at
        self.closed = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        taken = sum(entry.startswith(self.name) for entry in self.log)
        if taken == self.fail_at:
            raise ValueError(f"{self.name} broke at {taken}")
        if taken >= self.n:
            raise StopIteration
        item = f"{self.name}{taken}"
        self.log.append(item)
        return item

    def close(self) -> None:
        self.closed = True


def settle() -> None:
    """Give the stream's thread time to run as far ahead as it may."""
    time.sleep(0.1)


def test_listings_come_in_order_and_the_thread_runs_at_most_ahead_items_ahead() -> None:
    log: list[str] = []
    with RequestStream(ahead=2) as stream:
        first = stream.add(Counted("a", 3, log))
        second = stream.add(Counted("b", 2, log))
        settle()
        # Nothing read yet: two items wait, the second already from the next listing's turn.
        assert log == ["a0", "a1"]
        assert next(first) == "a0"
        settle()
        assert log == ["a0", "a1", "a2"]
        assert list(first) == ["a1", "a2"]
        settle()
        # The first listing is done, so the thread went on to the second without being asked.
        assert log == ["a0", "a1", "a2", "b0", "b1"]
        assert list(second) == ["b0", "b1"]


def test_reading_a_later_listing_gives_up_the_earlier_one() -> None:
    log: list[str] = []
    with RequestStream(ahead=1) as stream:
        first = stream.add(Counted("a", 100, log))
        second = stream.add(Counted("b", 2, log))
        assert next(first) == "a0"
        assert list(second) == ["b0", "b1"]
        # The first listing stopped where it was: the thread did not fetch all 100 items.
        assert sum(entry.startswith("a") for entry in log) <= 3
        assert list(first) == []


def test_closing_a_listing_stops_it_and_closes_its_source() -> None:
    log: list[str] = []
    source = Counted("a", 100, log)
    with RequestStream(ahead=1) as stream:
        listing = stream.add(source)
        assert next(listing) == "a0"
        listing.close()
        later = stream.add(Counted("b", 1, log))
        assert list(later) == ["b0"]
    assert source.closed
    assert sum(entry.startswith("a") for entry in log) <= 3


def test_an_error_comes_after_the_items_before_it_and_the_next_listing_goes_on() -> None:
    log: list[str] = []
    with RequestStream(ahead=3) as stream:
        broken = stream.add(Counted("a", 5, log, fail_at=2))
        later = stream.add(Counted("b", 2, log))
        assert [next(broken), next(broken)] == ["a0", "a1"]
        with pytest.raises(ValueError, match="a broke at 2"):
            next(broken)
        assert list(broken) == []
        assert list(later) == ["b0", "b1"]


def test_close_stops_the_thread_and_closes_the_sources_never_started() -> None:
    log: list[str] = []
    never = Counted("b", 1, log)
    stream = RequestStream(ahead=1, name="stream-under-test")
    first = stream.add(Counted("a", 10, log))
    stream.add(never)
    assert next(first) == "a0"
    stream.close()
    assert never.closed and log[-1].startswith("a")
    assert not [t for t in threading.enumerate() if t.name == "stream-under-test"]
    with pytest.raises(StreamStopped):
        next(first)
    with pytest.raises(StreamStopped):
        stream.add(Counted("c", 1, log))


def test_a_call_is_a_listing_of_one_answer() -> None:
    with RequestStream() as stream:
        answer = stream.call(lambda: {"status": 0})
        assert answer.one() == {"status": 0}


def test_each_listing_reports_what_its_own_fetching_cost() -> None:
    spent = {"calls": 0}

    def measured(n: int) -> Iterator[int]:
        for item in range(n):
            spent["calls"] += 1
            yield item

    with RequestStream(ahead=4, measure=lambda: spent["calls"], nothing=0) as stream:
        three, five = stream.add(measured(3)), stream.add(measured(5))
        assert (list(three), list(five)) == ([0, 1, 2], [0, 1, 2, 3, 4])
    assert (three.spent, five.spent) == (3, 5)
    assert three.started_at is not None and three.started_at <= five.started_at


def test_each_listing_says_how_long_its_reader_waited_for_it() -> None:
    def slow(n: int, pause: float) -> Iterator[int]:
        for item in range(n):
            time.sleep(pause)
            yield item

    with RequestStream(ahead=4) as stream:
        early, late = stream.add(iter([1, 2])), stream.add(slow(3, 0.1))
        settle()
        # `early` was fetched before it was read; each item of `late` was waited for.
        assert (list(early), list(late)) == ([1, 2], [0, 1, 2])
    assert early.awaited < 0.05
    assert 0.15 <= late.awaited < 1.0


# --- the client's actions on one stream -----------------------------------------------------------


def test_queued_actions_answer_as_the_client_does_and_count_their_own_requests(server) -> None:
    with client_for(server) as client:
        expected_jobs = [row["id"] for page in client.getjobs(DAY) for row in page]
        expected_members = [row["uid"] for page in client.getaccounts() for row in page]
        expected_company = client.getcompany()
        before = len(server.requests())

        with client.stream(ahead=2) as stream:
            company = stream.getcompany()
            members = stream.getaccounts()
            jobs = stream.getjobs(DAY)
            report = stream.createreport("jobs", "csv", day=DAY)
            assert company.one() == expected_company
            assert [row["uid"] for page in members for row in page] == expected_members
            assert [row["id"] for page in jobs for row in page] == expected_jobs
            assert report.one().startswith(b"day,")

    seen = server.requests()[before:]
    assert [r.action for r in seen] == (
        ["getcompany"]
        + ["getaccounts"] * members.spent.requests
        + ["getjobs"] * jobs.spent.requests
        + ["createreport"]
    )
    assert company.spent.by_action == {"getcompany": 1}
    assert jobs.spent.by_action == {"getjobs": jobs.spent.requests} and jobs.spent.requests > 2
    assert report.spent.requests == 1 and report.spent.bytes_received > 0


def test_the_pace_holds_across_the_listings_of_a_stream(server) -> None:
    interval = 0.15
    with client_for(server, min_interval_seconds=interval) as client:
        with client.stream(ahead=3) as stream:
            listings = [stream.getaccounts(), stream.getcompany(), stream.getplaces()]
            for listing in listings:
                list(listing)
                time.sleep(0.3)  # the reader's own work, which the requests do not wait for
    stamps = [r.time for r in server.requests()]
    assert len(stamps) >= 5
    assert min(gaps(stamps)) >= interval - 0.01


def test_closing_a_stream_in_a_pacing_sleep_ends_it_at_once(server) -> None:
    with client_for(server, min_interval_seconds=5.0) as client:
        stream = client.stream(ahead=1)
        pages = stream.getjobs(DAY)
        next(pages)
        wait_until(lambda: len(server.requests()) >= 1)
        started = time.monotonic()
        stream.close()
        assert time.monotonic() - started < 2.0
