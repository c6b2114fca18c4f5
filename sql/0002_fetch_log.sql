-- 0002: one row per API call attempt, and the raw bodies so a parsing fix can be replayed without re-billing.

-- kol_id / increase_type use COLLATE "C" like every other pgy table, so joins between them never meet
-- a collation conflict and use the indexes.
CREATE TABLE pgy.fetch_log (
    id                bigserial   PRIMARY KEY,
    fetched_at        timestamptz NOT NULL DEFAULT now(),
    run_id            text,                 -- Dagster run id (or a CLI run id); null for ad-hoc calls
    partition_start   date,                 -- the partition range the run was materialising
    partition_end     date,
    kol_id            text COLLATE "C" NOT NULL,
    increase_type     text COLLATE "C" NOT NULL CHECK (increase_type IN ('total_fans', 'new_fans')),
    endpoint          text        NOT NULL CHECK (endpoint IN ('legacy_v1', 'current')),
    window_days       integer     NOT NULL, -- the window requested (30/60 legacy, 30/90 current)
    days_wanted       integer     NOT NULL, -- how far back the plan wanted to reach
    attempt           integer     NOT NULL, -- 1-based; 0 = never sent (outcome not_attempted)
    outcome           text        NOT NULL CHECK (outcome IN ('ok', 'no_content', 'invalid_params', 'malformed',
                                                              'retry', 'rate_limited', 'failed', 'stopped',
                                                              'not_attempted')),
    is_final          boolean     NOT NULL, -- the last attempt of its call: outcome is the call's outcome
    http_status       integer,
    api_code          integer,
    api_message       text,
    request_id        text,
    record_time       text,
    billed            boolean     NOT NULL DEFAULT false,
    rows_received     integer,              -- final attempt only
    first_date_key    date,                 -- final attempt only
    last_date_key     date,                 -- final attempt only
    fans_num_inc      bigint,               -- final attempt only (fansNumInc)
    fans_num_inc_rate double precision,     -- final attempt only (fansNumIncRate, a fraction)
    duration_ms       integer,
    error             text                  -- redacted, human readable; never contains the token or a URL with it
);
CREATE INDEX fetch_log_run_id_idx ON pgy.fetch_log (run_id);
CREATE INDEX fetch_log_kol_series_idx ON pgy.fetch_log (kol_id, increase_type, fetched_at);
CREATE INDEX fetch_log_fetched_at_idx ON pgy.fetch_log (fetched_at);
COMMENT ON TABLE pgy.fetch_log IS 'One row per Just One API call attempt (attempt 0 = not attempted because the run stopped).';

-- Exactly one of the three body columns is set: jsonb when the body parses as JSON, text when it is
-- UTF-8 but not JSON (an HTML error page), bytes when it is not even UTF-8. Never a URL, never the token.
CREATE TABLE pgy.raw_response (
    fetch_log_id bigint      PRIMARY KEY REFERENCES pgy.fetch_log (id) ON DELETE CASCADE,
    body         jsonb,
    body_text    text,
    body_bytes   bytea,
    received_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT raw_response_one_body CHECK (num_nonnulls(body, body_text, body_bytes) = 1)
);
COMMENT ON TABLE pgy.raw_response IS 'Raw API response bodies keyed by pgy.fetch_log.id, for replaying parsers without re-billing.';
