"""Each fault of the sandbox is observable over HTTP and in its request log, and reproducible."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from sandbox.server import Faults, SandboxServer, run_sandbox
from tests.conftest import SANDBOX_KEY, post

DAY = 20251014
REPO = Path(__file__).resolve().parent.parent


def jobs_request(server: SandboxServer, **paging: object) -> list[dict]:
    response = post(server.url, "getjobs", {"day": DAY, "sort": "id", **paging})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == 0
    return body["jobs"]


def last_fault(server: SandboxServer) -> str | None:
    return server.requests()[-1].fault


# --- throttling ---------------------------------------------------------------------------------


def test_throttle_with_status_minus_9(sandbox: SandboxServer) -> None:
    # A bucket of one token that refills every 100 s: the first request passes, the rest wait.
    sandbox.faults = Faults(rate_limit_per_second=0.01)

    answers = [post(sandbox.url, "getcompany") for _ in range(4)]

    assert [a.status_code for a in answers] == [200] * 4
    assert [a.json()["status"] for a in answers] == [0, -9, -9, -9]
    assert "retry-after" not in answers[1].headers
    assert [r.fault for r in sandbox.requests()] == [None, "throttled", "throttled", "throttled"]
    assert [r.status for r in sandbox.requests()] == [0, -9, -9, -9]


def test_throttle_with_http_429_and_retry_after(sandbox: SandboxServer) -> None:
    sandbox.faults = Faults(
        rate_limit_per_second=0.01, throttle_with_http429=True, retry_after_seconds=0.25
    )

    first, second = post(sandbox.url, "getcompany"), post(sandbox.url, "getcompany")

    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["retry-after"] == "0.25"
    assert second.json()["status"] == -9
    record = sandbox.requests()[-1]
    assert (record.http_status, record.fault) == (429, "throttled")


def test_throttle_bucket_allows_a_burst_and_refills(sandbox: SandboxServer) -> None:
    # Two tokens a second and a burst of two: the third quick request finds the bucket empty;
    # after half a second it holds a token again.
    sandbox.faults = Faults(rate_limit_per_second=2.0)

    burst = [post(sandbox.url, "getcompany").json()["status"] for _ in range(3)]
    time.sleep(0.55)
    after = post(sandbox.url, "getcompany").json()["status"]

    assert burst == [0, 0, -9]
    assert after == 0


# --- random transport faults --------------------------------------------------------------------


def test_server_errors_are_500_502_503_with_html(sandbox: SandboxServer) -> None:
    sandbox.faults = Faults(server_error_rate=1.0, seed=3)

    answers = [post(sandbox.url, "getcompany") for _ in range(30)]

    codes = {a.status_code for a in answers}
    assert codes == {500, 502, 503}
    assert all(a.headers["content-type"].startswith("text/html") for a in answers)
    assert [r.fault for r in sandbox.requests()] == [f"http{a.status_code}" for a in answers]
    assert all(r.status is None for r in sandbox.requests())


def test_html_error_page_with_http_200(sandbox: SandboxServer) -> None:
    sandbox.faults = Faults(html_error_rate=1.0)

    response = post(sandbox.url, "getjobs", {"day": DAY})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)
    record = sandbox.requests()[0]
    assert (record.http_status, record.status, record.fault) == (200, None, "html_error")


def test_truncated_body_announces_full_length_and_closes(sandbox: SandboxServer) -> None:
    sandbox.faults = Faults(truncate_rate=1.0)
    conn = http.client.HTTPConnection(urlsplit(sandbox.url).netloc, timeout=10)
    conn.request(
        "POST", "/api/getjobs", orjson.dumps({"data": {"day": DAY}}), {"API-Key": SANDBOX_KEY}
    )
    response = conn.getresponse()
    announced = int(response.getheader("Content-Length"))

    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    conn.close()

    assert response.status == 200
    assert len(cut.value.partial) == announced // 2
    record = sandbox.requests()[0]
    assert (record.fault, record.bytes_out) == ("truncated", announced // 2)


def test_latency_delays_every_answer(sandbox: SandboxServer) -> None:
    sandbox.faults = Faults(latency_seconds=0.2)

    started = time.monotonic()
    response = post(sandbox.url, "getcompany")
    elapsed = time.monotonic() - started

    assert response.json()["status"] == 0
    # A lower bound only: the answer cannot come before the added delay.
    assert elapsed >= 0.2
    assert last_fault(sandbox) == "latency"


# --- paging faults ------------------------------------------------------------------------------


def test_ignore_skip_returns_the_first_page_again(sandbox: SandboxServer) -> None:
    first = jobs_request(sandbox, skip=0, limit=5)
    sandbox.faults = Faults(ignore_skip=True)

    again = jobs_request(sandbox, skip=5, limit=5)

    assert again == first
    assert last_fault(sandbox) == "skip_ignored"


def test_ignore_limit_returns_everything(sandbox: SandboxServer) -> None:
    sandbox.faults = Faults(ignore_limit=True)

    rows = jobs_request(sandbox, limit=3)

    assert len(rows) == len(sandbox.fleet.jobs(DAY)) > 3
    assert last_fault(sandbox) == "limit_ignored"


def test_limit_cap_below_the_asked_limit(sandbox: SandboxServer) -> None:
    sandbox.faults = Faults(limit_cap=4)

    rows = jobs_request(sandbox, limit=50)

    assert len(rows) == 4
    assert (sandbox.requests()[0].rows, last_fault(sandbox)) == (4, "limit_capped")


def test_page_larger_than_max_page_rows_is_504(sandbox: SandboxServer) -> None:
    sandbox.faults = Faults(max_page_rows=5)

    too_big = post(sandbox.url, "getjobs", {"day": DAY, "limit": 6})
    fits = post(sandbox.url, "getjobs", {"day": DAY, "limit": 5})
    everything = post(sandbox.url, "getjobs", {"day": DAY})

    assert too_big.status_code == 504
    assert fits.status_code == 200 and len(fits.json()["jobs"]) == 5
    assert everything.status_code == 504
    assert [r.fault for r in sandbox.requests()] == ["http504", None, "http504"]


def test_first_requests_of_each_report_are_not_ready(sandbox: SandboxServer) -> None:
    sandbox.faults = Faults(not_ready_reports=2)
    jobs_report = {"reporttype": "jobs", "format": "csv", "day": DAY}
    other_day = {**jobs_report, "day": DAY - 1}

    statuses = []
    for data in (jobs_report, jobs_report, other_day, jobs_report, other_day, other_day):
        response = post(sandbox.url, "createreport", data)
        is_json = response.headers["content-type"] == "application/json"
        statuses.append(response.json()["status"] if is_json else "file")

    assert statuses == [-7, -7, -7, "file", -7, "file"]
    faults = [r.fault for r in sandbox.requests()]
    assert faults == ["not_ready", "not_ready", "not_ready", None, "not_ready", None]


# --- content faults -----------------------------------------------------------------------------


def test_schema_drift_changes_every_kind_of_object(sandbox: SandboxServer) -> None:
    fleet = sandbox.fleet
    start, until = fleet.day_window_ms(DAY)
    sandbox.faults = Faults(schema_drift=True)

    jobs = post(sandbox.url, "getjobs", {"day": DAY}).json()["jobs"]
    tracks = post(sandbox.url, "gettracks", {"from": start, "until": until}).json()["tracks"]
    members = post(sandbox.url, "getaccounts", {}).json()["accounts"]
    places = post(sandbox.url, "getplaces", {}).json()["places"]
    company = post(sandbox.url, "getcompany", {}).json()["company"]

    for row in [*jobs, *tracks, *members, *places, company]:
        assert "x_drift_note" in row
    for job, truth in zip(jobs, fleet.jobs(DAY), strict=True):
        assert job["day"] == str(truth["day"])
        assert job["priority"] == str(truth["priority"])
        assert job["orderId"] == str(truth["orderId"])
        assert "label" not in job and job["labels"] == truth["label"]
    for track, truth in zip(tracks, fleet.tracks(start, until), strict=True):
        assert track["distance"] == str(truth["distance"])
    for member, truth in zip(members, fleet.accounts(), strict=True):
        assert member["moving"] == truth["states"]["moving"]
        assert "moving" not in member["states"]
    assert {r.fault for r in sandbox.requests()} == {"schema_drift"}

    # Drift rewrites copies: the same cached listing comes back clean without the fault.
    sandbox.faults = Faults()
    clean = post(sandbox.url, "getjobs", {"day": DAY}).json()["jobs"]
    assert clean == orjson.loads(orjson.dumps(fleet.jobs(DAY)))


def test_legacy_tracks_keys_a_uids_request_by_uid(sandbox: SandboxServer) -> None:
    fleet = sandbox.fleet
    start, until = fleet.day_window_ms(DAY)
    uids = sorted({t["owner_uid"] for t in fleet.tracks(start, until)})[:3]
    sandbox.faults = Faults(legacy_tracks=True)

    page = post(sandbox.url, "gettracks", {"from": start, "until": until, "uids": uids, "limit": 5})
    answer = page.json()["tracks"]

    assert isinstance(answer, dict) and list(answer) == uids
    flat = sorted((t for entries in answer.values() for t in entries), key=lambda t: t["id"])
    expected = orjson.loads(orjson.dumps(fleet.tracks(start, until, uids)[:5]))
    assert flat == expected
    record = sandbox.requests()[0]
    assert (record.rows, record.fault) == (5, "legacy_tracks")


# --- reproducibility ----------------------------------------------------------------------------


def _fault_sequence(server: SandboxServer, faults: Faults, count: int = 40) -> list[str | None]:
    server.clear_log()
    server.faults = faults
    for n in range(count):
        try:
            post(server.url, "getjobs", {"day": DAY, "limit": 3, "skip": n % 4})
        except httpx.TransportError:
            pass  # a truncated body ends the request; the log still has it
    return [record.fault for record in server.requests()]


def test_fault_sequences_repeat_for_the_same_seed(sandbox: SandboxServer) -> None:
    def mixed(seed: int) -> Faults:
        return Faults(server_error_rate=0.2, html_error_rate=0.2, truncate_rate=0.2, seed=seed)

    first = _fault_sequence(sandbox, mixed(11))
    again = _fault_sequence(sandbox, mixed(11))
    other = _fault_sequence(sandbox, mixed(12))
    with run_sandbox(sandbox.fleet, api_key=SANDBOX_KEY) as second_server:
        elsewhere = _fault_sequence(second_server, mixed(11))

    assert len(set(first)) >= 4, "the mix must produce several kinds of fault"
    assert first == again == elsewhere
    assert other != first


# --- command line -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_python_m_sandbox_serves_until_terminated() -> None:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "sandbox",
        "--port",
        str(port),
        "--members",
        "5",
        "--today",
        "20251015",
        "--api-key",
        "cli-key",
        "--limit-cap",
        "3",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = []
        while not any("HELLOTRACKS_API_KEY" in line for line in lines):
            line = proc.stdout.readline()
            assert line, f"the sandbox exited early: {proc.stderr.read()}"
            lines.append(line)
        url = f"http://127.0.0.1:{port}/api"
        response = post(url, "getaccounts", {"limit": 10}, key="cli-key")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)

    assert f"export HELLOTRACKS_BASE_URL={url}" in "".join(lines)
    assert "export HELLOTRACKS_API_KEY=cli-key" in "".join(lines)
    assert response.json()["status"] == 0
    assert len(response.json()["accounts"]) == 3
    assert proc.returncode == 0, err
    assert err == ""


def test_python_m_sandbox_rejects_a_bad_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--today", "20251340"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "20251340" in result.stderr
