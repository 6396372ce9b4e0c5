"""A loopback HTTP server in front of a sandbox that rewrites the answers of chosen actions.

The sandbox speaks the API correctly, and its faults are transport faults. What a real server
might send that the sandbox never does (a job whose priority is text, an envelope without a
status, a report without its `day` column) comes from here: the request goes on to the sandbox,
and a rule may change the answer before the client sees it. The client under test talks real
HTTP to this server, exactly as it would to the API.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson

from sandbox.server import SandboxServer


@dataclass
class Reply:
    """One answer on its way to the client; a rule may change any part of it."""

    http_status: int
    body: bytes
    content_type: str
    data: dict[str, Any] = field(default_factory=dict)  # the `data` of the request it answers


Rule = Callable[[Reply], Reply]


def on_json(change: Callable[[dict[str, Any], dict[str, Any]], Any]) -> Rule:
    """A rule that hands the parsed envelope and the request's data to `change`.

    `change` edits the envelope in place (returning None), or returns what to send instead: a
    dict (sent as JSON) or bytes (sent as they are).
    """

    def rule(reply: Reply) -> Reply:
        envelope = orjson.loads(reply.body)
        replaced = change(envelope, reply.data)
        if replaced is None:
            reply.body = orjson.dumps(envelope)
        elif isinstance(replaced, bytes):
            reply.body = replaced
        else:
            reply.body = orjson.dumps(replaced)
        return reply

    return rule


def canned(body: bytes, http_status: int = 200, content_type: str = "application/json") -> Rule:
    """A rule that answers `body` whatever the sandbox said."""

    def rule(reply: Reply) -> Reply:
        return Reply(http_status, body, content_type, reply.data)

    return rule


def first_n(n: int, rule: Rule) -> Rule:
    """`rule` for the first `n` answers of its action, the sandbox's own answer after that."""
    left = [n]
    lock = threading.Lock()

    def limited(reply: Reply) -> Reply:
        with lock:
            if left[0] <= 0:
                return reply
            left[0] -= 1
        return rule(reply)

    return limited


class TamperingProxy:
    """Forwards `POST /api/<action>` to a sandbox, applying `rules[action]` to the answer.

    Looks like the sandbox to the test helpers (`url`, `api_key`, `requests()`), so
    `tests.pipeline_support.sync` can run the real job through it.
    """

    def __init__(self, upstream: SandboxServer, rules: dict[str, Rule]) -> None:
        self.upstream = upstream
        self.rules = rules
        self.api_key = upstream.api_key
        self._http = httpx.Client(timeout=30)
        self._log: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                proxy._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def requests(self, action: str | None = None) -> list[str]:
        """The actions asked for so far, in order (only `action`'s, if given)."""
        with self._lock:
            return [a for a in self._log if action is None or a == action]

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        action = handler.path.rsplit("/", 1)[-1]
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            self._log.append(action)
        upstream = self._http.post(
            f"{self.upstream.url}/{action}",
            content=body,
            headers={k: v for k, v in handler.headers.items() if k.lower() == "api-key"},
        )
        try:
            data = orjson.loads(body).get("data") or {}
        except (orjson.JSONDecodeError, AttributeError):
            data = {}
        reply = Reply(
            upstream.status_code,
            upstream.content,
            upstream.headers.get("Content-Type", ""),
            data,
        )
        rule = self.rules.get(action)
        if rule is not None:
            reply = rule(reply)
        handler.send_response(reply.http_status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        handler.wfile.write(reply.body)

    def start(self) -> TamperingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()


@contextmanager
def tampering(upstream: SandboxServer, rules: dict[str, Rule]) -> Iterator[TamperingProxy]:
    """A started `TamperingProxy` for the length of a `with` block."""
    proxy = TamperingProxy(upstream, rules).start()
    try:
        yield proxy
    finally:
        proxy.stop()
