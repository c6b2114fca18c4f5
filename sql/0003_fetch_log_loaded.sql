-- 0003: mark, in the load's own transaction, that a successful call's rows are in pgy.kol_fans_trend.
-- A call is logged before its rows are loaded; if the load is cut off (process killed, Postgres lost), the
-- call stays `loaded = false` and a rerun fetches it again instead of treating it as in hand.

ALTER TABLE pgy.fetch_log ADD COLUMN loaded boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN pgy.fetch_log.loaded IS
    'True once the rows of this successful call are committed in pgy.kol_fans_trend (set by the same transaction).';

-- Calls logged before this column existed: their loads committed or failed long ago; count them as loaded.
UPDATE pgy.fetch_log SET loaded = true WHERE is_final AND outcome = 'ok';
