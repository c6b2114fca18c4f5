-- 0010: views for analysts. Names and columns are a public interface: add, never rename.
-- Every view is plain SQL over the contract tables, so psql users and BI tools see the same numbers.

-- One row per KOL and date with both series side by side.
CREATE OR REPLACE VIEW pgy.kol_daily AS
WITH side_by_side AS (
    SELECT kol_id,
           date_key,
           max(num) FILTER (WHERE increase_type = 'total_fans') AS total_fans,
           max(num) FILTER (WHERE increase_type = 'new_fans')   AS new_fans
      FROM pgy.kol_fans_trend
     GROUP BY kol_id, date_key
)
SELECT d.kol_id,
       d.date_key,
       d.total_fans,
       d.new_fans,
       d.total_fans - prev.num AS total_change
  FROM side_by_side d
  LEFT JOIN pgy.kol_fans_trend prev
         ON prev.kol_id = d.kol_id
        AND prev.increase_type = 'total_fans'
        AND prev.date_key = d.date_key - 1;

COMMENT ON VIEW pgy.kol_daily IS
    'One row per KOL and China-calendar date: total fans and new fans side by side, plus the day-over-day change of the total.';
COMMENT ON COLUMN pgy.kol_daily.kol_id IS 'Xiaohongshu user id of the KOL.';
COMMENT ON COLUMN pgy.kol_daily.date_key IS 'Calendar date in China (Asia/Shanghai) the values are for.';
COMMENT ON COLUMN pgy.kol_daily.total_fans IS 'Total followers on date_key (series total_fans); null if the API never served it.';
COMMENT ON COLUMN pgy.kol_daily.new_fans IS 'New followers on date_key as the API reports them (series new_fans); null if never served.';
COMMENT ON COLUMN pgy.kol_daily.total_change IS
    'total_fans minus the total of the day before (derived from totals); null when either day is missing. Should equal new_fans.';

-- One row per KOL: its latest total and growth over 7 / 30 / 90 days, absolute and as a fraction.
CREATE OR REPLACE VIEW pgy.kol_latest AS
WITH latest AS (
    SELECT DISTINCT ON (kol_id) kol_id, date_key, num
      FROM pgy.kol_fans_trend
     WHERE increase_type = 'total_fans'
     ORDER BY kol_id, date_key DESC
)
SELECT l.kol_id,
       k.label,
       coalesce(k.active, false)                            AS tracked,
       l.date_key                                           AS latest_date,
       l.num                                                AS total_fans,
       l.num - t7.num                                       AS growth_7d,
       (l.num - t7.num)::double precision / nullif(t7.num, 0)   AS growth_7d_rate,
       l.num - t30.num                                      AS growth_30d,
       (l.num - t30.num)::double precision / nullif(t30.num, 0) AS growth_30d_rate,
       l.num - t90.num                                      AS growth_90d,
       (l.num - t90.num)::double precision / nullif(t90.num, 0) AS growth_90d_rate
  FROM latest l
  LEFT JOIN pgy.tracked_kol k ON k.kol_id = l.kol_id
  LEFT JOIN pgy.kol_fans_trend t7
         ON t7.kol_id = l.kol_id AND t7.increase_type = 'total_fans' AND t7.date_key = l.date_key - 7
  LEFT JOIN pgy.kol_fans_trend t30
         ON t30.kol_id = l.kol_id AND t30.increase_type = 'total_fans' AND t30.date_key = l.date_key - 30
  LEFT JOIN pgy.kol_fans_trend t90
         ON t90.kol_id = l.kol_id AND t90.increase_type = 'total_fans' AND t90.date_key = l.date_key - 90;

COMMENT ON VIEW pgy.kol_latest IS
    'One row per KOL with stored totals: the latest date and total, and growth over 7, 30 and 90 days before it.';
