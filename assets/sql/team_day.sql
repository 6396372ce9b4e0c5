-- team_day: the figures of worker_day per team and day, plus the team's unassigned jobs.
--
-- Job figures follow the job's own `team_id`, so unassigned jobs count under their team; jobs
-- without a team are under team 0. Driving follows the member's teams in the roster (see
-- member_profile): a member in several teams counts in full in each of them, so summing
-- km_driven over teams can exceed the fleet's total; a member without a team, or not in the
-- roster, drives for team 0.
--
-- Columns:
--   day: the partition day (YYYYMMDD)
--   team_id: the team's id; 0 for jobs and members without a team
--   team_name: the team's name in the latest `teams` snapshot that lists it; null when none does
--     (as for team 0)
--   workers: distinct members assigned the team's jobs
--   jobs_total: all of the team's jobs of the day, unassigned and archived ones included
--   jobs_unassigned: jobs with nobody assigned
--   jobs_assigned: jobs with a member assigned
--   jobs_archived: jobs the office archived
--   jobs_done: jobs closed as done
--   jobs_failed: jobs closed as failed (and not also as done)
--   jobs_rejected: jobs rejected by their member
--   arrivals: jobs checked in to
--   arrivals_with_window: arrivals at jobs with a usable time window (window or all_day)
--   arrivals_on_time: of those, check-ins inside the window (read in each worker's zone)
--   on_time_rate: arrivals_on_time / arrivals_with_window; null when there were none
--   timed_visits: jobs with both a check-in and a check-out (in that order)
--   on_site_minutes: minutes from check-in to check-out summed over the timed visits
--   planned_on_site_minutes: the planned minutes on site of the same timed visits
--   on_site_over_plan_minutes: on_site_minutes - planned_on_site_minutes
--   drivers: distinct members of the team with track entries that start on the day
--   drives: their track entries
--   km_driven: their distance in km; 0 when none
--   minutes_driven: their duration in minutes; 0 when none
--   first_activity_at: the first check-in or check-out of the team's jobs, or track start or
--     end of its members, UTC
--   last_activity_at: the last of them, UTC
--
-- Parameters: $days (the days to build).
WITH job_stats AS (
    SELECT
        day,
        team_id,
        count(DISTINCT worker_uid) AS workers,
        count(*) AS jobs_total,
        count(*) FILTER (WHERE worker_uid IS NULL) AS jobs_unassigned,
        count(worker_uid) AS jobs_assigned,
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
    WHERE day IN (SELECT unnest($days))
    GROUP BY day, team_id
),

track_teams AS (
    SELECT
        t.day,
        t.member_uid,
        t.distance_m,
        t.start_ts,
        t.end_ts,
        unnest(CASE WHEN len(p.teams) > 0 THEN p.teams ELSE [0] END) AS team_id
    FROM tracks AS t
    LEFT JOIN member_profile AS p USING (member_uid)
    WHERE t.day IN (SELECT unnest($days)) AND t.member_uid IS NOT NULL AND t.member_uid <> ''
),

track_stats AS (
    SELECT
        day,
        team_id,
        count(DISTINCT member_uid) AS drivers,
        count(*) AS drives,
        coalesce(sum(distance_m::DECIMAL(38, 12))::DOUBLE, 0) / 1000.0 AS km_driven,
        sum(greatest(date_diff('millisecond', start_ts, end_ts), 0)) / 60000.0 AS minutes_driven,
        least(min(start_ts), min(end_ts)) AS first_at,
        greatest(max(start_ts), max(end_ts)) AS last_at
    FROM track_teams
    GROUP BY day, team_id
),

team_names AS (
    SELECT team_id, nullif(name, '') AS team_name
    FROM teams
    QUALIFY row_number() OVER (
        PARTITION BY team_id ORDER BY fetched_at DESC NULLS LAST, day DESC
    ) = 1
)

SELECT
    day,
    team_id,
    n.team_name,
    coalesce(j.workers, 0) AS workers,
    coalesce(j.jobs_total, 0) AS jobs_total,
    coalesce(j.jobs_unassigned, 0) AS jobs_unassigned,
    coalesce(j.jobs_assigned, 0) AS jobs_assigned,
    coalesce(j.jobs_archived, 0) AS jobs_archived,
    coalesce(j.jobs_done, 0) AS jobs_done,
    coalesce(j.jobs_failed, 0) AS jobs_failed,
    coalesce(j.jobs_rejected, 0) AS jobs_rejected,
    coalesce(j.arrivals, 0) AS arrivals,
    coalesce(j.arrivals_with_window, 0) AS arrivals_with_window,
    coalesce(j.arrivals_on_time, 0) AS arrivals_on_time,
    j.arrivals_on_time / nullif(j.arrivals_with_window, 0) AS on_time_rate,
    coalesce(j.timed_visits, 0) AS timed_visits,
    coalesce(j.on_site_minutes, 0) AS on_site_minutes,
    coalesce(j.planned_on_site_minutes, 0) AS planned_on_site_minutes,
    coalesce(j.on_site_minutes, 0) - coalesce(j.planned_on_site_minutes, 0)
        AS on_site_over_plan_minutes,
    coalesce(t.drivers, 0) AS drivers,
    coalesce(t.drives, 0) AS drives,
    coalesce(t.km_driven, 0) AS km_driven,
    coalesce(t.minutes_driven, 0) AS minutes_driven,
    least(j.first_at, t.first_at) AS first_activity_at,
    greatest(j.last_at, t.last_at) AS last_activity_at
FROM job_stats AS j
FULL JOIN track_stats AS t USING (day, team_id)
LEFT JOIN team_names AS n USING (team_id)
