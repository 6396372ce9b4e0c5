"""The sandbox speaks the Hellotracks `/api` of docs/api-contract.md, over real HTTP."""

from __future__ import annotations

import csv
import http.client
import io
from typing import Any
from urllib.parse import urlsplit

import openpyxl
import orjson
import pytest

from sandbox.server import Faults, SandboxServer
from tests.conftest import SANDBOX_KEY, SANDBOX_TODAY, post

DAY = 20251014  # a past weekday of the test fleet, final enough to have jobs and tracks


def plain(value: Any) -> Any:
    """`value` as it looks after a JSON round trip (what a client can compare)."""
    return orjson.loads(orjson.dumps(value))


def ok(response: Any, key: str) -> Any:
    """The payload under `key` of a successful JSON answer."""
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == 0, body
    return body[key]


def ground_sorted(rows: list[dict], id_field: str, sort: str) -> list[dict]:
    """What a sorted listing must return: by the field, ties in ascending id order."""
    field = sort.removeprefix("-")
    by_id = sorted(rows, key=lambda row: row[id_field])
    return sorted(by_id, key=lambda row: row[field], reverse=sort.startswith("-"))


# --- status codes -------------------------------------------------------------------------------

STATUS_CASES = [
    # A plain authenticated request succeeds.
    pytest.param("getcompany", {"data": {}}, SANDBOX_KEY, 0, None, id="ok"),
    # The legacy body auth works without the header.
    pytest.param(
        "getcompany",
        {"auth": {"usr": "admin@example.com", "key": SANDBOX_KEY}, "data": {}},
        None,
        0,
        None,
        id="legacy-body-auth",
    ),
    # No key at all.
    pytest.param("getcompany", {"data": {}}, None, -8, "API key", id="no-key"),
    # A wrong header key.
    pytest.param("getcompany", {"data": {}}, "wrong", -8, "API key", id="wrong-key"),
    # A wrong key in the legacy body auth.
    pytest.param(
        "getcompany",
        {"auth": {"usr": "a", "key": "wrong"}, "data": {}},
        None,
        -8,
        "API key",
        id="legacy-wrong-key",
    ),
    # A body that is not JSON.
    pytest.param("getcompany", b"{not json", SANDBOX_KEY, -1, "JSON", id="not-json"),
    # An empty body.
    pytest.param("getcompany", b"", SANDBOX_KEY, -1, "JSON", id="empty-body"),
    # JSON without a data object.
    pytest.param("getcompany", {"ver": 2}, SANDBOX_KEY, -1, "data", id="no-data"),
    # A data member that is not an object.
    pytest.param("getjobs", {"data": [1, 2]}, SANDBOX_KEY, -1, "data", id="data-not-object"),
    # JSON that is not an object at all.
    pytest.param("getjobs", b"[1, 2]", SANDBOX_KEY, -1, "JSON", id="body-is-list"),
    # An action the API does not know.
    pytest.param("getunicorns", {"data": {}}, SANDBOX_KEY, -99, "getunicorns", id="unknown"),
    # A month 13.
    pytest.param("getjobs", {"data": {"day": 20251340}}, SANDBOX_KEY, -11, "day", id="bad-day"),
    # February 30th is not a date either.
    pytest.param("getjobs", {"data": {"day": "20250230"}}, SANDBOX_KEY, -11, "day", id="feb-30"),
    # A day that is not a number.
    pytest.param("getjobs", {"data": {"day": "today"}}, SANDBOX_KEY, -11, "day", id="day-word"),
    # A limit that is not a number.
    pytest.param("getjobs", {"data": {"limit": "ten"}}, SANDBOX_KEY, -11, "limit", id="limit-nan"),
    # A limit of zero asks for nothing.
    pytest.param("getjobs", {"data": {"limit": 0}}, SANDBOX_KEY, -11, "limit", id="limit-zero"),
    # A negative skip.
    pytest.param("getaccounts", {"data": {"skip": -1}}, SANDBOX_KEY, -11, "skip", id="skip-neg"),
    # A sort on a field the objects do not have.
    pytest.param(
        "getjobs", {"data": {"sort": "-shoeSize"}}, SANDBOX_KEY, -11, "shoeSize", id="bad-sort"
    ),
    # A worker filter that is not a string.
    pytest.param("getjobs", {"data": {"worker": 5}}, SANDBOX_KEY, -11, "worker", id="worker"),
    # gettracks with from after until.
    pytest.param(
        "gettracks",
        {"data": {"from": 2_000, "until": 1_000, "uids": []}},
        SANDBOX_KEY,
        -11,
        "from",
        id="tracks-from-after-until",
    ),
    # gettracks without a time window.
    pytest.param("gettracks", {"data": {"uids": []}}, SANDBOX_KEY, -11, "from", id="no-window"),
    # uids that are not a list of strings.
    pytest.param(
        "getaccounts", {"data": {"uids": "abc"}}, SANDBOX_KEY, -11, "uids", id="uids-not-list"
    ),
    # A report type the server does not make.
    pytest.param(
        "createreport",
        {"data": {"reporttype": "horoscope", "day": DAY}},
        SANDBOX_KEY,
        -11,
        "horoscope",
        id="bad-reporttype",
    ),
    # A report format the server does not write.
    pytest.param(
        "createreport",
        {"data": {"reporttype": "jobs", "format": "pdf", "day": DAY}},
        SANDBOX_KEY,
        -11,
        "pdf",
        id="bad-format",
    ),
    # A report range that runs backwards.
    pytest.param(
        "createreport",
        {"data": {"reporttype": "jobs", "from": 20251010, "until": 20251001}},
        SANDBOX_KEY,
        -11,
        "from",
        id="report-backwards",
    ),
    # A report with neither a day nor a range.
    pytest.param(
        "createreport", {"data": {"reporttype": "jobs"}}, SANDBOX_KEY, -11, "day", id="no-days"
    ),
    # Documented filters the sandbox does not implement are refused, not ignored.
    pytest.param(
        "getjobs", {"data": {"progressActive": 1}}, SANDBOX_KEY, -11, "progressActive", id="unsup"
    ),
]


