"""A local HTTP server that speaks the Hellotracks `/api` from a synthetic fleet and injects faults.

The real API cannot be reached from tests, the demo or the benchmark, so they all run against this
server over loopback. It answers `POST {url}/{action}` as `docs/api-contract.md` fixes the
protocol: the `API-Key` header or the legacy body `auth`, the `{"data": ..., "ver": 2}`
envelope, application statuses in HTTP 200 answers, `sort`/`limit`/`skip` paging, and reports
as files. `Faults` makes it
misbehave the ways a real server can (throttling, 5xx, 504 on large pages, reports not ready, cut
bodies, HTML error pages, latency, paging quirks, schema drift, legacy track answers); every
request is kept in a log of `RequestRecord`s naming the faults it met.

Start it with `run_sandbox()` in code, or `python -m sandbox` / `hellotracks sandbox` from a shell.
"""

from __future__ import annotations

import hmac
import logging
import re
import shlex
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from random import Random
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import orjson

from sandbox.fleet import Fleet
from sandbox.server_api import (
    HTML,
    STATUS_BAD_KEY,
    STATUS_FORMAT,
    STATUS_THROTTLED,
    Answer,
    SandboxApi,
    envelope,
    error_answer,
    html_page,
)

logger = logging.getLogger("hellotracks.sandbox")

_ACTION_PATH = re.compile(r"/api/([A-Za-z0-9_]+)")
_MAX_BODY_BYTES = 16 * 1024 * 1024
_SERVER_ERRORS = (
    (500, "Internal Server Error"),
    (502, "Bad Gateway"),
    (503, "Service Unavailable"),
)
# What a refused request's `error` says, for the statuses the API documents as refusals.
_REFUSALS = {
    -2: "user unknown",
    -3: "invalid username/password or login token",
    -5: "permission denied",
    -10: "clock mismatch in request timestamp",
    -12: "session is no longer valid",
}


@dataclass
class Faults:
    """How the sandbox misbehaves; replace or mutate it between requests (each reads it once).

    Random faults are drawn from `random.Random(seed)` in request order, four numbers per API
    request whatever the rates are, so the same sequence of requests meets the same faults.
    Replacing the object, or changing `seed`, restarts the sequence. Concurrent requests draw in
    the order they arrive, so only a client that waits for each answer gets a fixed sequence.
    Throttling depends on time, not on the seed.
    """

    rate_limit_per_second: float | None = None
    """Token bucket (burst of max(1, rate) requests); over it the answer is throttled. <= 0
    throttles every request."""
    throttle_with_http429: bool = False
    """Throttle as HTTP 429 with `Retry-After` instead of HTTP 200 with status -9."""
    retry_after_seconds: float = 1.0
    """The `Retry-After` value of a 429, in seconds (fractions allowed, for fast tests)."""
    server_error_rate: float = 0.0
    """Probability of an HTTP 500, 502 or 503 (equally likely) with an HTML body."""
    max_page_rows: int | None = None
    """A list answer with more rows than this is refused with HTTP 504."""
    not_ready_reports: int = 0
    """The first N requests of each distinct report (type, format, days, accounts) answer -7."""
    truncate_rate: float = 0.0
    """Probability that a 200 answer announces its full Content-Length, sends half and closes."""
    html_error_rate: float = 0.0
    """Probability of an HTML error page sent with HTTP 200."""
    latency_seconds: float = 0.0
    """Delay added before every answer."""
    ignore_skip: bool = False
    """Answer every list request as if `skip` were 0."""
    ignore_limit: bool = False
    """Answer every list request as if no `limit` were given."""
    limit_cap: int = 1000
    """The most rows one list answer holds when a `limit` is given."""
    schema_drift: bool = False
    """Answer objects drift: an extra `x_drift_note`, numbers such as priority, distance and
    orderId as strings, job `day` as a string, job `labels` for `label`, member `moving` at the
    top level instead of inside `states`."""
    legacy_tracks: bool = False
    """Answer gettracks as the legacy object keyed by account, also when `uids` were sent."""
    refuse_with: int | None = None
    """Answer every request that passes the key check with this status instead (any value the
    API documents, or none it does): how a real account answers when its login is refused
    (-3), it lacks a permission (-5) or its session was ended (-12)."""
    seed: int = 0
    """Seed of the random faults."""


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it.

    `time` is the arrival (seconds since the epoch); `action` the name after `/api/` (the whole
    path for requests outside the API); `status` the application status of a JSON answer (None
    for files and HTML); `rows` the objects in a list answer or the rows of a report (None
    otherwise); `bytes_out` the body bytes sent (fewer than announced when truncated). A record
    is logged just before its answer is written. `fault` names the faults that shaped
    the answer, joined with "+" when there were several (e.g. "limit_capped+schema_drift"), or
    None: latency, throttled, http500, http502, http503, http504, html_error, not_ready,
    truncated, skip_ignored, limit_ignored, limit_capped, schema_drift, legacy_tracks, and
    internal_error for a bug of the sandbox itself (HTTP 500, logged with its traceback).
    """

    time: float
    action: str
    http_status: int
    status: int | None
    rows: int | None
    bytes_out: int
    fault: str | None


class _Dice(NamedTuple):
    server_error: float
    error_kind: float
    html_error: float
    truncate: float


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the owning `SandboxServer`; logs nothing."""

    protocol_version = "HTTP/1.1"
    server_version = "HellotracksSandbox/1.0"
    sys_version = ""
    # Headers and body go out in two writes; without this, Nagle's algorithm and delayed ACKs
    # stall keep-alive clients for tens of milliseconds per answer.
    disable_nagle_algorithm = True
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 60
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        self.server.sandbox._serve(self)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_POST


