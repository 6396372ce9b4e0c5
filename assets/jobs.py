"""`jobs`: every job of the day, all workers, as `getjobs` returns it."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetSpec,
    MaterializeResult,
)

from assets.common import (
    Checks,
    Dataset,
    SyncRun,
    api_metadata,
    store_days,
    stream_day,
    table_asset,
)
from assets.normalize import TableSpec, col
from resources.request_stream import Queued

_TIMESTAMPS = {
    "ts_created": "tsCreated",
    "ts_saved": "tsSaved",
    "ts_assigned": "tsAssigned",
    "ts_scheduled": "tsScheduled",
    "ts_accepted": "tsAccepted",
    "ts_rejected": "tsRejected",
    "ts_check_in": "tsCheckIn",
    "ts_check_out": "tsCheckOut",
    "ts_check_nfc1": "tsCheckNFC1",
    "ts_check_nfc2": "tsCheckNFC2",
    "ts_done_success": "tsDoneSuccess",
    "ts_done_failed": "tsDoneFailed",
    "ts_signature": "tsSignature",
    "scheduled_start": "scheduledStart",
    "scheduled_end": "scheduledEnd",
}

JOBS = TableSpec(
    name="jobs",
    key="job_id",
    columns=(
        col("job_id", "str", "id"),
        col("job_day", "day", "day"),
        col("uid_secondary", "str", "uidSecondary"),
        col("job_type", "int", "type"),
        col("team_id", "int", "teamId"),
        col("title", "str", "destinationName"),
        col("destination_lat", "float", "destinationLat"),
        col("destination_lng", "float", "destinationLng"),
        col("destination_text", "str", "destinationText"),
        col("destination_url", "str", "destinationUrl"),
        col("text_dispatcher", "str", "textDispatcher", "notes"),
        col("text_receiver", "str", "textReceiver"),
        col("contact_name", "str", "contactName"),
        col("contact_phone", "str", "contactPhone"),
        col("contact_email", "str", "contactEmail"),
        col("file_number", "str", "fileNumber"),
        col("priority", "int"),
        col("route_number", "int", "number"),
        col("on_site_seconds", "int", "onSiteSeconds"),
        # Time windows stay as the API's HHMM integers (1430 is 14:30; 0/2400 is all day).
        col("window_start_hhmm", "int", "windowStart"),
        col("window_end_hhmm", "int", "windowEnd"),
        col("order_id", "int", "orderId"),
        col("dispatcher_uid", "str", "dispatcherUid"),
        col("dispatcher_name", "str", "dispatcherName"),
        col("dispatcher_url", "str", "dispatcherUrl"),
        col("place_uid", "str", "placeUid"),
        col("place_name", "str", "placeName"),
        col("place_url", "str", "placeUrl"),
        col("radius_m", "int", "radius"),
        col("worker", "str", "worker", "assigneeUsername"),
        col("worker_uid", "str", "receiverUid"),
        col("worker_name", "str", "workerName", "assigneeName"),
        col("worker_email", "str", "workerEmail"),
        col("worker_phone", "str", "workerPhone"),
        col("items_to_dropoff", "int", "itemsToDropoff"),
        col("items_to_pickup", "int", "itemsToPickup"),
        col("status", "str"),
        col("carry_over", "int", "carryOver"),
        col("confirmation_emails", "str", "confirmationEmails"),
        col("custom_fields", "json", "customFields"),
        # The docs show both spellings; one column holds whichever the server sent.
        col("labels", "str", "label", "labels"),
        col("linked_forms", "str", "linkedForms"),
        col("linked_zones", "str", "linkedZones"),
        col("input_form_config", "str", "inputFormConfig"),
        col("submitted_forms", "str", "submittedForms"),
        col("manual_checks", "str", "manualChecks"),
        col("signature_name", "str", "signatureName"),
        col("signature_svg", "str", "signatureSvg"),
        col("signature_pdf", "str", "signaturePdf"),
        *(col(name, "ts_ms", source) for name, source in _TIMESTAMPS.items()),
        *(col(f"extra_number_{i}_key", "str", f"extra_number_{i}_key") for i in range(1, 5)),
        *(col(f"extra_number_{i}_val", "float", f"extra_number_{i}_val") for i in range(1, 5)),
        *(col(f"extra_text_{i}_key", "str", f"extra_text_{i}_key") for i in range(1, 5)),
        *(col(f"extra_text_{i}_val", "str", f"extra_text_{i}_val") for i in range(1, 5)),
        col("extra_number_types", "str", "extra_number_types"),
        col("extra_text_types", "str", "extra_text_types"),
    ),
)

# Each progress step must not come before the one it follows. Steps that did not happen are null
# and compare as unknown, so they never count as a violation.
_ORDER_VIOLATIONS = """
SELECT count(*) FROM jobs
WHERE day IN (SELECT unnest(?)) AND (
       ts_assigned < ts_created OR ts_accepted < ts_assigned OR ts_check_in < ts_accepted
    OR ts_check_out < ts_check_in OR ts_done_success < ts_check_in
    OR ts_done_failed < ts_check_in)
"""
_DUPLICATE_IDS = """
SELECT count(*) FROM (
    SELECT day, job_id FROM jobs WHERE day IN (SELECT unnest(?))
    GROUP BY ALL HAVING count(*) > 1)
"""
_MISSING_REQUIRED = """
SELECT count(*) FROM jobs
WHERE day IN (SELECT unnest(?)) AND (job_id IS NULL OR job_id = '' OR ts_created IS NULL)
"""


def _request(run: SyncRun) -> dict[int, Queued[list[dict]]]:
    return {day: run.api.getjobs(day) for day in run.days}


def _store(run: SyncRun, listings: dict[int, Queued[list[dict]]]) -> list[MaterializeResult]:
    per_day = {day: stream_day(run.warehouse, JOBS, day, pages) for day, pages in listings.items()}
    api = api_metadata(listings.values())
    metadata = store_days(run.context, run.warehouse, JOBS, per_day, api=api)
    return [MaterializeResult(asset_key="jobs", metadata=metadata)]


def _checks(run: SyncRun) -> list[AssetCheckResult]:
    with run.warehouse.connect(read_only=True) as con:
        duplicates, missing, disorder = (
            con.execute(sql, [run.days]).fetchone()[0]
            for sql in (_DUPLICATE_IDS, _MISSING_REQUIRED, _ORDER_VIOLATIONS)
        )
    return [
        AssetCheckResult(
            asset_key="jobs",
            check_name="job_ids_unique",
            passed=duplicates == 0,
            metadata={"duplicate_ids": duplicates},
        ),
        AssetCheckResult(
            asset_key="jobs",
            check_name="job_required_fields",
            passed=missing == 0,
            metadata={"rows_missing_id_or_created": missing},
        ),
        AssetCheckResult(
            asset_key="jobs",
            check_name="job_timestamps_in_order",
            passed=disorder == 0,
            severity=AssetCheckSeverity.WARN,
            metadata={"rows_out_of_order": disorder},
        ),
    ]


DATASET = Dataset(
    specs=(
        AssetSpec(
            "jobs",
            description="Every job of each day, for all workers and unassigned, one row per job "
            "id.",
            **table_asset(JOBS.schema()),
        ),
    ),
    checks=(
        Checks(
            specs=(
                AssetCheckSpec("job_ids_unique", asset="jobs", blocking=True),
                AssetCheckSpec("job_required_fields", asset="jobs"),
                AssetCheckSpec("job_timestamps_in_order", asset="jobs"),
            ),
            reads=("jobs",),
            evaluate=_checks,
        ),
    ),
    request=_request,
    store=_store,
)
