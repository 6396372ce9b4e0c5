"""`hellotracks_tables`: every daily table the Hellotracks API feeds, synced in one step.

The datasets (one module each) are stored one after another, in `DATASETS` order, while their
requests run ahead on one request stream: a dataset's requests are queued as soon as what they
are worked out from is stored, and the stream works through them back to back at the client's
pace. So the API is kept busy while the step normalizes, writes and loads what came before, and
a paced sync takes about as long as its requests. A dataset's materializations go out once it is
stored, and each check once the tables it reads are.

One step also means one API client and one slot of the `hellotracks_api` pool for the whole
sync. The asset is subsettable: a run that selects some of the tables asks only for what they
need (`track_points` alone is decoded from the tracks already in the warehouse).

A dataset that fails does not stop the others: the step stores every dataset it can, skips those
whose requests are worked out from a failed one, and then fails with `SyncFailed`, one line per
failure. A refused key stops the step at once, since every later request would be refused too.
"""

from collections import deque
from collections.abc import Callable, Iterator, Sequence, Set
from functools import partial
from typing import Any

from dagster import AssetCheckResult, AssetExecutionContext, MaterializeResult, multi_asset

from assets import jobs, members, places, reports, tracks
from assets.common import API_POOL, DAILY, Dataset, SyncRun
from resources.hellotracks import HellotracksError, HellotracksResource
from resources.warehouse import WarehouseResource

# Store order. Each dataset comes after the tables its requests are worked out from (`after`).
# In a paced sync, storing a dataset hides behind the requests of those after it; what is stored
# after the last request hides behind nothing. So the datasets of one or two requests go first,
# and the long listings last, tracks (which need the days' job assignees) at the very end.
DATASETS: tuple[Dataset, ...] = (
    places.COMPANY_DATASET,
    members.DATASET,
    places.PLACES_DATASET,
    *reports.DATASETS,
    jobs.DATASET,
    tracks.DATASET,
)

# Answers the stream may hold before the step reads them. In a paced sync the storing of the
# first datasets (some 40 events of a 30-day run each) runs behind their requests by a few
# seconds, which this many requests cover; without pacing, this many pages wait in memory.
STREAM_AHEAD = 6


def check_order(datasets: Sequence[Dataset]) -> None:
    """Raise unless every dataset comes after the datasets that store its `after` tables."""
    stored: set[str] = set()
    every = set().union(*(dataset.tables for dataset in datasets))
    for dataset in datasets:
        early = [table for table in dataset.after if table in every and table not in stored]
        if early:
            names = ", ".join(sorted(dataset.tables))
            raise ValueError(f"{names} must come after the datasets of {', '.join(early)}")
        stored |= dataset.tables


check_order(DATASETS)


class SyncFailed(Exception):
    """Some datasets of the sync step failed or could not run; the rest were stored.

    The message has one line per failure: the tables, a colon, and what happened.
    """


@multi_asset(
    name="hellotracks_tables",
    specs=[spec for dataset in DATASETS for spec in dataset.specs],
    check_specs=[check for dataset in DATASETS for check in dataset.check_specs],
    can_subset=True,
    pool=API_POOL,
    **DAILY,
)
def hellotracks_tables(
    context: AssetExecutionContext,
    hellotracks: HellotracksResource,
    warehouse: WarehouseResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Sync the run's days of every selected Hellotracks table, one dataset after another."""
    client = hellotracks.get_client()
    with client.stream(ahead=STREAM_AHEAD) as api:
        run = SyncRun.of(context, api, warehouse)
        yield from sync(run, [dataset for dataset in DATASETS if dataset.tables & run.selected])


def sync(
    run: SyncRun, datasets: Sequence[Dataset]
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Store `datasets` in order, queueing each one's requests as early as its `after` allows,
    and evaluate each of their checks once the tables it reads are stored.

    A table of `after` or of a check's `reads` that the run does not select is taken as the
    warehouse has it. Raises `SyncFailed` at the end when a dataset failed.

    A dataset of two tables (company and teams, tracks and their points) that fails after
    loading the first keeps the first one's materialization; only the tables it did not load
    are reported failed.
    """
    waiting = deque(datasets)
    queued: deque[tuple[Dataset, Any]] = deque()
    pending = [checks for dataset in datasets for checks in dataset.checks if run.wants(checks)]
    stored: set[str] = set()
    failed: set[str] = set()
    failures: list[str] = []
    first_error: Exception | None = None

    def ready(tables: Sequence[str]) -> bool:
        return all(table in stored or table not in run.selected for table in tables)

    def fail(
        dataset: Dataset, why: str, error: Exception | None = None, loaded: Set[str] = frozenset()
    ) -> None:
        nonlocal first_error
        lost = dataset.tables - loaded or dataset.tables
        failed.update(lost)
        failures.append(f"{', '.join(sorted(lost & run.selected))}: {why}")
        first_error = first_error or error

    def attempt(dataset: Dataset, work: Callable[[], Any], done: Sequence[Any] = ()) -> Any:
        """`work()`, or None when it failed; `done` holds the materializations it made."""
        try:
            return work()
        except Exception as exc:
            if isinstance(exc, HellotracksError) and exc.refuses_key:
                raise
            loaded = {result.asset_key.to_user_string() for result in done}
            fail(dataset, f"{type(exc).__name__}: {exc}", exc, loaded)
            return None

    def store(dataset: Dataset, requested: Any) -> list[MaterializeResult]:
        """What `dataset.store` materialized, up to a failure if one came."""
        done: list[MaterializeResult] = []
        attempt(dataset, lambda: done.extend(dataset.store(run, requested)), done)
        return done

    def queue_ready() -> None:
        while waiting and ready([t for t in waiting[0].after if t not in failed]):
            dataset = waiting.popleft()
            lost = sorted(failed.intersection(dataset.after))
            if lost:
                fail(dataset, f"not synced: its requests are worked out from {', '.join(lost)}")
                continue
            requested = attempt(dataset, partial(dataset.request, run))
            if dataset.tables.isdisjoint(failed):
                queued.append((dataset, requested))

    queue_ready()
    while queued:
        dataset, requested = queued.popleft()
        materialized = store(dataset, requested)
        stored.update(dataset.tables - failed)
        # Before the results go out: writing their events takes a while, which the next
        # requests need not wait for.
        queue_ready()
        yield from materialized
        for checks in [checks for checks in pending if ready(checks.reads)]:
            pending.remove(checks)
            yield from run.selected_results(checks.evaluate(run))
    if failures:
        raise SyncFailed("\n".join(failures)) from first_error
