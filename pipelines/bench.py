"""`hellotracks bench`: how fast a sync is, how many requests it makes, how much memory it takes.

Each scenario starts a sandbox fleet in a process of its own and then runs two more processes
against it, one after the other:

- the floor: the same pages the pipeline asks for, fetched over one keep-alive connection with the
  standard library's HTTP client and decoded (orjson for JSON, `csv` for the report files), and
  nothing else. It first fetches everything once untimed, so the fleet's days are generated and
  the server's sorted views are cached before anything is timed; then, for a range of days, it
  counts what the same days cost when fetched one day at a time; then it makes the timed pass.
- the pipeline: the real sync job (`execute_in_process`, as the schedule and `hellotracks sync`
  run it, without the progress bar) against a Dagster instance and a warehouse in a temporary
  directory.

Requests are counted in the sandbox's own log, so they are what the server saw. While the floor
and the pipeline run, a thread of this process samples the resident memory of each process tree
(the process and all its children) every 50 ms; the pipeline's peak is the larger of that and the
kernel's high-water mark of its main process, which also catches peaks between two samples.

The children are `python -m pipelines.bench <role> <spec.json>`; nothing here imports Dagster or
the definitions until a child needs them, so the command line stays quick to start.
"""

from __future__ import annotations

import csv
import http.client
import inspect
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import click
import orjson
import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = PROJECT_ROOT / "docs" / "benchmarks.md"

# Every scenario's fleet: fixed, so that two runs of the benchmark sync the same data. The last
# synced day is a Tuesday, a full working day.
FLEET_SEED = 7
FLEET_TODAY = 20251015
FLEET_TIMEZONE = "Europe/Vienna"
LAST_DAY = 20251014
SANDBOX_KEY = "bench-key"

SAMPLE_SECONDS = 0.05
# A child that runs longer than this has hung; the benchmark stops it and reports the failure.
CHILD_TIMEOUT_SECONDS = 3600.0
# The sandbox stamps a request when its handler thread gets to it. On a busy machine that lags by
# tens of milliseconds now and then, shortening one gap and lengthening the one before, though the
# client kept its pace. So the pace is judged on the mean of PACE_WINDOW consecutive gaps, which a
# late stamp moves by a tenth, allowing PACE_JITTER_SECONDS; the smallest single gap is shown too.
PACE_WINDOW = 10
PACE_JITTER_SECONDS = 0.01
# D's target: wall time at most this many times requests x interval.
D_FACTOR = 1.1

_MB = 1024 * 1024


@dataclass(frozen=True)
class Scenario:
    """One measured situation: a sandbox fleet, a range of days ending LAST_DAY, and a pace."""

    key: str
    title: str
    days: int
    members: int
    jobs_per_member: float = 8.0
    min_interval_seconds: float = 0.0
    page_size: int = 1000

    @property
    def day_keys(self) -> list[int]:
        last = _as_date(LAST_DAY)
        return [_as_key(last - timedelta(days=n)) for n in range(self.days - 1, -1, -1)]

    def describe(self) -> str:
        days = "1 day" if self.days == 1 else f"{self.days} days"
        text = f"{days}, {self.members:,} members, ~{self.jobs_per_member:g} jobs per member-day"
        if self.min_interval_seconds:
            text += f", {self.min_interval_seconds:g} s between requests"
        return text


FULL_SCENARIOS: dict[str, Scenario] = {
    "A": Scenario("A", "demo scale", days=30, members=200),
    "B": Scenario("B", "a big day", days=1, members=2000, jobs_per_member=50),
    "C": Scenario("C", "a huge day", days=1, members=10000, jobs_per_member=50),
    "D": Scenario("D", "paced", days=30, members=200, min_interval_seconds=0.5),
}
# What a run costs whatever the data: B's day for a fleet of two members. Run beside B, so that
# B's ratio to the floor can be split into a fixed part and a part that grows with the rows.
FIXED_COST = Scenario("B0", "B's fixed cost", days=1, members=2)

QUICK_SCENARIOS: dict[str, Scenario] = {
    "A": Scenario("A", "demo scale", days=7, members=50),
    "B": Scenario("B", "a big day", days=1, members=300, jobs_per_member=50),
    "C": Scenario("C", "a huge day", days=1, members=1500, jobs_per_member=50),
    "D": Scenario("D", "paced", days=7, members=50, min_interval_seconds=0.25),
}

# Metadata the assets report about where their time went, and the column each one becomes.
STAGES: tuple[tuple[str, str], ...] = (
    ("api_http_seconds", "API wait"),
    ("api_awaited_seconds", "step waited"),
    ("api_parse_seconds", "JSON decode"),
    ("api_wait_seconds", "pacing sleep"),
    ("normalize_seconds", "to Arrow"),
    ("decode_seconds", "points decode"),
    ("parquet_seconds", "Parquet"),
    ("duckdb_seconds", "DuckDB"),
)
ACTIONS = ("getjobs", "gettracks", "getaccounts", "getplaces", "getcompany", "createreport")
REPORT_TYPES = ("jobs", "mileage", "timesheet")


class BenchError(RuntimeError):
    """A part of the benchmark could not run; the message says which and shows its output."""


@dataclass
class ServerLog:
    """What the sandbox saw during one timed run."""

    requests: dict[str, int]
    rows: int
    bytes_out: int
    errors: int
    min_gap_seconds: float | None
    min_mean_gap_seconds: float | None

    @property
    def total(self) -> int:
        return sum(self.requests.values())


