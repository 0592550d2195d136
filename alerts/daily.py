"""The daily report (日报): a Shanghai day's crowd peaks per zone and site, its alerts by risk and
level, and its cases (立案 → 结案) with the on-time rate (按期处置率) and mean step times.

Plain functions over plain records: the API reads the rows and calls :func:`daily_report`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from models.contracts import Level, Risk, max_level
from models.zones import ZoneRegistry

__all__ = [
    "SHANGHAI",
    "AlertOfDay",
    "CaseTimes",
    "SeriesMinute",
    "alert_figures",
    "case_figures",
    "daily_report",
    "day_window",
    "peak_figures",
]

SHANGHAI = timezone(timedelta(hours=8))  # Asia/Shanghai has had no DST since 1991

#: A zone's last minute still counts towards its site's total for this long when the next is
#: missing (a camera a little late must not make the site's total dip).
CARRY_MINUTES = 5


def day_window(day: date) -> tuple[datetime, datetime]:
    """``[start, end)`` of a calendar day in Shanghai, in UTC."""
    start = datetime.combine(day, time(0), tzinfo=SHANGHAI)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class SeriesMinute:
    """A zone's largest people count in the minute starting at ``minute`` (aware)."""

    zone_id: str
    minute: datetime
    people: float


@dataclass(frozen=True, slots=True)
class AlertOfDay:
    """An alert opened during the day: its risk and the levels its revisions had that day."""

    alert_id: str
    zone_id: str
    risk: Risk
    levels: tuple[Level, ...]
    predicted: bool = False

    @property
    def highest(self) -> Level:
        """The most severe level the alert reached (that day)."""
        top = max_level(*self.levels)
        if top is None:
            raise ValueError(f"alert {self.alert_id} has no level")
        return top


@dataclass(frozen=True, slots=True)
class CaseTimes:
    """When one case passed each step (``None``: not (yet) passed), its deadline and whether
    the case service judged it on time. ``on_time`` wins over ``due_at`` when both are given."""

    case_id: str
    opened_at: datetime
    dispatched_at: datetime | None = None
    accepted_at: datetime | None = None
    arrived_at: datetime | None = None
    handled_at: datetime | None = None
    closed_at: datetime | None = None
    cancelled_at: datetime | None = None
    due_at: datetime | None = None
    on_time: bool | None = None

    def closed_on_time(self) -> bool:
        """Closed, and within its time limit (``on_time``, else ``closed_at <= due_at``; a case
        with neither counts as on time: no limit was set)."""
        if self.closed_at is None:
            return False
        if self.on_time is not None:
            return self.on_time
        return self.due_at is None or self.closed_at <= self.due_at


def _inside(at: datetime | None, start: datetime, end: datetime) -> bool:
    return at is not None and start <= at < end


def _mean_seconds(pairs: Iterable[tuple[datetime | None, datetime | None]]) -> float | None:
    spans = [(b - a).total_seconds() for a, b in pairs if a is not None and b is not None]
    return round(sum(spans) / len(spans), 1) if spans else None


def case_figures(cases: Iterable[CaseTimes], start: datetime, end: datetime) -> dict[str, Any]:
    """The day's case figures.

    ``opened`` / ``closed`` / ``cancelled``: cases whose 立案 / 结案 / cancellation fell in
    ``[start, end)``. ``on_time_rate`` (按期处置率): of the cases closed that day, the share closed
    within their limit (``None`` when none closed). Means, over the cases whose later step fell
    in the day: ``to_accept`` dispatched → accepted, ``to_arrive`` dispatched → on site,
    ``to_close`` opened → closed. ``open_at_end``: opened before ``end``, neither closed nor
    cancelled by then.
    """
    cases = list(cases)
    closed = [c for c in cases if _inside(c.closed_at, start, end)]
    on_time = sum(1 for c in closed if c.closed_on_time())
    accepted = [c for c in cases if _inside(c.accepted_at, start, end)]
    arrived = [c for c in cases if _inside(c.arrived_at, start, end)]

    def still_open(c: CaseTimes) -> bool:
        ended = [t for t in (c.closed_at, c.cancelled_at) if t is not None and t < end]
        return c.opened_at < end and not ended

    return {
        "opened": sum(1 for c in cases if _inside(c.opened_at, start, end)),
        "closed": len(closed),
        "closed_on_time": on_time,
        "on_time_rate": round(on_time / len(closed), 4) if closed else None,
        "cancelled": sum(1 for c in cases if _inside(c.cancelled_at, start, end)),
        "open_at_end": sum(1 for c in cases if still_open(c)),
        "mean_seconds_to_accept": _mean_seconds((c.dispatched_at, c.accepted_at) for c in accepted),
        "mean_seconds_to_arrive": _mean_seconds((c.dispatched_at, c.arrived_at) for c in arrived),
        "mean_seconds_to_close": _mean_seconds((c.opened_at, c.closed_at) for c in closed),
    }


