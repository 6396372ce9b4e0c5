"""A progress bar for a sync run, read from the run's events in the Dagster instance."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dagster import DagsterEventType, DagsterInstance
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from dagster._utils.error import SerializableErrorInfo

_POOL_BLOCKED = "Step blocked by limit for pool"
_NOT_EXECUTED = "Dependencies for step"


class RunProgress:
    """Follows one run's event log: tables materialized, rows loaded, API requests, failures.

    Warnings the steps log, and a wait for the API pool, are printed as one line each when they
    come, progress bar or not; each failure is summed up in one line at the end (a failed sync
    step names the tables that failed). Tracebacks stay in the run's event log, for the UI.
    """

    def __init__(
        self, instance: DagsterInstance, run_id: str, days: list[int], show: bool = True
    ) -> None:
        self.instance = instance
        self.run_id = run_id
        self.days = days
        self.console = Console(stderr=True)
        self.cursor: str | None = None
        self.planned: set[str] = set()
        self.materialized: set[str] = set()
        self.rows: dict[str, int] = {}
        # In a range run each day gets a copy of the same metadata: keep one value per asset.
        # Requests come from materializations, so a failed step's are not counted; its own
        # observation of `api_requests` would let them be.
        self.requests: dict[str, int] = {}
        self.failures: list[str] = []
        self.skipped: list[str] = []
        self.waiting = False
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} tables"),
            TextColumn("{task.fields[rows]:,} rows"),
            TextColumn("{task.fields[requests]:,} requests"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not show,
            transient=False,
        )
        self.task = self.progress.add_task(
            f"{len(days)} day(s) {days[0]}..{days[-1]}", total=None, rows=0, requests=0
        )

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def poll(self) -> None:
        if self.instance.get_run_by_id(self.run_id) is None:
            return
        connection = self.instance.get_records_for_run(self.run_id, cursor=self.cursor, limit=1000)
        self.cursor = connection.cursor
        for record in connection.records:
            self._consume(record.event_log_entry)
        self.progress.update(
            self.task,
            total=len(self.planned) or None,
            completed=len(self.materialized & self.planned),
            rows=sum(self.rows.values()),
            requests=sum(self.requests.values()),
        )

    def _consume(self, entry) -> None:
        event = entry.dagster_event
        if event is None:
            if entry.user_message.startswith(_NOT_EXECUTED):
                # Steps skipped after a failure: named once in the summary, not one line each.
                self.skipped.append(entry.step_key or "?")
            elif entry.level >= logging.WARNING:
                self._say("yellow", "warning", f"{entry.step_key or 'run'}: {entry.user_message}")
            return
        kind = event.event_type
        if kind == DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
            self.planned.add(event.asset_key.to_user_string())
        elif kind == DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            self.failures.extend(failure_lines(event.step_key, error))
        elif kind == DagsterEventType.ENGINE_EVENT and not self.waiting:
            if (event.message or "").startswith(_POOL_BLOCKED):
                self.waiting = True
                pool = event.message[len(_POOL_BLOCKED) :].strip()
                self._say(
                    "yellow",
                    "waiting",
                    f"another run holds the {pool} pool; this sync goes on when it is free",
                )
        elif kind == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            metadata = materialization.metadata
            name = materialization.asset_key.to_user_string()
            self.materialized.add(name)
            if "rows_in_run" in metadata:
                self.rows[name] = int(metadata["rows_in_run"].value)
            if "api_requests" in metadata:
                self.requests[name] = int(metadata["api_requests"].value)

    def print_summary(self, first: int, last: int) -> None:
        if self.rows:
            title = f"{'Partly synced' if self.failures else 'Synced'} {first}..{last}"
            table = Table(title=title, show_edge=False)
            table.add_column("table")
            table.add_column("rows", justify="right")
            for name in sorted(self.rows):
                table.add_row(name, f"{self.rows[name]:,}")
            self.console.print(table)
        self.console.print(f"API requests: {sum(self.requests.values()):,}")
        for failure in self.failures:
            self._say("red", "failed", failure)
        if self.skipped:
            self._say("red", "not run", "after that failure: " + ", ".join(self.skipped))

    def _say(self, colour: str, label: str, text: str) -> None:
        # Long lines stay whole: a message is easier to search for than to read wrapped.
        self.console.print(f"[{colour}]{label}[/{colour}] {escape(text)}", soft_wrap=True)


def failure_lines(step: str | None, error: SerializableErrorInfo | None) -> list[str]:
    """What a failed step's summary says: `step: message`, or for a sync step whose datasets
    failed (`SyncFailed`), one `tables: what happened` line per failure."""
    if error is None:
        return [f"{step}: unknown error"]
    cause = _unwrapped(error)
    if cause.cls_name == "SyncFailed":
        lines = _without_class(cause).splitlines()
        return [" ".join(line.split()) for line in lines if line.strip()]
    return [f"{step}: {failure_message(error)}"]


def failure_message(error: SerializableErrorInfo) -> str:
    """The error a step raised, on one line, without Dagster's wrapper around it."""
    cause = _unwrapped(error)
    message = _without_class(cause)
    named = f"{cause.cls_name}: " if message is not cause.message else ""
    return named + " ".join(message.split())


def _unwrapped(error: SerializableErrorInfo) -> SerializableErrorInfo:
    while error.cls_name.startswith("Dagster") and error.cause is not None:
        error = error.cause
    return error


def _without_class(error: SerializableErrorInfo) -> str:
    """The error's message without the `module.Class: ` that Dagster puts before it."""
    qualified, _, rest = error.message.strip().partition(": ")
    return rest if rest and qualified.rsplit(".", 1)[-1] == error.cls_name else error.message