@pytest.mark.parametrize(("action", "body", "key", "status", "error"), STATUS_CASES)
def test_status_codes(
    sandbox: SandboxServer,
    action: str,
    body: dict | bytes,
    key: str | None,
    status: int,
    error: str | None,
) -> None:
    response = post(sandbox.url, action, key=key, body=body)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["status"] == status
    if error is None:
        assert "error" not in answer
    else:
        assert error in answer["error"]
    (record,) = sandbox.requests()
    assert (record.action, record.http_status, record.status) == (action, 200, status)


def test_status_throttled_is_minus_9_with_http_200(sandbox: SandboxServer) -> None:
    sandbox.faults = Faults(rate_limit_per_second=0.01)

    first = post(sandbox.url, "getcompany")
    second = post(sandbox.url, "getcompany")

    assert first.json()["status"] == 0
    assert second.status_code == 200
    assert second.json()["status"] == -9


def test_status_not_ready_is_minus_7(sandbox: SandboxServer) -> None:
    sandbox.faults = Faults(not_ready_reports=1)
    data = {"reporttype": "jobs", "format": "csv", "day": DAY}

    first = post(sandbox.url, "createreport", data)
    second = post(sandbox.url, "createreport", data)

    assert first.json() == {"status": -7, "error": first.json()["error"]}
    assert second.headers["content-type"].startswith("text/csv")


# --- HTTP ---------------------------------------------------------------------------------------

HTTP_CASES = [
    # The API is POST only: GET on an action is 405 and says what is allowed.
    pytest.param("GET", "/api/getjobs", 405, id="get-action"),
    # Other write verbs too.
    pytest.param("PUT", "/api/getjobs", 405, id="put-action"),
    # Paths outside /api/<action> do not exist.
    pytest.param("POST", "/v1/jobs", 404, id="other-api"),
    pytest.param("POST", "/api/", 404, id="no-action"),
    pytest.param("POST", "/api/getjobs/extra", 404, id="sub-path"),
    pytest.param("GET", "/", 404, id="root"),
]