def alert_figures(alerts: Iterable[AlertOfDay]) -> dict[str, Any]:
    """Alerts opened that day, counted by risk and by the highest level each reached."""
    alerts = list(alerts)
    by_level = {level.value: 0 for level in Level}
    by_risk: dict[str, dict[str, int]] = {}
    for alert in alerts:
        top = alert.highest.value
        by_level[top] += 1
        row = by_risk.setdefault(alert.risk.value, {level.value: 0 for level in Level})
        row[top] += 1
    order = {risk.value: i for i, risk in enumerate(Risk)}
    return {
        "total": len(alerts),
        "predicted": sum(1 for a in alerts if a.predicted),
        "by_level": by_level,
        "by_risk": [
            {"risk": risk, "total": sum(counts.values()), "by_level": counts}
            for risk, counts in sorted(by_risk.items(), key=lambda kv: order[kv[0]])
        ],
    }


def _local_hour(at: datetime) -> int:
    return at.astimezone(SHANGHAI).hour


def peak_figures(
    zones: ZoneRegistry, minutes: Iterable[SeriesMinute], start: datetime, end: datetime
) -> dict[str, Any]:
    """Peaks of the day per zone and per site, from per-minute maxima in ``[start, end)``.

    A zone's peak is its largest minute. A site's total at a minute is the sum over its zones of
    their figure at that minute, a zone's last minute carrying on for ``CARRY_MINUTES`` when the
    next is missing; its peak is the largest total (an upper bound: each zone's figure is its
    own maximum within the minute). ``hourly``: the largest value in each local hour (0-23).
    """
    per_zone: dict[str, list[SeriesMinute]] = {}
    for sample in minutes:
        if start <= sample.minute < end and sample.zone_id in zones:
            per_zone.setdefault(sample.zone_id, []).append(sample)
    for samples in per_zone.values():
        samples.sort(key=lambda s: s.minute)

    zone_items = []
    for zone in zones:
        samples = per_zone.get(zone.id, [])
        top = max(samples, key=lambda s: (s.people, -s.minute.timestamp()), default=None)
        hourly: list[float | None] = [None] * 24
        for s in samples:
            h = _local_hour(s.minute)
            hourly[h] = s.people if hourly[h] is None else max(hourly[h] or 0.0, s.people)
        zone_items.append(
            {
                "zone_id": zone.id,
                "name": {"zh": zone.name.zh, "en": zone.name.en},
                "site": zone.site,
                "minutes": len(samples),
                "peak_people": top.people if top else None,
                "peak_at": top.minute if top else None,
                "peak_density": round(zone.density(top.people), 4) if top else None,
                "peak_occupancy": (
                    round(occ, 4)
                    if top and (occ := zone.occupancy(top.people)) is not None
                    else None
                ),
                "hourly": hourly,
            }
        )

    site_items = []
    carry = timedelta(minutes=CARRY_MINUTES)
    for site, members in zones.sites().items():
        totals: dict[datetime, float] = {}
        stamps = sorted({s.minute for z in members for s in per_zone.get(z.id, [])})
        for zone in members:
            samples = per_zone.get(zone.id, [])
            i = 0
            last: SeriesMinute | None = None
            for stamp in stamps:
                while i < len(samples) and samples[i].minute <= stamp:
                    last = samples[i]
                    i += 1
                if last is not None and stamp - last.minute <= carry:
                    totals[stamp] = totals.get(stamp, 0.0) + last.people
        best = max(totals.items(), key=lambda kv: (kv[1], -kv[0].timestamp()), default=None)
        hourly_site: list[float | None] = [None] * 24
        for stamp, total in totals.items():
            h = _local_hour(stamp)
            hourly_site[h] = total if hourly_site[h] is None else max(hourly_site[h] or 0.0, total)
        site_items.append(
            {
                "site": site,
                "zones": [z.id for z in members],
                "peak_people": best[1] if best else None,
                "peak_at": best[0] if best else None,
                "hourly": hourly_site,
            }
        )
    return {"zones": zone_items, "sites": site_items}


def daily_report(
    day: date,
    zones: ZoneRegistry,
    minutes: Sequence[SeriesMinute],
    alerts: Sequence[AlertOfDay],
    cases: Sequence[CaseTimes],
) -> dict[str, Any]:
    """The whole report for ``day`` (a Shanghai calendar day)."""
    start, end = day_window(day)
    peaks = peak_figures(zones, minutes, start, end)
    return {
        "date": day.isoformat(),
        "timezone": "Asia/Shanghai",
        "start": start,
        "end": end,
        "zones": peaks["zones"],
        "sites": peaks["sites"],
        "alerts": alert_figures(alerts),
        "cases": case_figures(cases, start, end),
    }
