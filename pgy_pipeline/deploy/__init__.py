"""Deployment files shipped with the package (the production `dagster.yaml`)."""

from pathlib import Path

DAGSTER_YAML = Path(__file__).with_name("dagster.yaml")
