-- member_profile: not a mart, but the temporary table every mart build starts with: one row per
-- member uid ever listed in a `members` snapshot, with the name, time zone and teams of the
-- latest snapshot that lists the member. The API keeps no history of the roster, so rebuilding
-- an old day uses what the roster says now; a member who left keeps the values of the last
-- snapshot they were in.
--
-- Columns:
--   member_uid: the member's uid
--   member_name: the member's name, null when empty
--   timezone: the member's IANA time zone; $default_zone when empty or a name DuckDB does not
--     know
--   zone_from_roster: whether timezone is the member's own (false when it is $default_zone)
--   teams: the team ids of the member's `teams` JSON array; empty when the text is not an
--     array of integers
--
-- Parameters: $default_zone, the company's time zone (else the partitions').
WITH latest AS (
    SELECT
        member_uid,
        nullif(name, '') AS member_name,
        coalesce(timezone IN (SELECT name FROM pg_timezone_names()), false) AS zone_from_roster,
        timezone AS roster_zone,
        teams AS teams_json
    FROM members
    WHERE member_uid IS NOT NULL AND member_uid <> ''
    QUALIFY row_number() OVER (
        PARTITION BY member_uid ORDER BY fetched_at DESC NULLS LAST, day DESC
    ) = 1
)

SELECT
    member_uid,
    member_name,
    CASE WHEN zone_from_roster THEN roster_zone ELSE $default_zone END AS timezone,
    zone_from_roster,
    list_filter(
        coalesce(try_cast(try_cast(teams_json AS JSON) AS BIGINT[]), []), lambda t: t IS NOT NULL
    ) AS teams
FROM latest