class _HTTPServer(ThreadingHTTPServer):
    """The threading server, tracking open connections so `stop()` can close idle keep-alives."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.sandbox = sandbox
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            open_now = list(self.connections)
        for conn in open_now:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal here (truncation tests, stop()); anything
        # else is a bug in the handler and is logged, never printed.
        logger.debug("sandbox connection from %s failed", client_address, exc_info=True)


class SandboxServer:
    """The sandbox Hellotracks API over HTTP on `host:port` (port 0 = a free port).

    The socket is bound on construction, so `url` is known at once; `start()` serves it in a
    background thread and `stop()` closes it, including idle keep-alive connections. Also a
    context manager (start on enter, stop on exit).

    A thread in the client's process is fine for small fleets. For a fleet of thousands of
    members, run it in its own process (`python -m sandbox`): the fleet's days are millions of
    live objects, and a client parsing pages in the same process then meets garbage-collector
    pauses of seconds that no server change removes (only a separate process, or `gc.freeze()`
    after the fleet is built, does).
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        api_key: str = "sandbox-key",
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._api = SandboxApi(fleet)
        self.api_key = api_key
        self.faults = faults if faults is not None else Faults()
        self._httpd = _HTTPServer((host, port), self)
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://{_url_host(host)}:{self.port}/api"
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._fault_lock = threading.Lock()
        self._rng = Random(0)
        self._rng_owner: Faults | None = None
        self._rng_seed: int | None = None
        self._bucket_rate: float | None = None
        self._bucket_tokens = 0.0
        self._bucket_time = 0.0

    @property
    def fleet(self) -> Fleet:
        """The fleet the answers come from: the ground truth for tests."""
        return self._api.fleet

    def __repr__(self) -> str:
        return f"SandboxServer(url={self.url!r})"

    def start(self) -> SandboxServer:
        """Serve in a daemon thread; returns self."""
        if self._thread is not None or self._stopped:
            raise RuntimeError("a SandboxServer starts once")
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket and open connections; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.close_connections()
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests(self, action: str | None = None) -> list[RequestRecord]:
        """A copy of the request log in arrival order, optionally only one action's requests."""
        with self._log_lock:
            records = list(self._log)
        records.sort(key=lambda record: record.time)
        if action is None:
            return records
        return [record for record in records if record.action == action]

    def clear_log(self) -> None:
        """Forget the logged requests (fault state and caches are kept)."""
        with self._log_lock:
            self._log.clear()

    # --- serving ---------------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        arrival = time.time()
        faults = self.faults
        path = urlsplit(handler.path).path
        match = _ACTION_PATH.fullmatch(path)
        action = match.group(1) if match else path
        body = _read_body(handler)
        truncate = False
        try:
            if isinstance(body, int):
                answer = _http_error(body, "the request body could not be read")
                handler.close_connection = True
            elif match is None:
                answer = _http_error(404, f"no such path: {path}")
            elif handler.command != "POST":
                answer = _http_error(405, "the API takes POST requests only")
                answer.headers["Allow"] = "POST"
            else:
                answer, truncate = self._answer_api(action, handler, body, faults)
        except Exception:
            logger.exception("sandbox failed to answer %s", action)
            answer = _http_error(500, "the sandbox failed")
            answer.faults.append("internal_error")

        if faults.latency_seconds > 0:
            time.sleep(faults.latency_seconds)
        body_out = answer.body[: len(answer.body) // 2] if truncate else answer.body
        if handler.command == "HEAD":
            body_out = b""
        # Logged before the answer leaves, so a client that has its answer finds it in the log.
        record = RequestRecord(
            time=arrival,
            action=action,
            http_status=answer.http_status,
            status=answer.status,
            rows=answer.rows,
            bytes_out=len(body_out),
            fault="+".join(answer.faults) or None,
        )
        with self._log_lock:
            self._log.append(record)
        _write(handler, answer, body_out, close_after=truncate)

    def _answer_api(
        self, action: str, handler: _Handler, body: bytes, faults: Faults
    ) -> tuple[Answer, bool]:
        """The answer to one API request and whether its body is to be cut short."""
        dice = self._roll(faults)
        if self._throttled(faults):
            answer = _throttled_answer(faults)
        elif dice.server_error < faults.server_error_rate:
            code, reason = _SERVER_ERRORS[min(int(dice.error_kind * 3), 2)]
            answer = Answer(html_page(code, reason), HTML, http_status=code, status=None)
            answer.faults.append(f"http{code}")
        elif dice.html_error < faults.html_error_rate:
            page = html_page(503, "Service Unavailable", "The service is under maintenance.")
            answer = Answer(page, HTML, status=None, faults=["html_error"])
        else:
            answer = self._authenticated(action, handler, body, faults)
        truncate = answer.http_status == 200 and dice.truncate < faults.truncate_rate
        if truncate:
            answer.faults.append("truncated")
        if faults.latency_seconds > 0:
            answer.faults.insert(0, "latency")
        return answer, truncate

    def _authenticated(self, action: str, handler: _Handler, body: bytes, faults: Faults) -> Answer:
        """Check the key and the envelope, then let the API answer."""
        try:
            request = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict):
            request = None

        key = handler.headers.get("API-Key")
        if key is None and request is not None and isinstance(request.get("auth"), dict):
            key = request["auth"].get("key")
        if not isinstance(key, str) or not key:
            return error_answer(STATUS_BAD_KEY, "missing API key: send the API-Key header")
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return error_answer(STATUS_BAD_KEY, "invalid API key")
        if request is None:
            return error_answer(STATUS_FORMAT, "the body must be a JSON object")
        data = request.get("data")
        if not isinstance(data, dict):
            return error_answer(STATUS_FORMAT, 'the body must hold a "data" object')
        if faults.refuse_with is not None:
            reason = _REFUSALS.get(faults.refuse_with, "refused")
            answer = error_answer(faults.refuse_with, reason)
            answer.faults.append(f"refused{faults.refuse_with}")
            return answer
        return self._api.answer(action, data, faults)

    def _roll(self, faults: Faults) -> _Dice:
        with self._fault_lock:
            if self._rng_owner is not faults or self._rng_seed != faults.seed:
                self._rng = Random(faults.seed)
                self._rng_owner, self._rng_seed = faults, faults.seed
            rng = self._rng
            return _Dice(rng.random(), rng.random(), rng.random(), rng.random())

    def _throttled(self, faults: Faults) -> bool:
        """Take a token from the bucket; True when there was none."""
        rate = faults.rate_limit_per_second
        if rate is None:
            return False
        if rate <= 0:
            return True
        now = time.monotonic()
        capacity = max(1.0, rate)
        with self._fault_lock:
            if rate != self._bucket_rate:
                self._bucket_rate, self._bucket_tokens = rate, capacity
            else:
                elapsed = now - self._bucket_time
                self._bucket_tokens = min(capacity, self._bucket_tokens + elapsed * rate)
            self._bucket_time = now
            if self._bucket_tokens >= 1.0:
                self._bucket_tokens -= 1.0
                return False
            return True


