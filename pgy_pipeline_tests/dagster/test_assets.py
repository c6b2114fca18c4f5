"""The kol_fans_trend asset run by Dagster for real (in-process), against the simulator and Postgres."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from datetime import date, timedelta
from typing import Any

import pytest
from dagster import (
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    IntMetadataValue,
)
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from pgy_pipeline.defs.partitions import partitions_def
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.dagster import materialize_trend, step_failure
from pgy_pipeline_tests.support.warehouse import stored, track


def _run(
    instance: DagsterInstance, sim: Simulator, database_url: str, *, start: str, end: str | None = None, **kw: Any
) -> ExecuteInProcessResult:
    result: ExecuteInProcessResult = materialize_trend(instance, sim, database_url, start=start, end=end, **kw)
    return result


def _metadata(result: ExecuteInProcessResult) -> dict[str, Any]:
    (mat, *_) = result.asset_materializations_for_node("kol_fans_trend")
    return {k: v.value for k, v in mat.metadata.items()}


_failure = step_failure


def test_definitions_load(yesterday: date) -> None:
    from pgy_pipeline.definitions import defs

    Definitions.validate_loadable(defs)
    policy = defs.get_assets_def("kol_fans_trend").backfill_policy
    assert policy is not None and policy.max_partitions_per_run is None  # single run for any range
    assert partitions_def.timezone == "Asia/Shanghai"
    assert partitions_def.get_last_partition_key() == yesterday.isoformat()  # the latest partition = yesterday
    assert defs.resolve_schedule_def("kol_fans_trend_daily") is not None
    assert defs.resolve_sensor_def("new_kols_sensor") is not None


@pytest.mark.subprocess
def test_definitions_load_without_warnings_of_our_own() -> None:
    """`dagster dev` must show no warnings but Dagster's own beta/supersession notices."""
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    import pgy_pipeline.definitions\n"
        "print([f'{w.category.__name__}: {w.message}' for w in caught])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGY_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    caught = ast.literal_eval(out.strip().splitlines()[-1])
    assert [w for w in caught if not w.startswith(("BetaWarning", "SupersessionWarning"))] == []


