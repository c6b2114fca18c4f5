"""China's calendar, the one clock of the whole pipeline.

The API's `dateKey`s are calendar dates in China, so Dagster's daily partitions, the schedule, the plan and
the checks all count days in Asia/Shanghai; UTC midnight means nothing here.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

CHINA_TZ_NAME = "Asia/Shanghai"
CHINA_TZ = ZoneInfo(CHINA_TZ_NAME)


def china_today(now: datetime | None = None) -> date:
    """Today's calendar date in China (of `now` when given, an aware datetime), where the API's dateKeys live."""
    return (now or datetime.now(CHINA_TZ)).astimezone(CHINA_TZ).date()


def latest_served_date(today: date) -> date:
    """The newest `dateKey` the API serves: China-yesterday (today's numbers are not final yet)."""
    return today - timedelta(days=1)


def china_midnight(day: date) -> datetime:
    """The instant China's calendar day `day` begins (an aware datetime)."""
    return datetime(day.year, day.month, day.day, tzinfo=CHINA_TZ)
