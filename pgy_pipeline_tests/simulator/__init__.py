"""Tests of pgy_pipeline/simulator/: the API simulator itself."""