@dataclass
class ScenarioResult:
    """Everything measured for one scenario."""

    scenario: Scenario
    warmup_seconds: float
    floor_seconds: float
    floor_requests: dict[str, int]
    floor_rows: int
    day_by_day_requests: int | None
    pipeline_seconds: float
    pipeline_ok: bool
    failures: list[str]
    server: ServerLog
    client_requests: int
    stages: dict[str, float]
    steps: dict[str, dict[str, float]]
    events: int
    table_rows: dict[str, int]
    pipeline_peak_rss: int
    pipeline_sampled_rss: int
    pipeline_kernel_rss: int
    sandbox_peak_rss: int

    @property
    def ratio_to_floor(self) -> float:
        return self.pipeline_seconds / self.floor_seconds if self.floor_seconds else math.inf

    @property
    def rows_per_second(self) -> float:
        return self.server.rows / self.pipeline_seconds if self.pipeline_seconds else 0.0


@dataclass
class Report:
    """One run of the benchmark: when, where, and each scenario's result."""

    quick: bool
    started: datetime
    machine: dict[str, str]
    results: list[ScenarioResult] = field(default_factory=list)

    def result(self, key: str) -> ScenarioResult | None:
        return next((r for r in self.results if r.scenario.key == key), None)


# --- the command ---------------------------------------------------------------------------------


