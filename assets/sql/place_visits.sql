-- place_visits: one row per place and day that had a job at the place: the visits (jobs checked
-- in to) and the time spent on site.
--
-- Only jobs linked to a place (`placeUid`) count; jobs at a plain address are not here. A visit
-- is one job checked in to, so two jobs done in one stay are two visits. A check-out after local
-- midnight still counts on the job's day.
--
-- Columns:
--   day: the partition day (YYYYMMDD)
--   place_uid: the place's uid
--   place_name: the place's name in the latest `places` snapshot, else as the jobs carry it
--   jobs: jobs at the place on the day, unassigned and archived ones included
--   visits: of those, jobs checked in to
--   visitors: distinct members who checked in
--   jobs_done: jobs closed as done
--   jobs_failed: jobs closed as failed (and not also as done)
--   visits_with_window: visits to jobs with a usable time window (window or all_day)
--   visits_on_time: of those, check-ins inside the window
--   timed_visits: visits with both a check-in and a check-out (in that order)
--   on_site_minutes: minutes from check-in to check-out summed over the timed visits; 0 when none
--   avg_on_site_minutes: on_site_minutes / timed_visits; null when there were none
--   planned_on_site_minutes: the planned minutes on site of the same timed visits
--   first_check_in_at: the day's first check-in at the place, UTC
--   last_check_out_at: the last check-out of the day's jobs at the place, UTC
--
-- Parameters: $days (the days to build).
WITH place_names AS (
    SELECT place_uid, nullif(name, '') AS place_name
    FROM places
    QUALIFY row_number() OVER (
        PARTITION BY place_uid ORDER BY fetched_at DESC NULLS LAST, day DESC
    ) = 1
),

visits AS (
    SELECT
        day,
        place_uid,
        any_value(place_name) AS job_place_name,
        count(*) AS jobs,
        count(check_in_at) AS visits,
        count(DISTINCT worker_uid) FILTER (WHERE check_in_at IS NOT NULL) AS visitors,
        count(*) FILTER (WHERE done_outcome = 'success') AS jobs_done,
        count(*) FILTER (WHERE done_outcome = 'failed') AS jobs_failed,
        count(on_time) AS visits_with_window,
        count(*) FILTER (WHERE on_time) AS visits_on_time,
        count(on_site_minutes) AS timed_visits,
        -- Sums of doubles go through exact decimals: DuckDB adds in parallel in no fixed order, and
        -- re-running a day must give the same digits.
        coalesce(sum(on_site_minutes::DECIMAL(38, 12))::DOUBLE, 0) AS on_site_minutes,
        coalesce((sum(planned_on_site_minutes::DECIMAL(38, 12)) FILTER (WHERE on_site_minutes IS NOT NULL))::DOUBLE, 0)
            AS planned_on_site_minutes,
        min(check_in_at) AS first_check_in_at,
        max(check_out_at) AS last_check_out_at
    FROM job_timeline
    WHERE day IN (SELECT unnest($days)) AND place_uid IS NOT NULL
    GROUP BY day, place_uid
)

SELECT
    day,
    place_uid,
    coalesce(n.place_name, v.job_place_name) AS place_name,
    jobs,
    visits,
    visitors,
    jobs_done,
    jobs_failed,
    visits_with_window,
    visits_on_time,
    timed_visits,
    on_site_minutes,
    on_site_minutes / nullif(timed_visits, 0) AS avg_on_site_minutes,
    planned_on_site_minutes,
    first_check_in_at,
    last_check_out_at
FROM visits AS v
LEFT JOIN place_names AS n USING (place_uid)
