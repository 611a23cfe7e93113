"""Fix the demo's time frame: the 12 months of incidents, the patrol day, the boundary import."""
from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
PERIOD_START = datetime(2025, 11, 1, tzinfo=TZ)
PERIOD_END = datetime(2026, 10, 31, 23, 59, tzinfo=TZ)
PATROL_DAY = date(2026, 10, 31)
BOUNDARY_TIME = datetime(2025, 10, 1, tzinfo=TZ)  # the import predates every demo incident


@lru_cache(maxsize=1)
def months() -> tuple[tuple[datetime, int], ...]:
    """Return the 12 months of the period as (first instant, number of days)."""
    y, m0 = PERIOD_START.year, PERIOD_START.month - 1
    starts = [datetime(y + (m0 + m) // 12, (m0 + m) % 12 + 1, 1, tzinfo=TZ) for m in range(13)]
    return tuple((a, (b - a).days) for a, b in zip(starts, starts[1:]))