@pytest.mark.parametrize(("method", "path", "code"), HTTP_CASES)
def test_http_errors_are_honest(sandbox: SandboxServer, method: str, path: str, code: int) -> None:
    base = sandbox.url.removesuffix("/api")
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    conn.request(method, path, body=b"{}", headers={"API-Key": SANDBOX_KEY})
    response = conn.getresponse()
    response.read()
    conn.close()

    assert response.status == code
    if code == 405:
        assert response.getheader("Allow") == "POST"
    assert sandbox.requests()[0].http_status == code


def test_connection_is_kept_alive_with_exact_lengths(sandbox: SandboxServer) -> None:
    conn = http.client.HTTPConnection(urlsplit(sandbox.url).netloc, timeout=10)
    sockets, bodies = [], []
    for action in ("getcompany", "getaccounts", "getnothing", "getplaces"):
        conn.request("POST", f"/api/{action}", b'{"data": {}}', {"API-Key": SANDBOX_KEY})
        response = conn.getresponse()
        body = response.read()
        assert int(response.getheader("Content-Length")) == len(body)
        assert response.version == 11
        sockets.append(conn.sock)
        bodies.append(orjson.loads(body))
    conn.close()

    assert all(sock is sockets[0] for sock in sockets)
    assert [body["status"] for body in bodies] == [0, 0, -99, 0]


# --- read actions against the fleet's ground truth ---------------------------------------------


def test_getjobs_day_as_int_or_string_and_default_today(sandbox: SandboxServer) -> None:
    fleet = sandbox.fleet

    as_int = ok(post(sandbox.url, "getjobs", {"day": DAY, "worker": "*"}), "jobs")
    as_text = ok(post(sandbox.url, "getjobs", {"day": str(DAY), "worker": "*"}), "jobs")
    default = ok(post(sandbox.url, "getjobs", {}), "jobs")

    assert as_int, "the test day must have jobs"
    assert as_int == as_text == plain(fleet.jobs(DAY))
    assert default == plain(fleet.jobs(SANDBOX_TODAY))


def test_getjobs_worker_and_team_filters(sandbox: SandboxServer) -> None:
    jobs = sandbox.fleet.jobs(DAY)
    worker = next(job["worker"] for job in jobs if job["worker"])
    team = next(job["teamId"] for job in jobs if job["teamId"])

    cases = [
        # "" is the unassigned jobs only.
        ({"worker": ""}, [job for job in jobs if job["worker"] == ""]),
        # A username is that worker's jobs.
        ({"worker": worker}, [job for job in jobs if job["worker"] == worker]),
        # A team id keeps that team's jobs.
        ({"worker": "*", "team": team}, [job for job in jobs if job["teamId"] == team]),
        # An unknown worker has no jobs.
        ({"worker": "nobody@example.com"}, []),
    ]
    for filters, expected in cases:
        got = ok(post(sandbox.url, "getjobs", {"day": DAY, **filters}), "jobs")
        assert got == plain(expected), filters


def test_lists_equal_ground_truth(sandbox: SandboxServer) -> None:
    fleet = sandbox.fleet
    start, until = fleet.day_window_ms(DAY)
    uids = [member["uid"] for member in fleet.accounts()]

    accounts = ok(post(sandbox.url, "getaccounts", {}), "accounts")
    places = ok(post(sandbox.url, "getplaces", {}), "places")
    company = ok(post(sandbox.url, "getcompany", {}), "company")
    tracks = ok(
        post(sandbox.url, "gettracks", {"from": start, "until": until, "uids": uids}), "tracks"
    )

    assert accounts == plain(fleet.accounts())
    assert places == plain(fleet.places())
    assert company == plain(fleet.company())
    assert tracks, "the test day must have tracks"
    assert tracks == plain(fleet.tracks(start, until, uids))


