"""Tests of pgy_pipeline/report/: the follower report and `kols show`."""
