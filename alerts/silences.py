"""Silences: an operator's "do not notify" for alerts that match some labels, for a while.

As in Prometheus Alertmanager, a silence is a set of matchers plus a time window. Here the
matchers are exact matches on any subset (at least one) of an alert's zone, site, risk and level.
A silenced alert is still raised, recorded and shown; only its notifications are held back.

A level matcher matches that level only: a silence on a zone's 蓝 crowding alerts does not hide
the same alert once it escalates to 红.

Pure: no I/O, no clock. The caller passes ``now`` and the silences it has loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from models.contracts import AlertRecord
from models.zones import ZoneRegistry

__all__ = ["MATCHER_FIELDS", "Silence", "active_silences", "is_silenced", "matching_silences"]

#: The alert fields a silence can match on.
MATCHER_FIELDS: Final = ("zone_id", "site", "risk", "level")


@dataclass(frozen=True, slots=True)
class Silence:
    """Matchers (``None`` = any value) and a window ``starts_at <= now < ends_at``."""

    id: str
    starts_at: datetime
    ends_at: datetime
    zone_id: str | None = None
    site: str | None = None
    risk: str | None = None
    level: str | None = None
    comment: str = ""
    created_by: str = ""

    def __post_init__(self) -> None:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("a silence's window must use timezone-aware datetimes")
        if self.ends_at <= self.starts_at:
            raise ValueError("a silence must end after it starts")
        if not any(self.matchers().values()):
            raise ValueError("a silence needs at least one matcher")

    def matchers(self) -> dict[str, str | None]:
        """The matcher of each field (``None`` where the silence does not care)."""
        return {
            "zone_id": self.zone_id,
            "site": self.site,
            "risk": self.risk,
            "level": self.level,
        }

    def active(self, now: datetime) -> bool:
        """True while ``now`` is inside the window (start inclusive, end exclusive)."""
        return self.starts_at <= now < self.ends_at

    def matches(self, fields: Mapping[str, str | None]) -> bool:
        """True when every matcher equals the alert's value of that field."""
        return all(
            wanted is None or fields.get(name) == wanted for name, wanted in self.matchers().items()
        )


def _fields(alert: AlertRecord | Mapping[str, Any], zones: ZoneRegistry | None) -> dict[str, Any]:
    if isinstance(alert, AlertRecord):
        fields: dict[str, Any] = {
            "zone_id": alert.zone_id,
            "risk": alert.risk.value,
            "level": alert.level.value,
        }
    else:
        fields = {name: alert.get(name) for name in MATCHER_FIELDS}
    for name in ("risk", "level"):
        value = fields.get(name)
        # Enum members compare equal to their values, but keep plain strings for clarity.
        fields[name] = getattr(value, "value", value)
    if fields.get("site") is None and zones is not None and fields.get("zone_id") is not None:
        zone = zones.get(str(fields["zone_id"]))
        fields["site"] = zone.site if zone is not None else None
    return fields


def active_silences(silences: Iterable[Silence], now: datetime) -> list[Silence]:
    """The silences in effect at ``now``."""
    return [silence for silence in silences if silence.active(now)]


def matching_silences(
    alert: AlertRecord | Mapping[str, Any],
    silences: Iterable[Silence],
    now: datetime,
    zones: ZoneRegistry | None = None,
) -> list[Silence]:
    """The silences in effect at ``now`` that match ``alert``.

    ``alert`` is an :class:`AlertRecord` or a mapping with any of ``zone_id``, ``site``, ``risk``
    and ``level``. An alert record carries no site: pass ``zones`` to derive it from the zone (or
    a mapping with ``site``); without either, a silence that matches on site does not match.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    fields = _fields(alert, zones)
    return [s for s in silences if s.active(now) and s.matches(fields)]


def is_silenced(
    alert: AlertRecord | Mapping[str, Any],
    silences: Iterable[Silence],
    now: datetime,
    zones: ZoneRegistry | None = None,
) -> bool:
    """True when some silence in effect at ``now`` matches ``alert`` (see
    :func:`matching_silences`): the alert is recorded as usual but not notified."""
    return bool(matching_silences(alert, silences, now, zones))