def _read_body(handler: _Handler) -> bytes | int:
    """The request body, or the HTTP status refusing it (the connection is then closed)."""
    if handler.headers.get("Transfer-Encoding"):
        # Chunked uploads are refused honestly; the clients here always send a Content-Length.
        # Decoding chunked bodies here would remove this limit if a client ever needs it.
        return 411
    text = handler.headers.get("Content-Length")
    if text is None:
        return b""
    try:
        length = int(text)
    except ValueError:
        return 400
    if length < 0:
        return 400
    if length > _MAX_BODY_BYTES:
        return 413
    return handler.rfile.read(length)


def _http_error(code: int, detail: str) -> Answer:
    reason = BaseHTTPRequestHandler.responses.get(code, ("Error",))[0]
    return Answer(html_page(code, reason, detail), HTML, http_status=code, status=None)


def _throttled_answer(faults: Faults) -> Answer:
    body = envelope(STATUS_THROTTLED, "rate limit exceeded; slow down")
    if not faults.throttle_with_http429:
        return Answer(body, status=STATUS_THROTTLED, faults=["throttled"])
    # HTTP asks for whole seconds; fractions are sent as given so tests can wait briefly, and
    # the clients here parse a float.
    retry_after = f"{max(0.0, faults.retry_after_seconds):g}"
    return Answer(
        body,
        http_status=429,
        status=STATUS_THROTTLED,
        faults=["throttled"],
        headers={"Retry-After": retry_after},
    )


