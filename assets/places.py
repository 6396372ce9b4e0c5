"""`places`, `company` and `teams`: the day's snapshot of sites and of the company's teams."""

from collections.abc import Iterator
from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetSpec,
    MaterializeResult,
)

from assets.common import (
    Checks,
    Dataset,
    SyncRun,
    api_metadata,
    snapshot_dataset,
    store_days,
    table_asset,
)
from assets.normalize import TableSpec, col, normalize_snapshot
from resources.request_stream import Queued

PLACES = TableSpec(
    name="places",
    key="place_uid",
    snapshot=True,
    columns=(
        col("place_uid", "str", "uid"),
        col("name", "str"),
        col("creator", "str"),
        col("lat", "float", "location.lat"),
        col("lng", "float", "location.lng"),
        col("address", "str"),
        col("city", "str"),
        col("state", "str"),
        col("postalcode", "str"),
        col("country_code", "str"),
        col("radius_m", "int", "radius"),
        col("phone", "str"),
        col("email", "str"),
        col("color", "str"),
        col("linked_forms", "str", "linkedForms"),
        col("teams", "json"),
        col("data", "json"),
        col("location", "json"),
    ),
)

COMPANY = TableSpec(
    name="company",
    key="company_uid",
    snapshot=True,
    columns=(
        col("company_uid", "str", "uid"),
        col("username", "str"),
        col("name", "str"),
        col("email", "str"),
        col("phone", "str"),
        col("address", "str"),
        col("timezone", "str"),
        col("country_code", "str"),
        col("account_type", "str", "type"),
        col("location", "json"),
        col("teams_config", "json"),
    ),
)

TEAMS = TableSpec(
    name="teams",
    key="team_id",
    snapshot=True,
    columns=(
        col("team_id", "int", "id"),
        col("name", "str"),
        col("working_hours", "json"),
        col("route", "json"),
    ),
)


PLACES_DATASET = snapshot_dataset(
    PLACES,
    "Customer sites and depots as fetched when each day is synced, with `fetched_at`.",
    lambda api: api.getplaces(),
)


def _store_company(run: SyncRun, answer: Queued[dict]) -> Iterator[MaterializeResult]:
    """The company record and its teams (`teams_config`), from one `getcompany` call; each
    table's materialization as soon as it is loaded."""
    record = answer.one()
    fetched_at = answer.started_at or datetime.now(UTC)
    if "company" in run.selected:
        companies = normalize_snapshot(COMPANY, [[record]], run.days, fetched_at)
        api = api_metadata([answer])
        metadata = store_days(run.context, run.warehouse, COMPANY, companies, api=api)
        yield MaterializeResult(asset_key="company", metadata=metadata)
    if "teams" in run.selected:
        teams = normalize_snapshot(TEAMS, [record.get("teams_config") or []], run.days, fetched_at)
        metadata = store_days(run.context, run.warehouse, TEAMS, teams)
        yield MaterializeResult(asset_key="teams", metadata=metadata)


# The zone of the run's latest company snapshot; a run that did not select `company` reads the
# snapshot the warehouse holds for its days.
_COMPANY_ZONE = """
SELECT timezone FROM company WHERE day IN (SELECT unnest(?))
ORDER BY fetched_at DESC NULLS LAST LIMIT 1
"""


def _timezone_check(run: SyncRun) -> list[AssetCheckResult]:
    """Whether the company's time zone is the one the day partitions are cut in: if they differ,
    every day is cut at the wrong midnight."""
    with run.warehouse.connect(read_only=True) as con:
        found = con.execute(_COMPANY_ZONE, [run.days]).fetchone()
    company_zone = found[0] if found else None
    configured = run.timezone
    matches = company_zone in (None, "", configured)
    if not matches:
        run.context.log.error(
            f"The company's time zone is {company_zone} but days are cut in {configured}: "
            f"set HELLOTRACKS_TIMEZONE={company_zone} and re-sync, or every day's jobs and "
            "tracks are split at the wrong midnight."
        )
    return [
        AssetCheckResult(
            asset_key="company",
            check_name="timezone_matches_partitions",
            passed=matches,
            metadata={"company_timezone": str(company_zone), "partitions_timezone": configured},
        )
    ]


COMPANY_DATASET = Dataset(
    specs=(
        AssetSpec("company", description="The company record.", **table_asset(COMPANY.schema())),
        AssetSpec(
            "teams",
            description="Each team of the company's `teams_config`.",
            **table_asset(TEAMS.schema()),
        ),
    ),
    checks=(
        Checks(
            specs=(AssetCheckSpec("timezone_matches_partitions", asset="company"),),
            reads=("company",),
            evaluate=_timezone_check,
        ),
    ),
    request=lambda run: run.api.getcompany(),
    store=_store_company,
)
