-- 0022: the warehouse grows with the data, not with the answers.
--
-- Raw bodies of successful calls go into pgy.raw_body_pack: one row per recorded chunk of calls, the chunk's bodies
-- concatenated and deflate-compressed together (zlib), so the repetition across bodies (keys, dates, the
-- envelope) compresses away: about 150 bytes per body instead of 1.3-2 kB. The table is partitioned by week of
-- receipt, and bodies of successful calls expire after a retention window by dropping whole weeks, never by a
-- DELETE. Bodies of every other attempt (failed, malformed, rate-limited, retried) stay one row each in
-- pgy.raw_response, readable in SQL, and are kept longer (they are the evidence a parser fix is written from).
-- Bodies already in pgy.raw_response stay where they are, with the same retention rules: nothing is moved.
--
-- The pipeline's role appends to the archive and never deletes from it: creating a week's partition and expiring
-- old bodies are done by two SECURITY DEFINER functions owned by the schema owner, the only way pgy_etl can.

CREATE TABLE pgy.raw_body_pack (
    first_id      bigint      NOT NULL,  -- smallest pgy.fetch_log.id in the pack
    week          date        NOT NULL,  -- Monday (UTC) of the week the bodies were received: the partition key
    last_id       bigint      NOT NULL,  -- largest pgy.fetch_log.id in the pack
    fetch_log_ids bigint[]    NOT NULL,  -- ascending, one per body
    kinds         text        NOT NULL,  -- one letter per body: j = JSON, t = other UTF-8 text, b = bytes
    sizes         integer[]   NOT NULL,  -- length in bytes of each body
    pack          bytea       NOT NULL,  -- zlib (deflate) of the bodies concatenated in fetch_log_ids order
    received_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT raw_body_pack_pkey PRIMARY KEY (first_id, week),
    CONSTRAINT raw_body_pack_shape CHECK (
        cardinality(fetch_log_ids) = length(kinds) AND cardinality(sizes) = length(kinds) AND first_id <= last_id)
) PARTITION BY RANGE (week);
COMMENT ON TABLE pgy.raw_body_pack IS
    'Raw bodies of successful API calls, zlib-compressed together per recorded chunk; weekly partitions, expired by dropping a week. Read them with pgy_pipeline.warehouse.raw_archive.';

-- Which bodies are retained, and where, without decompressing anything.
CREATE VIEW pgy.raw_body AS
SELECT u.fetch_log_id, u.kind, u.size, 'pack'::text AS stored_in, p.received_at
  FROM pgy.raw_body_pack p,
       unnest(p.fetch_log_ids, string_to_array(p.kinds, NULL), p.sizes) AS u(fetch_log_id, kind, size)
UNION ALL
SELECT r.fetch_log_id,
       CASE WHEN r.body IS NOT NULL THEN 'j' WHEN r.body_text IS NOT NULL THEN 't' ELSE 'b' END,
       coalesce(octet_length(r.body::text), octet_length(r.body_text), octet_length(r.body_bytes)),
       'row', r.received_at
  FROM pgy.raw_response r;
COMMENT ON VIEW pgy.raw_body IS
    'Every retained raw body: its call (pgy.fetch_log.id), kind (j JSON, t text, b bytes), size, and where it is kept.';
COMMENT ON COLUMN pgy.raw_body.fetch_log_id IS 'pgy.fetch_log.id of the attempt that received the body.';
COMMENT ON COLUMN pgy.raw_body.kind IS 'j: JSON; t: UTF-8 text that is not JSON jsonb accepts; b: bytes (not UTF-8, or a NUL).';
COMMENT ON COLUMN pgy.raw_body.size IS 'Length in bytes (for a row of pgy.raw_response holding jsonb: of its text form).';
COMMENT ON COLUMN pgy.raw_body.stored_in IS 'pack: compressed in pgy.raw_body_pack (successful calls); row: one row of pgy.raw_response.';
COMMENT ON COLUMN pgy.raw_body.received_at IS 'When the body was recorded.';

COMMENT ON TABLE pgy.raw_response IS
    'Raw bodies of API attempts that did not succeed (and of successful ones recorded before the compressed archive), one row each.';
CREATE INDEX raw_response_received_at_brin ON pgy.raw_response USING brin (received_at);

-- The pipeline may add to the archive, not change or remove what is there.
REVOKE UPDATE, DELETE ON pgy.raw_body_pack, pgy.raw_response FROM pgy_etl;