@click.command("bench")
@click.option("--quick", is_flag=True, help="Smaller fleets and fewer days: a look in minutes.")
@click.option(
    "--scenarios",
    "chosen",
    default="A,B,C,D",
    show_default=True,
    help="Scenarios to run, comma-separated (A demo, B big day, C huge day, D paced).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OUTPUT,
    show_default=True,
    help="Where to write the report (Markdown).",
)
def bench_command(quick: bool, chosen: str, output: Path) -> None:
    """Measure the sync's speed, requests and memory against a sandbox in its own process.

    Prints the tables and writes them, with the date and the machine, to OUTPUT. Nothing touches
    the configured warehouse: every run writes under a temporary directory.
    """
    catalogue = QUICK_SCENARIOS if quick else FULL_SCENARIOS
    keys = [key.strip().upper() for key in chosen.split(",") if key.strip()]
    unknown = [key for key in keys if key not in catalogue]
    if unknown or not keys:
        raise click.UsageError(
            f"--scenarios takes letters of {', '.join(catalogue)}; got {chosen!r}"
        )
    scenarios = [catalogue[key] for key in dict.fromkeys(keys)]
    if "B" in keys:
        scenarios.insert(scenarios.index(catalogue["B"]) + 1, FIXED_COST)
    try:
        report = run_benchmark(scenarios, quick=quick, echo=lambda line: click.echo(line, err=True))
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None
    text = render_markdown(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(text)
    click.echo(f"Written to {output}", err=True)


def run_benchmark(
    scenarios: Sequence[Scenario],
    *,
    quick: bool = False,
    echo: Callable[[str], None] = lambda line: None,
) -> Report:
    """Run `scenarios` one after the other and return what was measured; `echo` gets progress."""
    report = Report(quick=quick, started=datetime.now(UTC), machine=describe_machine())
    with tempfile.TemporaryDirectory(prefix="hellotracks-bench-") as tmp:
        for scenario in scenarios:
            echo(f"{scenario.key} ({scenario.title}): {scenario.describe()}")
            workdir = Path(tmp) / scenario.key
            workdir.mkdir()
            report.results.append(run_scenario(scenario, workdir, echo))
    return report


def run_scenario(scenario: Scenario, workdir: Path, echo: Callable[[str], None]) -> ScenarioResult:
    """Sandbox, floor and pipeline for one scenario, in three processes under `workdir`."""
    with _sandbox_process(scenario, workdir) as sandbox:
        floor_spec = {
            "url": sandbox.url,
            "key": SANDBOX_KEY,
            "days": scenario.day_keys,
            "page_size": scenario.page_size,
            "timezone": FLEET_TIMEZONE,
        }
        floor, _ = _run_child("floor", floor_spec, workdir, sandbox_pid=sandbox.pid)
        echo(
            f"  sandbox warmed in {floor['warmup_seconds']:.1f} s; "
            f"floor {floor['seconds']:.2f} s for {sum(floor['requests'].values())} requests"
        )
        sandbox.clear_log()
        pipeline_spec = {
            "url": sandbox.url,
            "key": SANDBOX_KEY,
            "first": scenario.day_keys[0],
            "last": scenario.day_keys[-1],
            "page_size": scenario.page_size,
            "min_interval_seconds": scenario.min_interval_seconds,
            "timezone": FLEET_TIMEZONE,
            "warehouse": str(workdir / "warehouse"),
            "dagster_home": str(workdir / "dagster_home"),
        }
        pipeline, peaks = _run_child("pipeline", pipeline_spec, workdir, sandbox_pid=sandbox.pid)
        server = sandbox.log()
    sampled = peaks["child"]
    kernel = int(pipeline["max_rss"])
    result = ScenarioResult(
        scenario=scenario,
        warmup_seconds=floor["warmup_seconds"],
        floor_seconds=floor["seconds"],
        floor_requests=floor["requests"],
        floor_rows=floor["rows"],
        day_by_day_requests=floor.get("day_by_day_requests"),
        pipeline_seconds=pipeline["seconds"],
        pipeline_ok=pipeline["success"],
        failures=pipeline["failures"],
        server=server,
        client_requests=pipeline["client_requests"],
        stages=pipeline["stages"],
        steps=pipeline["steps"],
        events=pipeline["events"],
        table_rows=pipeline["table_rows"],
        pipeline_peak_rss=max(sampled, kernel),
        pipeline_sampled_rss=sampled,
        pipeline_kernel_rss=kernel,
        sandbox_peak_rss=peaks["sandbox"],
    )
    echo(
        f"  pipeline {result.pipeline_seconds:.2f} s ({result.ratio_to_floor:.2f}x the floor), "
        f"{server.total} requests, peak {result.pipeline_peak_rss / _MB:,.0f} MB"
        + ("" if result.pipeline_ok else f"; FAILED: {'; '.join(result.failures)[:300]}")
    )
    return result


# --- targets and the report ----------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    scenario: str
    target: str
    measured: str
    met: bool | None  # None: could not be judged in this run


def judge(report: Report) -> list[Verdict]:
    """The issue's targets, each judged on this run's numbers."""
    verdicts: list[Verdict] = []
    a, b, c, d = (report.result(key) for key in "ABCD")
    if a is not None:
        minimum = sum(a.floor_requests.values())
        made = a.server.total
        day_by_day = a.day_by_day_requests
        fewer = day_by_day is None or made < day_by_day
        shown = f"{made} requests; minimum {minimum}"
        if day_by_day is not None:
            shown += f"; day by day {day_by_day}"
        verdicts.append(
            Verdict(
                "A",
                "requests = the minimum the page size allows, fewer than day by day",
                shown,
                a.pipeline_ok and made == minimum and fewer,
            )
        )
    if b is not None:
        measured = f"{b.pipeline_seconds:.2f} s vs {b.floor_seconds:.2f} s: {b.ratio_to_floor:.2f}x"
        fixed = report.result(FIXED_COST.key)
        if fixed is not None:
            growing = b.pipeline_seconds - fixed.pipeline_seconds
            measured += (
                f"; a run's fixed cost is {fixed.pipeline_seconds:.2f} s ({FIXED_COST.key}), the "
                f"rest {growing:.2f} s = {growing / b.floor_seconds:.2f}x the floor"
            )
        verdicts.append(
            Verdict(
                "B",
                "pipeline time <= 2x the floor",
                measured,
                b.pipeline_ok and b.ratio_to_floor <= 2.0,
            )
        )
    if c is not None:
        if b is None:
            verdicts.append(Verdict("C", "peak memory <= B's + 300 MB", "B was not run", None))
        else:
            grown = (c.pipeline_peak_rss - b.pipeline_peak_rss) / _MB
            verdicts.append(
                Verdict(
                    "C",
                    "peak memory <= B's + 300 MB",
                    f"{c.pipeline_peak_rss / _MB:,.0f} MB vs {b.pipeline_peak_rss / _MB:,.0f} MB:"
                    f" {grown:+,.0f} MB",
                    c.pipeline_ok and grown <= 300,
                )
            )
    if d is not None:
        interval = d.scenario.min_interval_seconds
        budget = D_FACTOR * d.server.total * interval
        mean = d.server.min_mean_gap_seconds
        held = mean is None or mean >= interval - PACE_JITTER_SECONDS
        gap_text = (
            "-"
            if mean is None
            else f"{mean:.3f} s (mean of {PACE_WINDOW}), {d.server.min_gap_seconds:.3f} s (one)"
        )
        verdicts.append(
            Verdict(
                "D",
                f"wall time <= {D_FACTOR:g} x requests x interval, pace held",
                f"{d.pipeline_seconds:.1f} s vs {D_FACTOR:g} x {d.server.total} x {interval:g} s = "
                f"{budget:.1f} s; smallest gap {gap_text}",
                d.pipeline_ok and d.pipeline_seconds <= budget and held,
            )
        )
    return verdicts


def render_markdown(report: Report) -> str:
    """The report as Markdown: targets and why they are missed, then every measured table."""
    sections = (
        _header,
        _targets,
        _throughput,
        _stages,
        _steps,
        _requests,
        _rows,
        _method,
    )
    lines: list[str] = []
    for section in sections:
        lines += section(report)
        lines.append("")
    return "\n".join(lines)


def _header(report: Report) -> list[str]:
    scale = "quick scales (`--quick`)" if report.quick else "full scales"
    machine = report.machine
    return [
        "# Benchmarks",
        "",
        f"Written by `hellotracks bench` ({scale}) on "
        f"{report.started.strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']} RAM, "
        f"{machine['system']}; {machine['software']}.",
        "",
        "The machine may be shared and noisy: read the ratios measured within this run, not the "
        "seconds across runs.",
        "",
        "## Scenarios",
        "",
        *(
            f"- **{r.scenario.key}**, {r.scenario.title}: {r.scenario.describe()}."
            for r in report.results
        ),
    ]


def _targets(report: Report) -> list[str]:
    verdicts = judge(report)
    lines = ["## Targets", ""]
    lines += _table(
        ["scenario", "target", "measured", "verdict"],
        [[v.scenario, v.target, v.measured, _verdict_text(v.met)] for v in verdicts],
        right=(),
    )
    for r in report.results:
        if not r.pipeline_ok:
            lines += ["", f"Scenario {r.scenario.key} FAILED: " + "; ".join(r.failures)]
    missed = {v.scenario for v in verdicts if v.met is False}
    reasons = [line for key in sorted(missed) for line in _why(report, key)]
    if reasons:
        lines += ["", "### Why", "", *reasons]
    return lines


# What would close the gaps the targets B and D measure: the same for every run, so stated once.
B_REMEDY = (
    "- B, what is left: the fixed cost is Dagster's own work (starting the run and its steps, "
    "each event a write of some 15 ms to the SQLite instance) and drawing the chart; the rest "
    "is converting and loading, which run one after another in the sync step's thread, in an "
    "interpreter shared with the request stream's decoding. Converting and loading listings in "
    "processes of their own (or loading one in DuckDB's threads while the next converts) would "
    "spread them over the cores; the fixed cost would have to shrink below the floor as well."
)
D_REMEDY = (
    "- D, what is left: the sync step's requests run back to back at the pace while it stores "
    "what came before, so what does not hide is what follows its last answer: storing the last "
    "dataset (tracks and their points) with its events, then the marts and the chart, which read "
    "what the sync wrote, and Dagster ending the run. Most of that is events (one "
    "materialization per table or mart and day): a faster instance storage, or fewer events per "
    "run, would shrink it."
)

# The step that makes every request of a run (`assets.sync.hellotracks_tables`).
SYNC_STEP = "hellotracks_tables"
# Steps that read what the sync step wrote, so no executor could start them before its last
# answers are in. The marts read every API table but report_jobs and report_timesheet; the chart
# reads the marts.
AFTER_THE_PACE = ("marts", "fleet_chart")


def _after_the_pace(result: ScenarioResult, paced: float) -> list[str]:
    """D's steps that must wait for the pace's last answers, against the margin the target
    leaves beyond the pace; empty when the run did not record them."""
    tail = {name: result.steps[name]["seconds"] for name in AFTER_THE_PACE if name in result.steps}
    if not tail:
        return []
    margin = (D_FACTOR - 1) * paced
    took = sum(tail.values())
    if took > margin:
        verdict = (
            f"more than the {margin:.1f} s the target leaves beyond the pace: however little "
            "the sync step did after its last answer, these would have to get cheaper too "
            "(most of the marts' time is one materialization event per mart and day)."
        )
    else:
        verdict = (
            f"within the {margin:.1f} s the target leaves beyond the pace, so it is the rest "
            "(the sync step beyond its requests, Dagster starting and ending the run) that "
            "does not hide."
        )
    return [
        f"- D: {' and '.join(tail)} read what the sync step wrote, so however the steps were "
        f"spread they follow the last answers: they took {took:.1f} s, {verdict}"
    ]


def _why(report: Report, key: str) -> list[str]:
    """What this run's numbers say about a missed target, as Markdown list items."""
    result = report.result(key)
    if result is None:
        return []
    slowest = sorted(result.steps.items(), key=lambda item: -item[1]["seconds"])[:4]
    steps = ", ".join(f"{name} {step['seconds']:.1f} s" for name, step in slowest)
    if key == "A":
        made, least = result.server.requests, result.floor_requests
        extra = {
            a: made.get(a, 0) - least.get(a, 0) for a in ACTIONS if made.get(a) != least.get(a)
        }
        return [
            f"- A: {result.server.total} requests against a minimum of "
            f"{sum(least.values())} and {result.day_by_day_requests} day by day; the difference "
            f"by action: {extra or 'none'}."
        ]
    if key == "B":
        fixed = report.result(FIXED_COST.key)
        lines = [
            f"- B: the slowest steps were {steps}. Converting records to typed Arrow columns "
            f"took {result.stages.get('normalize_seconds', 0):.1f} s by the clock (sharing the "
            "interpreter with the page fetching) and DuckDB "
            f"{result.stages.get('duckdb_seconds', 0):.1f} s, against the floor's "
            f"{result.floor_seconds:.1f} s for fetching and decoding everything."
        ]
        awaited = result.stages.get("api_awaited_seconds", 0.0)
        held = (
            "the request stream fetched ahead of it, so its own converting and loading set "
            "its pace, not the API"
            if awaited < result.floor_seconds / 2
            else "fetching held it up that long"
        )
        lines.append(f"- B: the sync step waited {awaited:.1f} s for answers in all: {held}.")
        if fixed is not None:
            alone = fixed.pipeline_seconds / result.floor_seconds
            lines.append(
                f"- B: a run costs {fixed.pipeline_seconds:.1f} s whatever its data (B0, "
                f"{fixed.events} Dagster events): {alone:.1f}x B's floor on its own."
            )
            if fixed.pipeline_seconds > result.floor_seconds:
                lines.append(
                    "- B: the pipeline has to fetch and decode what the floor does, so 2x the "
                    f"floor leaves {result.floor_seconds:.1f} s for all the rest; the fixed cost "
                    "alone is more than that, so no faster converting or loading meets B while "
                    "a run's fixed cost is above the floor."
                )
        lines.append(B_REMEDY)
        return lines
    if key == "C":
        highest = max(result.steps.items(), key=lambda item: item[1]["peak_rss"], default=None)
        where = "" if highest is None else f" The highest step was {highest[0]}."
        return [f"- C: peak {result.pipeline_peak_rss / _MB:,.0f} MB.{where} See the RSS per step."]
    if key == "D":
        paced = result.server.total * result.scenario.min_interval_seconds
        lines = [
            f"- D: {paced:.1f} s of the {result.pipeline_seconds:.1f} s are the pace "
            f"({result.server.total} requests); the other "
            f"{result.pipeline_seconds - paced:.1f} s is local work that did not overlap it. "
            f"The run wrote {result.events:,} Dagster events; the slowest steps were {steps}."
        ]
        sync = result.steps.get(SYNC_STEP)
        if sync is not None:
            lines.append(
                f"- D: the sync step took {sync['seconds']:.1f} s, "
                f"{sync['seconds'] - paced:.1f} s beyond the pace: its work before the first "
                "request and after the last answer, which nothing can hide behind."
            )
        lines += _after_the_pace(result, paced)
        outside = result.pipeline_seconds - sum(step["seconds"] for step in result.steps.values())
        lines.append(
            f"- D: Dagster starting and ending the run, outside its steps: {outside:.1f} s."
        )
        lines.append(D_REMEDY)
        return lines
    return []


def _throughput(report: Report) -> list[str]:
    results = report.results
    lines = ["## Throughput and memory", ""]
    lines += _table(
        [
            "scenario",
            "API rows",
            "requests",
            "pipeline s",
            "rows/s",
            "floor s",
            "pipeline / floor",
            "pipeline peak MB",
            "sandbox peak MB",
        ],
        [
            [
                r.scenario.key,
                f"{r.server.rows:,}",
                f"{r.server.total:,}",
                f"{r.pipeline_seconds:.2f}",
                f"{r.rows_per_second:,.0f}",
                f"{r.floor_seconds:.2f}",
                f"{r.ratio_to_floor:.2f}x",
                f"{r.pipeline_peak_rss / _MB:,.0f}",
                f"{r.sandbox_peak_rss / _MB:,.0f}",
            ]
            for r in results
        ],
    )
    figures = ", ".join(
        f"{r.scenario.key} {r.pipeline_sampled_rss / _MB:,.0f} / "
        f"{r.pipeline_kernel_rss / _MB:,.0f} MB"
        for r in results
    )
    lines += [
        "",
        "API rows: objects in list answers plus report lines, as the sandbox logged them. "
        "Pipeline peak: the process tree's resident memory sampled every "
        f"{SAMPLE_SECONDS * 1000:.0f} ms, or the kernel's high-water mark of the pipeline's "
        f"process if higher (sampled / kernel: {figures}). The sandbox's peak is its own "
        "process, measured the same way, during the pipeline run.",
    ]
    return lines


def _stages(report: Report) -> list[str]:
    lines = ["## Where the pipeline's time goes", ""]
    lines += _table(
        ["scenario", "run s", *(name for _, name in STAGES)],
        [
            [
                r.scenario.key,
                f"{r.pipeline_seconds:.2f}",
                *(f"{r.stages.get(key, 0.0):.2f}" for key, _ in STAGES),
            ]
            for r in report.results
        ],
    )
    lines += [
        "",
        "Seconds each stage took by the clock, summed over the run's assets. The sync step's "
        "request stream fetches and decodes answers in a background thread while the step "
        "converts and loads what came before, so API wait and JSON decode overlap the other "
        "stages and the columns need not add up to the run; the threads share one interpreter "
        "lock, so each stage's seconds include waiting for it. Step waited is how long the step "
        "itself waited for answers: as much of the fetching as its own work did not hide. What "
        "is left of the run is Dagster's own work (steps, events, checks), the marts and the "
        "chart.",
    ]
    return lines


def _steps(report: Report) -> list[str]:
    results = report.results
    names = sorted({name for r in results for name in r.steps})
    rows = [[name, *(_step_cell(r.steps.get(name)) for r in results)] for name in names]
    rows.append(
        ["all steps", *(_seconds(sum(s["seconds"] for s in r.steps.values())) for r in results)]
    )
    rows.append(["the run", *(_seconds(r.pipeline_seconds) for r in results)])
    rows.append(["Dagster events written", *(f"{r.events:,}" for r in results)])
    lines = ["## Seconds per step", ""]
    lines += _table(["step", *(r.scenario.key for r in results)], rows)
    lines += [
        "",
        "Seconds from each step's start to its end, from the run's event log, and the pipeline "
        "process's highest RSS sampled during the step (memory not yet returned by earlier steps "
        "included). The run's time beyond all its steps is Dagster starting and finishing it. "
        "Every event (a step starting or ending, a log line, one materialization per asset and "
        "day, one planned materialization per asset) is a write to the instance's SQLite "
        "storage.",
    ]
    return lines


def _requests(report: Report) -> list[str]:
    results = report.results
    lines = ["## Requests per action", ""]
    lines += _table(
        ["scenario", *ACTIONS, "total", "floor", "day by day", "smallest gap s", "mean of 10 s"],
        [
            [
                r.scenario.key,
                *(str(r.server.requests.get(action, 0)) for action in ACTIONS),
                str(r.server.total),
                str(sum(r.floor_requests.values())),
                "-" if r.day_by_day_requests is None else str(r.day_by_day_requests),
                _seconds(r.server.min_gap_seconds, 3),
                _seconds(r.server.min_mean_gap_seconds, 3),
            ]
            for r in results
        ],
    )
    lines += [
        "",
        "Counted in the sandbox's log. `floor` is the same listings fetched with the least "
        "requests the page size allows (pages until an empty one, as the API has no total "
        "count); `day by day` is what the same days cost as one run per day; `smallest gap` is "
        "the shortest time between two requests reaching the sandbox, `mean of 10` the shortest "
        f"mean gap over {PACE_WINDOW} requests in a row.",
    ]
    for r in results:
        if r.client_requests != r.server.total or r.server.errors:
            lines.append(
                f"Scenario {r.scenario.key}: the client counted {r.client_requests} requests, "
                f"the server {r.server.total}, of which {r.server.errors} were not answered with "
                "success."
            )
    return lines


def _rows(report: Report) -> list[str]:
    results = report.results
    names = sorted({name for r in results for name in r.table_rows})
    lines = ["## Rows per table", ""]
    lines += _table(
        ["table", *(r.scenario.key for r in results)],
        [[name, *(f"{r.table_rows.get(name, 0):,}" for r in results)] for name in names],
    )
    return lines


def _method(report: Report) -> list[str]:
    warmups = ", ".join(f"{r.scenario.key} {r.warmup_seconds:.1f} s" for r in report.results)
    return [
        "## How it was measured",
        "",
        "- Each scenario runs a sandbox fleet in its own process (seed "
        f"{FLEET_SEED}, {FLEET_TIMEZONE}, today {FLEET_TODAY}, days ending {LAST_DAY}), and the "
        "floor and the pipeline each in a fresh process, one after the other.",
        "- Before anything is timed the sandbox is warmed: the floor fetches every page once "
        "untimed, so the fleet's days are generated and the server's sorted views cached, and "
        f"both timed runs see the same server state. Warm-up: {warmups}.",
        "- The floor asks for the same listings as the pipeline (jobs per day, tracks for the "
        "window in the client's chunks of member uids, members, places, company, three reports) "
        "over one keep-alive connection with the standard library's HTTP client, decodes each "
        "answer, keeps only the member uids it needs for the tracks, and does nothing else.",
        "- The pipeline is the sync job run with `execute_in_process` against a Dagster instance "
        "and a warehouse in a temporary directory; its time runs from the job's start to its "
        "end (interpreter start-up and imports are not counted).",
        "- Memory: resident set size of each process tree, sampled from this process every "
        f"{SAMPLE_SECONDS * 1000:.0f} ms with psutil, summing each process and its children.",
    ]


def _step_cell(step: dict[str, float] | None) -> str:
    if step is None:
        return "-"
    return f"{step['seconds']:.2f} s, {step['peak_rss'] / _MB:,.0f} MB"


def _seconds(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _verdict_text(met: bool | None) -> str:
    if met is None:
        return "not judged"
    return "met" if met else "**MISSED**"


def _table(
    header: list[str], rows: list[list[str]], right: Sequence[int] | None = None
) -> list[str]:
    """A Markdown table; columns in `right` (default: all but the first) align right."""
    right = range(1, len(header)) if right is None else right
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out


def describe_machine() -> dict[str, str]:
    """CPU, cores, memory, system and the versions that matter, for the report's header."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for name in ("dagster", "duckdb", "pyarrow", "httpx", "orjson"):
        try:
            versions.append(f"{name} {package_metadata.version(name)}")
        except package_metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count() or "?"),
        "memory": f"{psutil.virtual_memory().total / 1024**3:.0f} GB",
        "system": f"{platform.system()} {platform.release()}",
        "software": f"Python {platform.python_version()}, " + ", ".join(versions),
    }


# --- processes -----------------------------------------------------------------------------------


class _Sandbox:
    """The parent's handle on a sandbox child: its URL, and commands over its stdin and stdout."""

    def __init__(self, process: subprocess.Popen, url: str) -> None:
        self.process = process
        self.url = url

    @property
    def pid(self) -> int:
        return self.process.pid

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise BenchError(f"the sandbox stopped answering (asked {command!r})")
        return json.loads(line)

    def clear_log(self) -> None:
        self._ask("clear")

    def log(self) -> ServerLog:
        return ServerLog(**self._ask("log"))


@contextmanager
def _sandbox_process(scenario: Scenario, workdir: Path) -> Iterator[_Sandbox]:
    spec = {
        "seed": FLEET_SEED,
        "members": scenario.members,
        "jobs_per_member": scenario.jobs_per_member,
        "today": FLEET_TODAY,
        "timezone": FLEET_TIMEZONE,
    }
    spec_path = workdir / "sandbox.json"
    spec_path.write_text(json.dumps(spec))
    stderr_path = workdir / "sandbox.stderr"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.bench", "sandbox", str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=_child_env(),
            cwd=PROJECT_ROOT,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=30)
            raise BenchError("the sandbox did not start:\n" + _tail(stderr_path))
        yield _Sandbox(process, json.loads(line)["url"])
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run_child(
    role: str, spec: dict[str, Any], workdir: Path, *, sandbox_pid: int
) -> tuple[dict[str, Any], dict[str, int]]:
    """Run one measured child to its end; returns its result and the peak RSS of each tree."""
    spec_path = workdir / f"{role}.json"
    result_path = workdir / f"{role}.result.json"
    stderr_path = workdir / f"{role}.stderr"
    spec_path.write_text(json.dumps({**spec, "result": str(result_path)}))
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.bench", role, str(spec_path)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=_child_env(),
            cwd=PROJECT_ROOT,
        )
        with PeakSampler({"child": process.pid, "sandbox": sandbox_pid}) as sampler:
            try:
                code = process.wait(timeout=CHILD_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise BenchError(
                    f"the {role} run took over {CHILD_TIMEOUT_SECONDS:.0f} s"
                ) from None
    if code != 0 or not result_path.exists():
        raise BenchError(f"the {role} run failed (exit code {code}):\n" + _tail(stderr_path))
    return json.loads(result_path.read_text()), sampler.peaks


def _child_env() -> dict[str, str]:
    # The children take their settings from their spec, never from the user's environment.
    return {k: v for k, v in os.environ.items() if not k.startswith("HELLOTRACKS_")}


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


class _Sampler:
    """Calls `sample` in a thread at once and then every `interval` seconds, while the `with`
    block runs."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return


class PeakSampler(_Sampler):
    """Samples the resident memory of process trees in a thread and keeps each tree's peak.

    A tree is a process and all its descendants at the moment of the sample; their RSS is summed.
    A process that has ended counts as zero. Peaks are in bytes, by the name given to each root.
    """

    def __init__(self, roots: dict[str, int], interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(interval)
        self.processes = {name: _process(pid) for name, pid in roots.items()}
        self.peaks = dict.fromkeys(roots, 0)

    def sample(self) -> None:
        for name, process in self.processes.items():
            self.peaks[name] = max(self.peaks[name], tree_rss(process))


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def tree_rss(process: psutil.Process | None) -> int:
    """The summed RSS of `process` and its descendants, in bytes; 0 once it has ended."""
    if process is None:
        return 0
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


# --- child: the sandbox --------------------------------------------------------------------------


def _serve_sandbox(spec: dict[str, Any]) -> None:
    """Serve the fleet of `spec`; answer `clear` and `log` on stdin until it closes."""
    from sandbox.fleet import Fleet
    from sandbox.server import SandboxServer

    fleet = Fleet(
        spec["seed"],
        spec["members"],
        timezone=spec["timezone"],
        today=spec["today"],
        jobs_per_member=spec["jobs_per_member"],
    )
    with SandboxServer(fleet, api_key=SANDBOX_KEY) as server:
        _reply({"url": server.url})
        for line in sys.stdin:
            command = line.strip()
            if command == "clear":
                server.clear_log()
                _reply({})
            elif command == "log":
                _reply(_summarize(server.requests()))
            else:
                _reply({"error": f"unknown command {command!r}"})


def _summarize(records: Sequence[Any]) -> dict[str, Any]:
    arrivals = sorted(record.time for record in records)
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    return {
        "requests": dict(Counter(record.action for record in records)),
        "rows": sum(record.rows or 0 for record in records),
        "bytes_out": sum(record.bytes_out for record in records),
        "errors": sum(
            record.http_status != 200 or record.status not in (0, None) for record in records
        ),
        "min_gap_seconds": min(gaps) if gaps else None,
        "min_mean_gap_seconds": smallest_mean(gaps, PACE_WINDOW),
    }


def smallest_mean(values: Sequence[float], window: int) -> float | None:
    """The smallest mean of `window` consecutive values (of all of them, if fewer); None if none."""
    if not values:
        return None
    width = min(window, len(values))
    return min(
        sum(values[start : start + width]) / width for start in range(len(values) - width + 1)
    )


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# --- child: the floor ----------------------------------------------------------------------------


class PlainFetcher:
    """The floor's client: `http.client` over one keep-alive connection, decoding every answer.

    It asks for the listings a sync of some days needs, paged as the pipeline pages them, and
    keeps nothing but the member uids the tracks are asked for with. `requests` counts by action.
    """

    def __init__(self, url: str, key: str, page_size: int, uids_per_request: int) -> None:
        parts = urlsplit(url)
        self.path = parts.path.rstrip("/")
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
        self.headers = {"Content-Type": "application/json", "API-Key": key}
        self.page_size = page_size
        self.uids_per_request = uids_per_request
        self.requests: Counter[str] = Counter()
        self.rows = 0

    def close(self) -> None:
        self.connection.close()

    def post(self, action: str, data: dict[str, Any]) -> bytes:
        body = orjson.dumps({"data": data, "ver": 2})
        self.connection.request("POST", f"{self.path}/{action}", body=body, headers=self.headers)
        response = self.connection.getresponse()
        content = response.read()
        self.requests[action] += 1
        if response.status != 200:
            raise BenchError(f"the floor's {action} got HTTP {response.status}")
        return content

    def envelope(self, action: str, data: dict[str, Any]) -> dict[str, Any]:
        answer = orjson.loads(self.post(action, data))
        if answer.get("status") != 0:
            raise BenchError(f"the floor's {action} got status {answer.get('status')}")
        return answer

    def listing(
        self, action: str, list_key: str, sort: str, data: dict[str, Any], keep: str | None = None
    ) -> set[str]:
        """Every page of one listing until an empty one; the values of field `keep` seen."""
        kept: set[str] = set()
        skip = 0
        while True:
            page = self.envelope(
                action, {**data, "sort": sort, "limit": self.page_size, "skip": skip}
            )[list_key]
            if not page:
                return kept
            self.rows += len(page)
            skip += len(page)
            if keep is not None:
                kept.update(row[keep] for row in page if row.get(keep))

    def sync(self, days: Sequence[int], timezone: str) -> None:
        """Fetch what a sync of `days` as one run fetches."""
        members = self.listing("getaccounts", "accounts", "uid", {}, keep="uid")
        self.listing("getplaces", "places", "uid", {})
        self.envelope("getcompany", {})
        workers: set[str] = set()
        for day in days:
            workers |= self.listing(
                "getjobs", "jobs", "id", {"day": day, "worker": "*"}, keep="receiverUid"
            )
        uids = sorted(members | workers)
        start, until = window_ms(days, timezone)
        for first in range(0, len(uids), self.uids_per_request):
            chunk = uids[first : first + self.uids_per_request]
            self.listing(
                "gettracks", "tracks", "id", {"from": start, "until": until, "uids": chunk}
            )
        for reporttype in REPORT_TYPES:
            content = self.post(
                "createreport",
                {"reporttype": reporttype, "format": "csv", "from": days[0], "until": days[-1]},
            )
            self.rows += max(0, len(list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))) - 1)


def window_ms(days: Sequence[int], timezone: str) -> tuple[int, int]:
    """From local midnight of the first of `days` to local midnight after the last, in ms."""
    zone = ZoneInfo(timezone)
    first = _as_date(min(days))
    after = _as_date(max(days)) + timedelta(days=1)
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    end = datetime(after.year, after.month, after.day, tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def _client_uids_per_request() -> int:
    # The floor chunks the member uids exactly as the client does, so both ask for the same pages.
    from resources.hellotracks import HellotracksClient

    return inspect.signature(HellotracksClient).parameters["uids_per_request"].default


def _run_floor(spec: dict[str, Any]) -> dict[str, Any]:
    days: list[int] = spec["days"]
    uids_per_request = _client_uids_per_request()

    def fetcher() -> PlainFetcher:
        return PlainFetcher(spec["url"], spec["key"], spec["page_size"], uids_per_request)

    started = time.perf_counter()
    warm = fetcher()
    warm.sync(days, spec["timezone"])
    warm.close()
    warmup_seconds = time.perf_counter() - started

    day_by_day = None
    if len(days) > 1:
        single = fetcher()
        for day in days:
            single.sync([day], spec["timezone"])
        single.close()
        day_by_day = sum(single.requests.values())

    timed = fetcher()
    started = time.perf_counter()
    timed.sync(days, spec["timezone"])
    seconds = time.perf_counter() - started
    timed.close()
    return {
        "warmup_seconds": warmup_seconds,
        "seconds": seconds,
        "requests": dict(timed.requests),
        "rows": timed.rows,
        "day_by_day_requests": day_by_day,
    }


# --- child: the pipeline -------------------------------------------------------------------------


def _run_pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    # The definitions read their settings when imported, so the environment comes first.
    os.environ.update(
        {
            "HELLOTRACKS_BASE_URL": spec["url"],
            "HELLOTRACKS_API_KEY": spec["key"],
            "HELLOTRACKS_TIMEZONE": spec["timezone"],
            "HELLOTRACKS_START_DAY": str(min(spec["first"], 20240101)),
            "HELLOTRACKS_WAREHOUSE_DIR": spec["warehouse"],
            "HELLOTRACKS_MIN_INTERVAL": str(spec["min_interval_seconds"]),
            "HELLOTRACKS_PAGE_SIZE": str(spec["page_size"]),
            "DAGSTER_HOME": spec["dagster_home"],
        }
    )
    import resource

    import duckdb
    from dagster import DagsterEventType, DagsterInstance

    from pipelines.cli import ensure_instance
    from pipelines.definitions import defs
    from pipelines.jobs import SYNC_JOB_NAME
    from pipelines.schedules import range_tags

    ensure_instance()
    instance = DagsterInstance.get()
    job = defs.resolve_job_def(SYNC_JOB_NAME)
    with MemoryTimeline() as timeline:
        started = time.perf_counter()
        result = job.execute_in_process(
            instance=instance,
            tags=range_tags(str(spec["first"]), str(spec["last"])),
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            raise_on_error=False,
        )
        seconds = time.perf_counter() - started

    # In a range run every day carries a copy of its asset's metadata: one per asset counts.
    per_asset: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        name = event.asset_key.to_user_string()
        if name not in per_asset:
            metadata = event.step_materialization_data.materialization.metadata
            per_asset[name] = {k: getattr(v, "value", v) for k, v in metadata.items()}
    stages = {
        key: round(sum(float(m.get(key, 0) or 0) for m in per_asset.values()), 3)
        for key, _ in STAGES
    }
    failures = [
        f"{event.step_key}: {_last_line(event.step_failure_data.error)}"
        for event in result.get_step_failure_events()
    ]
    step_starts: dict[str, float] = {}
    steps: dict[str, dict[str, float]] = {}
    for entry in instance.all_logs(
        result.run_id,
        of_type={
            DagsterEventType.STEP_START,
            DagsterEventType.STEP_SUCCESS,
            DagsterEventType.STEP_FAILURE,
        },
    ):
        if entry.step_key is None or entry.dagster_event is None:
            continue
        if entry.dagster_event.event_type == DagsterEventType.STEP_START:
            step_starts[entry.step_key] = entry.timestamp
        elif entry.step_key in step_starts:
            begun = step_starts[entry.step_key]
            steps[entry.step_key] = {
                "seconds": round(entry.timestamp - begun, 3),
                "peak_rss": timeline.peak(begun, entry.timestamp),
            }
    table_rows: dict[str, int] = {}
    database = Path(spec["warehouse"]) / "hellotracks.duckdb"
    if database.exists():
        con = duckdb.connect(str(database), read_only=True)
        try:
            names = [row[0] for row in con.execute("SHOW TABLES").fetchall()]
            for name in names:
                if not name.startswith("_"):
                    table_rows[name] = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        finally:
            con.close()
    return {
        "seconds": seconds,
        "success": result.success,
        "failures": failures,
        "client_requests": int(sum(int(m.get("api_requests", 0) or 0) for m in per_asset.values())),
        "stages": stages,
        "steps": steps,
        "events": len(instance.all_logs(result.run_id)),
        "table_rows": table_rows,
        # Linux reports ru_maxrss in KiB.
        "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


class MemoryTimeline(_Sampler):
    """This process's RSS sampled in a thread, so each step's peak can be read afterwards."""

    def __init__(self, interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(interval)
        self.samples: list[tuple[float, int]] = []
        self._me = psutil.Process()

    def sample(self) -> None:
        self.samples.append((time.time(), self._me.memory_info().rss))

    def peak(self, start: float, end: float) -> int:
        """The highest sample from `start` to `end` (epoch seconds), or the last one before."""
        inside = [rss for at, rss in self.samples if start <= at <= end]
        before = [rss for at, rss in self.samples if at < start][-1:]
        return max(inside or before or [0])


def _last_line(error: Any) -> str:
    if error is None:
        return "unknown error"
    lines = str(error.message).strip().splitlines()
    return lines[-1] if lines else "unknown error"


# --- small helpers -------------------------------------------------------------------------------


def _as_date(day: int) -> date:
    return date(day // 10000, day // 100 % 100, day % 100)


def _as_key(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def _child_main(argv: Sequence[str]) -> None:
    role, spec_path = argv
    spec = json.loads(Path(spec_path).read_text())
    if role == "sandbox":
        _serve_sandbox(spec)
        return
    runs = {"floor": _run_floor, "pipeline": _run_pipeline}
    outcome = runs[role](spec)
    Path(spec["result"]).write_text(json.dumps(outcome))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