def test_filters_of_accounts_places_and_tracks(sandbox: SandboxServer) -> None:
    fleet = sandbox.fleet
    start, until = fleet.day_window_ms(DAY)
    members = fleet.all_members()
    some = [members[0]["uid"], members[-1]["uid"]]
    place = fleet.places()[0]
    word = place["name"][1:4]

    accounts = ok(post(sandbox.url, "getaccounts", {"uids": some}), "accounts")
    by_uid = ok(post(sandbox.url, "getplaces", {"uids": [place["uid"]]}), "places")
    by_query = ok(post(sandbox.url, "getplaces", {"query": word.upper()}), "places")
    first_two = ok(post(sandbox.url, "getplaces", {"max": 2}), "places")
    one = ok(
        post(sandbox.url, "gettracks", {"from": start, "until": until, "uids": some}), "tracks"
    )

    assert accounts == plain([m for m in members if m["uid"] in some])
    assert by_uid == [plain(place)]
    assert by_query == plain([p for p in fleet.places() if word.lower() in p["name"].lower()])
    assert first_two == plain(fleet.places()[:2])
    assert one == plain(fleet.tracks(start, until, some))


# --- paging -------------------------------------------------------------------------------------

PAGING_CASES = [
    # Jobs by id, the order a client pages in.
    pytest.param("getjobs", "jobs", "id", "id", id="jobs-id"),
    # Descending id.
    pytest.param("getjobs", "jobs", "id", "-id", id="jobs-id-desc"),
    # A field with many ties: ties must stay in ascending id order.
    pytest.param("getjobs", "jobs", "id", "priority", id="jobs-priority"),
    # Descending with ties, still ascending id within a tie.
    pytest.param("getjobs", "jobs", "id", "-priority", id="jobs-priority-desc"),
    # Tracks by id and by distance, descending.
    pytest.param("gettracks", "tracks", "id", "id", id="tracks-id"),
    pytest.param("gettracks", "tracks", "id", "-distance", id="tracks-distance-desc"),
    # Members and places by uid, and members by name descending.
    pytest.param("getaccounts", "accounts", "uid", "uid", id="accounts-uid"),
    pytest.param("getaccounts", "accounts", "uid", "-name", id="accounts-name-desc"),
    pytest.param("getplaces", "places", "uid", "uid", id="places-uid"),
]


def _listing_data(server: SandboxServer, action: str) -> tuple[dict, list[dict]]:
    fleet = server.fleet
    if action == "getjobs":
        return {"day": DAY, "worker": "*"}, fleet.jobs(DAY)
    if action == "gettracks":
        start, until = fleet.day_window_ms(DAY)
        return {"from": start, "until": until}, fleet.tracks(start, until)
    if action == "getaccounts":
        return {}, fleet.accounts()
    return {}, fleet.places()


@pytest.mark.parametrize(("action", "key", "id_field", "sort"), PAGING_CASES)
def test_paging_walks_the_sorted_list_and_ends_on_an_empty_page(
    sandbox: SandboxServer, action: str, key: str, id_field: str, sort: str
) -> None:
    data, truth = _listing_data(sandbox, action)
    limit = 7
    pages: list[list[dict]] = []
    while True:
        page = ok(
            post(
                sandbox.url,
                action,
                {**data, "sort": sort, "skip": limit * len(pages), "limit": limit},
            ),
            key,
        )
        if not page:
            break
        assert len(page) <= limit
        pages.append(page)

    expected = plain(ground_sorted(truth, id_field, sort))
    assert len(expected) > limit, "the listing must span several pages"
    assert [row for page in pages for row in page] == expected
    assert all(len(page) == limit for page in pages[:-1])
    assert len(sandbox.requests(action)) == len(pages) + 1
    assert sandbox.requests(action)[-1].rows == 0


def test_paging_without_limit_returns_the_rest_and_the_cap_holds(sandbox: SandboxServer) -> None:
    truth = plain(sandbox.fleet.jobs(DAY))
    sandbox.faults = Faults(limit_cap=4)

    cases = [
        # No limit: everything from skip on, even past the cap.
        ({"skip": 3}, truth[3:]),
        # A limit under the cap is honoured.
        ({"limit": 2, "skip": 1}, truth[1:3]),
        # A limit over the cap gets the cap.
        ({"limit": 500}, truth[:4]),
        # Skip past the end: an empty page, not an error.
        ({"skip": len(truth) + 5, "limit": 3}, []),
        # skip and limit as numeric strings.
        ({"skip": "2", "limit": "2"}, truth[2:4]),
    ]
    for paging, expected in cases:
        got = ok(post(sandbox.url, "getjobs", {"day": DAY, "sort": "id", **paging}), "jobs")
        assert got == expected, paging