-- Create the partition of the week starting p_week (a Monday) unless it exists; callable by pgy_etl.
CREATE FUNCTION pgy.raw_body_week(p_week date) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part text := 'raw_body_pack_' || to_char(p_week, 'YYYYMMDD');
BEGIN
    IF extract(isodow FROM p_week) <> 1 THEN
        RAISE EXCEPTION 'raw_body_week: % is not a Monday', p_week;
    END IF;
    IF to_regclass('pgy.' || part) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(7386509442913775463);  -- "pgy-raw-week": two recorders create it once
    IF to_regclass('pgy.' || part) IS NULL THEN
        EXECUTE format('CREATE TABLE pgy.%I PARTITION OF pgy.raw_body_pack FOR VALUES FROM (%L) TO (%L)',
                       part, p_week, p_week + 7);
        -- Already compressed: no point in TOAST trying again.
        EXECUTE format('ALTER TABLE pgy.%I ALTER COLUMN pack SET STORAGE EXTERNAL', part);
        EXECUTE format('REVOKE ALL ON pgy.%I FROM pgy_etl', part);  -- reached through the parent only
    END IF;
END
$$;

-- Expire bodies: weeks of successful calls' bodies entirely older than p_retention_days are dropped; rows of
-- pgy.raw_response older than p_failed_retention_days go, and those of successful calls (recorded before the
-- archive) after p_retention_days. Days count by the clock (UTC). Returns what was removed.
CREATE FUNCTION pgy.expire_raw_bodies(p_retention_days integer, p_failed_retention_days integer,
                                      OUT weeks_dropped integer, OUT rows_deleted bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cutoff date := (now() AT TIME ZONE 'UTC')::date - p_retention_days;
    part record;
    n bigint;
BEGIN
    IF p_retention_days IS NULL OR p_retention_days < 7 OR p_failed_retention_days < p_retention_days THEN
        RAISE EXCEPTION 'expire_raw_bodies: retention must be at least 7 days and failed-call retention at least as long (got %, %)',
            p_retention_days, p_failed_retention_days;
    END IF;
    SET LOCAL lock_timeout = '10s';
    weeks_dropped := 0;
    FOR part IN
        SELECT c.relname
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'pgy.raw_body_pack'::regclass
           AND c.relname ~ '^raw_body_pack_[0-9]{8}$'
           AND to_date(right(c.relname, 8), 'YYYYMMDD') + 7 <= cutoff
    LOOP
        EXECUTE format('DROP TABLE pgy.%I', part.relname);
        weeks_dropped := weeks_dropped + 1;
    END LOOP;
    DELETE FROM pgy.raw_response r
     USING pgy.fetch_log f
     WHERE r.received_at < now() - make_interval(days => p_retention_days)
       AND f.id = r.fetch_log_id AND f.is_final AND f.outcome = 'ok';
    GET DIAGNOSTICS rows_deleted = ROW_COUNT;
    DELETE FROM pgy.raw_response WHERE received_at < now() - make_interval(days => p_failed_retention_days);
    GET DIAGNOSTICS n = ROW_COUNT;
    rows_deleted := rows_deleted + n;
END
$$;

REVOKE ALL ON FUNCTION pgy.raw_body_week(date), pgy.expire_raw_bodies(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgy.raw_body_week(date), pgy.expire_raw_bodies(integer, integer) TO pgy_etl;

-- The fetch log, narrower: it keeps every row for ever, so each index is paid on every call for ever.
-- * time: a BRIN index (rows arrive in time order; a few pages in all) instead of a B-tree entry per row;
-- * run id: a hash index (4-byte hash per entry instead of the 36-character id);
-- * per KOL: only what the plan asks, the KOLs whose final call answered "no content" (a handful of rows).
DROP INDEX pgy.fetch_log_fetched_at_idx;
CREATE INDEX fetch_log_fetched_at_brin ON pgy.fetch_log USING brin (fetched_at);
DROP INDEX pgy.fetch_log_run_id_idx;
CREATE INDEX fetch_log_run_id_idx ON pgy.fetch_log USING hash (run_id);
DROP INDEX pgy.fetch_log_kol_series_idx;
CREATE INDEX fetch_log_no_content_idx ON pgy.fetch_log (kol_id) WHERE is_final AND outcome = 'no_content';

-- Date-range questions over the trend (a partition's rows, the checks): daily loads append in date order, so a
-- BRIN index lets those scans skip every older block range for a few kB.
CREATE INDEX kol_fans_trend_date_key_brin ON pgy.kol_fans_trend USING brin (date_key);
