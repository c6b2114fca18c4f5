-- 0018: suspected abnormal follower growth (疑似异常涨粉), written by the Dagster asset kol_fans_anomaly.
-- One row per KOL, date and rule. Rows are suspicions for an analyst to look at, never verdicts: a viral
-- note looks like bought followers in the numbers alone.

CREATE TABLE pgy.kol_fans_anomaly (
    kol_id       text COLLATE "C" NOT NULL,
    date_key     date             NOT NULL,
    rule         text COLLATE "C" NOT NULL
                 CONSTRAINT kol_fans_anomaly_rule CHECK (rule IN ('spike', 'spike_then_drop', 'purge')),
    observed     bigint           NOT NULL,
    baseline     double precision NOT NULL,
    score        double precision NOT NULL,
    related_date date,
    summary      text             NOT NULL,
    detected_at  timestamptz      NOT NULL DEFAULT now(),
    run_id       text,
    CONSTRAINT kol_fans_anomaly_pkey PRIMARY KEY (kol_id, date_key, rule)
);
-- A partition (re)run replaces the rows of its dates; analysts list the newest dates first.
CREATE INDEX kol_fans_anomaly_date_idx ON pgy.kol_fans_anomaly (date_key);

COMMENT ON TABLE pgy.kol_fans_anomaly IS
    'Suspected abnormal follower growth: one row per (kol_id, date_key, rule), replaced whenever the partition of date_key is rerun.';
COMMENT ON COLUMN pgy.kol_fans_anomaly.kol_id IS 'Xiaohongshu user id of the KOL.';
COMMENT ON COLUMN pgy.kol_fans_anomaly.date_key IS
    'China date the suspicion is about: the spike day, the day the loss after a spike was confirmed, or the newest date of the run that saw a purge.';
COMMENT ON COLUMN pgy.kol_fans_anomaly.rule IS
    'spike (new fans far above the KOL''s own baseline), spike_then_drop (most of a spike lost within days) or purge (past totals restated downwards).';
COMMENT ON COLUMN pgy.kol_fans_anomaly.observed IS
    'spike: new fans on date_key; spike_then_drop: fans lost since the spike; purge: followers removed from one past date (the largest such removal).';
COMMENT ON COLUMN pgy.kol_fans_anomaly.baseline IS
    'spike: the usual daily new fans (trailing median, or same-weekday median if higher); spike_then_drop: the spike''s excess over its baseline; purge: the total before the restatement.';
COMMENT ON COLUMN pgy.kol_fans_anomaly.score IS
    'Strength of the suspicion, per rule: spike = observed / baseline (times the usual); spike_then_drop and purge = observed / baseline (the share lost or removed).';
COMMENT ON COLUMN pgy.kol_fans_anomaly.related_date IS
    'spike_then_drop: the spike''s date; purge: the past date whose total lost the most; null for spike.';
COMMENT ON COLUMN pgy.kol_fans_anomaly.summary IS 'One sentence for a human, always worded as a suspicion.';
COMMENT ON COLUMN pgy.kol_fans_anomaly.detected_at IS 'When the row was computed.';
COMMENT ON COLUMN pgy.kol_fans_anomaly.run_id IS 'Dagster run (or CLI run) that computed the row.';

-- The last 30 days of suspicions per KOL (counted back from the KOL's own newest stored date), newest first.
CREATE OR REPLACE VIEW pgy.kol_fans_anomaly_latest AS
WITH newest AS (
    SELECT kol_id, max(date_key) AS latest_date
      FROM pgy.kol_fans_trend
     GROUP BY kol_id
)
SELECT a.kol_id,
       k.label,
       a.date_key,
       a.rule,
       'suspected'::text AS verdict,
       a.observed,
       a.baseline,
       a.score,
       a.related_date,
       a.summary,
       a.detected_at
  FROM pgy.kol_fans_anomaly a
  JOIN newest n ON n.kol_id = a.kol_id
  LEFT JOIN pgy.tracked_kol k ON k.kol_id = a.kol_id
 WHERE a.date_key > n.latest_date - 30;

COMMENT ON VIEW pgy.kol_fans_anomaly_latest IS
    'Suspected abnormal follower growth of the last 30 days per KOL (up to its newest stored date); suspicions, never proof of fake followers.';
COMMENT ON COLUMN pgy.kol_fans_anomaly_latest.kol_id IS 'Xiaohongshu user id of the KOL.';
COMMENT ON COLUMN pgy.kol_fans_anomaly_latest.label IS 'Label given when the KOL was tracked (pgy.tracked_kol.label).';
COMMENT ON COLUMN pgy.kol_fans_anomaly_latest.date_key IS 'China date the suspicion is about (see pgy.kol_fans_anomaly.date_key).';
COMMENT ON COLUMN pgy.kol_fans_anomaly_latest.rule IS 'spike, spike_then_drop or purge.';
COMMENT ON COLUMN pgy.kol_fans_anomaly_latest.verdict IS 'Always ''suspected'': the numbers alone cannot prove followers were bought or purged.';
COMMENT ON COLUMN pgy.kol_fans_anomaly_latest.observed IS 'The value that stood out (see pgy.kol_fans_anomaly.observed).';
COMMENT ON COLUMN pgy.kol_fans_anomaly_latest.baseline IS 'What it was compared with (see pgy.kol_fans_anomaly.baseline).';
COMMENT ON COLUMN pgy.kol_fans_anomaly_latest.score IS 'Strength of the suspicion, per rule (see pgy.kol_fans_anomaly.score).';
COMMENT ON COLUMN pgy.kol_fans_anomaly_latest.related_date IS 'The spike''s date (spike_then_drop) or the most reduced past date (purge).';
COMMENT ON COLUMN pgy.kol_fans_anomaly_latest.summary IS 'One sentence for a human, worded as a suspicion.';
COMMENT ON COLUMN pgy.kol_fans_anomaly_latest.detected_at IS 'When the row was computed.';
