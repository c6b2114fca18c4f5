"""The simulator itself: parameter rules, auth, deterministic series, today, restatements, billing, CLI."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from typing import Any

import pytest
import requests

from pgy_pipeline.model import Series
from pgy_pipeline.simulator import FAULTS, Simulator
from pgy_pipeline.simulator.rules import CURRENT_PATH, LEGACY_V1_PATH
from pgy_pipeline_tests.support.simulator import SIM_TODAY, kol_id, kol_ids

KOL = kol_id(21)


def _get(sim: Simulator, path: str, **params: str) -> tuple[int, dict[str, Any]]:
    response = requests.get(sim.base_url + path, params={"token": sim.token, **params}, timeout=5)
    return response.status_code, response.json()


def _legacy(**overrides: str) -> dict[str, str]:
    return {"kolId": KOL, "dateType": "_1", "increaseType": "_1", **overrides}


def test_envelope_and_series_shape(sim_fixed_date: Simulator) -> None:
    status, body = _get(sim_fixed_date, LEGACY_V1_PATH, **_legacy())
    assert status == 200 and body["code"] == 0
    assert set(body) == {"code", "message", "data", "recordTime", "requestId"}
    items = body["data"]["list"]
    assert len(items) == 30
    assert items[-1]["dateKey"] == (SIM_TODAY - timedelta(days=1)).isoformat()
    assert body["data"]["fansNumInc"] == items[-1]["num"] - items[0]["num"]
    assert body["data"]["fansNumIncRate"] == pytest.approx(body["data"]["fansNumInc"] / items[0]["num"])


@pytest.mark.parametrize(
    "params",
    [
        {"kolId": KOL, "increaseType": "_1"},  # dateType missing (required on legacy)
        _legacy(dateType="DAY_30"),  # the other endpoint's value
        _legacy(increaseType="_3"),
        _legacy(acceptCache="maybe"),
        {"dateType": "_1", "increaseType": "_1"},  # kolId missing
    ],
)
def test_bad_parameters_answer_code_400_with_http_200(sim_fixed_date: Simulator, params: dict[str, str]) -> None:
    status, body = _get(sim_fixed_date, LEGACY_V1_PATH, **params)
    assert (status, body["code"], body["data"]) == (200, 400, None)
    assert sim_fixed_date.billed_calls == 0


def test_current_endpoint_defaults(sim_fixed_date: Simulator) -> None:
    status, body = _get(sim_fixed_date, CURRENT_PATH, userId=KOL)  # DAY_30, FANS_TOTAL by default
    assert status == 200
    _, legacy = _get(sim_fixed_date, LEGACY_V1_PATH, **_legacy())
    assert body["code"] == 0 and body["data"]["list"] == legacy["data"]["list"]


def test_bad_or_missing_token_is_code_100(sim_fixed_date: Simulator) -> None:
    for token in ("nope", ""):
        response = requests.get(
            sim_fixed_date.base_url + LEGACY_V1_PATH, params={"token": token, **_legacy()}, timeout=5
        )
        assert (response.status_code, response.json()["code"]) == (200, 100)
    assert sim_fixed_date.billed_calls == 0


def test_unknown_path_is_404(sim_fixed_date: Simulator) -> None:
    status, body = _get(sim_fixed_date, "/api/nothing/here")
    assert (status, body["code"]) == (404, 404)


def test_series_are_deterministic_and_new_fans_are_daily_differences() -> None:
    with Simulator(today=SIM_TODAY) as one, Simulator(today=SIM_TODAY) as two:
        day = date(2026, 2, 1)
        for kol in kol_ids(20):
            assert one.truth(kol, Series.TOTAL_FANS, day) == two.truth(kol, Series.TOTAL_FANS, day)
            total, before = (one.truth(kol, Series.TOTAL_FANS, d) for d in (day, day - timedelta(days=1)))
            assert total is not None and before is not None
            assert one.truth(kol, Series.NEW_FANS, day) == total - before
        totals = {one.truth(kol, Series.TOTAL_FANS, day) for kol in kol_ids(20)}
        assert len(totals) == 20  # every KOL has its own series
        days = [date(2026, 1, 1) + timedelta(days=n) for n in range(60)]
        news = [one.truth(kol, Series.NEW_FANS, d) for kol in kol_ids(20) for d in days]
        assert any(n is not None and n < 0 for n in news)  # followers are lost on some days


def test_today_and_publish_lag_move_the_latest_date(sim_fixed_date: Simulator) -> None:
    sim_fixed_date.set_today(date(2026, 5, 1))
    assert sim_fixed_date.latest_date == date(2026, 4, 30)
    sim_fixed_date.config.publish_lag_days = 2
    _, body = _get(sim_fixed_date, CURRENT_PATH, userId=KOL, dateType="DAY_90")
    assert body["data"]["list"][-1]["dateKey"] == "2026-04-28"
    assert len(body["data"]["list"]) == 90


def test_a_restated_total_changes_the_served_values(sim_fixed_date: Simulator) -> None:
    day = SIM_TODAY - timedelta(days=5)
    old_new = sim_fixed_date.truth(KOL, Series.NEW_FANS, day)
    old_total = sim_fixed_date.truth(KOL, Series.TOTAL_FANS, day)
    assert old_new is not None and old_total is not None
    sim_fixed_date.restate(KOL, Series.TOTAL_FANS, day, old_total + 7)
    _, body = _get(sim_fixed_date, LEGACY_V1_PATH, **_legacy())
    served = {item["dateKey"]: item["num"] for item in body["data"]["list"]}
    assert served[day.isoformat()] == old_total + 7
    assert sim_fixed_date.truth(KOL, Series.NEW_FANS, day) == old_new + 7


def test_random_restatements_change_past_values_between_fetches() -> None:
    with Simulator(today=SIM_TODAY, restate_rate=1.0) as sim:
        _, first = _get(sim, LEGACY_V1_PATH, **_legacy())
        _, second = _get(sim, LEGACY_V1_PATH, **_legacy())
        assert first["data"]["list"] != second["data"]["list"]
        assert [i["dateKey"] for i in first["data"]["list"]] == [i["dateKey"] for i in second["data"]["list"]]


def test_billing_counts_codes_0_and_201_only(sim_fixed_date: Simulator) -> None:
    kols = kol_ids(4)
    sim_fixed_date.inject(kols[1], "code_201")
    sim_fixed_date.inject(kols[2], "code_301")
    sim_fixed_date.inject(kols[3], "code_303")
    codes = [_get(sim_fixed_date, LEGACY_V1_PATH, **_legacy(kolId=k))[1]["code"] for k in kols]
    assert codes == [0, 201, 301, 303]
    assert sim_fixed_date.billed_calls == 2
    assert [c.code for c in sim_fixed_date.calls] == codes
    sim_fixed_date.reset_counters()
    assert (sim_fixed_date.billed_calls, sim_fixed_date.calls) == (0, [])


def test_injection_by_count_and_series(sim_fixed_date: Simulator) -> None:
    sim_fixed_date.inject(KOL, "code_500", times=2, series=Series.NEW_FANS)
    codes = [
        _get(sim_fixed_date, LEGACY_V1_PATH, **_legacy(increaseType=t))[1]["code"] for t in ("_1", "_2", "_2", "_2")
    ]
    assert codes == [0, 500, 500, 0]


def test_probability_faults_are_seeded() -> None:
    def run() -> list[object]:
        with Simulator(today=SIM_TODAY, fault_rate=0.5, random_faults=("code_301", "code_500"), seed=7) as sim:
            return [_get(sim, LEGACY_V1_PATH, **_legacy())[1]["code"] for _ in range(20)]

    first = run()
    assert first == run()
    assert {0, 301, 500} == set(first)


def test_unknown_faults_are_refused(sim_fixed_date: Simulator) -> None:
    with pytest.raises(ValueError, match="unknown fault 'nope'"):
        sim_fixed_date.inject(KOL, "nope")
    assert len(FAULTS) >= 40


@pytest.mark.subprocess
def test_standalone_command_serves_and_says_how_to_use_it() -> None:
    cmd = [sys.executable, "-m", "pgy_pipeline.cli", "simulator", "--port", "0", "--today", "2026-03-09"]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        lines = [child.stdout.readline() for _ in range(4)]
        base_url = lines[0].split(" listening on ")[1].split()[0]
        assert f"export PGY_API_BASE_URL={base_url}\n" in lines[2]
        assert "export PGY_API_TOKEN=demo-token\n" in lines[3]
        response = requests.get(base_url + LEGACY_V1_PATH, params={"token": "demo-token", **_legacy()}, timeout=5)
        assert response.json()["data"]["list"][-1]["dateKey"] == "2026-03-08"
    finally:
        child.terminate()
        assert child.wait(timeout=10) == 0
