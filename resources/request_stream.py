"""Listings fetched ahead of their reader, one after another, by one background thread.

A step that reads several listings from a paced API would otherwise wait for each request's turn
and then do its own work while the API sits idle. `RequestStream` keeps the requests going: the
step queues its listings in the order it will read them, and one thread works through them back
to back, pacing included, while the step stores what came before. At most `ahead` items (pages,
files) wait for the reader, whatever the listings' sizes.

Listings are read in the order they were queued. Reading one gives up the listings queued before
it that were not read to the end, and closing a listing's iterator gives it up: the thread stops
fetching it and drops what it held. An error while fetching a listing reaches its reader after
the items fetched before it; the thread goes on with the next listing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class StreamStopped(RuntimeError):
    """A listing was read, or queued, after its stream closed."""


class Queued(Generic[T]):
    """One listing of a `RequestStream`: iterate it once for its items, in order.

    `spent` is what fetching it cost, as the stream's `measure` counts (the client's request
    stats); `started_at` is when the stream began to fetch it (UTC), None until then; `awaited`
    is how many seconds its reader spent waiting for its items, which is as much as fetching it
    held the reader up.
    """

    def __init__(self, stream: RequestStream, source: Iterator[T], index: int, spent: Any) -> None:
        self._stream = stream
        self._source = source
        self._index = index
        self._items: deque[T] = deque()
        self._done = False
        self._error: BaseException | None = None
        self._given_up = False
        self.spent = spent
        self.started_at: datetime | None = None
        self.awaited = 0.0

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        return self._stream._take(self)

    def close(self) -> None:
        """Give the listing up: nothing more of it is fetched, what was fetched is dropped."""
        self._stream._give_up(self)

    def one(self) -> T:
        """The listing's only item (a single call's answer)."""
        items = list(self)
        if len(items) != 1:
            raise ValueError(f"expected one item, the listing had {len(items)}")
        return items[0]


class RequestStream:
    """Fetches queued listings in order in one thread, at most `ahead` items ahead of the reader.

    `prepare` runs first in the thread with the stream's cancel event (so the sources' sleeps can
    end early when the stream closes); a source that raises one of `cancelled` has seen it and
    stopped. `measure` returns a running total (with `-`) of what fetching costs; each listing's
    `spent` is the difference over its fetching, set once it is done (`nothing` until then).
    """

    def __init__(
        self,
        *,
        ahead: int = 1,
        name: str = "request-stream",
        prepare: Callable[[threading.Event], None] | None = None,
        cancelled: tuple[type[BaseException], ...] = (),
        measure: Callable[[], Any] | None = None,
        nothing: Any = 0,
    ) -> None:
        if ahead < 1:
            raise ValueError("ahead must be at least 1")
        self._ahead = ahead
        self._name = name
        self._prepare = prepare
        self._cancelled = cancelled
        self._measure = measure
        self._nothing = nothing
        self._lock = threading.Condition()
        self._listings: list[Queued[Any]] = []
        self._next_to_fetch = 0
        self._next_to_read = 0
        self._held = 0
        self._closed = False
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RequestStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(self, source: Iterator[T]) -> Queued[T]:
        """Queue a listing (an iterator, not started yet); it is fetched after those before it."""
        with self._lock:
            if self._closed:
                raise StreamStopped("the stream is closed")
            listing = Queued(self, source, len(self._listings), self._nothing)
            self._listings.append(listing)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._lock.notify_all()
        return listing

    def call(self, function: Callable[[], T]) -> Queued[T]:
        """Queue a single call; its answer is the listing's one item."""

        def once() -> Iterator[T]:
            yield function()

        return self.add(once())

    def close(self) -> None:
        """Stop fetching and wait for the thread; a request in flight is let finish."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._cancel.set()
        if self._thread is not None:
            self._thread.join()
        for listing in self._listings[self._next_to_fetch :]:
            close = getattr(listing._source, "close", None)
            if close is not None:
                close()

    # --- the reader's side ----------------------------------------------------------------------

    def _take(self, listing: Queued[T]) -> T:
        with self._lock:
            if self._closed:
                raise StreamStopped("the stream is closed")
            for earlier in self._listings[self._next_to_read : listing._index]:
                self._give_up_locked(earlier)
            self._next_to_read = max(self._next_to_read, listing._index)
            if not listing._items and not listing._done:
                began = time.perf_counter()
                while not listing._items and not listing._done:
                    self._lock.wait()
                    if self._closed:
                        raise StreamStopped("the stream was closed while this listing was read")
                listing.awaited += time.perf_counter() - began
            if listing._items:
                self._held -= 1
                self._lock.notify_all()
                return listing._items.popleft()
            error, listing._error = listing._error, None
        if error is not None:
            raise error
        raise StopIteration

    def _give_up(self, listing: Queued[Any]) -> None:
        with self._lock:
            self._give_up_locked(listing)

    def _give_up_locked(self, listing: Queued[Any]) -> None:
        listing._given_up = True
        self._held -= len(listing._items)
        listing._items.clear()
        listing._error = None
        self._lock.notify_all()

    # --- the thread's side ----------------------------------------------------------------------

    def _run(self) -> None:
        if self._prepare is not None:
            self._prepare(self._cancel)
        while True:
            with self._lock:
                while self._next_to_fetch >= len(self._listings) and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                listing = self._listings[self._next_to_fetch]
                self._next_to_fetch += 1
            if not self._fetch(listing):
                return

    def _fetch(self, listing: Queued[Any]) -> bool:
        """Fetch one listing into its queue; False once the stream is closing."""
        listing.started_at = datetime.now(UTC)
        source = listing._source
        # Only this thread fetches, one listing at a time: what `measure` counts from here to the
        # listing's end is its own.
        before = self._measure() if self._measure is not None else None
        try:
            while True:
                with self._lock:
                    while self._held >= self._ahead and not listing._given_up:
                        if self._closed:
                            return False
                        self._lock.wait()
                    if self._closed:
                        return False
                    if listing._given_up:
                        return True
                try:
                    item = next(source)
                except StopIteration:
                    return True
                with self._lock:
                    if not listing._given_up:
                        listing._items.append(item)
                        self._held += 1
                        self._lock.notify_all()
        except self._cancelled:
            return False
        except BaseException as exc:  # handed to the reader, which raises it
            with self._lock:
                if not listing._given_up:
                    listing._error = exc
            return isinstance(exc, Exception)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
            if self._measure is not None:
                listing.spent = self._measure() - before
            with self._lock:
                listing._done = True
                self._lock.notify_all()
