"""`hellotracks bench` at a tiny scale: the machinery runs end to end and reports a sane table.

One run of the command (sandbox, floor and pipeline each in their own process) on a fleet of four
members over two days, paced lightly; the first tests read what it wrote. Timings are never
asserted, only what a bug in the measuring would break: counts, consistency, the shape of the
tables. The last tests judge set numbers against the targets, without running anything.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from pipelines import bench
from sandbox.fleet import Fleet

# One worker runs the whole module, so the run below happens once (`make test` uses loadgroup).
pytestmark = pytest.mark.xdist_group("bench")

TINY = bench.Scenario("A", "tiny", days=2, members=4, min_interval_seconds=0.05)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> str:
    """The report the command wrote for the tiny scenario, run through the command line."""
    output = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(bench.QUICK_SCENARIOS, "A", TINY)
        result = CliRunner().invoke(
            bench.bench_command, ["--quick", "--scenarios", "a", "--output", str(output)]
        )
    assert result.exit_code == 0, result.output
    text = output.read_text()
    assert text in result.output  # printed as written
    return text


def tables(text: str) -> dict[str, list[list[str]]]:
    """Each Markdown table of the report by the heading above it, as rows of cells."""
    found: dict[str, list[list[str]]] = {}
    heading = ""
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif line.startswith("|"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            found.setdefault(heading, []).append(cells)
    return found


def as_number(cell: str) -> float:
    return float(cell.rstrip("x").replace(",", ""))


def test_every_table_is_well_formed(written: str) -> None:
    found = tables(written)
    assert set(found) >= {
        "Targets",
        "Throughput and memory",
        "Where the pipeline's time goes",
        "Seconds per step",
        "Requests per action",
        "Rows per table",
    }
    for heading, rows in found.items():
        header, rule, *body = rows
        assert body, heading
        assert all(set(cell) <= set("-:") for cell in rule), heading
        assert {len(row) for row in rows} == {len(header)}, heading


def test_the_header_names_the_date_and_the_machine(written: str) -> None:
    assert re.search(r"on \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", written)
    assert re.search(r"Machine: .+, \d+ cores, \d+ GB RAM", written)
    assert "warmed" in written


def test_requests_are_the_minimum_and_fewer_than_day_by_day(written: str) -> None:
    header, _, row = tables(written)["Requests per action"]
    cells = dict(zip(header, row, strict=True))
    per_action = sum(int(cells[action]) for action in bench.ACTIONS)
    assert per_action == int(cells["total"]) == int(cells["floor"])
    assert int(cells["total"]) < int(cells["day by day"])
    # Two days: one getjobs listing each, ended by an empty page.
    assert int(cells["getjobs"]) >= 4
    assert int(cells["createreport"]) == len(bench.REPORT_TYPES)
    # The pace was held: requests reached the sandbox no faster than the interval allows.
    assert float(cells["mean of 10 s"]) >= TINY.min_interval_seconds - bench.PACE_JITTER_SECONDS
    assert 0 < float(cells["smallest gap s"]) <= float(cells["mean of 10 s"])
    (target,) = tables(written)["Targets"][2:]
    assert target[0] == "A" and target[-1] == "met"


def test_rows_match_the_fleet_and_resources_were_measured(written: str) -> None:
    fleet = Fleet(
        bench.FLEET_SEED,
        TINY.members,
        timezone=bench.FLEET_TIMEZONE,
        today=bench.FLEET_TODAY,
        jobs_per_member=TINY.jobs_per_member,
    )
    jobs = sum(len(fleet.jobs(day)) for day in TINY.day_keys)
    rows = {row[0]: as_number(row[1]) for row in tables(written)["Rows per table"][2:]}
    assert jobs > 0 and rows["jobs"] == jobs == rows["report_jobs"]

    header, _, row = tables(written)["Throughput and memory"]
    cells = dict(zip(header, row, strict=True))
    assert as_number(cells["pipeline s"]) > 0 and as_number(cells["floor s"]) > 0
    # The pipeline process imports Dagster: anything under 50 MB means nothing was measured.
    assert as_number(cells["pipeline peak MB"]) > 50
    assert as_number(cells["sandbox peak MB"]) > 10
    assert as_number(cells["API rows"]) >= jobs


def test_a_scenario_letter_outside_the_catalogue_is_refused() -> None:
    result = CliRunner().invoke(bench.bench_command, ["--scenarios", "A,E"])
    assert result.exit_code != 0
    assert "--scenarios" in result.output


def measured(scenario: bench.Scenario, **numbers) -> bench.ScenarioResult:
    """A result as a run would report it, with the numbers a test sets."""
    server = bench.ServerLog(
        requests=numbers.pop("requests", {"getjobs": 3}),
        rows=1000,
        bytes_out=1,
        errors=0,
        min_gap_seconds=numbers.pop("gap", 1.0),
        min_mean_gap_seconds=numbers.pop("mean_gap", 1.0),
    )
    values = {
        "warmup_seconds": 1.0,
        "floor_seconds": 1.0,
        "floor_requests": dict(server.requests),
        "floor_rows": 1000,
        "day_by_day_requests": None,
        "pipeline_seconds": 1.5,
        "pipeline_ok": True,
        "failures": [],
        "client_requests": server.total,
        "stages": {},
        "steps": {"jobs": {"seconds": 1.0, "peak_rss": 100 * 2**20}},
        "events": 10,
        "table_rows": {"jobs": 10},
        "pipeline_peak_rss": 400 * 2**20,
        "pipeline_sampled_rss": 400 * 2**20,
        "pipeline_kernel_rss": 390 * 2**20,
        "sandbox_peak_rss": 100 * 2**20,
    }
    return bench.ScenarioResult(scenario=scenario, server=server, **(values | numbers))


# Each case: the scenarios' numbers, and the verdict each target must get.
JUDGED = [
    # Everything within its target.
    (
        {
            "A": {"day_by_day_requests": 10},
            "B": {"pipeline_seconds": 1.9},
            "C": {"pipeline_peak_rss": 690 * 2**20},
            "D": {"pipeline_seconds": 3.2, "requests": {"getjobs": 6}, "mean_gap": 0.5},
        },
        {"A": "met", "B": "met", "C": "met", "D": "met"},
    ),
    # One request more than the floor; over 2x the floor; 301 MB above B; over 1.1 x 6 x 0.5 s.
    (
        {
            "A": {"floor_requests": {"getjobs": 2}, "day_by_day_requests": 10},
            "B": {"pipeline_seconds": 2.1},
            "C": {"pipeline_peak_rss": 701 * 2**20},
            "D": {"pipeline_seconds": 3.4, "requests": {"getjobs": 6}, "mean_gap": 0.5},
        },
        {"A": "**MISSED**", "B": "**MISSED**", "C": "**MISSED**", "D": "**MISSED**"},
    ),
    # In time, but requests came faster than the interval allows.
    (
        {"D": {"pipeline_seconds": 3.0, "requests": {"getjobs": 6}, "gap": 0.3, "mean_gap": 0.4}},
        {"D": "**MISSED**"},
    ),
    # One late arrival stamp shortened one gap; ten in a row still keep the pace.
    (
        {
            "D": {
                "pipeline_seconds": 3.0,
                "requests": {"getjobs": 6},
                "gap": 0.45,
                "mean_gap": 0.495,
            }
        },
        {"D": "met"},
    ),
    # The minimum, but no fewer than the same days one at a time.
    ({"A": {"day_by_day_requests": 3}}, {"A": "**MISSED**"}),
    # C alone: there is no B to compare with.
    ({"C": {}}, {"C": "not judged"}),
]


@pytest.mark.parametrize(("numbers", "verdicts"), JUDGED)
def test_targets_are_judged_on_the_measured_numbers(numbers, verdicts) -> None:
    report = bench.Report(quick=False, started=datetime.now(UTC), machine={})
    for key, values in numbers.items():
        report.results.append(measured(bench.FULL_SCENARIOS[key], **values))
    assert {v.scenario: bench._verdict_text(v.met) for v in bench.judge(report)} == verdicts


def test_a_missed_target_is_explained_under_the_table() -> None:
    report = bench.Report(quick=False, started=datetime.now(UTC), machine={})
    report.results.append(
        measured(bench.FULL_SCENARIOS["D"], pipeline_seconds=9.0, requests={"getjobs": 6})
    )
    text = "\n".join(bench._targets(report))
    assert "**MISSED**" in text
    # 6 requests at 0.5 s are 3 s of pace; the other 6 s did not overlap it.
    assert "3.0 s of the 9.0 s are the pace" in text and "the other 6.0 s" in text
    # The run recorded no sync, marts or chart step, so nothing is said about them.
    assert "follow the last answers" not in text and "the sync step took" not in text


@pytest.mark.parametrize(
    ("marts", "chart", "said"),
    [
        # 6 requests at 0.5 s leave a margin of 0.3 s beyond the 3 s pace: the marts alone fit
        # it; with the chart they overrun it.
        (
            0.2,
            None,
            "they took 0.2 s, within the 0.3 s the target leaves beyond the pace, so "
            "it is the rest (the sync step beyond its requests",
        ),
        (
            0.25,
            0.15,
            "they took 0.4 s, more than the 0.3 s the target leaves beyond the pace: "
            "however little the sync step did after its last answer",
        ),
    ],
)
def test_the_steps_after_the_pace_are_weighed_against_the_margin(marts, chart, said) -> None:
    steps = {
        "hellotracks_tables": {"seconds": 3.1, "peak_rss": 1},
        "marts": {"seconds": marts, "peak_rss": 1},
    }
    if chart is not None:
        steps["fleet_chart"] = {"seconds": chart, "peak_rss": 1}
    report = bench.Report(quick=False, started=datetime.now(UTC), machine={})
    report.results.append(
        measured(
            bench.FULL_SCENARIOS["D"], pipeline_seconds=4.0, requests={"getjobs": 6}, steps=steps
        )
    )
    text = "\n".join(bench._targets(report))
    assert said in text
    assert ("marts and fleet_chart read" in text) == (chart is not None)
    # 3.1 s of sync step for 3 s of pace; what the steps leave of the 4 s run is Dagster's.
    assert "the sync step took 3.1 s, 0.1 s beyond the pace" in text
    outside = 4.0 - 3.1 - marts - (chart or 0)
    assert f"Dagster starting and ending the run, outside its steps: {outside:.1f} s" in text


def test_the_pace_is_judged_on_runs_of_gaps() -> None:
    # A late stamp: one gap short, the one before long by as much.
    gaps = [0.5] * 9 + [0.56, 0.44] + [0.5] * 9
    assert bench.smallest_mean(gaps, 10) == pytest.approx(0.494)
    assert bench.smallest_mean([0.2, 0.3], 10) == pytest.approx(0.25)
    assert bench.smallest_mean([], 10) is None


@pytest.mark.parametrize(("fixed", "said"), [(1.2, True), (0.8, False)])
def test_a_fixed_cost_above_the_floor_is_named_as_what_rules_b_out(fixed, said) -> None:
    report = bench.Report(quick=False, started=datetime.now(UTC), machine={})
    report.results.append(measured(bench.FULL_SCENARIOS["B"], pipeline_seconds=3.0))
    report.results.append(measured(bench.FIXED_COST, pipeline_seconds=fixed))
    text = "\n".join(bench._targets(report))
    assert "a run costs" in text
    # The floor is 1 s: 2x it leaves 1 s beyond fetching and decoding.
    assert ("no faster converting or loading meets B" in text) == said


@pytest.mark.parametrize(
    ("awaited", "said"),
    [(0.1, "the request stream fetched ahead of it"), (0.6, "fetching held it up that long")],
)
def test_b_says_whether_the_sync_step_waited_for_the_api(awaited, said) -> None:
    report = bench.Report(quick=False, started=datetime.now(UTC), machine={})
    report.results.append(
        measured(
            bench.FULL_SCENARIOS["B"],
            pipeline_seconds=3.0,
            stages={"api_awaited_seconds": awaited},
        )
    )
    text = "\n".join(bench._targets(report))
    # Against a floor of 1 s: under half of it is the API keeping up, over half is not.
    assert f"the sync step waited {awaited:.1f} s for answers in all: {said}" in text
