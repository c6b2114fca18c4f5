-- 0019: KOL health and quarantine. A KOL whose calls keep failing (retries exhausted, an undocumented code,
-- malformed bodies, successes with no data) is quarantined once it has failed on PGY_QUARANTINE_AFTER_DAYS
-- consecutive partition dates (counted in partition dates, so a backfill behaves like the days it stands for).
-- A quarantined KOL no longer holds back partitions, checks or the anomaly asset; each daily run tries it once,
-- and its first answer with data ends the quarantine.

-- One row per KOL that has failed at least once since its last success (the row goes when it succeeds again).
CREATE TABLE pgy.kol_health (
    kol_id            text COLLATE "C" PRIMARY KEY REFERENCES pgy.tracked_kol (kol_id),
    failing_since     date        NOT NULL,  -- partition date of the first failure of the current streak
    last_failed_on    date        NOT NULL,  -- partition date of the latest failed run
    failing_days      integer     NOT NULL,  -- partition dates the KOL is behind: the streak the threshold counts
    last_outcome      text        NOT NULL,  -- fetch_log outcome of the latest failed call (failed, malformed, empty)
    last_code         integer,               -- API code (or HTTP status) of that call, when one arrived
    last_message      text,                  -- the API's message or the error, redacted
    last_run_id       text,
    quarantined_since date,                  -- partition date at which the threshold was reached; null: not quarantined
    quarantined_at    timestamptz,           -- wall clock of that run
    last_tried_on     date,                  -- partition date a quarantined KOL was last tried (once per date)
    updated_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgy.kol_health IS
    'KOLs whose calls failed since their last success: the failing streak in partition dates and the quarantine.';

-- Every entry into and exit from quarantine, append-only: the chat alert sends each event once.
CREATE TABLE pgy.kol_quarantine_event (
    id          bigserial   PRIMARY KEY,
    kol_id      text COLLATE "C" NOT NULL,
    event       text        NOT NULL CHECK (event IN ('entered', 'left')),
    on_date     date        NOT NULL,  -- the partition date of the run that decided it
    at          timestamptz NOT NULL DEFAULT now(),
    code        integer,
    message     text,
    run_id      text
);
COMMENT ON TABLE pgy.kol_quarantine_event IS
    'Each time a KOL entered or left quarantine (append-only; the alert sensor reports each row once).';
REVOKE UPDATE, DELETE ON pgy.kol_quarantine_event FROM pgy_etl;

-- A success whose answer holds no data point at all is its own outcome: it settles nothing.
ALTER TABLE pgy.fetch_log DROP CONSTRAINT IF EXISTS fetch_log_outcome_check;
ALTER TABLE pgy.fetch_log ADD CONSTRAINT fetch_log_outcome_check CHECK (outcome IN (
    'ok', 'empty', 'no_content', 'invalid_params', 'malformed', 'retry', 'rate_limited', 'failed', 'stopped',
    'not_attempted'));

CREATE VIEW pgy.kol_quarantine AS
SELECT h.kol_id,
       h.quarantined_since AS since,
       h.quarantined_at,
       h.failing_since,
       h.failing_days,
       h.last_outcome,
       h.last_code,
       h.last_message,
       h.last_failed_on,
       h.last_tried_on
  FROM pgy.kol_health h
  JOIN pgy.tracked_kol k USING (kol_id)
 WHERE h.quarantined_since IS NOT NULL AND k.active;
COMMENT ON VIEW pgy.kol_quarantine IS
    'Active KOLs in quarantine: their calls kept failing, so they no longer hold back partitions, checks or the '
    'anomaly asset. Each daily run tries them once; the first answer with data ends the quarantine.';
COMMENT ON COLUMN pgy.kol_quarantine.kol_id IS 'Xiaohongshu user id of the KOL.';
COMMENT ON COLUMN pgy.kol_quarantine.since IS 'Partition date of the run at which the KOL was quarantined.';
COMMENT ON COLUMN pgy.kol_quarantine.quarantined_at IS 'When that run decided it (wall clock).';
COMMENT ON COLUMN pgy.kol_quarantine.failing_since IS 'Partition date of the first failure of the streak.';
COMMENT ON COLUMN pgy.kol_quarantine.failing_days IS 'Partition dates the KOL was behind when it last failed.';
COMMENT ON COLUMN pgy.kol_quarantine.last_outcome IS 'failed (retries exhausted or an undocumented code), malformed, or empty (success with no data).';
COMMENT ON COLUMN pgy.kol_quarantine.last_code IS 'API code (or HTTP status) of the latest failed call, when one arrived.';
COMMENT ON COLUMN pgy.kol_quarantine.last_message IS 'The API''s message or the error of that call.';
COMMENT ON COLUMN pgy.kol_quarantine.last_failed_on IS 'Partition date of the latest failed run.';
COMMENT ON COLUMN pgy.kol_quarantine.last_tried_on IS 'Partition date at which the KOL was last tried.';
GRANT SELECT ON pgy.kol_quarantine TO pgy_reader;
