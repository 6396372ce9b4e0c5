-- mileage_reconciliation: one row per member and day found in `tracks` or in the `mileage`
-- report: the kilometres each source gives, and the difference.
--
-- Both sides cut days at the same midnights (the partitions' time zone) and file a track under
-- the day it starts. The report rounds to metres, so a difference of up to 0.0005 km is rounding.
-- A side with no row for the member and day counts as 0 km.
--
-- Columns:
--   day: the partition day (YYYYMMDD)
--   member_uid: the member's uid
--   member_name: the member's name from the roster, else as the report gives it
--   track_drives: track entries of the member that start on the day
--   tracks_km: their summed distance in km; 0 when none
--   report_trips: trips the report counts; null when the report has no row
--   report_km: the report's distance in km; 0 when the report has no row
--   in_report: whether the report has a row for the member and day
--   difference_km: tracks_km - report_km
--   difference_pct: difference_km as a percentage of report_km; null when report_km is 0
--   matches: whether the two agree within 1 % of tracks_km, or 1 m for short days (the
--     tolerance of the report_mileage check)
--
-- Parameters: $days (the days to build).
WITH tracked AS (
    SELECT
        day, member_uid, count(*) AS drives,
        -- Sums of doubles go through exact decimals: DuckDB adds in parallel in no fixed order, and
        -- re-running a day must give the same digits.
        coalesce(sum(distance_m::DECIMAL(38, 12))::DOUBLE, 0) / 1000.0 AS km
    FROM tracks
    WHERE day IN (SELECT unnest($days)) AND member_uid IS NOT NULL AND member_uid <> ''
    GROUP BY day, member_uid
),

reported AS (
    SELECT
        day,
        member_uid,
        any_value(nullif(member, '')) AS member,
        sum(trips)::BIGINT AS trips,
        coalesce(sum(distance_km::DECIMAL(38, 12))::DOUBLE, 0) AS km
    FROM report_mileage
    WHERE day IN (SELECT unnest($days)) AND member_uid IS NOT NULL AND member_uid <> ''
    GROUP BY day, member_uid
),

joined AS (
    SELECT
        day,
        member_uid,
        coalesce(p.member_name, r.member) AS member_name,
        coalesce(t.drives, 0) AS track_drives,
        coalesce(t.km, 0) AS tracks_km,
        r.trips AS report_trips,
        coalesce(r.km, 0) AS report_km,
        r.member_uid IS NOT NULL AS in_report
    FROM tracked AS t
    FULL JOIN reported AS r USING (day, member_uid)
    LEFT JOIN member_profile AS p USING (member_uid)
)

SELECT
    day,
    member_uid,
    member_name,
    track_drives,
    tracks_km,
    report_trips,
    report_km,
    in_report,
    tracks_km - report_km AS difference_km,
    100 * (tracks_km - report_km) / nullif(report_km, 0) AS difference_pct,
    abs(tracks_km - report_km) <= greatest(0.01 * tracks_km, 0.001) AS matches
FROM joined
