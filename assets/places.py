"""`places`, `company` and `teams`: the day's snapshot of sites and of the company's teams."""

from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    asset,
    multi_asset,
)

from assets.common import (
    API_POOL,
    DAILY,
    api_used,
    run_days,
    store_days,
    store_snapshot,
    table_asset,
)
from assets.normalize import TableSpec, col, normalize_snapshot
from resources.hellotracks import HellotracksResource
from resources.warehouse import WarehouseResource

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


@asset(
    **DAILY,
    **table_asset(PLACES.schema()),
    pool=API_POOL,
)
def places(
    context: AssetExecutionContext,
    hellotracks: HellotracksResource,
    warehouse: WarehouseResource,
) -> MaterializeResult:
    """Customer sites and depots as fetched when each day is synced, with `fetched_at`."""
    client = hellotracks.get_client()
    return MaterializeResult(
        metadata=store_snapshot(context, warehouse, PLACES, client, client.getplaces)
    )


@multi_asset(
    specs=[
        AssetSpec("company", **table_asset(COMPANY.schema())),
        AssetSpec("teams", **table_asset(TEAMS.schema())),
    ],
    check_specs=[AssetCheckSpec("timezone_matches_partitions", asset="company")],
    **DAILY,
    pool=API_POOL,
)
def company_and_teams(
    context: AssetExecutionContext,
    hellotracks: HellotracksResource,
    warehouse: WarehouseResource,
):
    """The company record and its teams (`teams_config`), from one `getcompany` call.

    Also checks that the company's time zone is the one the day partitions are cut in: if they
    differ, every day would be cut at the wrong midnight.
    """
    days = run_days(context)
    client = hellotracks.get_client()
    before = client.stats.snapshot()

    fetched_at = datetime.now(UTC)
    record = client.getcompany()
    teams_config = record.get("teams_config") or []

    companies = normalize_snapshot(COMPANY, [[record]], days, fetched_at)
    teams = normalize_snapshot(TEAMS, [teams_config], days, fetched_at)
    api = api_used(client, before)
    yield MaterializeResult(
        asset_key="company",
        metadata=store_days(context, warehouse, COMPANY, companies, api=api),
    )
    yield MaterializeResult(
        asset_key="teams",
        metadata=store_days(context, warehouse, TEAMS, teams),
    )
    yield _timezone_check(context, record.get("timezone"))


def _timezone_check(context: AssetExecutionContext, company_zone: object) -> AssetCheckResult:
    configured = context.assets_def.partitions_def.timezone
    matches = company_zone in (None, "", configured)
    if not matches:
        context.log.error(
            f"The company's time zone is {company_zone} but days are cut in {configured}: "
            f"set HELLOTRACKS_TIMEZONE={company_zone} and re-sync, or every day's jobs and "
            "tracks are split at the wrong midnight."
        )
    return AssetCheckResult(
        asset_key="company",
        check_name="timezone_matches_partitions",
        passed=matches,
        metadata={"company_timezone": str(company_zone), "partitions_timezone": configured},
    )
