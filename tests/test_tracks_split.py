"""Track entries are filed under the local day they start, with or without the fast path."""

import pytest

from assets.common import day_window_ms
from assets.tracks import _DaySplitter

ZONE = "Europe/Vienna"
DAYS = [20251012, 20251013, 20251014]
MIDNIGHT = day_window_ms(20251013, ZONE)[0]  # the start of the 13th, local time
HOUR = 3_600_000


def entry(n: int, start: object) -> dict:
    return {"id": n, "start_ts": start}


PAGES = {
    # Days met out of order, both sides of a midnight, and entries outside the window.
    "across_days_and_outside": [
        entry(1, MIDNIGHT + 30 * HOUR),
        entry(2, MIDNIGHT - 1),
        entry(3, MIDNIGHT),
        entry(4, MIDNIGHT - 30 * HOUR),
        entry(5, MIDNIGHT + 60 * HOUR),
        entry(6, MIDNIGHT + 2 * HOUR),
        entry(7, MIDNIGHT - 20 * HOUR),
    ],
    "one_day": [entry(n, MIDNIGHT + n * HOUR) for n in range(5)],
}


@pytest.mark.parametrize("case", PAGES)
def test_a_page_is_split_alike_at_once_and_one_by_one(case: str) -> None:
    fast, slow = _DaySplitter(DAYS, ZONE), _DaySplitter(DAYS, ZONE)
    placed = fast._place_at_once(PAGES[case])
    assert placed is not None
    buckets, unplaced = placed
    slow_buckets, slow_unplaced = slow._place_one_by_one(PAGES[case])
    assert list(buckets.items()) == list(slow_buckets.items())  # same days, same order
    assert unplaced == slow_unplaced == []
    assert fast.outside == slow.outside


def test_days_are_told_apart_at_midnight_and_outside_entries_counted() -> None:
    splitter = _DaySplitter(DAYS, ZONE)
    buckets, _ = splitter._place_at_once(PAGES["across_days_and_outside"])
    ids = {day: [e["id"] for e in entries] for day, entries in buckets.items()}
    # In the order the page first reaches each day.
    assert list(ids.items()) == [(20251014, [1]), (20251012, [2, 7]), (20251013, [3, 6])]
    assert splitter.outside == 2


@pytest.mark.parametrize(
    "page",
    [
        [entry(1, str(MIDNIGHT))],  # a start sent as text
        [entry(1, None)],
        [entry(1, 2**70)],
        [entry(1, True)],
        ["not an object"],
        [],
    ],
)
def test_any_other_page_is_split_one_by_one(page: list) -> None:
    assert _DaySplitter(DAYS, ZONE)._place_at_once(page) is None
