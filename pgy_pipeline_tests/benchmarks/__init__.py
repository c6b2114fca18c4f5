"""Benchmarks: each prints its figures, last line one JSON object. Run with `python -m ...`."""
