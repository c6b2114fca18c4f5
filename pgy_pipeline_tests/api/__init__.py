"""Tests of pgy_pipeline/api/: the client, its answers and codes, windows, concurrency, redaction, the API contract."""
