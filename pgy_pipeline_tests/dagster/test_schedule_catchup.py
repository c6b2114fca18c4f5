"""After a daemon outage, Dagster's own scheduler evaluates the daily schedule once, not once per missed morning.

This drives Dagster 1.13.27's scheduler loop (`launch_scheduled_runs`, what the daemon calls every few seconds)
against the code location loaded as the daemon loads it (a code server process). Two stand-ins, because a
three-day outage cannot be waited out in a test: the clock is frozen (Dagster's own `freeze_time`) at the
schedule's start and then three days later, and the run launcher only records what it is asked to launch
(Dagster's `MockedRunLauncher`); what is under test is which ticks the scheduler evaluates.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta

import pytest
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time, instance_for_test
from dagster._core.workspace.load_target import ModuleTarget
from dagster._scheduler.scheduler import launch_scheduled_runs

from pgy_pipeline.china_time import CHINA_TZ, china_today
from pgy_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pgy_pipeline.defs.schedules import SCHEDULE_NAME

pytestmark = [pytest.mark.subprocess]

RECORDING_LAUNCHER = {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"}


def test_after_three_missed_mornings_only_the_latest_tick_is_evaluated(caplog: pytest.LogCaptureFixture) -> None:
    today = china_today()
    now = datetime.combine(today, time(10, 0), tzinfo=CHINA_TZ)  # back at 10:00, after today's 06:30
    started = now - timedelta(days=3, hours=5)  # 05:00 three days ago: missed 06:30 on four mornings
    target = ModuleTarget("pgy_pipeline.definitions", None, None, "pgy_pipeline")
    with (
        instance_for_test(overrides={"run_launcher": RECORDING_LAUNCHER}) as instance,
        create_test_daemon_workspace_context(target, instance) as workspace,
    ):
        (entry,) = workspace.create_request_context().get_code_location_entries().values()
        assert entry.code_location is not None, entry.load_error
        (repository,) = entry.code_location.get_repositories().values()
        schedule = repository.get_schedule(SCHEDULE_NAME)
        with freeze_time(started):
            instance.start_schedule(schedule)
        with freeze_time(now), caplog.at_level(logging.INFO):
            list(launch_scheduled_runs(workspace, logging.getLogger("scheduler"), now, {}))
        ticks = instance.get_ticks(schedule.get_remote_origin_id(), schedule.selector_id)
        runs = instance.get_runs()
    assert f"{SCHEDULE_NAME} has no partition set, so not trying to catch up" in caplog.text
    assert [tick.timestamp for tick in ticks] == [datetime.combine(today, time(6, 30), tzinfo=CHINA_TZ).timestamp()]
    (run,) = runs  # one run for the whole outage
    yesterday = today - timedelta(days=1)
    assert run.tags[RANGE_END_TAG] == yesterday.isoformat()  # today's tick: yesterday and every missed day before
    assert run.tags[RANGE_START_TAG] <= (yesterday - timedelta(days=3)).isoformat()
