-- 0013: "this call's rows are committed" moves out of pgy.fetch_log into a narrow table of its own.
-- The flag was a column of pgy.fetch_log, set by the load's own transaction. fetch_log pages are full, so
-- every UPDATE moved its row to another page and added an entry to each of the table's indexes: marking a
-- day's 20,000 calls wrote about 10.8 MB of WAL, 20 times what an identical reload writes to the warehouse
-- tables. An INSERT of one bigint per call into this table writes a small fraction of that.
--
-- Same guarantee as before: the load inserts its calls' ids in the transaction that commits their rows, so
-- an id is here exactly when that call's rows are in pgy.kol_fans_trend (a load cut off leaves its calls out).
--
-- No foreign key to pgy.fetch_log: every id comes from a fetch_log row the run committed before loading, and
-- fetch_log rows are never deleted, so a per-row referential-integrity trigger (a look-up and a row lock in
-- fetch_log per call) would cost more than it protects.
CREATE TABLE pgy.fetch_log_loaded (
    fetch_log_id bigint PRIMARY KEY
);
COMMENT ON TABLE pgy.fetch_log_loaded IS
    'Ids of pgy.fetch_log calls whose rows are committed in pgy.kol_fans_trend (inserted by the same transaction).';
COMMENT ON COLUMN pgy.fetch_log_loaded.fetch_log_id IS
    'pgy.fetch_log.id of the final attempt of a successful call.';

INSERT INTO pgy.fetch_log_loaded (fetch_log_id) SELECT id FROM pgy.fetch_log WHERE loaded;

-- pgy.fetch_health read the log with `*`, which Postgres expanded to every column when the view was made, the
-- flag included: the same view (same columns, comments and grants), now naming the columns it reads.
CREATE OR REPLACE VIEW pgy.fetch_health AS
WITH attempts AS (
    SELECT (fetched_at AT TIME ZONE 'Asia/Shanghai')::date AS fetch_date,
           kol_id, increase_type, attempt, outcome, is_final, http_status, api_code, billed
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

ALTER TABLE pgy.fetch_log DROP COLUMN loaded;