# --- gettracks forms ----------------------------------------------------------------------------


def test_gettracks_legacy_accounts_form_is_keyed_as_given(sandbox: SandboxServer) -> None:
    fleet = sandbox.fleet
    start, until = fleet.day_window_ms(DAY)
    movers = sorted({t["owner_uid"] for t in fleet.tracks(start, until)})
    by_uid = {m["uid"]: m for m in fleet.all_members()}
    first, second = movers[0], movers[1]
    accounts = [first, by_uid[second]["username"], "ghost@example.com"]

    answer = ok(
        post(sandbox.url, "gettracks", {"from": start, "until": until, "accounts": accounts}),
        "tracks",
    )

    assert list(answer) == accounts
    assert answer[first] == plain(fleet.tracks(start, until, [first]))
    assert answer[accounts[1]] == plain(fleet.tracks(start, until, [second]))
    assert answer[first] and answer[accounts[1]]
    assert answer["ghost@example.com"] == []


# --- reports ------------------------------------------------------------------------------------


def _read_csv(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def _read_xlsx(content: bytes) -> list[list[Any]]:
    # Not read-only: that mode drops trailing empty cells, this one pads rows to full width.
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def _as_text(value: Any) -> str:
    return "" if value is None else str(value)


def _as_cell(value: Any) -> Any:
    return None if value == "" else value


REPORT_CASES = [
    # One day of jobs as CSV.
    pytest.param("jobs", "csv", {"day": DAY}, [DAY], id="jobs-csv-day"),
    # One day of jobs as XLSX.
    pytest.param("jobs", "xlsx", {"day": DAY}, [DAY], id="jobs-xlsx-day"),
    # A range, both ends included, as CSV.
    pytest.param(
        "mileage",
        "csv",
        {"from": 20251010, "until": 20251014},
        [20251010 + n for n in range(5)],
        id="mileage-csv-range",
    ),
    # A range as XLSX, days given as strings.
    pytest.param(
        "timesheet",
        "xlsx",
        {"from": "20251012", "until": "20251013"},
        [20251012, 20251013],
        id="timesheet-xlsx-range",
    ),
]


@pytest.mark.parametrize(("reporttype", "fmt", "days_data", "days"), REPORT_CASES)
def test_reports_read_back_equal_to_the_fleet(
    sandbox: SandboxServer, reporttype: str, fmt: str, days_data: dict, days: list[int]
) -> None:
    response = post(
        sandbox.url, "createreport", {"reporttype": reporttype, "format": fmt, **days_data}
    )

    assert response.status_code == 200
    header, rows = sandbox.fleet.report(reporttype, days)
    assert rows, "the report must have rows"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f'.{fmt}"' in disposition
    if fmt == "csv":
        assert response.headers["content-type"].startswith("text/csv")
        table = _read_csv(response.content)
        assert table == [header] + [[_as_text(value) for value in row] for row in rows]
    else:
        assert response.headers["content-type"] == (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        table = _read_xlsx(response.content)
        assert table == [header] + [[_as_cell(value) for value in row] for row in rows]
    assert sandbox.requests("createreport")[0].rows == len(rows)


def test_report_defaults_to_xlsx_and_filters_accounts(sandbox: SandboxServer) -> None:
    jobs = sandbox.fleet.jobs(DAY)
    worker_uid = next(job["receiverUid"] for job in jobs if job["receiverUid"])

    response = post(
        sandbox.url, "createreport", {"reporttype": "jobs", "day": DAY, "accounts": [worker_uid]}
    )

    header, rows = sandbox.fleet.report("jobs", [DAY], [worker_uid])
    assert response.headers["content-type"].endswith("spreadsheetml.sheet")
    assert 0 < len(rows) < len(jobs)
    assert _read_xlsx(response.content) == [header] + [[_as_cell(v) for v in row] for row in rows]
