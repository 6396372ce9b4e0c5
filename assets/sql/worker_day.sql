-- worker_day: one row per member and day on which the member was assigned a job or drove: the
-- day's jobs and how they went, arrivals on time, time on site against plan, and driving.
--
-- Built from `job_timeline` (already rebuilt for the same days) and `tracks`. A member with jobs
-- but no tracks drove 0 km, not an unknown distance. Unassigned jobs belong to nobody and are
-- not here (see team_day). A job counts on its own day even when its check-out is after local
-- midnight; a track counts on the day it starts.
--
-- Columns:
--   day: the partition day (YYYYMMDD)
--   member_uid: the member's uid
--   member_name: the member's name from the roster, else from their jobs
--   timezone: the member's time zone, used for windows and the local activity times
--   jobs_assigned: jobs of the day assigned to the member, archived ones included
--   jobs_archived: of those, jobs the office archived
--   jobs_done: jobs closed as done
--   jobs_failed: jobs closed as failed (and not also as done)
--   jobs_rejected: jobs the member rejected
--   arrivals: jobs the member checked in to
--   arrivals_with_window: arrivals at jobs with a usable time window (window or all_day)
--   arrivals_on_time: of those, check-ins inside the window
--   on_time_rate: arrivals_on_time / arrivals_with_window; null when there were none
--   timed_visits: jobs with both a check-in and a check-out (in that order)
--   on_site_minutes: minutes from check-in to check-out summed over the timed visits
--   planned_on_site_minutes: the planned minutes on site of the same timed visits
--   on_site_over_plan_minutes: on_site_minutes - planned_on_site_minutes
--   drives: track entries that start on the day
--   km_driven: their distance in km; 0 when the member has no tracks
--   minutes_driven: their duration in minutes; 0 when the member has no tracks
--   first_activity_at: the first track start or end, check-in or check-out of the day, UTC
--   last_activity_at: the last of them, UTC
--   first_activity_local: first_activity_at in the member's time zone
--   last_activity_local: last_activity_at in the member's time zone
--
-- Parameters: $days (the days to build), $default_zone (the zone of a member the roster does
-- not list).
WITH job_stats AS (
    SELECT
        day,
        worker_uid AS member_uid,
        any_value(worker_name) AS worker_name,
        count(*) AS jobs_assigned,
        count(*) FILTER (WHERE archived) AS jobs_archived,
        count(*) FILTER (WHERE done_outcome = 'success') AS jobs_done,
        count(*) FILTER (WHERE done_outcome = 'failed') AS jobs_failed,
        count(rejected_at) AS jobs_rejected,
        count(check_in_at) AS arrivals,
        count(on_time) AS arrivals_with_window,
        count(*) FILTER (WHERE on_time) AS arrivals_on_time,
        count(on_site_minutes) AS timed_visits,
        -- Sums of doubles go through exact decimals: DuckDB adds in parallel in no fixed order, and
        -- re-running a day must give the same digits.
        coalesce(sum(on_site_minutes::DECIMAL(38, 12))::DOUBLE, 0) AS on_site_minutes,
        coalesce((sum(planned_on_site_minutes::DECIMAL(38, 12)) FILTER (WHERE on_site_minutes IS NOT NULL))::DOUBLE, 0)
            AS planned_on_site_minutes,
        least(min(check_in_at), min(check_out_at)) AS first_at,
        greatest(max(check_in_at), max(check_out_at)) AS last_at
    FROM job_timeline
    WHERE day IN (SELECT unnest($days)) AND worker_uid IS NOT NULL
    GROUP BY day, worker_uid
),

track_stats AS (
    SELECT
        day,
        member_uid,
        count(*) AS drives,
        coalesce(sum(distance_m::DECIMAL(38, 12))::DOUBLE, 0) / 1000.0 AS km_driven,
        -- An entry ending before it starts is a broken record, not negative driving.
        sum(greatest(date_diff('millisecond', start_ts, end_ts), 0)) / 60000.0 AS minutes_driven,
        least(min(start_ts), min(end_ts)) AS first_at,
        greatest(max(start_ts), max(end_ts)) AS last_at
    FROM tracks
    WHERE day IN (SELECT unnest($days)) AND member_uid IS NOT NULL AND member_uid <> ''
    GROUP BY day, member_uid
),

combined AS (
    SELECT
        day,
        member_uid,
        coalesce(p.member_name, j.worker_name) AS member_name,
        coalesce(p.timezone, $default_zone) AS zone,
        j.* EXCLUDE (day, member_uid, worker_name, first_at, last_at),
        t.* EXCLUDE (day, member_uid, first_at, last_at),
        least(j.first_at, t.first_at) AS first_activity_at,
        greatest(j.last_at, t.last_at) AS last_activity_at
    FROM job_stats AS j
    FULL JOIN track_stats AS t USING (day, member_uid)
    LEFT JOIN member_profile AS p USING (member_uid)
)

SELECT
    day,
    member_uid,
    member_name,
    zone AS timezone,
    coalesce(jobs_assigned, 0) AS jobs_assigned,
    coalesce(jobs_archived, 0) AS jobs_archived,
    coalesce(jobs_done, 0) AS jobs_done,
    coalesce(jobs_failed, 0) AS jobs_failed,
    coalesce(jobs_rejected, 0) AS jobs_rejected,
    coalesce(arrivals, 0) AS arrivals,
    coalesce(arrivals_with_window, 0) AS arrivals_with_window,
    coalesce(arrivals_on_time, 0) AS arrivals_on_time,
    arrivals_on_time / nullif(arrivals_with_window, 0) AS on_time_rate,
    coalesce(timed_visits, 0) AS timed_visits,
    coalesce(on_site_minutes, 0) AS on_site_minutes,
    coalesce(planned_on_site_minutes, 0) AS planned_on_site_minutes,
    coalesce(on_site_minutes, 0) - coalesce(planned_on_site_minutes, 0)
        AS on_site_over_plan_minutes,
    coalesce(drives, 0) AS drives,
    coalesce(km_driven, 0) AS km_driven,
    coalesce(minutes_driven, 0) AS minutes_driven,
    first_activity_at,
    last_activity_at,
    timezone(zone, timezone('UTC', first_activity_at))::TIMESTAMP_MS AS first_activity_local,
    timezone(zone, timezone('UTC', last_activity_at))::TIMESTAMP_MS AS last_activity_local
FROM combined
