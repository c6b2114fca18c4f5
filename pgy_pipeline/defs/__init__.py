"""The Dagster layer: the only place (with pgy_pipeline/definitions.py) that imports dagster."""
