"""The follower report and `kols show` on a real warehouse loaded through the simulator with a bought batch."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from pgy_pipeline.cli import main
from pgy_pipeline.report.build import write_report
from pgy_pipeline.report.coverage import Cell, classify, counts_per_date
from pgy_pipeline.report.data import load_report_data
from pgy_pipeline.report.html import build_html
from pgy_pipeline.report.payload import decode_totals, encode_totals
from pgy_pipeline.report.terminal import show_kol
from pgy_pipeline.status import read_status
from pgy_pipeline_tests.support.report import DAYS, Scenario, planted_warehouse

# sha256 of the files in uPlot 1.6.32's npm tarball (dist/uPlot.iife.min.js, dist/uPlot.min.css, LICENSE)
UPLOT_SHA256 = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
}


@pytest.fixture
def scenario(engine: Engine) -> Iterator[Scenario]:
    with planted_warehouse(engine) as planted:
        yield planted


class _Page(HTMLParser):
    """Every src/href/action attribute, and the text inside each anomaly card."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.cards: dict[str, str] = {}
        self.marks: dict[str, list[tuple[str, str]]] = {}
        self._card: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "action", "srcset", "poster", "data")]
        if tag == "article" and (found.get("id") or "").startswith("anomaly-"):
            card = found["data-kol"] or ""
            self._card, self._depth = card, 0
            self.cards[card], self.marks[card] = "", []
        if self._card is not None and tag == "article":
            self._depth += 1
        if self._card is not None and tag == "time":
            self.marks[self._card].append((found.get("class") or "", found.get("datetime") or ""))

    def handle_endtag(self, tag: str) -> None:
        if self._card is not None and tag == "article":
            self._depth -= 1
            if self._depth == 0:
                self._card = None

    def handle_data(self, data: str) -> None:
        if self._card is not None:
            self.cards[self._card] += data


def _page(engine: Engine, s: Scenario, days: int = DAYS) -> tuple[str, _Page]:
    data = load_report_data(engine, s.latest - timedelta(days=days - 1), s.latest, oldest_reachable=s.oldest_reachable)
    html = build_html(data)
    page = _Page()
    page.feed(html)
    return html, page


