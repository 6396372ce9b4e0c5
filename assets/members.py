"""`members`: the roster of the account, as `getaccounts` answers it when the day is synced."""

from assets.common import snapshot_dataset
from assets.normalize import TableSpec, col

MEMBERS = TableSpec(
    name="members",
    key="member_uid",
    snapshot=True,
    columns=(
        col("member_uid", "str", "uid", "id"),
        col("username", "str"),
        col("name", "str"),
        col("email", "str"),
        col("email_verified", "bool"),
        col("phone", "str"),
        col("phone_verified", "bool"),
        col("member_type", "str", "type"),
        col("role", "str"),
        col("active_status", "str"),
        col("teams", "json"),
        col("color", "str"),
        col("timezone", "str"),
        col("language", "str"),
        col("locale", "str"),
        # The docs put `moving` inside `states` in one place and at the top level in another.
        col("moving", "str", "states.moving", "moving"),
        col("status_label", "str"),
        col("status_label_ts", "ts_ms"),
        col("location_lat", "float", "location.lat"),
        col("location_lng", "float", "location.lng"),
        col("location_ts", "ts_ms", "location.ts"),
        col("location_accuracy_m", "float", "location.accuracy"),
        col("created_at", "ts_ms", "timestamps.created"),
        col("last_login_at", "ts_ms", "timestamps.login"),
        col("battery_level", "float"),
        col("battery_plugged", "bool"),
        col("travel_mode", "str"),
        col("vehicle_capacity", "float"),
        col("route_start_lat", "float"),
        col("route_start_lng", "float"),
        col("route_end_lat", "float"),
        col("route_end_lng", "float"),
        col("route_start_time", "int"),
        col("unit_distance", "str"),
        col("unit_time", "str"),
        col("unit_date", "str"),
        col("date_format", "str"),
        col("expertise", "str"),
        col("skills", "json"),
        col("working_hours", "json"),
        col("portrait", "str"),
        col("portrait_ts", "ts_ms"),
        col("scim_data", "str"),
        col("google_calendar", "bool"),
        col("twofactor_auth_enabled", "bool"),
        col("location_services", "bool"),
        col("login_status", "bool"),
        col("ignore_working_hours_until_ts", "ts_ms"),
        # Nested objects are kept whole as JSON next to the columns pulled out of them, so a
        # sub-field the schema does not name is never lost.
        col("location", "json"),
        col("states", "json"),
        col("timestamps", "json"),
        col("device", "json"),
    ),
)


DATASET = snapshot_dataset(
    MEMBERS,
    "The member roster as fetched when each day is synced, with `fetched_at`. The API has no "
    "history of the roster, so a backfill stores today's roster under every day it covers; "
    "members who left are absent from later snapshots but keep their rows in earlier ones.",
    lambda api: api.getaccounts(),
)
