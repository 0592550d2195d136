"""Local time of 打浦桥 (Shanghai): UTC+8 all year, no daylight saving time.

The one definition: alerts' local day and clock times, CAP's times, the simulator's daily
rhythm and the bench's workloads all use it. A fixed offset (not ``ZoneInfo("Asia/Shanghai")``)
so that the pure core needs no tz database.
"""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Final

#: China Standard Time, UTC+08:00
BEIJING: Final = timezone(timedelta(hours=8), "CST")
