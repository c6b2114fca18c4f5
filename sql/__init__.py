"""The warehouse's SQL migrations, numbered and applied in order by `pgy-pipeline db upgrade`.

This directory is the one source of the migration files. pyproject.toml maps it into the package as
`pgy_pipeline.sql`, so a built wheel carries the same files; this file only makes it importable as that package.
"""
