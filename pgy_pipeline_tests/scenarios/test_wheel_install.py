"""A non-editable install, as a container image does it: build the wheel, install it (with its dependencies) into
a fresh venv, and from outside the source tree migrate, track KOLs and materialise a partition against the
simulator. The source tree must play no part: the migrations have to come from inside the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.migrate import available
from pgy_pipeline_tests.support.dagster_procs import REPO
from pgy_pipeline_tests.support.simulator import kol_id
from pgy_pipeline_tests.support.warehouse import stored

pytestmark = [
    pytest.mark.slow,
    pytest.mark.subprocess,
    pytest.mark.timeout(450),
]  # builds a wheel, installs it with its dependencies into a new venv


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin/ of a fresh venv with the project's wheel installed (not editable); one per module."""
    root = tmp_path_factory.mktemp("wheel")
    # Built from a clean copy: setuptools' build/ of an earlier build could slip stale files into the wheel.
    junk = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__")
    source = shutil.copytree(REPO, root / "source", ignore=junk)
    pip = [sys.executable, "-m", "pip", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(root / "dist"), str(source)], check=True, timeout=600)
    (wheel,) = (root / "dist").glob("pgy_pipeline-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {Path(name).name for name in archive.namelist() if name.startswith("pgy_pipeline/sql/")}
    assert {m.name for m in available()} <= shipped  # every migration of the source tree is in the wheel

    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    bin_dir = root / "venv" / "bin"
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "--quiet", "install", str(wheel)], check=True, timeout=900)
    yield bin_dir


def _run(bin_dir: Path, cwd: Path, env: dict[str, str], *cmd: str) -> subprocess.CompletedProcess[str]:
    """A command of the installed venv, run from a directory outside the source tree."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PGY_", "DAGSTER_", "PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run(
        [str(bin_dir / cmd[0]), *cmd[1:]], cwd=cwd, env=base | env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-1500:]}"
    return done


def test_the_installed_package_is_the_wheel_not_the_source_tree(installed: Path, tmp_path: Path) -> None:
    code = "import pgy_pipeline.warehouse.migrate as m; print(m.__file__); print(m.shipped_sql_dir())"
    module, sql_dir = _run(installed, tmp_path, {}, "python", "-c", code).stdout.split()
    venv = installed.parent
    assert Path(module).is_relative_to(venv) and Path(sql_dir).is_relative_to(venv)
    assert not Path(module).is_relative_to(REPO)


def test_wheel_install_migrates_tracks_and_materialises(
    installed: Path, empty_database_url: str, sim_today: Simulator, tmp_path: Path, yesterday: date
) -> None:
    env = {
        "PGY_DATABASE_URL": empty_database_url,  # the installed package migrates it from nothing
        "PGY_API_BASE_URL": sim_today.base_url,
        "PGY_API_TOKEN": sim_today.token,
        "PGY_HOME": str(tmp_path / "pgy-home"),
        "DAGSTER_HOME": str(tmp_path),
    }
    upgraded = _run(installed, tmp_path, env, "pgy-pipeline", "db", "upgrade")
    assert upgraded.stdout.strip() == f"applied {len(available())} migration(s): " + ", ".join(
        m.name for m in available()
    )
    _run(installed, tmp_path, env, "pgy-pipeline", "kols", "add", kol_id(1), kol_id(2))
    _run(installed, tmp_path, env, "dagster", "asset", "materialize", "-m", "pgy_pipeline.definitions",
         "--select", "kol_fans_trend", "--partition", yesterday.isoformat())  # fmt: skip

    engine: Engine = create_engine(empty_database_url)
    try:
        assert {k for k, _, _ in stored(engine, yesterday, yesterday)} == {kol_id(1), kol_id(2)}
    finally:
        engine.dispose()
    assert sim_today.billed_calls == 4


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    """pyproject lists the packages (sql/ is mapped in by name): a new subpackage missing there would be left out."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "pgy_pipeline").rglob("__init__.py")}
    assert listed == on_disk | {"pgy_pipeline.sql"}
