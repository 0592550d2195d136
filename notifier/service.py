"""The notifier: alert records in, signed webhooks out. A thin adapter around :mod:`alerts.notify`.

::

    puhui.alerts ──consume (own group)──▶ open alerts (observe) ──tick 1 s──▶ decide ──▶ webhooks
                                                                     silences ┘          │
                                          notification_attempts ◀── every attempt ───────┘

It runs inside the API process (``start()`` / ``stop()`` in the app's lifespan) and only when
``PUHUI_WEBHOOK_SECRET`` is set: nothing unsigned ever leaves. Each delivery is a POST of the
JSON from :func:`alerts.notify.webhook_body` with the headers

* ``X-Puhui-Signature: v1=<hex HMAC-SHA256 of "<timestamp>." + the raw body>`` with the
  target's own secret (a target's ``secret_file`` in the policy, else derived from
  ``PUHUI_WEBHOOK_SECRET`` by :func:`alerts.notify.target_secret`; ``puhui webhook secret NAME``
  prints it for the receiver's operator)
* ``X-Puhui-Timestamp``: Unix seconds of the attempt, covered by the signature (also in the
  body as ``sent_at``); receivers refuse old and replayed deliveries with
  :func:`alerts.notify.verify_delivery` (docs/security.md has the recipe for other languages)
* ``X-Puhui-Notification-Id``: the idempotency key (the same for every attempt of it)
* ``X-Puhui-Attempt``: 1, 2, …

2xx is delivered. No answer, 408, 425, 429 and 5xx are retried with exponential backoff and
jitter (``Retry-After`` honoured up to the cap) up to ``PUHUI_WEBHOOK_MAX_ATTEMPTS``; other
answers are not retried. Every attempt is a row of ``notification_attempts``, written in a worker
thread. Deliveries to one target about one alert go out in order.

Restarts: the consumer group's committed offsets say where to resume; the open alerts come back
from the database (their stored history), and what was already sent from the attempts ledger,
so nothing is sent twice and an escalation keeps its clock. The ledger is also read for an alert
first seen on the topic, so an all-clear still reaches those paged before a restart.
Known limits: a notification still being retried when the process stops is not resumed; run one
notifier per deployment (two would each send).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError
from sqlalchemy import Engine

from alerts.cases import load_bundled_case_limits, load_case_limits
from alerts.notify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    EscalationConfig,
    Notification,
    NotificationKind,
    Policy,
    SilenceCheck,
    Track,
    backoff_delay,
    decide,
    delivery_body,
    load_bundled_escalation,
    load_escalation,
    notification_id,
    observe,
    restore,
    retryable,
    sign,
    target_secret,
    webhook_body,
)
from alerts.notify import Sent as SentNotification
from alerts.silences import Silence, is_silenced
from infra.cases_db import CaseEventRow, CaseRow, case_notification_ids, escalations_since
from infra.db import (
    NotificationAttemptRow,
    load_notification_attempts,
    load_open_alert_records,
    load_silences,
    record_notification_attempts,
)
from infra.kafka_security import KafkaClient, as_client, client_for
from infra.settings import Settings
from models.contracts import AlertRecord, Level, decode_alert
from models.topics import TopicNames
from models.zones import ZoneRegistry, load_registry_file

__all__ = [
    "MIN_SECRET_BYTES",
    "Notifier",
    "NotifierMetrics",
    "case_facts",
    "target_secrets",
    "utc_now",
]

MIN_SECRET_BYTES = 16
"""A target's own secret (``secret_file``) must be at least this long, as the master is."""