def _embedded(html: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="pgy-data">(.*?)</script>', html, re.S)
    assert match is not None
    data: dict[str, object] = json.loads(match.group(1))
    return data


def test_the_report_names_the_bought_batch_in_its_anomaly_section_with_the_spike_date_marked(
    engine: Engine, scenario: Scenario
) -> None:
    html, page = _page(engine, scenario)
    assert list(page.cards) == [scenario.planted]  # only the KOL with the planted batch is suspected
    assert ("mark spike", scenario.spike_day.isoformat()) in page.marks[scenario.planted]
    assert ("mark spike_then_drop", scenario.latest.isoformat()) in page.marks[scenario.planted]
    assert "Suspected bought followers" in page.cards[scenario.planted]
    data = _embedded(html)
    index = data["ids"].index(scenario.planted)  # type: ignore[attr-defined]
    spike_offset = (scenario.spike_day - scenario.start).days
    assert [spike_offset, "spike"] in [a[:2] for a in data["anom"][str(index)]]  # type: ignore[index]


def test_nothing_in_the_report_points_outside_the_file(engine: Engine, scenario: Scenario) -> None:
    html, page = _page(engine, scenario)
    assert page.links, "the page links its sections and KOLs"
    assert all(link.startswith("#") for link in page.links), [x for x in page.links if not x.startswith("#")]
    lowered = html.lower()
    assert "@import" not in lowered and "url(" not in lowered  # no stylesheet, font or image fetched
    assert not re.search(r"<(script|img|iframe|link|object|embed|source)\b[^>]*\s(src|href)=", lowered)
    assert "fetch(" not in lowered and "xmlhttprequest" not in lowered


def test_coverage_counts_equal_what_status_and_the_not_served_view_say(engine: Engine, scenario: Scenario) -> None:
    days = 70  # the 10 oldest dates are beyond the 60-day window: lost
    data = load_report_data(
        engine, scenario.latest - timedelta(days=days - 1), scenario.latest, oldest_reachable=scenario.oldest_reachable
    )
    counts = dict(zip(data.dates, counts_per_date([k.cells for k in data.kols], days), strict=True))
    status = read_status(engine, days=days, today=scenario.today)
    with engine.connect() as conn:
        view: dict[date, int] = dict(
            conn.execute(
                text("SELECT date_key, count(DISTINCT kol_id) FROM pgy.kol_not_served GROUP BY date_key")
            ).all()
        )
    for p in status.partitions:
        n = counts[p.date]
        assert n[Cell.STORED] + n[Cell.NOT_SERVED] == p.kols_complete, p.date
        assert n[Cell.NOT_SERVED] == p.kols_not_served == view.get(p.date, 0), p.date
        assert n[Cell.MISSING] + n[Cell.LOST] + n[Cell.QUARANTINED] == p.kols_missing, p.date
    assert counts[scenario.start][Cell.NOT_SERVED] == 1  # the young account
    assert counts[scenario.latest][Cell.MISSING] == 1  # the KOL tracked after the runs
    assert counts[scenario.start - timedelta(days=1)][Cell.LOST] == 6  # beyond the API's reach, for everyone
    rows = {k.kol_id: k.cells for k in data.kols}
    assert rows[scenario.young][-10:] == "s" * 10 and set(rows[scenario.young][10:-10]) == {"n"}


def test_quarantined_kols_show_as_quarantined_from_their_quarantine_date(engine: Engine, scenario: Scenario) -> None:
    data = load_report_data(engine, scenario.start, scenario.latest, oldest_reachable=scenario.oldest_reachable)
    assert "q" not in "".join(k.cells for k in data.kols)
    since = scenario.latest - timedelta(days=4)
    with engine.begin() as conn:  # what a run writes when the KOL reaches the threshold (warehouse/health.py)
        conn.execute(
            text(
                "INSERT INTO pgy.kol_health (kol_id, failing_since, last_failed_on, failing_days, last_outcome, "
                "quarantined_since, quarantined_at) VALUES (:k, :since, :since, 3, 'failed', :since, now())"
            ),
            {"k": scenario.late, "since": since},
        )
    data = load_report_data(engine, scenario.start, scenario.latest, oldest_reachable=scenario.oldest_reachable)
    (late,) = [k for k in data.kols if k.kol_id == scenario.late]
    assert late.cells == "m" * (DAYS - 5) + "q" * 5
    assert "<th>quarantined</th>" in build_html(data)


def test_classification_of_each_state() -> None:
    dates = [date(2026, 3, 1) + timedelta(days=i) for i in range(6)]
    d = dates
    stored = {d[0]: 2, d[1]: 2, d[2]: 1, d[3]: 1}
    not_served = {d[1]: 1, d[2]: 1}  # d[1]: both stored and one not-served row is still "not served" (as status)
    row = classify("k", dates, stored=stored, not_served=not_served, oldest_reachable=d[4])
    assert row == "snnlmm"  # d[3]: one series only and too old: lost; d[4..5]: fetchable: missing
    quarantined = classify(
        "k", dates, stored=stored, not_served=not_served, oldest_reachable=d[4], quarantined_since=d[3]
    )
    assert quarantined == "snnqqq"  # quarantine wins over lost and missing, never over what landed
    refused = classify("k", dates, stored={}, not_served={}, oldest_reachable=d[0], refused=True)
    assert refused == "n" * 6  # the API answers 201/400 for it: nothing to fetch


def test_totals_survive_their_compact_encoding(engine: Engine, scenario: Scenario) -> None:
    data = load_report_data(engine, scenario.start, scenario.latest, oldest_reachable=scenario.oldest_reachable)
    for kol in data.kols:
        encoded = encode_totals(kol.total, kol.new)
        assert decode_totals(encoded, kol.new) == kol.total
    planted = next(k for k in data.kols if k.kol_id == scenario.planted)
    assert set(encode_totals(planted.total, planted.new)[1:]) == {0}  # totals agree with new fans: all zeros


def test_the_vendored_uplot_is_the_pinned_release() -> None:
    vendor = files("pgy_pipeline.report").joinpath("vendor")
    for name, digest in UPLOT_SHA256.items():
        assert hashlib.sha256(vendor.joinpath(name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in vendor.joinpath("uPlot.LICENSE").read_text()


def test_kols_show_prints_the_kols_numbers(engine: Engine, scenario: Scenario) -> None:
    out = show_kol(engine, scenario.planted, end=scenario.latest, days=DAYS, oldest_reachable=scenario.oldest_reachable)
    with engine.connect() as conn:
        rows: dict[str, int] = dict(
            conn.execute(
                text("SELECT increase_type, num FROM pgy.kol_fans_trend WHERE kol_id = :k AND date_key = :d"),
                {"k": scenario.planted, "d": scenario.spike_day},
            ).all()
        )
    spike_line = next(line for line in out.splitlines() if line.startswith(scenario.spike_day.isoformat()))
    assert spike_line.split() == [
        scenario.spike_day.isoformat(),
        f"{rows['total_fans']:,}",
        f"{rows['new_fans']:,}",
        "stored",
    ]
    assert f"{scenario.spike_day}  spike" in out and f"{scenario.latest}  spike_then_drop" in out
    assert f"coverage: {DAYS} stored" in out
    assert re.search(r"total fans  [▁▂▃▄▅▆▇█]{60}  ", out)
    assert "code 0" in out
    restated = show_kol(
        engine, scenario.restated, end=scenario.latest, days=7, oldest_reachable=scenario.oldest_reachable
    )
    assert f"{scenario.restated_day}  total_fans" in restated  # the restatement between the two runs
    young = show_kol(engine, scenario.young, end=scenario.latest, days=DAYS, oldest_reachable=scenario.oldest_reachable)
    assert f"coverage: 10 stored, {DAYS - 10} not served" in young


def test_an_unknown_kol_is_one_sentence_from_the_cli(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGY_DATABASE_URL", database_url)
    assert main(["kols", "show", "5f00000000000000000000ff"]) == 2
    assert main(["report", "--kols", "5f00000000000000000000ff", "--out", "unused.html"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2
    for line in errors:
        assert "KOL 5f00000000000000000000ff is not in pgy.tracked_kol" in line and "pgy-pipeline kols" in line


def test_the_cli_writes_the_report_where_the_settings_say(
    database_url: str,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PGY_DATABASE_URL", database_url)
    monkeypatch.setenv("PGY_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("PGY_REPORT_BASE_URL", "http://127.0.0.1:8000/pgy/")
    assert main(["kols", "add", "5f0000000000000000000001"]) == 0
    assert main(["report", "--days", "3"]) == 0
    (written,) = (tmp_path / "reports").iterdir()
    out = capsys.readouterr().out
    assert f"wrote {written}" in out and f"http://127.0.0.1:8000/pgy/{written.name}" in out
    assert "5f0000000000000000000001" in written.read_text()


def test_the_report_file_is_written_whole(engine: Engine, scenario: Scenario, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "report.html"
    written = write_report(
        engine,
        out,
        end=scenario.latest,
        days=DAYS,
        oldest_reachable=scenario.oldest_reachable,
        kol_ids=[scenario.planted],
    )
    assert written.size_bytes == out.stat().st_size and [k.kol_id for k in written.data.kols] == [scenario.planted]
    assert out.read_text().rstrip().endswith("</html>") and list(out.parent.iterdir()) == [out]


def test_a_hostile_label_stays_text(engine: Engine, scenario: Scenario) -> None:
    label = '</script><img src="http://198.51.100.1/x" onerror=alert(1)><!--'
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE pgy.tracked_kol SET label = :l WHERE kol_id = :k"), {"l": label, "k": scenario.planted}
        )
    html, page = _page(engine, scenario)
    assert "<img" not in html and all(link.startswith("#") for link in page.links)
    data = _embedded(html)
    index = data["ids"].index(scenario.planted)  # type: ignore[attr-defined]
    assert data["labels"][str(index)] == label  # type: ignore[index]
