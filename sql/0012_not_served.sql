-- 0012: dates the API does not serve for a KOL series although a successful window covered them.
-- A window of N days ending at its newest dateKey covers those N dates; a covered date absent from the answer
-- is "not served": before the account's history starts (a young account) or a hole the platform left. It is
-- not missing: runs, checks and `pgy-pipeline status` count it as settled, and reruns do not bill for it.
-- The load keeps this table and pgy.kol_fans_trend disjoint in its own transaction: a date a later window
-- serves is stored normally and its row here is deleted.

CREATE TABLE pgy.kol_fans_not_served (
    kol_id        text COLLATE "C" NOT NULL,
    increase_type text COLLATE "C" NOT NULL
                  CONSTRAINT kol_fans_not_served_increase_type CHECK (increase_type IN ('total_fans', 'new_fans')),
    date_key      date        NOT NULL,
    fetch_log_id  bigint      NOT NULL,  -- the latest successful call whose window covered the date without it
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT kol_fans_not_served_pkey PRIMARY KEY (kol_id, increase_type, date_key)
);
COMMENT ON TABLE pgy.kol_fans_not_served IS
    'Dates a successful API window covered but did not contain, per KOL and series (settled, not missing).';

-- For analysts: why each date is not served. Before the series' first stored date: the account had no history
-- yet; otherwise a hole in the platform's data.
CREATE OR REPLACE VIEW pgy.kol_not_served AS
SELECT n.kol_id,
       n.date_key,
       n.increase_type,
       CASE WHEN first.first_date IS NULL OR n.date_key < first.first_date THEN 'before_history' ELSE 'hole' END
           AS reason,
       n.first_seen_at,
       n.last_seen_at,
       n.fetch_log_id
  FROM pgy.kol_fans_not_served n
  LEFT JOIN LATERAL (
        SELECT min(t.date_key) AS first_date
          FROM pgy.kol_fans_trend t
         WHERE t.kol_id = n.kol_id AND t.increase_type = n.increase_type
  ) first ON true;

COMMENT ON VIEW pgy.kol_not_served IS
    'Dates the API does not serve for a KOL series although a successful window covered them, with the reason.';
COMMENT ON COLUMN pgy.kol_not_served.kol_id IS 'Xiaohongshu user id of the KOL.';
COMMENT ON COLUMN pgy.kol_not_served.date_key IS 'China-calendar date the API covered but did not serve.';
COMMENT ON COLUMN pgy.kol_not_served.increase_type IS 'Series not served: total_fans or new_fans.';
COMMENT ON COLUMN pgy.kol_not_served.reason IS
    'before_history: earlier than the first date the API serves for this series (a young account); hole: a gap inside it.';
COMMENT ON COLUMN pgy.kol_not_served.first_seen_at IS 'When a window first covered the date without serving it.';
COMMENT ON COLUMN pgy.kol_not_served.last_seen_at IS 'When the latest window covered the date without serving it.';
COMMENT ON COLUMN pgy.kol_not_served.fetch_log_id IS 'pgy.fetch_log.id of that latest call.';