def target_secrets(config: EscalationConfig, master: bytes) -> dict[str, bytes]:
    """Every target's signing secret: read from its ``secret_file`` (surrounding whitespace
    dropped), else derived from ``master``. An unreadable or short file is a ``ValueError``
    naming the target and the file, never the content."""
    secrets: dict[str, bytes] = {}
    for name, target in config.targets.items():
        if target.secret_file is None:
            secrets[name] = target_secret(master, name)
            continue
        try:
            value = target.secret_file.read_bytes().strip()
        except OSError as exc:
            raise ValueError(
                f"webhook target {name}: cannot read secret_file {target.secret_file}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        if len(value) < MIN_SECRET_BYTES:
            raise ValueError(
                f"webhook target {name}: secret_file {target.secret_file} holds fewer than "
                f"{MIN_SECRET_BYTES} bytes"
            )
        secrets[name] = value
    return secrets


#: How far back the notifier looks for case escalations it has not sent (after a restart).
CASE_LOOKBACK = timedelta(days=1)


def case_facts(event: CaseEventRow, case: CaseRow) -> dict[str, Any]:
    """What a case-overdue webhook says: the case, the overdue step and when it was due (no
    volunteer's data: ids of the reports only, never their words)."""
    return {
        "case_id": case.case_id,
        "title": case.title,
        "category": case.category,
        "level": case.level,
        "zone_id": case.zone_id,
        "status": event.from_status or case.status,
        "unit_id": event.unit_id,
        "step": event.step,
        "due_at": None if case.due_at is None else case.due_at.isoformat(),
        "escalated_at": event.at.isoformat(),
        "summary": {
            "zh": f"案件超期未办结：{case.title}",
            "en": f"Case step overdue: {case.title}",
        },
    }


log = logging.getLogger("puhui.notifier")

#: Longest the ticker waits for the consumer to catch up with the topic before deciding anyway
#: (so open alerts loaded from the database still escalate while the broker is down).
STARTUP_GRACE_SECONDS = 30.0
#: How often the silences are read again from the database.
SILENCE_REFRESH_SECONDS = 5.0
#: Webhook requests in flight at once (retries waiting for their backoff do not count).
MAX_CONCURRENT_REQUESTS = 16
#: Seconds in-flight deliveries get to finish when the notifier stops.
STOP_GRACE_SECONDS = 5.0
_ERROR_LIMIT = 500
#: Outcomes of a webhook attempt: a 2xx; another HTTP answer; no answer (timeout, refused, ...).
ATTEMPT_OUTCOMES = ("delivered", "failed", "error")


def utc_now() -> datetime:
    """The wall clock (the notifier's default clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class NotifierMetrics:
    """The notifier's metrics, on the API's registry."""

    notifications: Counter
    attempts: Counter
    given_up: Counter
    open_alerts: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> NotifierMetrics:
        """Register every metric on ``registry``."""
        return cls(
            notifications=Counter(
                "puhui_notifications",
                "Notifications decided, by kind (notice, step, repeat, level_up, resolved)",
                ["kind"],
                registry=registry,
            ),
            attempts=Counter(
                "puhui_webhook_attempts",
                "Webhook delivery attempts by target and outcome (delivered, failed, error)",
                ["target", "outcome"],
                registry=registry,
            ),
            given_up=Counter(
                "puhui_notifications_given_up",
                "Notifications not delivered after every allowed attempt, by target",
                ["target"],
                registry=registry,
            ),
            open_alerts=Gauge(
                "puhui_notifier_open_alerts",
                "Open alerts the notifier is following",
                registry=registry,
            ),
        )

    def initialise(self, targets: Iterable[str]) -> None:
        """Create every series at 0 for the policy's targets, every kind and outcome: a
        notifier that has failed nothing reads 0 failures (not "No data"), and the first
        failure is an increase the alert rule sees."""
        for kind in NotificationKind:
            self.notifications.labels(kind=kind.value)
        for target in targets:
            self.given_up.labels(target=target)
            for outcome in ATTEMPT_OUTCOMES:
                self.attempts.labels(target=target, outcome=outcome)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _sent(rows: Iterable[NotificationAttemptRow]) -> dict[str, list[SentNotification]]:
    """The attempts ledger as decided notifications per alert (first attempt of each)."""
    seen: set[str] = set()
    out: dict[str, list[SentNotification]] = {}
    for row in rows:
        if row.notification_id in seen:
            continue
        seen.add(row.notification_id)
        out.setdefault(row.alert_id, []).append(
            SentNotification(
                key=row.key,
                kind=NotificationKind(row.kind),
                target=row.target,
                level=Level(row.level),
                step=row.step,
                at=row.at,
            )
        )
    return out


class Notifier:
    """Follows ``puhui.alerts``, decides what is due every tick and delivers it as webhooks.

    Build it with :meth:`from_settings` (``None`` when notifications are off); every dependency
    can be injected for tests: ``clock`` (the wall clock), ``jitter`` (a number in [0, 1) per
    retry), ``transport`` (an httpx transport), ``silenced`` (a ready silence check, instead of
    the silences in the database).
    """

    def __init__(
        self,
        *,
        bootstrap: KafkaClient | str,
        topic: str,
        group_id: str,
        engine: Engine,
        config: EscalationConfig,
        secret: bytes,
        target_secrets: Mapping[str, bytes] | None = None,
        zones: ZoneRegistry | None = None,
        silenced: SilenceCheck | None = None,
        clock: Callable[[], datetime] = utc_now,
        jitter: Callable[[], float] = random.random,
        tick_seconds: float = 1.0,
        timeout: float = 5.0,
        max_attempts: int = 6,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        offset_reset: str = "latest",
        transport: httpx.AsyncBaseTransport | None = None,
        metrics: NotifierMetrics | None = None,
        case_targets: Sequence[str] = (),
    ) -> None:
        if not secret:
            raise ValueError("a webhook secret is required")
        self._bootstrap = bootstrap
        self._topic = topic
        self._group_id = group_id
        self._engine = engine
        self._config = config
        self._secret = secret
        self._target_secrets = dict(target_secrets or {})
        self._zones = zones
        self._fixed_silence = silenced
        self._silences: list[Silence] = []
        self._clock = clock
        self._jitter = jitter
        self._tick_seconds = tick_seconds
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._offset_reset = offset_reset
        self._transport = transport
        self._metrics = metrics
        if metrics is not None:
            metrics.initialise(config.targets)
        self._tracks: dict[str, Track] = {}
        self._chains: dict[tuple[str, str], asyncio.Task[bool]] = {}
        self._deliveries: set[asyncio.Task[bool]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None
        self._requests: asyncio.Semaphore | None = None
        self._caught_up: asyncio.Event | None = None
        # Case escalations (a case step past its time limit): who is told, and what was decided.
        unknown = [t for t in case_targets if t not in config.targets]
        if unknown:
            raise ValueError(f"case escalate_to names unknown targets: {', '.join(unknown)}")
        self._case_targets = tuple(case_targets)
        self._case_decided: set[str] = set()
        self._case_since: datetime | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        engine: Engine,
        *,
        registry: CollectorRegistry | None = None,
        zones: ZoneRegistry | None = None,
        **overrides: Any,
    ) -> Notifier | None:
        """The notifier the settings describe, or ``None`` when ``PUHUI_WEBHOOK_SECRET`` is not
        set. Reads the zone registry and the escalation policy now: a bad policy file fails
        here, naming the file and the field."""
        if settings.webhook_secret is None:
            log.info("notifications off: PUHUI_WEBHOOK_SECRET is not set")
            return None
        if zones is None:
            zones = load_registry_file(settings.zones_file)
        sites = set(zones.sites())
        config = (
            load_escalation(settings.escalation_file, sites)
            if settings.escalation_file
            else load_bundled_escalation(sites)
        )
        master = settings.webhook_secret.get_secret_value().encode()
        kwargs: dict[str, Any] = {
            "bootstrap": client_for(settings, "notifier"),
            "topic": TopicNames.with_prefix(settings.topic_prefix).alerts,
            "group_id": settings.notify_group or f"{settings.app_id}-notifier",
            "engine": engine,
            "config": config,
            "secret": master,
            "target_secrets": target_secrets(config, master),
            "zones": zones,
            "tick_seconds": settings.notify_tick_seconds,
            "timeout": settings.webhook_timeout_seconds,
            "max_attempts": settings.webhook_max_attempts,
            "backoff": settings.webhook_backoff_seconds,
            "backoff_max": settings.webhook_backoff_max_seconds,
            "metrics": NotifierMetrics.create(registry) if registry is not None else None,
        }
        limits = (
            load_case_limits(settings.case_limits_file)
            if settings.case_limits_file
            else load_bundled_case_limits()
        )
        case_targets = limits.escalate_to
        if settings.case_limits_file is None and settings.escalation_file is not None:
            # The bundled limits name the bundled policy's targets; a policy of its own keeps
            # those it has (a limits file of its own, PUHUI_CASE_LIMITS_FILE, names its own).
            missing = [t for t in case_targets if t not in config.targets]
            if missing:
                log.warning(
                    "overdue cases are not sent to %s: PUHUI_ESCALATION_FILE has no such "
                    "target; set PUHUI_CASE_LIMITS_FILE with escalate_to naming its targets",
                    ", ".join(missing),
                )
            case_targets = tuple(t for t in case_targets if t in config.targets)
        kwargs["case_targets"] = case_targets
        kwargs.update(overrides)
        return cls(**kwargs)

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Read the open alerts and the ledger from the database, then run in the background:
        a broker that is down does not hold up the API (the consumer keeps trying)."""
        if self._tasks:
            return
        self._open_http()
        self._caught_up = asyncio.Event()
        await self._load_open_alerts()
        await self._load_case_ledger()
        self._tasks = [
            asyncio.create_task(self._consume(), name="notifier-consume"),
            asyncio.create_task(self._tick_forever(), name="notifier-tick"),
        ]

    def _open_http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self._transport,
                timeout=self._timeout,
                follow_redirects=False,
                headers={"User-Agent": "puhui-notifier"},
            )
            self._requests = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)
        return self._http

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the consumer has its partitions and has read the topic to its end."""
        assert self._caught_up is not None, "start() first"
        await asyncio.wait_for(self._caught_up.wait(), timeout)

    async def stop(self) -> None:
        """Stop consuming and ticking; give deliveries in flight a moment, then cancel them."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._deliveries:
            _, pending = await asyncio.wait(set(self._deliveries), timeout=STOP_GRACE_SECONDS)
            for delivery in pending:
                delivery.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def tracks(self) -> Mapping[str, Track]:
        """The open alerts followed now (a read-only view, for tests and diagnostics)."""
        return dict(self._tracks)

    # --------------------------------------------------------------------------- alert state

    def _policy(self, record: AlertRecord) -> Policy:
        zone = self._zones.get(record.zone_id) if self._zones is not None else None
        return self._config.policy_for(zone.site if zone is not None else None, record.risk)

    async def _ingest(self, records: Sequence[AlertRecord]) -> None:
        """Fold records into the tracks. An alert seen for the first time gets what the ledger
        says was already sent about it *before* it joins the tracks, so no tick in between can
        send anything twice (only this method adds tracks; the ticker only updates them)."""
        fresh: dict[str, Track] = {}
        for record in records:
            known = self._tracks.get(record.alert_id)
            if known is not None:
                self._tracks[record.alert_id] = observe(known, record, self._policy(record))
            else:
                track = fresh.get(record.alert_id)
                fresh[record.alert_id] = observe(track, record, self._policy(record))
        if not fresh:
            return
        try:
            rows = await asyncio.to_thread(load_notification_attempts, self._engine, list(fresh))
        except Exception:
            log.exception("cannot read the notification ledger; notifications may repeat")
            rows = []
        for alert_id, sent in _sent(rows).items():
            fresh[alert_id] = restore(fresh[alert_id], sent)
        self._tracks.update(fresh)

    async def _load_open_alerts(self) -> None:
        try:
            records = await asyncio.to_thread(load_open_alert_records, self._engine)
        except Exception:
            log.exception("cannot read open alerts from the database; following the topic only")
            return
        await self._ingest(records)
        log.info("notifier: %d open alerts from the database", len(self._tracks))

    # ------------------------------------------------------------------------------ consumer

    async def _consume(self) -> None:
        delay = 1.0
        while True:
            consumer = AIOKafkaConsumer(
                self._topic,
                **as_client(self._bootstrap).aiokafka(),
                group_id=self._group_id,
                client_id="puhui-notifier",
                enable_auto_commit=False,
                auto_offset_reset=self._offset_reset,
            )
            try:
                await consumer.start()
                delay = 1.0
                await self._consume_with(consumer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifier consumer failed; retrying in %.0f s", delay)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _consume_with(self, consumer: AIOKafkaConsumer) -> None:
        assert self._caught_up is not None
        assigned: frozenset[TopicPartition] = frozenset()
        ends: dict[TopicPartition, int] = {}
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            records: list[AlertRecord] = []
            for batch in batches.values():
                for message in batch:
                    try:
                        records.append(decode_alert(message.value or b""))
                    except ValidationError as exc:
                        log.warning(
                            "skipping a bad alert record at %s[%d]@%d: %s",
                            message.topic,
                            message.partition,
                            message.offset,
                            exc.errors(include_url=False)[:1],
                        )
            if records:
                await self._ingest(records)
                await consumer.commit()
                if self._metrics is not None:
                    self._metrics.open_alerts.set(len(self._tracks))
            if not self._caught_up.is_set():
                now_assigned = frozenset(consumer.assignment())
                if now_assigned and now_assigned != assigned:
                    assigned = now_assigned
                    ends = await consumer.end_offsets(list(assigned))
                if assigned and all([await consumer.position(tp) >= ends[tp] for tp in assigned]):
                    log.info("notifier: caught up with %s", self._topic)
                    self._caught_up.set()

    # -------------------------------------------------------------------------------- ticking

    async def _tick_forever(self) -> None:
        assert self._caught_up is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._caught_up.wait(), STARTUP_GRACE_SECONDS)
        refreshed: datetime | None = None
        while True:
            now = self._clock()
            if self._fixed_silence is None and (
                refreshed is None or (now - refreshed).total_seconds() >= SILENCE_REFRESH_SECONDS
            ):
                refreshed = now
                await self._refresh_silences(now)
            self.tick(now)
            try:
                await self.tick_cases(now)
            except Exception:
                log.exception("cannot read the case escalations")
            await asyncio.sleep(self._tick_seconds)

    async def _refresh_silences(self, now: datetime) -> None:
        try:
            self._silences = await asyncio.to_thread(load_silences, self._engine, now)
        except Exception as exc:  # keep the last known silences
            log.warning("cannot read silences (keeping %d): %s", len(self._silences), exc)

    def _silenced(self, record: AlertRecord, now: datetime) -> bool:
        if self._fixed_silence is not None:
            return self._fixed_silence(record, now)
        return is_silenced(record, self._silences, now, self._zones)

    def tick(self, now: datetime) -> list[Notification]:
        """Decide what is due at ``now`` for every open alert and start delivering it."""
        due: list[Notification] = []
        for alert_id, track in list(self._tracks.items()):
            try:
                new, notes = decide(track, self._policy(track.record), now, self._silenced)
            except Exception:
                log.exception("cannot decide the notifications of alert %s", alert_id)
                continue
            if new is None:
                del self._tracks[alert_id]
            else:
                self._tracks[alert_id] = new
            due.extend(notes)
        for note in due:
            self._dispatch(note)
        if self._metrics is not None:
            self._metrics.open_alerts.set(len(self._tracks))
        return due

    # ------------------------------------------------------------------------- case escalation

    async def _load_case_ledger(self) -> None:
        """What case notifications were already decided (so a restart sends none twice), and
        where the escalations' window starts (``CASE_LOOKBACK`` ago; each tick slides it)."""
        try:
            decided = await asyncio.to_thread(case_notification_ids, self._engine)
        except Exception as exc:
            log.warning("cannot read the case notification ledger: %s", exc)
            decided = set()
        self._case_decided.update(decided)
        self._case_since = self._clock() - CASE_LOOKBACK

    async def tick_cases(self, now: datetime) -> list[tuple[str, str]]:
        """Start delivering every case escalation not yet decided: one notification per
        escalated step and target. Returns (notification id, target) of what it started."""
        if not self._case_targets:
            return []
        # The window slides with the clock (CASE_LOOKBACK wide), so each tick reads a day of
        # escalations, not everything since the notifier started.
        since = max(self._case_since or (now - CASE_LOOKBACK), now - CASE_LOOKBACK)
        self._case_since = since
        rows = await asyncio.to_thread(escalations_since, self._engine, since)
        started: list[tuple[str, str]] = []
        seen: set[str] = set()
        for event, case in rows:
            key = f"case/{event.step}/overdue"
            for target in self._case_targets:
                nid = notification_id(case.case_id, key, target)
                seen.add(nid)
                if nid in self._case_decided:
                    continue
                self._case_decided.add(nid)
                started.append((nid, target))
                self._dispatch_case(nid, key, target, event, case)
        # An escalation older than the window is never read again: forget its decision.
        self._case_decided &= seen
        return started

    def _dispatch_case(
        self, nid: str, key: str, target: str, event: CaseEventRow, case: CaseRow
    ) -> None:
        if self._metrics is not None:
            self._metrics.notifications.labels(kind=NotificationKind.CASE_OVERDUE.value).inc()
        log.info(
            "notify case_overdue %s of case %s (%s) -> %s", key, case.case_id, case.status, target
        )
        facts = case_facts(event, case)
        ledger = {
            "notification_id": nid,
            "alert_id": case.case_id,
            "revision": int(event.step or 0),
            "kind": NotificationKind.CASE_OVERDUE.value,
            "key": key,
            "step": int(event.step or 0),
            "level": case.level,
            "target": target,
        }

        def body(attempt: int, sent_at: datetime) -> bytes:
            return delivery_body(
                facts,
                notification_id=nid,
                kind=NotificationKind.CASE_OVERDUE,
                key=key,
                step=event.step,
                target=target,
                attempt=attempt,
                sent_at=sent_at,
            )

        self._chain(
            (case.case_id, target),
            lambda: self._post(ledger, body, f"case {case.case_id} ({key})"),
            nid,
        )

    # ------------------------------------------------------------------------------- delivery

    def _dispatch(self, note: Notification) -> None:
        if self._metrics is not None:
            self._metrics.notifications.labels(kind=note.kind.value).inc()
        log.info(
            "notify %s %s of alert %s (%s %s) -> %s",
            note.kind.value,
            note.key,
            note.alert_id,
            note.record.risk.value,
            note.record.level.value,
            note.target,
        )
        self._chain((note.alert_id, note.target), lambda: self.deliver(note), note.notification_id)

    def _chain(
        self, chain: tuple[str, str], deliver: Callable[[], Awaitable[bool]], nid: str
    ) -> None:
        """Start a delivery after the one before it on the same chain (an alert's or a case's,
        to one target): a target hears of one alert or case in order."""
        task = asyncio.create_task(self._deliver_after(self._chains.get(chain), deliver, nid))
        self._chains[chain] = task
        self._deliveries.add(task)

        def done(t: asyncio.Task[bool]) -> None:
            self._deliveries.discard(t)
            if self._chains.get(chain) is t:
                del self._chains[chain]

        task.add_done_callback(done)

    async def _deliver_after(
        self, previous: asyncio.Task[bool] | None, deliver: Callable[[], Awaitable[bool]], nid: str
    ) -> bool:
        if previous is not None:
            await asyncio.wait({previous})  # in order; its outcome does not matter here
        try:
            return await deliver()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery of %s failed unexpectedly", nid)
            return False

    def secret_for(self, target: str) -> bytes:
        """The signing secret of ``target``: its own (``secret_file``), else derived."""
        own = self._target_secrets.get(target)
        return own if own is not None else target_secret(self._secret, target)

    async def deliver(self, note: Notification) -> bool:
        """Deliver one notification: attempts with backoff, each recorded. True if delivered."""
        ledger = {
            "notification_id": note.notification_id,
            "alert_id": note.alert_id,
            "revision": note.record.revision,
            "kind": note.kind.value,
            "key": note.key,
            "step": note.step,
            "level": note.record.level.value,
            "target": note.target,
        }
        return await self._post(
            ledger,
            lambda attempt, sent_at: webhook_body(note, attempt, sent_at),
            f"alert {note.alert_id} ({note.key})",
        )

    async def _post(
        self,
        ledger: Mapping[str, Any],
        body_for: Callable[[int, datetime], bytes],
        what: str,
    ) -> bool:
        """POST one notification to its target: signed attempts with backoff, each counted and
        recorded as a row of ``notification_attempts`` (``ledger``, the notification's columns
        of that row, plus the attempt's)."""
        target: str = ledger["target"]
        notification_id: str = ledger["notification_id"]
        http = self._open_http()
        assert self._requests is not None
        url = self._config.url(target)
        for attempt in range(1, self._max_attempts + 1):
            sent_at = self._clock()
            body = body_for(attempt, sent_at)
            stamp = int(sent_at.timestamp())
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                SIGNATURE_HEADER: sign(self.secret_for(target), stamp, body),
                TIMESTAMP_HEADER: str(stamp),
                "X-Puhui-Notification-Id": notification_id,
                "X-Puhui-Attempt": str(attempt),
            }
            status: int | None = None
            error: str | None = None
            wait_hint: float | None = None
            try:
                async with (
                    self._requests,
                    http.stream("POST", url, content=body, headers=headers) as response,
                ):
                    status = response.status_code
                    if not response.is_success:
                        error = f"HTTP {status} {response.reason_phrase}".strip()
                        wait_hint = _retry_after(response.headers.get("Retry-After"))
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:_ERROR_LIMIT]
            delivered = status is not None and 200 <= status < 300
            await self._record(ledger, attempt, sent_at, status, error, delivered)
            if delivered:
                return True
            if not retryable(status) or attempt == self._max_attempts:
                break
            await asyncio.sleep(
                backoff_delay(attempt, self._backoff, self._backoff_max, self._jitter(), wait_hint)
            )
        log.warning(
            "gave up notifying %s of %s after %d attempt(s): %s", target, what, attempt, error
        )
        if self._metrics is not None:
            self._metrics.given_up.labels(target=target).inc()
        return False

    async def _record(
        self,
        ledger: Mapping[str, Any],
        attempt: int,
        at: datetime,
        status: int | None,
        error: str | None,
        delivered: bool,
    ) -> None:
        nid = ledger["notification_id"]
        if self._metrics is not None:
            outcome = "delivered" if delivered else ("failed" if status is not None else "error")
            self._metrics.attempts.labels(target=ledger["target"], outcome=outcome).inc()
        row = {
            **ledger,
            "attempt": attempt,
            "at": at,
            "status_code": status,
            "error": error,
            "delivered": delivered,
        }
        try:
            await asyncio.to_thread(record_notification_attempts, self._engine, [row])
        except Exception:
            log.exception("cannot record attempt %d of %s", attempt, nid)
