"""Tracked KOL management on a real Postgres: add, re-add, remove, list, import, and the CLI around it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from pgy_pipeline.cli import main
from pgy_pipeline.model import InvalidKolId
from pgy_pipeline.warehouse.kols import add_kols, import_kols, list_kols, read_kol_file, remove_kols

A = "5a1b2c3d4e5f60718293a4b5"
B = "5a1b2c3d4e5f60718293a4b6"
C = "5a1b2c3d4e5f60718293a4b7"


def _active(engine: Engine) -> list[str]:
    return [k.kol_id for k in list_kols(engine)]


def test_add_is_idempotent_and_remove_deactivates_then_readd_reactivates(engine: Engine) -> None:
    assert add_kols(engine, [A, B, A]).added == 2
    first_added = {k.kol_id: k.added_at for k in list_kols(engine)}
    again = add_kols(engine, [A])
    assert (again.added, again.reactivated, again.already_active) == (0, 0, 1)
    assert {k.kol_id: k.added_at for k in list_kols(engine)} == first_added  # re-adding changes nothing

    removed = remove_kols(engine, [B, C])
    assert (removed.deactivated, removed.unknown) == (1, (C,))
    assert _active(engine) == [A]
    assert [k.kol_id for k in list_kols(engine, include_inactive=True)] == [A, B]

    back = add_kols(engine, [B])
    assert back.reactivated == 1
    b = next(k for k in list_kols(engine) if k.kol_id == B)
    assert b.active and b.deactivated_at is None and b.added_at > first_added[B]  # the sensor sees it as new


def test_invalid_id_rejects_the_whole_batch(engine: Engine) -> None:
    with pytest.raises(InvalidKolId, match="invalid KOL id 'bad id'"):
        add_kols(engine, [A, "bad id"])
    assert _active(engine) == []


def test_import_csv_and_plain_files(engine: Engine, tmp_path: Path) -> None:
    csv_file = tmp_path / "kols.csv"
    csv_file.write_text(f"label,kol_id\nfirst,{A}\nsecond,{B}\n")
    plain = tmp_path / "kols.txt"
    plain.write_text(f"# my KOLs\n{B}\n\n{C}\n")
    assert read_kol_file(csv_file) == [A, B]
    assert read_kol_file(plain) == [B, C]
    assert import_kols(engine, csv_file).added == 2
    counts = import_kols(engine, plain)
    assert (counts.added, counts.already_active) == (1, 1)
    assert _active(engine) == [A, B, C]

    bad = tmp_path / "bad.txt"
    bad.write_text(f"{A}\nnot/an/id\n")
    with pytest.raises(InvalidKolId, match=r"bad.txt:2: invalid KOL id 'not/an/id'"):
        read_kol_file(bad)


def test_cli_kols(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGY_DATABASE_URL", database_url)
    assert main(["kols", "add", A, B, "--label", "demo"]) == 0
    assert "2 added" in capsys.readouterr().out
    assert main(["kols", "remove", B]) == 0
    assert main(["kols", "list"]) == 0
    out = capsys.readouterr().out
    assert A in out and B not in out
    assert main(["kols", "list", "--all"]) == 0
    assert B in capsys.readouterr().out
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{C}\n")
    assert main(["kols", "import", str(ids)]) == 0
    assert main(["kols", "add", "nope!"]) == 2
    assert "invalid KOL id 'nope!'" in capsys.readouterr().err
    with create_engine(database_url).connect() as conn:
        assert conn.scalar(text("select count(*) from pgy.tracked_kol where active")) == 2
