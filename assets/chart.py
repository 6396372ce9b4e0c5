"""`fleet_chart`: one picture of the fleet over the latest days the marts hold.

Four panels: jobs done per day, the on-time rate per day, kilometres driven per day, and the
workers with the most jobs done over the period. Drawn with matplotlib's Agg canvas directly (no
pyplot), so it needs no display and keeps no global figure state between runs.
"""

import base64
import io
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
from dagster import (
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from resources.warehouse import WarehouseResource

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CHART_DAYS = 30
TOP_WORKERS = 10
CHART_FILE = Path("charts") / "fleet.png"

_LATEST_DAYS = """
SELECT day FROM (SELECT day FROM job_timeline UNION SELECT day FROM worker_day)
ORDER BY day DESC LIMIT ?
"""
_JOBS_PER_DAY = """
SELECT
    day,
    count(*) FILTER (WHERE done_outcome = 'success') AS jobs_done,
    count(*) FILTER (WHERE on_time) / nullif(count(on_time), 0) AS on_time_rate
FROM job_timeline WHERE day IN (SELECT unnest(?)) GROUP BY day
"""
_KM_PER_DAY = """
SELECT day, sum(km_driven) FROM worker_day WHERE day IN (SELECT unnest(?)) GROUP BY day
"""
_BUSIEST = """
SELECT any_value(coalesce(member_name, member_uid)) AS name, sum(jobs_done)::BIGINT AS done
FROM worker_day WHERE day IN (SELECT unnest(?))
GROUP BY member_uid HAVING sum(jobs_done) > 0
ORDER BY done DESC, name LIMIT ?
"""


@dataclass(frozen=True)
class FleetSeries:
    """What the chart shows: per-day series over `days` (oldest first) and the busiest workers.

    A day without jobs has 0 jobs done and no on-time rate (None), not a rate of 0.
    """

    days: list[int]
    jobs_done: list[int]
    on_time_rate: list[float | None]
    km_driven: list[float]
    busiest: list[tuple[str, int]]


def read_fleet_series(con: duckdb.DuckDBPyConnection, limit: int = CHART_DAYS) -> FleetSeries:
    """The chart's data: the latest `limit` days that have rows in `job_timeline` or `worker_day`.

    Raises `duckdb.CatalogException` when the marts were never built.
    """
    days = sorted(row[0] for row in con.execute(_LATEST_DAYS, [limit]).fetchall())
    jobs = {day: (done, rate) for day, done, rate in con.execute(_JOBS_PER_DAY, [days]).fetchall()}
    km = dict(con.execute(_KM_PER_DAY, [days]).fetchall())
    busiest = [(name, done) for name, done in con.execute(_BUSIEST, [days, TOP_WORKERS]).fetchall()]
    return FleetSeries(
        days=days,
        jobs_done=[jobs.get(day, (0, None))[0] for day in days],
        on_time_rate=[jobs.get(day, (0, None))[1] for day in days],
        km_driven=[float(km.get(day) or 0.0) for day in days],
        busiest=busiest,
    )


def render_fleet_chart(series: FleetSeries) -> bytes:
    """The chart as PNG bytes; with no days at all, a frame that says so."""
    # Imported here: matplotlib costs seconds to load, and every command loads the definitions.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 8), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    if not series.days:
        figure.text(0.5, 0.5, "No days built in the marts yet", ha="center", va="center")
        return _png(figure)

    labels = [datetime.strptime(str(day), "%Y%m%d").strftime("%a %d %b") for day in series.days]
    positions = list(range(len(series.days)))
    step = max(1, len(positions) // 10)  # at most about ten labels on an axis
    done_ax, rate_ax, km_ax, top_ax = figure.subplots(2, 2).flat

    done_ax.bar(positions, series.jobs_done, color="#1e88e5")
    done_ax.set_title("Jobs done per day")

    rates = [float("nan") if r is None else 100 * r for r in series.on_time_rate]
    rate_ax.plot(positions, rates, marker="o", color="#00897b")
    rate_ax.set_ylim(0, 105)
    rate_ax.set_ylabel("%")
    rate_ax.set_title("Arrivals on time (jobs with a time window)")

    km_ax.bar(positions, series.km_driven, color="#fb8c00")
    km_ax.set_ylabel("km")
    km_ax.set_title("Kilometres driven per day")

    for ax in (done_ax, rate_ax, km_ax):
        ax.set_xticks(positions[::step], labels[::step], rotation=45, ha="right")
        ax.grid(axis="y", alpha=0.3)

    if series.busiest:
        names = [name for name, _ in reversed(series.busiest)]
        top_ax.barh(names, [done for _, done in reversed(series.busiest)], color="#8e24aa")
    else:
        top_ax.text(0.5, 0.5, "No jobs done", ha="center", va="center")
    top_ax.set_title(f"Busiest workers (jobs done, top {TOP_WORKERS})")

    first, last = labels[0], labels[-1]
    figure.suptitle(f"Fleet over {len(series.days)} day(s): {first} to {last}")
    return _png(figure)


def _png(figure: "Figure") -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_atomically(path: Path, data: bytes) -> Path:
    """Write `data` beside `path` and rename it over `path`: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# Not partitioned: the picture is of the warehouse as it is, whatever days a run synced, so a run
# draws it once (a daily chart asset would store a copy of the picture on each day of a range).
@asset(
    deps=["job_timeline", "worker_day"],
    group_name="marts",
    kinds={"duckdb", "matplotlib"},
)
def fleet_chart(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """A PNG of the latest days in the marts (up to 30), written to `charts/fleet.png`.

    The picture covers the latest days the marts hold, whatever days the run rebuilt, so the
    file always shows the warehouse as it is now.
    """
    with warehouse.connect(read_only=True) as con:
        series = read_fleet_series(con)

    png = render_fleet_chart(series)
    path = write_atomically(warehouse.root / CHART_FILE, png)

    span = f"{series.days[0]}..{series.days[-1]} ({len(series.days)})" if series.days else "none"
    context.log.info(f"fleet_chart: drew {span} into {path} ({len(png)} bytes)")
    # About 130 KB of base64 in the event log per run, so the UI shows the picture itself.
    image = base64.b64encode(png).decode("ascii")
    return MaterializeResult(
        metadata={
            "chart": MetadataValue.md(f"![Fleet chart](data:image/png;base64,{image})"),
            "path": MetadataValue.path(str(path)),
            "days": MetadataValue.text(span),
            "png_bytes": len(png),
        }
    )