def _write(handler: _Handler, answer: Answer, body_out: bytes, *, close_after: bool) -> None:
    """Send `answer` with its full Content-Length but `body_out` as the body, then maybe close."""
    try:
        handler.send_response(answer.http_status)
        handler.send_header("Content-Type", answer.content_type)
        handler.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        if handler.close_connection:
            handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body_out)
    except OSError:
        handler.close_connection = True
    if close_after:
        handler.close_connection = True


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextmanager
def run_sandbox(
    fleet: Fleet | None = None,
    *,
    seed: int = 7,
    members: int = 25,
    timezone: str = "Europe/Vienna",
    today: int | None = None,
    api_key: str = "sandbox-key",
    faults: Faults | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[SandboxServer]:
    """A started sandbox for the duration of a `with` block, stopped on exit.

    Without `fleet`, one is built from `seed`, `members`, `timezone` and `today`; with it, those
    four are ignored.
    """
    if fleet is None:
        fleet = Fleet(seed, members, timezone=timezone, today=today)
    server = SandboxServer(fleet, api_key=api_key, faults=faults, host=host, port=port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- command line -------------------------------------------------------------------------------


def _check_today(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is None:
        return None
    try:
        date(value // 10000, value // 100 % 100, value % 100)
    except ValueError:
        raise click.BadParameter(f"{value} is not a YYYYMMDD date") from None
    return value


def _check_timezone(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"{value!r} is not an IANA time zone") from None
    return value


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


_RATE = click.FloatRange(0.0, 1.0)


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one.",
)
@click.option("--seed", default=7, show_default=True, help="Seed of the synthetic fleet.")
@click.option(
    "--members", default=25, show_default=True, type=click.IntRange(min=1), help="Fleet size."
)
@click.option(
    "--timezone",
    default="Europe/Vienna",
    show_default=True,
    callback=_check_timezone,
    help="The company's IANA time zone, which defines its days.",
)
@click.option(
    "--today",
    type=int,
    callback=_check_today,
    help="The fleet's today as YYYYMMDD [default: the current date in --timezone].",
)
@click.option("--api-key", default="sandbox-key", show_default=True, help="The key to accept.")
@click.option("--rate-limit", type=float, help="Requests per second before throttling.")
@click.option("--http429", is_flag=True, help="Throttle with HTTP 429 instead of status -9.")
@click.option(
    "--retry-after",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="Retry-After of a 429, in seconds.",
)
@click.option("--server-error-rate", type=_RATE, default=0.0, help="Share of HTTP 500/502/503.")
@click.option("--max-page-rows", type=click.IntRange(min=1), help="Larger pages get HTTP 504.")
@click.option(
    "--not-ready-reports",
    type=click.IntRange(min=0),
    default=0,
    help="Requests of each report answered -7 before the file comes.",
)
@click.option("--truncate-rate", type=_RATE, default=0.0, help="Share of bodies cut short.")
@click.option("--html-error-rate", type=_RATE, default=0.0, help="Share of HTML pages with 200.")
@click.option("--latency", type=click.FloatRange(min=0.0), default=0.0, help="Seconds per answer.")
@click.option("--ignore-skip", is_flag=True, help="Treat every skip as 0.")
@click.option("--ignore-limit", is_flag=True, help="Send whole lists, whatever the limit.")
@click.option(
    "--limit-cap",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Most rows one list answer holds when a limit is given.",
)
@click.option(
    "--schema-drift", is_flag=True, help="Extra fields, numbers as text, fields moved or renamed."
)
@click.option("--legacy-tracks", is_flag=True, help="Answer gettracks keyed by account.")
@click.option("--refuse-with", type=int, help="Answer every request with this status.")
@click.option(
    "--fault-seed", type=int, default=0, show_default=True, help="Seed of the random faults."
)
def sandbox_command(
    host: str,
    port: int,
    seed: int,
    members: int,
    timezone: str,
    today: int | None,
    api_key: str,
    rate_limit: float | None,
    http429: bool,
    retry_after: float,
    server_error_rate: float,
    max_page_rows: int | None,
    not_ready_reports: int,
    truncate_rate: float,
    html_error_rate: float,
    latency: float,
    ignore_skip: bool,
    ignore_limit: bool,
    limit_cap: int,
    schema_drift: bool,
    legacy_tracks: bool,
    refuse_with: int | None,
    fault_seed: int,
) -> None:
    """Serve a synthetic Hellotracks API locally until interrupted (Ctrl-C)."""
    faults = Faults(
        rate_limit_per_second=rate_limit,
        throttle_with_http429=http429,
        retry_after_seconds=retry_after,
        server_error_rate=server_error_rate,
        max_page_rows=max_page_rows,
        not_ready_reports=not_ready_reports,
        truncate_rate=truncate_rate,
        html_error_rate=html_error_rate,
        latency_seconds=latency,
        ignore_skip=ignore_skip,
        ignore_limit=ignore_limit,
        limit_cap=limit_cap,
        schema_drift=schema_drift,
        legacy_tracks=legacy_tracks,
        refuse_with=refuse_with,
        seed=fault_seed,
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    fleet = Fleet(seed, members, timezone=timezone, today=today)
    try:
        server = SandboxServer(fleet, api_key=api_key, faults=faults, host=host, port=port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc
    with server:
        click.echo(f"Hellotracks sandbox serving {server.url}")
        click.echo(f"Fleet: seed {seed}, {members} members, {fleet.timezone}, today {fleet.today}")
        click.echo(f"API key: {api_key}")
        click.echo("To point the pipeline at it:")
        click.echo(f"  export HELLOTRACKS_BASE_URL={shlex.quote(server.url)}")
        click.echo(f"  export HELLOTRACKS_API_KEY={shlex.quote(api_key)}")
        changed = _changed_faults(faults)
        click.echo(f"Faults: {changed or 'none'}")
        click.echo("Press Ctrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            click.echo("Stopping the sandbox.")


def _changed_faults(faults: Faults) -> str:
    defaults = asdict(Faults())
    return ", ".join(
        f"{f.name}={getattr(faults, f.name)}"
        for f in fields(Faults)
        if getattr(faults, f.name) != defaults[f.name]
    )
