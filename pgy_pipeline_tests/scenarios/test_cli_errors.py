"""Every `pgy-pipeline` command, run from a shell, ends the project's own errors with one sentence on stderr and
a non-zero exit, never a traceback: a refused migration history, an unreachable warehouse, a missing privilege
and bad configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from pgy_pipeline_tests.support.db import login_role
from pgy_pipeline_tests.support.simulator import kol_id

pytestmark = [pytest.mark.subprocess]

# One command of each kind: schema, KOL management (read and write), monitoring.
COMMANDS = [("db", "upgrade"), ("kols", "add", kol_id(1)), ("kols", "list"), ("status",)]


def _run(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PGY_")} | env
    return subprocess.run(
        [sys.executable, "-m", "pgy_pipeline.cli", *argv], env=full, capture_output=True, text=True, timeout=120
    )


def _one_sentence(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """The command exited `code` with exactly one line on stderr, naming the command and saying `words`."""
    err = done.stderr.strip()
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and len(err.splitlines()) == 1, done.stderr
    assert err.startswith(f"pgy-pipeline {done.args[3]}: "), err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture
def home(tmp_path: Path) -> Iterator[dict[str, str]]:
    """PGY_HOME in the test's tmp dir: no command may fall back to a shared embedded server."""
    yield {"PGY_HOME": str(tmp_path / "home")}


def test_refused_migration_history(engine: Engine, database_url: str, home: dict[str, str]) -> None:
    with engine.begin() as conn:  # a newer pgy-pipeline migrated this database
        future = "INSERT INTO pgy.schema_migrations (name, checksum) VALUES ('9999_from_the_future.sql', 'x')"
        conn.execute(text(future))
    for argv in COMMANDS:
        _one_sentence(_run({**home, "PGY_DATABASE_URL": database_url}, *argv), 1, "9999_from_the_future.sql",
                      "Upgrade pgy-pipeline")  # fmt: skip


def test_unreachable_warehouse(tmp_path: Path, home: dict[str, str]) -> None:
    # A Unix socket directory that does not exist: nothing can answer, and nothing leaves this machine.
    url = f"postgresql://pgy@/warehouse?host={tmp_path / 'no-server-here'}"
    for argv in COMMANDS:
        _one_sentence(_run({**home, "PGY_DATABASE_URL": url}, *argv), 1, "cannot be reached",
                      "check that Postgres is running")  # fmt: skip


def test_missing_privilege(admin_url: str, database_url: str, engine: Engine, home: dict[str, str]) -> None:
    with engine.begin() as conn:  # outdated schema: only the owner may bring it up to date
        conn.execute(text("DELETE FROM pgy.schema_migrations WHERE name = '0016_etl_role.sql'"))
    with login_role(admin_url, database_url, "pgy_etl") as etl:
        for argv in COMMANDS:
            _one_sentence(_run({**home, "PGY_DATABASE_URL": etl}, *argv), 1, "the schema owner must run")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO pgy.schema_migrations (name, checksum) SELECT '0016_etl_role.sql', 'x'"))
        conn.execute(text("UPDATE pgy.schema_migrations SET checksum = :c WHERE name = '0016_etl_role.sql'"),
                     {"c": _checksum("0016_etl_role.sql")})  # fmt: skip
    with login_role(admin_url, database_url, "pgy_reader") as reader:  # current schema, but a reader writes
        _one_sentence(_run({**home, "PGY_DATABASE_URL": reader}, "kols", "add", kol_id(1)), 1,
                      "lacks a privilege", "permission denied for table tracked_kol")  # fmt: skip


def _checksum(name: str) -> str:
    from pgy_pipeline.warehouse.migrate import available

    return next(m.checksum for m in available() if m.name == name)


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("PGY_DATABASE_URL", "mysql://someone:secret@127.0.0.1/db", "not a Postgres URL"),
        ("PGY_DATABASE_URL", "::not a url::", "cannot be parsed"),
    ],
)
def test_bad_config(setting: str, value: str, words: str, home: dict[str, str]) -> None:
    for argv in COMMANDS:
        err = _one_sentence(_run({**home, setting: value}, *argv), 2, words, setting)
        assert "secret" not in err  # a database URL's password is never echoed


def test_an_unset_database_url_fails_every_command_in_one_sentence_and_creates_nothing(tmp_path: Path) -> None:
    """No PGY_DATABASE_URL, no PGY_HOME, no embedded warehouse here: no throwaway database is started."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGY_")}
    for argv in COMMANDS:
        done = subprocess.run(
            [sys.executable, "-m", "pgy_pipeline.cli", *argv], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        _one_sentence(done, 2, "PGY_DATABASE_URL is not set", "nothing was created")
    assert list(tmp_path.iterdir()) == []


def test_doctor_names_each_bad_setting_and_passes_a_good_environment() -> None:
    bad = {"PGY_PUBLISH_LAG_RETRIES": "-1", "PGY_SCHEDULE_TIME": "6 ", "PGY_TREND_ENDPOINT": "v9"}
    done = _run(bad, "doctor")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert sorted(line.split("bad setting: ")[1].split("=")[0] for line in done.stderr.splitlines()
                  if line.startswith("bad setting: ")) == sorted(bad)  # fmt: skip
    good = _run({"PGY_SCHEDULE_TIME": "07:05", "PGY_DAILY_CALL_BUDGET": "40000"}, "doctor")
    assert good.returncode == 0 and "settings are valid" in good.stdout
