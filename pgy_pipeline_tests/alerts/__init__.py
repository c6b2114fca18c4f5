"""Tests of pgy_pipeline/alerts/: chat alerts against a local webhook receiver."""
