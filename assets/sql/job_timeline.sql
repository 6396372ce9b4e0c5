-- job_timeline: one row per job and day: how the job went, how long each step took after the job
-- was created, and whether the worker arrived inside the time window.
--
-- Time windows are wall-clock times on the job's day in the worker's time zone (the member's
-- `timezone` in the latest snapshot that lists them, else the company's, else the partitions').
-- A check-in is on time when window start <= check-in <= window end; 2400 is the next local
-- midnight. A job without a check-in has no arrival: `on_time` is null, never false. So is it
-- for a job without a usable window (0/0, or one that does not parse), which therefore stays out
-- of every on-time rate. Everything stays on the job's day, even a check-out after midnight.
--
-- Known limits: a window edge in the hour a clock change repeats is read as its second
-- occurrence, and one in the hour it skips with the offset from before the change (DuckDB's
-- choices). A window ending before it starts (an overnight window) is `invalid`: the API
-- documents none; reading its end on the next day would support it once a real account shows one.
--
-- Columns:
--   day: the partition day the job belongs to (YYYYMMDD, the API's `day`)
--   job_id: the job's id
--   worker_uid: the assigned member's uid; null for an unassigned job
--   worker_name: the member's name from the roster, else the name on the job
--   team_id: the job's team; 0 when the job has none
--   place_uid: the place the job is at; null for a job at a plain address
--   place_name: that place's name as the job carries it
--   progress: how far the job got, the first that applies of archived, done, failed,
--     in_progress (checked in), rejected, accepted, scheduled (assigned) and unassigned
--   archived: whether the office archived the job (`status` = 'archived')
--   timezone: the time zone the window was read in
--   window_kind: window (a usable window), all_day (0/2400), none (0/0 or missing) or invalid
--     (not HHMM in 0..2400, or not ending after it starts); only window and all_day count
--   window_start_hhmm: the window's start as the API sent it (HHMM)
--   window_end_hhmm: the window's end as the API sent it (HHMM)
--   window_start_at: the window's start, UTC; null unless window_kind is window or all_day
--   window_end_at: the window's end, UTC; null unless window_kind is window or all_day
--   created_at: when the job was created, UTC
--   assigned_at: when the job was assigned, UTC
--   accepted_at: when the worker accepted the job, UTC
--   rejected_at: when the worker rejected the job, UTC
--   check_in_at: when the worker checked in, UTC
--   check_out_at: when the worker checked out, UTC; may be after the day's local midnight
--   done_at: when the job was closed as done, else as failed, UTC
--   done_outcome: success or failed; null while the job is open (success wins if both are set)
--   minutes_to_assigned: minutes from created to assigned
--   minutes_to_accepted: minutes from created to accepted
--   minutes_to_rejected: minutes from created to rejected
--   minutes_to_check_in: minutes from created to checked in
--   minutes_to_done: minutes from created to done_at
--   on_site_minutes: minutes from check-in to check-out; null without both, or when the
--     check-out comes before the check-in
--   planned_on_site_minutes: the planned time on site (`onSiteSeconds`) in minutes
--   on_time: whether the check-in fell inside the window; null without a check-in or without
--     a usable window
--   arrival: early, on_time or late, with the same nulls as on_time
--   minutes_late: minutes from the window's end to a late check-in; 0 for early and on-time
--     arrivals; null where on_time is null
--
-- Timestamps out of order (see the `jobs` check job_timestamps_in_order) give negative minutes.
--
-- Parameters: $days (the days to build), $default_zone (the zone of a worker the roster does not
-- list, and of unassigned jobs).
WITH job AS (
    SELECT
        j.day,
        j.job_id,
        nullif(j.worker_uid, '') AS worker_uid,
        coalesce(p.member_name, nullif(j.worker_name, '')) AS worker_name,
        coalesce(j.team_id, 0) AS team_id,
        nullif(j.place_uid, '') AS place_uid,
        nullif(j.place_name, '') AS place_name,
        coalesce(j.status = 'archived', false) AS archived,
        coalesce(p.timezone, $default_zone) AS zone,
        j.window_start_hhmm AS ws,
        j.window_end_hhmm AS we,
        j.on_site_seconds,
        j.ts_created,
        j.ts_assigned,
        j.ts_accepted,
        j.ts_rejected,
        j.ts_check_in,
        j.ts_check_out,
        j.ts_done_success,
        j.ts_done_failed
    FROM jobs AS j
    LEFT JOIN member_profile AS p ON p.member_uid = j.worker_uid
    WHERE j.day IN (SELECT unnest($days))
),

classified AS (
    SELECT
        *,
        CASE
            WHEN ws IS NULL OR we IS NULL OR (ws = 0 AND we = 0) THEN 'none'
            WHEN ws NOT BETWEEN 0 AND 2400 OR we NOT BETWEEN 0 AND 2400
                OR ws % 100 >= 60 OR we % 100 >= 60
                OR ws // 100 * 60 + ws % 100 >= we // 100 * 60 + we % 100 THEN 'invalid'
            WHEN ws = 0 AND we = 2400 THEN 'all_day'
            ELSE 'window'
        END AS window_kind,
        -- Local wall-clock time first, then to UTC: on a day when the clocks change, 2400
        -- is still the next local midnight, whatever the number of hours in between.
        strptime(day::VARCHAR, '%Y%m%d') AS local_midnight,
        -- Only in range, so that a wild value cannot overflow the interval.
        CASE WHEN ws BETWEEN 0 AND 2400 THEN to_minutes(ws // 100 * 60 + ws % 100) END
            AS start_offset,
        CASE WHEN we BETWEEN 0 AND 2400 THEN to_minutes(we // 100 * 60 + we % 100) END
            AS end_offset
    FROM job
),

placed AS (
    SELECT
        *,
        CASE WHEN window_kind IN ('window', 'all_day') THEN
            timezone('UTC', timezone(zone, local_midnight + start_offset))::TIMESTAMP_MS
        END AS window_start_at,
        CASE WHEN window_kind IN ('window', 'all_day') THEN
            timezone('UTC', timezone(zone, local_midnight + end_offset))::TIMESTAMP_MS
        END AS window_end_at,
        CASE
            WHEN ts_done_success IS NOT NULL THEN 'success'
            WHEN ts_done_failed IS NOT NULL THEN 'failed'
        END AS done_outcome,
        coalesce(ts_done_success, ts_done_failed) AS done_at
    FROM classified
)

SELECT
    day,
    job_id,
    worker_uid,
    worker_name,
    team_id,
    place_uid,
    place_name,
    CASE
        WHEN archived THEN 'archived'
        WHEN ts_done_success IS NOT NULL THEN 'done'
        WHEN ts_done_failed IS NOT NULL THEN 'failed'
        WHEN ts_check_in IS NOT NULL THEN 'in_progress'
        WHEN ts_rejected IS NOT NULL THEN 'rejected'
        WHEN ts_accepted IS NOT NULL THEN 'accepted'
        WHEN worker_uid IS NOT NULL THEN 'scheduled'
        ELSE 'unassigned'
    END AS progress,
    archived,
    zone AS timezone,
    window_kind,
    ws AS window_start_hhmm,
    we AS window_end_hhmm,
    window_start_at,
    window_end_at,
    ts_created AS created_at,
    ts_assigned AS assigned_at,
    ts_accepted AS accepted_at,
    ts_rejected AS rejected_at,
    ts_check_in AS check_in_at,
    ts_check_out AS check_out_at,
    done_at,
    done_outcome,
    date_diff('millisecond', ts_created, ts_assigned) / 60000.0 AS minutes_to_assigned,
    date_diff('millisecond', ts_created, ts_accepted) / 60000.0 AS minutes_to_accepted,
    date_diff('millisecond', ts_created, ts_rejected) / 60000.0 AS minutes_to_rejected,
    date_diff('millisecond', ts_created, ts_check_in) / 60000.0 AS minutes_to_check_in,
    date_diff('millisecond', ts_created, done_at) / 60000.0 AS minutes_to_done,
    CASE WHEN ts_check_out >= ts_check_in THEN
        date_diff('millisecond', ts_check_in, ts_check_out) / 60000.0
    END AS on_site_minutes,
    on_site_seconds / 60.0 AS planned_on_site_minutes,
    CASE WHEN ts_check_in IS NOT NULL AND window_start_at IS NOT NULL THEN
        ts_check_in BETWEEN window_start_at AND window_end_at
    END AS on_time,
    CASE
        WHEN ts_check_in IS NULL OR window_start_at IS NULL THEN NULL
        WHEN ts_check_in < window_start_at THEN 'early'
        WHEN ts_check_in > window_end_at THEN 'late'
        ELSE 'on_time'
    END AS arrival,
    CASE WHEN ts_check_in IS NOT NULL AND window_start_at IS NOT NULL THEN
        greatest(date_diff('millisecond', window_end_at, ts_check_in), 0) / 60000.0
    END AS minutes_late
FROM placed
