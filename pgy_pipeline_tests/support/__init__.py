"""Helpers for the tests (plain functions and classes, no fixtures): one module per concern.

`db` (test databases and roles), `owned_pg` (a server a test may stop), `simulator` (KOL ids, clients),
`warehouse` (tracked KOLs, rows read back), `dagster` (in-process runs and ticks), `dagster_procs` (webserver
and daemon processes), `faults` (holding calls mid-run), `report` (a planted warehouse), `webhook` (a chat
receiver). `child_run` is a program: `python -m pgy_pipeline_tests.support.child_run`.
"""
