"""What every endpoint needs, built once by :func:`api.app.create_api` and handed to the routers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from api.bus import AlertHub, Publisher
from api.limits import TokenBucketLimiter
from infra.settings import Settings
from models.topics import TopicNames
from models.zones import LocalizedText, ZoneRegistry, load_registry_file

__all__ = ["ApiContext", "load_registry"]


def load_registry(settings: Settings) -> ZoneRegistry:
    """The zone registry the settings point at (the bundled one by default)."""
    return load_registry_file(settings.zones_file)


@dataclass(frozen=True, slots=True)
class ApiContext:
    """The API's collaborators: settings, database, zones, broker, live feed, limits, clock."""

    settings: Settings
    engine: Engine
    zones: ZoneRegistry
    topics: TopicNames
    publisher: Publisher
    hub: AlertHub
    report_limiter: TokenBucketLimiter
    now: Callable[[], datetime]

    def zone_name(self, zone_id: str) -> dict[str, str]:
        """The zone's name, or its id in both languages when the registry no longer has it."""
        zone = self.zones.get(zone_id)
        name = zone.name if zone is not None else LocalizedText(zh=zone_id, en=zone_id)
        return {"zh": name.zh, "en": name.en}
