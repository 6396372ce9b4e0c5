"""Shared test fixtures: a small sandbox fleet served over loopback, and a raw request helper."""

from __future__ import annotations

import os

# The Dagster definitions read their settings when first imported; every test fleet lives in
# Europe/Vienna, so the partitions must too. Set before any test module imports `pipelines`.
os.environ.setdefault("HELLOTRACKS_TIMEZONE", "Europe/Vienna")
os.environ.setdefault("HELLOTRACKS_START_DAY", "20240101")

import atexit
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from sandbox.server import SandboxServer, run_sandbox

SANDBOX_KEY = "test-key"
SANDBOX_TODAY = 20251015
SANDBOX_MEMBERS = 12


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A started sandbox: seed 7, 12 members, today 20251015, Europe/Vienna, key `test-key`.

    Tests may set `sandbox.faults`; the server stops when the test ends.
    """
    with run_sandbox(
        seed=7,
        members=SANDBOX_MEMBERS,
        today=SANDBOX_TODAY,
        timezone="Europe/Vienna",
        api_key=SANDBOX_KEY,
    ) as server:
        yield server


def post(
    url: str,
    action: str,
    data: dict[str, Any] | None = None,
    key: str | None = SANDBOX_KEY,
    *,
    body: bytes | dict[str, Any] | None = None,
    method: str = "POST",
    timeout: float = 30.0,
) -> httpx.Response:
    """Send one raw request to `{url}/{action}` and return the response, whatever it is.

    `data` is wrapped as `{"data": data, "ver": 2}`; `body` replaces the whole body (bytes as
    they are, a dict as JSON). `key=None` sends no `API-Key` header.
    """
    if body is None:
        content = orjson.dumps({"data": {} if data is None else data, "ver": 2})
    elif isinstance(body, bytes):
        content = body
    else:
        content = orjson.dumps(body)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["API-Key"] = key
    return _client().request(
        method, f"{url}/{action}", content=content, headers=headers, timeout=timeout
    )


_shared: list[httpx.Client] = []


def _client() -> httpx.Client:
    # One pooled client for the whole session: building a client per request costs more than
    # the request itself.
    if not _shared:
        _shared.append(httpx.Client())
        atexit.register(_shared[0].close)
    return _shared[0]