def test_launchpad_shows_resolved_settings_and_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resources bound in `defs` carry the values runs will use; the token and database URL stay EnvVars."""
    from pgy_pipeline.defs.resources import default_resources

    monkeypatch.setenv("PGY_API_BASE_URL", "prod-cn")
    monkeypatch.setenv("PGY_TREND_ENDPOINT", "current")
    monkeypatch.setenv("PGY_API_TOKEN", "tok-not-shown")
    monkeypatch.setenv("PGY_DATABASE_URL", "postgresql://etl:pw-not-shown@127.0.0.1:5432/warehouse")
    monkeypatch.setenv("PGY_HOME", "/srv/pgy")
    resources: dict[str, Any] = default_resources()
    api, warehouse = resources["trend_api"], resources["warehouse"]
    assert (api.base_url, api.endpoint) == ("http://47.117.133.51:30015", "current")
    assert warehouse.home == "/srv/pgy"
    shown = repr(api) + repr(warehouse)
    assert "tok-not-shown" not in shown and "pw-not-shown" not in shown
    assert (api.token.env_var_name, warehouse.database_url.env_var_name) == ("PGY_API_TOKEN", "PGY_DATABASE_URL")


def test_partition_materialises_with_metadata_and_rerun_bills_nothing(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str, yesterday: date
) -> None:
    kols = track(engine, 3)
    result = _run(instance, sim_today, database_url, start=yesterday.isoformat())
    assert result.success
    md = _metadata(result)
    assert md["api_codes"] == {"0": 6}
    assert (md["calls_ok"], md["calls_failed"], md["calls_not_attempted"]) == (6, 0, 0)
    assert (md["rows_inserted"], md["rows_updated"], md["rows_unchanged"]) == (180, 0, 0)
    assert (md["dagster/row_count"], md["rows_written"]) == (6, 180)  # the partition holds 6; the window wrote 180
    assert (md["kols_requested"], md["kols_complete"]) == (3, 3)
    assert (md["endpoint"], md["window_days"]) == ("legacy_v1", 30)
    target = make_url(database_url)  # the warehouse written to, by database and host; never the password
    where = target.host or target.query["host"]  # a TCP host, or the socket directory of a local server
    assert md["warehouse"] == f"'{target.database}' on {where}" + (f":{target.port}" if target.port else "")
    assert md["failed_kols"].records == []
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"partition_completeness", "no_gaps_60_days", "total_vs_new_consistency", "freshness"}
    assert all(e.passed for e in evaluations.values()), evaluations
    assert len(stored(engine, yesterday, yesterday)) == 6 and kols

    billed = sim_today.billed_calls
    again = _run(instance, sim_today, database_url, start=yesterday.isoformat())
    assert again.success
    assert sim_today.billed_calls == billed  # rerun of a complete partition bills 0
    assert (_metadata(again)["calls_ok"], _metadata(again)["calls_skipped"]) == (0, 6)
    # "Row count" on the asset page is what the partition holds, not what this run wrote (nothing).
    assert (_metadata(again)["dagster/row_count"], _metadata(again)["rows_written"]) == (6, 0)

    # The asset page plots numeric metadata across materialisations: calls, failures and rows are ints.
    (mat, *_) = again.asset_materializations_for_node("kol_fans_trend")
    plotted = ["calls_ok", "calls_failed", "calls_not_attempted", "billed_calls", "rows_inserted", "rows_updated",
               "rows_unchanged", "dagster/row_count", "kols_complete"]  # fmt: skip
    assert all(isinstance(mat.metadata[key], IntMetadataValue) for key in plotted)


def test_ten_day_range_in_one_run(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str, yesterday: date
) -> None:
    track(engine, 2)
    start, end = yesterday - timedelta(days=9), yesterday
    result = _run(instance, sim_today, database_url, start=start.isoformat(), end=end.isoformat())
    assert result.success
    partitions = {m.partition for m in result.asset_materializations_for_node("kol_fans_trend")}
    assert partitions == {(start + timedelta(days=i)).isoformat() for i in range(10)}  # one run, ten partitions
    assert sim_today.billed_calls == 4  # one call per KOL and series for the whole range
    assert len(stored(engine, start, end)) == 2 * 2 * 10


@pytest.mark.parametrize(
    ("fault", "words"),
    [("code_100", "token"), ("code_303", "quota"), ("code_600", "permission"), ("code_601", "balance")],
)
def test_stop_condition_fails_the_run_clearly_and_keeps_fetched_rows(
    instance: DagsterInstance,
    engine: Engine,
    sim_today: Simulator,
    database_url: str,
    fault: str,
    words: str,
    yesterday: date,
) -> None:
    kols = track(engine, 3)
    sim_today.inject(kols[1], fault)
    # One call at a time; the lag probe (total fans of the first two KOLs) goes first, so the stop lands on
    # kols[1]'s probe call after kols[0]'s.
    fixed_one = {"concurrency": 1, "max_concurrency": 1}
    result = _run(instance, sim_today, database_url, start=yesterday.isoformat(), api=fixed_one)
    assert not result.success
    description, md = _failure(result)
    assert description.startswith("The API stopped the run:") and words in description.lower()
    assert sim_today.token not in description
    assert md["calls_ok"] == 1 and md["calls_not_attempted"] >= 4
    assert md["stop_reason"]
    assert {k for k, _, _ in stored(engine, yesterday, yesterday)} == {kols[0]}  # fetched before the stop: kept


def test_failed_kols_table_and_unreachable_dates(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str, yesterday: date
) -> None:
    kols = track(engine, 2)
    sim_today.inject(kols[0], "code_500")
    old = yesterday - timedelta(days=61)
    result = _run(instance, sim_today, database_url, start=old.isoformat(), end=yesterday.isoformat())
    assert not result.success
    description, md = _failure(result)
    assert f"2 date(s) {old}..{old + timedelta(days=1)} are older than the 60 days" in description
    assert "1 KOL(s) failed after retries (see failed_kols), up to 1 partition date(s) behind" in description
    assert md["api_codes"] == {"0": 2, "500": 4}
    table = md["failed_kols"].records
    assert {(r.data["kol_id"], r.data["code"]) for r in table} == {(kols[0], "500")}
    assert md["dates_out_of_reach"] == [str(old), str(old + timedelta(days=1))]
    assert len(stored(engine, old, yesterday)) == 2 * 60  # the other KOL's reachable dates still loaded


def test_missing_token_fails_in_one_sentence(
    instance: DagsterInstance,
    engine: Engine,
    sim_today: Simulator,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    yesterday: date,
) -> None:
    monkeypatch.delenv("PGY_API_TOKEN", raising=False)
    track(engine, 1)
    result = _run(instance, sim_today, database_url, start=yesterday.isoformat(), api={"token": None})
    assert not result.success
    description, _ = _failure(result)
    assert description.startswith("PGY_API_TOKEN is not set")
    assert sim_today.billed_calls == 0