COMMENT ON COLUMN pgy.kol_latest.kol_id IS 'Xiaohongshu user id of the KOL.';
COMMENT ON COLUMN pgy.kol_latest.label IS 'Label given when the KOL was tracked (pgy.tracked_kol.label).';
COMMENT ON COLUMN pgy.kol_latest.tracked IS 'True while the KOL is actively tracked (fetched daily).';
COMMENT ON COLUMN pgy.kol_latest.latest_date IS 'Latest China-calendar date with a stored total.';
COMMENT ON COLUMN pgy.kol_latest.total_fans IS 'Total followers on latest_date.';
COMMENT ON COLUMN pgy.kol_latest.growth_7d IS 'total_fans minus the total 7 days before latest_date; null if that day is missing.';
COMMENT ON COLUMN pgy.kol_latest.growth_7d_rate IS 'growth_7d divided by the total 7 days before (0.05 = +5 %).';
COMMENT ON COLUMN pgy.kol_latest.growth_30d IS 'total_fans minus the total 30 days before latest_date; null if that day is missing.';
COMMENT ON COLUMN pgy.kol_latest.growth_30d_rate IS 'growth_30d divided by the total 30 days before (a fraction).';
COMMENT ON COLUMN pgy.kol_latest.growth_90d IS 'total_fans minus the total 90 days before latest_date; null if that day is missing.';
COMMENT ON COLUMN pgy.kol_latest.growth_90d_rate IS 'growth_90d divided by the total 90 days before (a fraction).';

-- One row per China-calendar day on which calls were made: how the API answered.
CREATE OR REPLACE VIEW pgy.fetch_health AS
WITH attempts AS (
    SELECT (fetched_at AT TIME ZONE 'Asia/Shanghai')::date AS fetch_date, *
      FROM pgy.fetch_log
),
codes AS (
    SELECT fetch_date, jsonb_object_agg(code, n ORDER BY code) AS codes
      FROM (SELECT fetch_date,
                   coalesce(api_code::text, 'http_' || http_status::text, outcome) AS code,
                   count(*) AS n
              FROM attempts
             WHERE attempt > 0
             GROUP BY 1, 2) c
     GROUP BY fetch_date
),
per_kol AS (
    SELECT fetch_date, kol_id,
           count(DISTINCT increase_type) FILTER (WHERE is_final AND outcome = 'ok') AS series_ok
      FROM attempts
     GROUP BY fetch_date, kol_id
)
SELECT a.fetch_date,
       count(*) FILTER (WHERE a.is_final)                              AS calls,
       count(*) FILTER (WHERE a.attempt > 0)                           AS attempts,
       count(*) FILTER (WHERE a.is_final AND a.outcome = 'ok')         AS calls_ok,
       count(*) FILTER (WHERE a.is_final AND a.outcome NOT IN ('ok', 'not_attempted')) AS calls_failed,
       count(*) FILTER (WHERE a.is_final AND a.outcome = 'not_attempted') AS calls_not_attempted,
       count(*) FILTER (WHERE a.billed)                                AS billed_calls,
       count(DISTINCT a.kol_id)                                        AS kols_called,
       (SELECT count(*) FROM per_kol p WHERE p.fetch_date = a.fetch_date AND p.series_ok = 2) AS kols_complete,
       coalesce(c.codes, '{}'::jsonb)                                  AS codes
  FROM attempts a
  LEFT JOIN codes c ON c.fetch_date = a.fetch_date
 GROUP BY a.fetch_date, c.codes;

COMMENT ON VIEW pgy.fetch_health IS 'One row per China-calendar day of API calls: calls, failures, billed calls, codes seen.';
COMMENT ON COLUMN pgy.fetch_health.fetch_date IS 'China-calendar (Asia/Shanghai) date the calls were made.';
COMMENT ON COLUMN pgy.fetch_health.calls IS 'Calls made (a call = one KOL and series, however many attempts it took).';
COMMENT ON COLUMN pgy.fetch_health.attempts IS 'HTTP requests sent, retries included.';
COMMENT ON COLUMN pgy.fetch_health.calls_ok IS 'Calls that ended with code 0 and a valid body.';
COMMENT ON COLUMN pgy.fetch_health.calls_failed IS 'Calls that ended in any other way except not attempted (201, 400, malformed, retries exhausted, stop codes).';
COMMENT ON COLUMN pgy.fetch_health.calls_not_attempted IS 'Calls never sent because the run stopped first (token, quota, balance, permission).';
COMMENT ON COLUMN pgy.fetch_health.billed_calls IS 'Attempts the platform bills (codes 0 and 201).';
COMMENT ON COLUMN pgy.fetch_health.kols_called IS 'Distinct KOLs called that day.';
COMMENT ON COLUMN pgy.fetch_health.kols_complete IS 'KOLs whose calls for both series ended ok that day.';
COMMENT ON COLUMN pgy.fetch_health.codes IS 'Attempts per API code (or http_<status> / outcome when no code arrived), e.g. {"0": 20, "301": 2}.';
