"""A warehouse built by the previous release upgrades in place: every row, revision and retained body is kept.

The previous release is its migrations (every file before the raw archive's) plus the rows its code wrote,
inserted here as it wrote them: bodies one row each in pgy.raw_response, for successful and failed calls.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import Engine, text

from pgy_pipeline.warehouse.migrate import available, shipped_sql_dir, upgrade
from pgy_pipeline.warehouse.raw_archive import expire, retained_bodies

ARCHIVE_MIGRATION = "0022_raw_archive.sql"
TABLES = (
    "tracked_kol", "kol_fans_trend", "kol_fans_trend_revision", "fetch_log", "raw_response", "fetch_log_loaded",
    "kol_fans_not_served",
)  # fmt: skip

PREVIOUS_RELEASE_ROWS = """
INSERT INTO pgy.tracked_kol (kol_id) VALUES ('kolA'), ('kolB');
INSERT INTO pgy.fetch_log (id, fetched_at, run_id, kol_id, increase_type, endpoint, window_days, days_wanted,
                           attempt, outcome, is_final, http_status, api_code, billed, rows_received,
                           first_date_key, last_date_key)
VALUES (1, now() - interval '100 days', 'old', 'kolA', 'total_fans', 'legacy_v1', 30, 30, 1, 'ok', true, 200, 0,
        true, 2, '2026-08-01', '2026-08-02'),
       (2, now() - interval '100 days', 'old', 'kolB', 'total_fans', 'legacy_v1', 30, 30, 1, 'malformed', true, 200,
        NULL, false, NULL, NULL, NULL),
       (3, now() - interval '1 day', 'new', 'kolA', 'total_fans', 'legacy_v1', 30, 30, 1, 'ok', true, 200, 0,
        true, 2, '2026-08-02', '2026-08-03'),
       (4, now() - interval '1 day', 'new', 'kolB', 'new_fans', 'legacy_v1', 30, 30, 1, 'failed', true, 503,
        NULL, false, NULL, NULL, NULL);
SELECT setval('pgy.fetch_log_id_seq', 4);
INSERT INTO pgy.raw_response (fetch_log_id, body, body_text, body_bytes, received_at)
VALUES (1, '{"code": 0, "data": {"list": [{"num": 10, "dateKey": "2026-08-01"}]}}', NULL, NULL,
        now() - interval '100 days'),
       (2, NULL, '<html>maintenance</html>', NULL, now() - interval '100 days'),
       (3, '{"code": 0, "data": {"list": [{"num": 11, "dateKey": "2026-08-02"}]}}', NULL, NULL,
        now() - interval '1 day'),
       (4, NULL, NULL, '\\xff00fe', now() - interval '1 day');
INSERT INTO pgy.kol_fans_trend (kol_id, date_key, increase_type, num, fetch_log_id)
VALUES ('kolA', '2026-08-01', 'total_fans', 10, 1), ('kolA', '2026-08-02', 'total_fans', 11, 3),
       ('kolA', '2026-08-03', 'total_fans', 12, 3);
INSERT INTO pgy.kol_fans_trend_revision (kol_id, date_key, increase_type, old_num, new_num, fetch_log_id)
VALUES ('kolA', '2026-08-02', 'total_fans', 9, 11, 3);
INSERT INTO pgy.fetch_log_loaded (fetch_log_id) VALUES (1), (3);
INSERT INTO pgy.kol_fans_not_served (kol_id, increase_type, date_key, fetch_log_id)
VALUES ('kolA', 'total_fans', '2026-07-30', 1);
"""


def _snapshot(engine: Engine) -> dict[str, list[str]]:
    with engine.connect() as conn:
        return {t: sorted(conn.scalars(text(f"select r::text from pgy.{t} r"))) for t in TABLES}


def test_previous_release_upgrades_without_losing_a_row_revision_or_body(bare_engine: Engine, tmp_path: Path) -> None:
    previous = tmp_path / "sql"
    previous.mkdir()
    for migration in available():
        if migration.name < ARCHIVE_MIGRATION:
            shutil.copy(Path(str(shipped_sql_dir() / migration.name)), previous / migration.name)
    upgrade(bare_engine, previous)
    with bare_engine.begin() as conn:
        conn.exec_driver_sql(PREVIOUS_RELEASE_ROWS)
    before = _snapshot(bare_engine)
    assert sum(len(rows) for rows in before.values()) == 2 + 3 + 1 + 4 + 4 + 2 + 1

    assert ARCHIVE_MIGRATION in upgrade(bare_engine)
    assert _snapshot(bare_engine) == before  # every row, revision and body, unchanged
    bodies = retained_bodies(bare_engine, [1, 2, 3, 4])  # readable through the archive's one reader
    assert sorted((b.fetch_log_id, b.kind) for b in bodies.values()) == [(1, "j"), (2, "t"), (3, "j"), (4, "b")]
    assert bodies[2].raw == b"<html>maintenance</html>" and bodies[4].raw == b"\xff\x00\xfe"

    # The first retention pass: the successful call's body older than the window goes, the failed call's
    # body of the same age stays (kept a year), the recent ones stay.
    expire(bare_engine, retention_days=60)
    assert sorted(retained_bodies(bare_engine, [1, 2, 3, 4])) == [2, 3, 4]
    after = _snapshot(bare_engine)
    assert {t: rows for t, rows in after.items() if t != "raw_response"} == {
        t: rows for t, rows in before.items() if t != "raw_response"
    }
