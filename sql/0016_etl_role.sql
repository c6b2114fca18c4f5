-- 0016: the pipeline's least-privilege role. A NOLOGIN group role holding exactly what runs, the `kols` commands
-- and `status` need: read and write the warehouse's rows, draw ids from its sequences. No DDL: it owns nothing and
-- has no CREATE on the schema, so only the schema owner (who runs `pgy-pipeline db upgrade`) changes the schema.
-- Grant it to the login the pipeline uses (GRANT pgy_etl TO pgy_pipeline_login;).
-- Roles are cluster-wide: creating it must tolerate another database (or a concurrent runner) having done so.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgy_etl') THEN
        CREATE ROLE pgy_etl NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created concurrently by a migration of another database on the same server
END
$$;

GRANT USAGE ON SCHEMA pgy TO pgy_etl;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgy TO pgy_etl;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA pgy TO pgy_etl;
-- The migration history is the owner's: the pipeline reads it (is the schema current?) and never writes it.
REVOKE INSERT, UPDATE, DELETE ON pgy.schema_migrations FROM pgy_etl;
-- Tables, views and sequences created by later migrations (run by the same owner) are usable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA pgy GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO pgy_etl;
ALTER DEFAULT PRIVILEGES IN SCHEMA pgy GRANT USAGE, SELECT ON SEQUENCES TO pgy_etl;
