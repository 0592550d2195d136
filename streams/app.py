"""The Faust app: topics, the zone-state table and three thin agents.

    puhui.sensor-readings ──assess──▶ puhui.alerts ──persist──▶ database
            │  (bad records)
            └──────────────▶ puhui.dead-letters
    puhui.alert-commands ──act──▶ puhui.alerts   (operators' acknowledge / assign / resolve)
    puhui.volunteer-reports ──intake──▶ (validated; bad ones dead-lettered)
    puhui.cases ──cases──▶ database (the one writer of cases; streams/cases.py)

``create_app(settings)`` builds everything; nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from alerts.config import RuleBook, load_rules
from alerts.engine import zone_view
from infra.db import make_engine, upsert_reports, upsert_zone_status, write_alert_records
from infra.kafka_security import client_for
from infra.settings import Settings
from models.contracts import (
    UNSTORABLE,
    AlertRecord,
    RejectedRecord,
    VolunteerReport,
    decode_alert_record,
)
from models.topics import TopicNames
from models.zones import ZoneRegistry, load_registry_file
from streams import cases as case_worker
from streams.faust_compat import diagnostics, sensors, table_sensor_on_set
from streams.faust_compat.batches import handle_in_batches
from streams.faust_compat.fixes import PuhuiApp, SeekFirstTableManager
from streams.handlers import (
    CommandHandler,
    Edge,
    ReadingHandler,
    ReportHandler,
    Source,
    ZoneStates,
)
from streams.lag import worker_collector
from streams.metrics import OpenAlertsCollector, PipelineMetrics
from streams.persist import Unstorable, write, write_alert_batch
from streams.series import SeriesPendingCollector, ZoneSeriesWriter

log = logging.getLogger("puhui.worker")

ZONE_STATE_TABLE = "zone-state"


def load_registry(settings: Settings) -> ZoneRegistry:
    """The zone registry the settings point at (the bundled one by default)."""
    return load_registry_file(settings.zones_file)


def _mtime(path: Path | None) -> float | None:
    try:
        return path.stat().st_mtime if path is not None else None
    except OSError:
        return None


def load_rulebook(settings: Settings, zones: ZoneRegistry) -> RuleBook:
    """The rules file the settings point at, for ``zones`` (PUHUI_HOLD_SECONDS overrides)."""
    book = load_rules(settings.rules_file, zones)
    if settings.hold_seconds is None:
        return book
    hold = settings.hold_seconds
    return RuleBook(
        book.default.model_copy(update={"hold_seconds": hold}),
        {z.id: book.for_zone(z.id).model_copy(update={"hold_seconds": hold}) for z in zones},
    )


@dataclass
class Pipeline:
    """The built worker: the Faust app and the parts tests and the CLI may want to reach."""

    app: faust.App
    topics: TopicNames
    registry: CollectorRegistry
    metrics: PipelineMetrics
    engine: Engine
    states: ZoneStates


def table_writer(table: Any) -> Any:
    """Write a table key with its changelog record on ``partition`` — what Faust's
    ``Table.__setitem__`` does, but with the partition given instead of taken from the event
    being processed (a staged state is flushed outside its reading's event)."""

    def write(key: str, value: dict[str, Any], partition: int) -> None:
        table.send_changelog(partition, key, value)
        table_sensor_on_set(table, key, value)
        table.data[key] = value

    return write


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> Pipeline:
    """Build the worker's Faust app from ``settings``."""
    zones = load_registry(settings)
    topics = TopicNames.with_prefix(settings.topic_prefix)
    partitions = settings.topic_partitions
    registry = registry or CollectorRegistry()
    metrics = PipelineMetrics.create(registry)
    engine = make_engine(settings.resolved_database_url())
    rules = load_rulebook(settings, zones)
    rules_path = settings.rules_file

    app = PuhuiApp(
        settings.app_id,
        **client_for(settings, "worker").faust(),
        store="memory://",
        datadir=str(settings.state_dir / "worker"),
        # The worker's web server serves /metrics and the "/" status only. Faust binds
        # ``web_bind`` (default 0.0.0.0), not ``web_host`` (the URL it advertises); the table and
        # router endpoints would hand anyone who can connect a zone's whole state, volunteers'
        # names and descriptions included — they are off (404).
        web_bind=settings.worker_host,
        web_host=settings.worker_host,
        web_port=settings.worker_port,
        web_in_thread=False,
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        topic_partitions=partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.broker_session_timeout_seconds,
        broker_heartbeat_interval=settings.broker_heartbeat_seconds,
        autodiscover=False,
        table_cleanup_interval=3600.0,
        TableManager=SeekFirstTableManager,  # see streams/faust_compat/fixes.py
    )
    setup_prometheus_sensors(app, registry=registry, name_prefix="faust")

    @app.page("/healthz")
    async def healthz(self: Any, request: Any) -> Any:
        """Liveness, as the API's ``/healthz``: the worker's event loop answers."""
        return self.json({"status": "ok"})

    # The same metrics, label children looked up once; the input topics read 0 from the start.
    sensors.install(app, known_topics=(topics.readings, topics.reports, topics.commands))

    def raw_topic(name: str) -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )

    readings_topic = raw_topic(topics.readings)
    reports_topic = raw_topic(topics.reports)
    alerts_topic = raw_topic(topics.alerts)
    dead_topic = raw_topic(topics.dead_letters)
    commands_topic = raw_topic(topics.commands)
    # Internal: "release this zone's waiting reports" — sent by a timer when a zone's partition
    # has gone quiet, handled by an agent so that the table is written in stream context.
    ticks_topic = app.topic(
        f"{settings.app_id}-report-ticks",
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=True,
    )

    table = app.Table(
        ZONE_STATE_TABLE,
        default=None,
        partitions=partitions,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
    )
    states = ZoneStates(table, writer=table_writer(table))
    # Every acknowledged record's state is staged or written by now; flushing the staged ones
    # before Faust takes the offsets (and flushes the producer) means no offset is committed
    # past a record whose state is not in the changelog.
    app.before_commit.append(states.flush_settled)
    registry.register(OpenAlertsCollector(states.open_alerts))
    registry.register(worker_collector(app, zones, topics.readings))

    def sender(topic: Any) -> Any:
        async def send(
            key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None
        ) -> Any:
            return await topic.send(key=key, value=value, headers=headers)

        return send

    send_dead_letter = sender(dead_topic)

    metrics.initialise_topics((topics.readings, topics.reports, topics.commands))
    edge = Edge(metrics, send_dead_letter)

    async def dead_letter(source: Source, raw: bytes, reason: str, detail: str) -> None:
        await edge.dead_letter(raw, source, reason, detail)

    async def store_report(report: VolunteerReport, alert_id: str | None) -> None:
        try:
            await write("report", lambda: upsert_reports(engine, [(report, alert_id)]), metrics)
        except Unstorable as exc:
            # Valid by the contract, refused by the database: out of the way, with its reason.
            # (The record as the worker read it; a report released from waiting has no offset.)
            where = Source(topics.reports, -1, -1, report.zone_id.encode(), None)
            await dead_letter(where, report.model_dump_json().encode(), UNSTORABLE, exc.detail)

    received: dict[str, float] = {}  # zone -> wall time its latest reading was processed
    series = ZoneSeriesWriter(zones, engine, metrics, settings.series_retention_days)
    registry.register(SeriesPendingCollector(series.pending))

    def on_zone_reading(zone_id: str) -> None:
        received[zone_id] = time.time()
        series.note(zone_id, states.cache.get(zone_id))  # its minute in zone_series

    handle_reading = ReadingHandler(
        zones=zones,
        rules=rules,
        states=states,
        metrics=metrics,
        send_alert=sender(alerts_topic),
        send_dead_letter=send_dead_letter,
        send_reading=sender(readings_topic),
        store_report=store_report,
        max_sensors=settings.max_sensors_per_zone,
        on_zone_reading=on_zone_reading,
    )

    handle_report = ReportHandler(
        zones=zones,
        rules=rules,
        states=states,
        metrics=metrics,
        send_alert=sender(alerts_topic),
        send_dead_letter=send_dead_letter,
        send_report=sender(reports_topic),
        store_report=store_report,
    )

    handle_command = CommandHandler(
        zones=zones,
        states=states,
        metrics=metrics,
        send_alert=sender(alerts_topic),
        send_dead_letter=send_dead_letter,
        send_command=sender(commands_topic),
    )

    def source_of(event: Any) -> Source:
        msg = event.message
        return Source(msg.topic, msg.partition, msg.offset, msg.key, msg.timestamp)

    @app.agent(readings_topic, concurrency=1, name="assess")
    async def assess(stream: Any) -> None:
        if settings.reading_batch_size == 1:
            async for event in stream.events():
                await handle_reading(event.value, source_of(event))
            return
        # Batches acknowledged once handled; a batch that ran into a revocation is not
        # acknowledged at all (streams/faust_compat/batches.py).
        await handle_in_batches(
            stream,
            settings.reading_batch_size,
            settings.reading_batch_seconds,
            lambda events: handle_reading.handle_batch([(e.value, source_of(e)) for e in events]),
        )

    @app.agent(reports_topic, concurrency=1, name="intake")
    async def intake(stream: Any) -> None:
        async for event in stream.events():
            await handle_report(event.value, source_of(event))

    @app.agent(commands_topic, concurrency=1, name="act")
    async def act(stream: Any) -> None:
        async for event in stream.events():
            await handle_command(event.value, source_of(event))

    case_worker.install(
        app, settings, engine, zones, topics, registry, metrics, raw_topic, send_dead_letter
    )

    @app.agent(ticks_topic, concurrency=1, name="release")
    async def release(stream: Any) -> None:
        async for event in stream.events():
            try:
                await handle_report.release(event.value.decode(), event.message.partition)
            except Exception:  # never let one escape: it would be acked and forgotten
                log.exception("releasing waiting reports failed")

    @app.timer(2.0)
    async def release_quiet_zones() -> None:
        """Reports wait for their zone's sensors to reach their time; on a partition where no
        reading arrives for a while (live operation, dead sensors), they go ahead."""
        for zone_id in handle_report.due(handle_reading.last_activity, grace=10.0):
            handle_report.waiting.pop(zone_id, None)
            await ticks_topic.send(key=zone_id.encode(), value=zone_id.encode())

    @app.agent(alerts_topic, concurrency=1, name="persist")
    async def persist(stream: Any) -> None:
        async for events in stream.take_events(
            settings.db_batch_size, within=settings.db_batch_seconds
        ):
            batch: list[AlertRecord] = []
            sources: list[tuple[Source, bytes]] = []
            for event in events:
                raw, source = event.value or b"", source_of(event)
                try:
                    batch.append(decode_alert_record(raw))
                    sources.append((source, raw))
                except RejectedRecord as rejected:  # someone else's bad record on the topic
                    log.warning("dead-lettering a bad record on %s: %s", topics.alerts, rejected)
                    await dead_letter(source, raw, rejected.reason, rejected.detail)
            if batch:
                await write_alert_batch(
                    lambda records: write_alert_records(engine, records),
                    batch,
                    metrics,
                    lambda i, reason, detail, at=sources: dead_letter(*at[i], reason, detail),
                )
                metrics.db_batches.inc()

    @app.timer(settings.status_interval_seconds)
    async def write_zone_status() -> None:
        """Zone figures for the API (people, density, peaks, flows, level), batched."""
        rows = []
        for state in states.take_dirty():
            zone = zones.get(state.zone_id)
            if zone is None or state.clock is None:
                continue
            view = zone_view(state, zone)
            rows.append(
                {
                    "zone_id": zone.id,
                    "people": view.people,
                    "density": view.density,
                    "occupancy": view.occupancy,
                    "level": view.level.value if view.level else None,
                    "peak_5m": view.peaks.get("5m"),
                    "peak_1h": view.peaks.get("1h"),
                    "peak_day": view.peaks.get("day"),
                    "inflow_per_min": view.inflow_per_min,
                    "outflow_per_min": view.outflow_per_min,
                    "updated_at": datetime.fromtimestamp(state.clock, tz=UTC),
                    "received_at": (
                        datetime.fromtimestamp(received[zone.id], tz=UTC)
                        if zone.id in received
                        else None
                    ),
                }
            )
        if rows:
            # Derived figures, written again within seconds: a refusal is logged by write().
            with contextlib.suppress(Unstorable):
                await write("zone status", lambda: upsert_zone_status(engine, rows), metrics)
        await series.flush()

    rules_mtime = [_mtime(rules_path)]

    @app.timer(5.0)
    async def reload_rules() -> None:
        """Reload the rules file when it changes; alert state lives in the table, untouched."""
        mtime = _mtime(rules_path)
        if rules_path is None or mtime == rules_mtime[0]:
            return
        rules_mtime[0] = mtime
        try:
            book = await asyncio.to_thread(load_rulebook, settings, zones)
        except Exception:
            log.exception("rules file %s not reloaded; keeping the rules in force", rules_path)
            return
        handle_reading.rules = book
        handle_report.rules = book
        log.info("rules reloaded from %s", rules_path)

    @app.task
    async def _diagnostics() -> None:
        diagnostics.install(app)

    @app.on_partitions_revoked.connect
    async def _forget_cache(app: Any, revoked: Any, **kwargs: Any) -> None:
        # Normally nothing is staged here: Faust's wait for the streams to finish committed.
        await states.flush_settled()
        states.forget()
        # Zones may move to another worker: stop exporting figures this one no longer updates
        # (they come back with the zones' next readings).
        for gauge in (
            metrics.zone_people,
            metrics.zone_density,
            metrics.zone_people_peak,
            metrics.zone_inflow,
            metrics.zone_outflow,
        ):
            gauge.clear()
        handle_reading.forget_zone_gauges()

    return Pipeline(
        app=app, topics=topics, registry=registry, metrics=metrics, engine=engine, states=states
    )
