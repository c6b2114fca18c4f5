"""Tests of the Dagster definitions (pgy_pipeline/defs/, deploy/): assets, checks, automation, daemon and webserver."""
