"""`hellotracks`: the command line for syncs, backfills, SQL and the local sandbox.

Syncs run through the Dagster instance under DAGSTER_HOME, so a run started here shows up in the
UI like one started there. Settings come from the environment (see pipelines/settings.py); they
are read when a command runs, which is why the Dagster definitions are imported late.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from pipelines.settings import SettingsError, load_settings, parse_day

if TYPE_CHECKING:
    from dagster import DagsterInstance

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DAGSTER_HOME = PROJECT_ROOT / ".dagster_home"

# What the local instance needs beyond Dagster's defaults: one API step at a time across runs.
_INSTANCE_YAML = """\
# Written by `hellotracks` for the local instance; edit freely.
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""

# Dagster switches for the processes that create runs here (a sync, and `dagster dev` started by
# `hellotracks dev`, whose webserver and daemon inherit them). An explicit value in the
# environment wins.
#
# DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS: a range run announces each asset's days in one
# "planned" event instead of one per asset and day. On the default SQLite storage each event is a
# write of some 20 ms, so a 30-day sync spent 12 s announcing itself and a year would spend two
# minutes. The cost, as Dagster documents it: when a range run fails, its days show as missing in
# the UI rather than failed (the run itself shows as failed, and `hellotracks status` lists them).
DAGSTER_ENVIRONMENT = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}


# Tags naming the process that runs a sync started here, so that a later sync can tell a run
# whose process died (killed, out of memory, a reboot) from one still going.
_PID_TAG = "hellotracks/pid"
_HOST_TAG = "hellotracks/host"
_PROCESS_STARTED_TAG = "hellotracks/process_started"


