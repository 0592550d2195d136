"""Operations metrics of the worker, computed when Prometheus scrapes (never on the hot path).

* ``puhui_consumer_lag{topic,partition}``: records the worker's consumer group still has to
  process on each partition assigned to this worker: the partition's highwater (the offset the
  next record will get) minus the group's committed offset (the next record to process). Topics
  whose offsets Faust commits only: the table changelogs are read, not committed.
* ``puhui_zone_info{zone,site,grid,name_zh,name_en}`` (always 1), ``puhui_zone_area_square_meters``
  and ``puhui_zone_capacity_persons`` ``{zone}``: the zone registry, so that rules and dashboards
  can join per-zone series to their site and grid (``* on (zone) group_left (site, grid)``)
  and turn people into occupancy.
* ``puhui_zone_last_reading_timestamp_seconds{zone}``: wall-clock time (Unix seconds) this
  worker last finished handling a record of the zone on ``puhui.sensor-readings``; absent for a
  zone it has not seen since it started.

:func:`worker_collector` wires it all to a Faust app. :class:`WorkerCollector` itself only takes
callables, so any source of offsets or zone activity can feed it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import faust
from faust.sensors import Sensor
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from models.zones import ZoneRegistry

__all__ = [
    "PartitionLag",
    "WorkerCollector",
    "ZoneActivity",
    "faust_consumer_lag",
    "worker_collector",
]

log = logging.getLogger("puhui.worker")


@dataclass(frozen=True, slots=True, order=True)
class PartitionLag:
    """Records behind on one topic partition."""

    topic: str
    partition: int
    lag: int


class ZoneActivity(Sensor):
    """A Faust sensor that notes, per zone, the wall-clock time the worker finished handling a
    record of that zone on the readings topic (records are keyed by zone id).

    Faust calls ``on_stream_event_out`` once the agent is done with an event, whatever it did
    with it; records keyed by something that is not a zone of the registry are ignored.
    """

    def __init__(
        self,
        topic: str,
        zone_ids: Collection[str],
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.topic = topic
        self.zone_ids = frozenset(zone_ids)
        self.clock = clock
        self._last: dict[str, float] = {}

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        if tp.topic != self.topic:
            return
        key = event.message.key
        zone = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        if zone in self.zone_ids:
            self._last[zone] = self.clock()

    def last_seen(self) -> dict[str, float]:
        """Zone id → Unix time of the last record handled (a copy)."""
        return dict(self._last)


def faust_consumer_lag(app: faust.App) -> Callable[[], list[PartitionLag]]:
    """Reads the lag of ``app``'s consumer on each assigned partition of a committed topic.

    Highwaters come from the last fetch responses (aiokafka keeps them per partition), falling
    back to the ones Faust's monitor saw; committed offsets from Faust's consumer, which holds
    the group's committed offset of each assigned partition (read from the broker on assignment,
    updated on each commit). Before the group's first commit on a partition the lag counts from
    offset 0. Nothing here waits on the broker: it is a read of what the worker already knows.
    """

    def read() -> list[PartitionLag]:
        if not app.started:
            return []
        consumer: Any = app.consumer
        # Faust keeps the committed offsets privately (no public accessor in 0.15); read, never
        # written here. Its monitor's tp_committed_offsets misses partitions not yet committed.
        committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
        seen_end: Mapping[Any, int] = getattr(app.monitor, "tp_end_offsets", None) or {}
        lags = []
        for tp in consumer.assignment():
            if not app.topics.acks_enabled_for(tp.topic):
                continue
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # not fetched yet, or revoked meanwhile
                highwater = None
            if highwater is None:
                highwater = seen_end.get(tp)
            if highwater is None:
                continue
            position = committed.get(tp) or 0
            lags.append(PartitionLag(tp.topic, tp.partition, max(0, highwater - position)))
        return sorted(lags)

    return read


def _family(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


_FAMILIES: dict[str, tuple[str, list[str]]] = {
    "puhui_consumer_lag": (
        "Records not yet processed by the worker's consumer group: partition highwater minus "
        "committed offset",
        ["topic", "partition"],
    ),
    "puhui_zone_info": (
        "The zone registry (value 1): each zone's site, grid and names, for joins on zone",
        ["zone", "site", "grid", "name_zh", "name_en"],
    ),
    "puhui_zone_area_square_meters": ("Walkable area of the zone (m²)", ["zone"]),
    "puhui_zone_capacity_persons": (
        "Capacity of the zone (最大承载量, persons); only zones that have one",
        ["zone"],
    ),
    "puhui_zone_last_reading_timestamp_seconds": (
        "Wall-clock time (Unix seconds) the worker last handled a reading record of the zone",
        ["zone"],
    ),
}


#: The families that only depend on the zone registry.
_STATIC = ("puhui_zone_info", "puhui_zone_area_square_meters", "puhui_zone_capacity_persons")


class WorkerCollector(Collector):
    """The families listed in the module docstring. ``lag`` and ``last_reading`` are called at
    each scrape; if one fails, its family is empty for that scrape (logged once) and the rest
    of ``/metrics`` is still served."""

    def __init__(
        self,
        zones: ZoneRegistry,
        *,
        lag: Callable[[], Iterable[PartitionLag]],
        last_reading: Callable[[], Mapping[str, float]],
    ) -> None:
        self._zones = zones
        self._lag = lag
        self._last_reading = last_reading
        self._failed: set[str] = set()
        self._static_families: list[GaugeMetricFamily] | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for name, (doc, labels) in _FAMILIES.items():
            yield _family(name, doc, labels)

    def _static(self) -> list[GaugeMetricFamily]:
        """The registry's families: built at the first scrape, the same at every later one (the
        worker's registry does not change while it runs; a scrape with 1 000 zones spent ~30 %
        of its time rebuilding them)."""
        if self._static_families is None:
            families = {name: _family(name, *_FAMILIES[name]) for name in _STATIC}
            for zone in self._zones:
                families["puhui_zone_info"].add_metric(
                    [zone.id, zone.site, zone.grid.value, zone.name.zh, zone.name.en], 1.0
                )
                families["puhui_zone_area_square_meters"].add_metric([zone.id], zone.area_m2)
                if zone.capacity is not None:
                    families["puhui_zone_capacity_persons"].add_metric([zone.id], zone.capacity)
            self._static_families = list(families.values())
        return self._static_families

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            name: _family(name, doc, labels)
            for name, (doc, labels) in _FAMILIES.items()
            if name not in _STATIC
        }
        yield from self._static()
        for zone_id, at in sorted(self._call("last_reading", self._last_reading, {}).items()):
            families["puhui_zone_last_reading_timestamp_seconds"].add_metric([zone_id], at)
        for item in self._call("lag", self._lag, []):
            families["puhui_consumer_lag"].add_metric([item.topic, str(item.partition)], item.lag)
        yield from families.values()

    def _call(self, what: str, source: Callable[[], Any], empty: Any) -> Any:
        try:
            return source()
        except Exception:
            first = what not in self._failed
            self._failed.add(what)
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "metrics: could not read %s for this scrape",
                what,
                exc_info=True,
            )
            return empty


def worker_collector(app: faust.App, zones: ZoneRegistry, readings_topic: str) -> WorkerCollector:
    """The :class:`WorkerCollector` of a worker's Faust ``app``; adds to the app the
    :class:`ZoneActivity` sensor that feeds ``puhui_zone_last_reading_timestamp_seconds``."""
    activity = ZoneActivity(readings_topic, zones.ids())
    app.sensors.add(activity)
    return WorkerCollector(zones, lag=faust_consumer_lag(app), last_reading=activity.last_seen)
