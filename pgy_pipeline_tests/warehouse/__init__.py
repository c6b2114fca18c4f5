"""Tests of pgy_pipeline/warehouse/ on real Postgres: loading, migrations, views, roles, KOLs, fetch log, archive."""