def main() -> None:
    cli(prog_name="hellotracks")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Sync Hellotracks data into Parquet and DuckDB, and query it."""


def _settings_or_exit():
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def ensure_instance() -> Path:
    """Point DAGSTER_HOME at the project's instance unless set, and give it its dagster.yaml.

    Also sets `DAGSTER_ENVIRONMENT` where the environment does not say otherwise.
    """
    for name, value in DAGSTER_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(DEFAULT_DAGSTER_HOME)))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        # Written beside and renamed, so a sync starting at the same moment never reads it half.
        partial = home / f".dagster.yaml.{os.getpid()}.tmp"
        partial.write_text(_INSTANCE_YAML)
        os.replace(partial, config)
    return home


def day_range(first: int, last: int) -> list[int]:
    start = datetime.strptime(str(first), "%Y%m%d").date()
    end = datetime.strptime(str(last), "%Y%m%d").date()
    return [
        int((start + timedelta(days=i)).strftime("%Y%m%d")) for i in range((end - start).days + 1)
    ]


def _check_range(first: int, last: int, settings) -> None:
    today = int(datetime.now(ZoneInfo(settings.timezone)).strftime("%Y%m%d"))
    if first > last:
        raise click.UsageError(f"--from {first} is after --to {last}")
    if first < settings.start_day:
        raise click.UsageError(
            f"--from {first} is before the first day partition {settings.start_day} "
            "(set HELLOTRACKS_START_DAY to go further back)"
        )
    if last > today:
        raise click.UsageError(
            f"--to {last} is in the future ({settings.timezone} today is {today})"
        )


@cli.command()
@click.option("--from", "first", required=True, help="First day, YYYYMMDD.")
@click.option("--to", "last", required=True, help="Last day, YYYYMMDD (included).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sync(first: str, last: str, quiet: bool) -> None:
    """Sync the days FROM..TO (a backfill) as one run of the Dagster instance."""
    try:
        first_day, last_day = parse_day(first, "--from"), parse_day(last, "--to")
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    settings = _settings_or_exit()
    if not os.environ.get("HELLOTRACKS_API_KEY"):
        raise click.ClickException(
            "HELLOTRACKS_API_KEY is not set. Export your key (Hellotracks web app: More -> API & "
            "Integrations), or point HELLOTRACKS_BASE_URL and HELLOTRACKS_API_KEY at a sandbox "
            "(`hellotracks sandbox` prints both), or try `hellotracks demo`."
        )
    _check_range(first_day, last_day, settings)
    ok = run_sync(first_day, last_day, progress=not quiet)
    if not ok:
        raise click.ClickException("the sync failed; see the messages above and the run in the UI")


def run_sync(first: int, last: int, progress: bool = True) -> bool:
    """Run the sync job over first..last in this process, recorded in the instance."""
    from dagster._core.utils import make_new_run_id

    from pipelines.definitions import defs
    from pipelines.jobs import SYNC_JOB_NAME
    from pipelines.progress import RunProgress
    from pipelines.schedules import range_tags

    instance = open_instance()
    for stale in release_abandoned_runs(instance):
        click.echo(
            f"Run {stale[:8]} of an earlier sync stopped with its process (killed?): "
            "marked failed, and its slots of the API pool freed.",
            err=True,
        )
    job = defs.resolve_job_def(SYNC_JOB_NAME)
    run_id = make_new_run_id()
    days = day_range(first, last)
    outcome: dict[str, object] = {}

    def execute() -> None:
        try:
            result = job.execute_in_process(
                instance=instance,
                run_id=run_id,
                tags={**range_tags(str(first), str(last)), **_process_tags()},
                raise_on_error=False,
                # The progress tracker prints warnings and failures, one line each; the full
                # event log, tracebacks included, stays in the instance for the UI.
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            )
            outcome["success"] = result.success
        except BaseException as exc:  # reported below, on the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=execute, name="hellotracks-sync", daemon=True)
    tracker = RunProgress(instance, run_id, days, show=progress)
    worker.start()
    with tracker:
        while worker.is_alive():
            tracker.poll()
            worker.join(0.5)
        tracker.poll()
    if "error" in outcome:
        raise click.ClickException(f"the sync could not run: {outcome['error']}")
    tracker.print_summary(first, last)
    return bool(outcome.get("success"))


def open_instance() -> DagsterInstance:
    """The Dagster instance under DAGSTER_HOME, safe to open from several syncs at once."""
    from dagster import DagsterInstance

    with instance_lock(ensure_instance()):
        return DagsterInstance.get()


@contextmanager
def instance_lock(home: Path) -> Iterator[None]:
    """Hold the instance directory for this process alone while the block runs.

    Opening a new instance creates its SQLite databases; two syncs doing that at the same moment
    collide ("table runs already exists"). Where advisory file locks do not exist (Windows), the
    block runs unguarded, and two first syncs should not be started at once.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(home / ".hellotracks.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _process_tags() -> dict[str, str]:
    import psutil

    me = psutil.Process()
    return {
        _PID_TAG: str(me.pid),
        _HOST_TAG: socket.gethostname(),
        _PROCESS_STARTED_TAG: f"{me.create_time():.3f}",
    }


def _process_gone(tags: dict[str, str]) -> bool:
    """Whether the process named by a run's tags has ended (a reused pid does not count)."""
    import psutil

    try:
        process = psutil.Process(int(tags[_PID_TAG]))
        return abs(process.create_time() - float(tags[_PROCESS_STARTED_TAG])) > 1.0
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except (KeyError, ValueError, psutil.AccessDenied):
        return False


def release_abandoned_runs(instance: DagsterInstance) -> list[str]:
    """Fail the unfinished sync runs whose `hellotracks` process on this host has died.

    An in-process run that is killed keeps its status and its slots of the API pool for good,
    so every later sync would wait for that pool forever. Runs started elsewhere (the UI, the
    daemon) carry no process tags and are left to Dagster's run monitoring. Returns the ids of
    the runs marked failed.
    """
    from dagster import DagsterRunStatus, RunsFilter

    from pipelines.jobs import SYNC_JOB_NAME

    unfinished = instance.get_runs(
        filters=RunsFilter(
            job_name=SYNC_JOB_NAME,
            statuses=[
                DagsterRunStatus.NOT_STARTED,
                DagsterRunStatus.STARTING,
                DagsterRunStatus.STARTED,
            ],
            tags={_HOST_TAG: socket.gethostname()},
        )
    )
    released = []
    for run in unfinished:
        if not _process_gone(run.tags):
            continue
        instance.report_run_failed(
            run,
            message=f"The process of this run (pid {run.tags[_PID_TAG]}) ended before the run "
            "did; marked failed by a later `hellotracks sync`.",
        )
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(run.run_id)
    return released


@cli.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
def sql(query: str, fmt: str) -> None:
    """Run a read-only SQL QUERY on the warehouse and print the rows."""
    from pipelines.query import QueryError, print_result, run_read_only

    settings = _settings_or_exit()
    try:
        table = run_read_only(settings.warehouse_dir, query)
    except QueryError as exc:
        raise click.ClickException(str(exc)) from None
    print_result(table, fmt)


@cli.command()
def status() -> None:
    """Which days are loaded for each table, and the gaps between them."""
    from pipelines.query import QueryError, print_status

    settings = _settings_or_exit()
    try:
        print_status(settings.warehouse_dir)
    except QueryError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.option("--days", default=7, show_default=True, help="Complete days to sync.")
@click.option("--members", default=25, show_default=True, help="Size of the sandbox fleet.")
@click.option("--seed", default=7, show_default=True, help="Seed of the sandbox fleet.")
def demo(days: int, members: int, seed: int) -> None:
    """Start the sandbox, sync the last DAYS complete days into the warehouse, show a summary."""
    from pipelines.query import print_summary
    from sandbox.server import run_sandbox

    if days < 1:
        raise click.UsageError("--days must be at least 1")
    settings_env = dict(os.environ)
    with run_sandbox(seed=seed, members=members) as server:
        zone = server.fleet.timezone
        os.environ.update(
            {
                "HELLOTRACKS_BASE_URL": server.url,
                "HELLOTRACKS_API_KEY": server.api_key,
                "HELLOTRACKS_TIMEZONE": zone,
                "HELLOTRACKS_MIN_INTERVAL": os.environ.get("HELLOTRACKS_MIN_INTERVAL", "0"),
            }
        )
        today = datetime.now(ZoneInfo(zone)).date()
        first = _yyyymmdd(today - timedelta(days=days))
        last = _yyyymmdd(today - timedelta(days=1))
        if first < _settings_or_exit().start_day:
            os.environ["HELLOTRACKS_START_DAY"] = str(first)
        click.echo(f"Sandbox fleet of {members} members ({zone}) at {server.url}")
        click.echo(f"Syncing {first}..{last} into {_settings_or_exit().warehouse_dir}/")
        ok = run_sync(first, last)
    warehouse = _settings_or_exit().warehouse_dir
    os.environ.clear()
    os.environ.update(settings_env)
    if not ok:
        raise click.ClickException("the demo sync failed; see the messages above")
    print_summary(warehouse, zone)
    click.echo(
        "\nNext:\n"
        '  hellotracks sql "SELECT * FROM worker_day ORDER BY day DESC LIMIT 10"\n'
        "  hellotracks status\n"
        "  make dev      # the Dagster UI (http://127.0.0.1:3000) with a sandbox behind it"
    )


def _yyyymmdd(day: date) -> int:
    return int(day.strftime("%Y%m%d"))


@cli.command()
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI.")
@click.option("--sandbox-port", default=8765, show_default=True)
def dev(port: int, sandbox_port: int) -> None:
    """The Dagster UI and daemon, pointed at a sandbox started beside them."""
    ensure_instance()
    with _sandbox_process(sandbox_port) as (url, key, zone):
        env = dict(os.environ)
        env.update(
            HELLOTRACKS_BASE_URL=url,
            HELLOTRACKS_API_KEY=key,
            HELLOTRACKS_TIMEZONE=zone,
            HELLOTRACKS_MIN_INTERVAL=env.get("HELLOTRACKS_MIN_INTERVAL", "0"),
        )
        click.echo(f"Sandbox at {url}; Dagster UI at http://127.0.0.1:{port}")
        command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-p", str(port)]
        try:
            subprocess.run(command, env=env, cwd=PROJECT_ROOT, check=False)
        except KeyboardInterrupt:
            pass


@contextmanager
def _sandbox_process(port: int) -> Iterator[tuple[str, str, str]]:
    from sandbox.fleet import Fleet

    key = "sandbox-key"
    zone = Fleet().timezone
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(port), "--api-key", key],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        if process.poll() is not None:
            raise click.ClickException(f"the sandbox did not start on port {port}")
        yield f"http://127.0.0.1:{port}/api", key, zone
    finally:
        process.terminate()
        process.wait(timeout=10)


def _register_optional_commands() -> None:
    from pipelines.bench import bench_command
    from sandbox.server import sandbox_command

    cli.add_command(sandbox_command, name="sandbox")
    cli.add_command(bench_command, name="bench")


_register_optional_commands()
