-- 0011: the analysts' read-only role. A NOLOGIN group role: grant it to analysts' own login roles
-- (GRANT pgy_reader TO alice;) so each person keeps a name in the server's logs.
-- Roles are cluster-wide: creating it must tolerate another database (or a concurrent runner) having done so.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgy_reader') THEN
        CREATE ROLE pgy_reader NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created concurrently by a migration of another database on the same server
END
$$;

GRANT USAGE ON SCHEMA pgy TO pgy_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA pgy TO pgy_reader;
-- Tables and views created by later migrations (run by the same owner) are readable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA pgy GRANT SELECT ON TABLES TO pgy_reader;
