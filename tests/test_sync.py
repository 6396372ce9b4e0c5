"""The sync step: a dataset that fails loses only itself and what is worked out from it.

Each test syncs one day of the sandbox through a proxy that breaks one action's answers, then
checks what was materialized, what the run's failure says line by line, what the API was asked
and what the warehouse holds.
"""

from __future__ import annotations

import pytest
from dagster import AssetSpec, MaterializeResult

from assets import jobs, members, tracks
from assets.common import Dataset, SyncRun
from assets.sync import DATASETS, SyncFailed, check_order, sync
from pipelines.progress import failure_lines
from tests.reliability_proxy import canned, tampering
from tests.reliability_support import (
    expected_keys,
    expected_points,
    loaded_keys,
    loaded_points,
)
from tests.test_bad_input import DAY, run_tables

EVERY_TABLE = {spec.key.to_user_string() for dataset in DATASETS for spec in dataset.specs}
REFUSED = b'{"status": -11, "error": "not today"}'


def sync_through(proxy, warehouse, tables: list[str] | None = None):
    """`tables` (every table by default) of DAY through `proxy`; the run's result and its
    failure lines."""
    result = run_tables(proxy, warehouse, tuple(tables or EVERY_TABLE))
    lines = [
        line
        for event in result.all_events
        if event.is_step_failure
        for line in failure_lines(event.step_key, event.step_failure_data.error)
    ]
    return result, lines


def materialized(result) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def test_failed_jobs_lose_the_jobs_and_the_tracks_worked_out_from_them(sandbox, tmp_path):
    with tampering(sandbox, {"getjobs": canned(REFUSED)}) as proxy:
        result, lines = sync_through(proxy, tmp_path)
        asked = proxy.requests()

    assert not result.success
    assert materialized(result) == EVERY_TABLE - {"jobs", "tracks", "track_points"}
    assert len(lines) == 2, lines
    assert lines[0].startswith("jobs: HellotracksRequestError: getjobs:") and "-11" in lines[0]
    assert lines[1] == "track_points, tracks: not synced: its requests are worked out from jobs"
    # Tracks are asked for by the day's assignees: without the jobs, nothing was asked.
    assert "gettracks" not in asked and asked.count("getjobs") == 1
    # The other tables of the day are in the warehouse, complete; jobs and tracks are not.
    truth = expected_keys(sandbox.fleet, [DAY])
    loaded = loaded_keys(tmp_path, [DAY])
    for table in ("members", "places", "company", "teams", "report_mileage"):
        assert loaded[table] == truth[table], table
    assert loaded["jobs"] == {DAY: []} and loaded["tracks"] == {DAY: []}


def test_failed_places_do_not_hold_up_the_jobs_or_the_tracks(sandbox, tmp_path):
    with tampering(sandbox, {"getplaces": canned(REFUSED)}) as proxy:
        result, lines = sync_through(proxy, tmp_path)

    assert materialized(result) == EVERY_TABLE - {"places"}
    assert len(lines) == 1 and lines[0].startswith("places: HellotracksRequestError: getplaces:")
    truth = expected_keys(sandbox.fleet, [DAY])
    loaded = loaded_keys(tmp_path, [DAY])
    assert loaded["jobs"] == truth["jobs"] and loaded["tracks"] == truth["tracks"]
    assert truth["tracks"][DAY], "the day should have tracks for this test to mean anything"


def test_a_refused_key_stops_the_sync_at_the_answer_that_refused_it(sandbox, tmp_path):
    refused = b'{"status": -8, "error": "invalid key"}'
    with tampering(sandbox, {"getaccounts": canned(refused)}) as proxy:
        result, lines = sync_through(proxy, tmp_path)
        asked = proxy.requests()

    # The datasets queued after the members were never asked for: each would be refused too.
    assert asked == ["getcompany", "getaccounts"]
    assert len(lines) == 1, lines
    assert lines[0].startswith("hellotracks_tables: HellotracksAuthError: getaccounts: status -8")
    assert materialized(result) <= {"company", "teams"}


def test_the_store_order_is_checked_against_what_each_dataset_is_worked_out_from():
    check_order([members.DATASET, jobs.DATASET, tracks.DATASET])
    with pytest.raises(ValueError, match="track_points, tracks must come after .*jobs"):
        check_order([members.DATASET, tracks.DATASET, jobs.DATASET])
    # A table no dataset of the list stores is read from the warehouse: no order to keep.
    check_order([tracks.DATASET])


def checked(result) -> set[str]:
    return {
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()}:"
        f"{e.asset_check_evaluation_data.check_name}"
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_a_subset_run_asks_only_for_what_its_tables_need(sandbox, tmp_path):
    with tampering(sandbox, {}) as proxy:
        full, _ = sync_through(proxy, tmp_path)
        before = len(proxy.requests())
        jobs_only, _ = sync_through(proxy, tmp_path, ["jobs"])
        asked_for_jobs = proxy.requests()[before:]
        before = len(proxy.requests())
        tracks_only, _ = sync_through(proxy, tmp_path, ["tracks"])
        asked_for_tracks = proxy.requests()[before:]

    assert full.success and jobs_only.success and tracks_only.success
    assert set(asked_for_jobs) == {"getjobs"} and materialized(jobs_only) == {"jobs"}
    # The jobs' own checks ran; none of another table's.
    assert checked(jobs_only) == {
        "jobs:job_ids_unique",
        "jobs:job_required_fields",
        "jobs:job_timestamps_in_order",
    }
    # Tracks are asked for by the members and assignees the warehouse already holds.
    assert set(asked_for_tracks) == {"gettracks"} and materialized(tracks_only) == {"tracks"}
    truth = expected_keys(sandbox.fleet, [DAY])
    assert loaded_keys(tmp_path, [DAY])["tracks"] == truth["tracks"]


def test_track_points_alone_are_decoded_from_the_tracks_in_the_warehouse(sandbox, tmp_path):
    with tampering(sandbox, {}) as proxy:
        sync_through(proxy, tmp_path, ["members", "jobs", "tracks"])
        before = len(proxy.requests())
        result, lines = sync_through(proxy, tmp_path, ["track_points"])
        asked = proxy.requests()[before:]

    assert result.success, lines
    assert asked == [] and materialized(result) == {"track_points"}
    points = expected_points(sandbox.fleet, [DAY])
    assert points[DAY] > 0 and loaded_points(tmp_path, [DAY]) == points


def test_a_dataset_that_fails_half_way_keeps_what_it_loaded():
    # No bad answer makes one table of a dataset fail after another loaded (a full disk would),
    # so the step's loop runs here on datasets that stand in for the real ones.
    def company_then_broken_teams(run, requested):
        yield MaterializeResult(asset_key="company")
        raise OSError("no space left on device")

    two_tables = Dataset(
        specs=(AssetSpec("company"), AssetSpec("teams")),
        request=lambda run: None,
        store=company_then_broken_teams,
    )
    worked_out_from_teams = Dataset(
        specs=(AssetSpec("members"),),
        request=lambda run: None,
        store=lambda run, requested: [MaterializeResult(asset_key="members")],
        after=("teams",),
    )
    run = SyncRun(None, [DAY], None, None, selected=frozenset({"company", "teams", "members"}))

    results = []
    with pytest.raises(SyncFailed) as raised:
        results.extend(sync(run, [two_tables, worked_out_from_teams]))
    assert [result.asset_key.to_user_string() for result in results] == ["company"]
    assert str(raised.value).splitlines() == [
        "teams: OSError: no space left on device",
        "members: not synced: its requests are worked out from teams",
    ]
