"""The one entry point Dagster loads (see workspace.yaml): assets, checks, job, schedule, sensor."""

from __future__ import annotations

from dagster import Definitions, EnvVar, load_assets_from_modules

import assets.chart
import assets.marts
import assets.sync
from pipelines.jobs import hellotracks_sync
from pipelines.schedules import daily_sync_schedule
from pipelines.sensors import intraday_refresh_sensor
from pipelines.settings import load_settings
from resources.hellotracks import HellotracksResource
from resources.warehouse import WarehouseResource

# The daily tables (one step), the marts built on them, and the chart drawn from the marts.
_ASSET_MODULES = [assets.sync, assets.marts, assets.chart]


def build_definitions() -> Definitions:
    settings = load_settings()
    return Definitions(
        assets=load_assets_from_modules(_ASSET_MODULES),
        jobs=[hellotracks_sync],
        schedules=[daily_sync_schedule],
        sensors=[intraday_refresh_sensor],
        resources={
            "hellotracks": HellotracksResource(
                api_key=EnvVar("HELLOTRACKS_API_KEY"),
                base_url=settings.base_url,
                page_size=settings.page_size,
                min_interval_seconds=settings.min_interval_seconds,
            ),
            "warehouse": WarehouseResource(directory=settings.warehouse_dir),
        },
    )


defs = build_definitions()
