"""Configuration, read from the environment once at the entrypoint (prefix ``PUHUI_``).

Nothing below reads ``os.environ`` itself: the CLI builds one :class:`Settings` and passes it down;
tests construct ``Settings(...)`` directly.

The settings come in groups (:class:`KafkaSettings`, :class:`HttpSettings`,
:class:`WebhookSettings`, :class:`CapSettings`, …), each a class of its own that
:class:`Settings` combines: access stays flat (``settings.kafka_bootstrap``) and the variables
keep their ``PUHUI_*`` names. A new setting goes into the group it belongs to (and into the
README's configuration table, which ``tests/adapters/test_readme.py`` checks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_CONFIG = SettingsConfigDict(env_prefix="PUHUI_", extra="ignore", frozen=True)


class _Group(BaseSettings):
    model_config = _CONFIG


class KafkaSettings(_Group):
    """Kafka: the broker, the clients' security, the topics and the worker's consumer group."""

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    kafka_controller_port: int = Field(
        9093, ge=1, le=65535, description="controller port of the local broker (puhui kafka)"
    )
    kafka_security_protocol: Literal["SASL_SSL", "PLAINTEXT"] | None = Field(
        None,
        description="SASL_SSL or PLAINTEXT (plaintext only when set so); unset = SASL_SSL, or "
        "what the local broker under the state dir was started with",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism of the Kafka clients"
    )
    kafka_username: str | None = Field(
        None,
        description="Kafka principal; unset = the component's own principal of the local broker",
    )
    kafka_password: SecretStr | None = Field(None, description="the Kafka principal's password")
    kafka_password_file: Path | None = Field(
        None, description="file holding the Kafka password (instead of PUHUI_KAFKA_PASSWORD)"
    )
    kafka_ca_file: Path | None = Field(
        None, description="PEM CA certificate(s) the clients trust for the broker's TLS"
    )
    topic_partitions: int = Field(4, ge=1, le=1024, description="partitions of the public topics")
    topic_prefix: str = Field("", description="prefix of every topic name (tests, shared brokers)")
    app_id: str = Field("puhui", description="Faust app id (consumer group)")
    broker_session_timeout_seconds: float = Field(
        20.0,
        gt=0,
        description="consumer-group session timeout: how soon a dead worker's "
        "partitions move to another (Kafka's default 45–60 s)",
    )
    broker_heartbeat_seconds: float = Field(
        3.0, gt=0, description="consumer-group heartbeat interval (well under the timeout)"
    )


class StorageSettings(_Group):
    """Where state lives: the state directory, the database, write batches, retention."""

    state_dir: Path = Field(Path("./var"), description="broker data, SQLite file, worker state")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<state_dir>/puhui.db"
    )
    db_batch_size: int = Field(500, ge=1, description="alert records written per transaction")
    db_batch_seconds: float = Field(0.5, gt=0, description="longest wait to fill a write batch")
    report_retention_days: float = Field(
        180,
        gt=0,
        description="days a volunteer's name, words, location and photos are kept; then "
        "erased (category, zone and times stay for statistics; photo files are deleted)",
    )
    retention_interval_seconds: float = Field(
        3600.0, gt=0, description="how often the API's retention job runs"
    )
    photo_dir: Path | None = Field(
        None, description="where uploaded photos are kept (files); default <state_dir>/photos"
    )
    series_retention_days: float = Field(
        35,
        gt=0,
        description="days of per-minute zone figures (zone_series: the console's charts, the "
        "daily report) kept; the worker prunes older minutes hourly",
    )

    def resolved_photo_dir(self) -> Path:
        """Where photo files live, defaulting to ``photos`` inside the state directory."""
        return self.photo_dir if self.photo_dir is not None else self.state_dir / "photos"

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the state directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'puhui.db').resolve()}"


class RulesSettings(_Group):
    """What the worker decides with: the zone registry, the risk rules and their limits."""

    zones_file: Path | None = Field(None, description="zone registry YAML; default the bundled one")
    units_file: Path | None = Field(
        None, description="units cases are dispatched to (YAML); default models/data/units.yaml"
    )
    case_limits_file: Path | None = Field(
        None,
        description="case step time limits (YAML); default alerts/data/case_limits.yaml",
    )
    rules_file: Path | None = Field(
        None, description="risk rules YAML; default the bundled alerts/data/rules.yaml"
    )
    hold_seconds: float | None = Field(
        None, gt=0, description="overrides the rules' hold time (event-time seconds) everywhere"
    )
    max_sensors_per_zone: int = Field(
        256,
        ge=1,
        description="distinct sensor ids a zone tracks; a reading from one more is dead-lettered "
        "as too_many_sensors",
    )


class WorkerSettings(_Group):
    """The worker process: its web server (metrics), status writes, its stop deadline."""

    worker_port: int = Field(
        6066,
        ge=1,
        le=65535,
        description="worker web server (/metrics, /healthz and the `/` status only; Faust's "
        "table and router pages are off)",
    )
    worker_host: str = Field(
        "127.0.0.1",
        description="worker web server bind address (the address it really listens on)",
    )
    status_interval_seconds: float = Field(
        5.0, gt=0, description="how often the worker writes zone figures to the zone_status table"
    )
    case_check_seconds: float = Field(
        5.0, gt=0, le=300, description="how often the worker looks for overdue case steps"
    )
    stop_timeout_seconds: float = Field(
        15.0,
        gt=0,
        description="longest a worker takes to stop (SIGTERM/SIGINT); past it, it exits without "
        "committing what was not persisted (replayed on the next start)",
    )
    reading_batch_size: int = Field(
        500,
        ge=1,
        description="most sensor readings the worker handles as one batch (1 = one at a time)",
    )
    reading_batch_seconds: float = Field(
        0.01,
        gt=0,
        description="longest the worker waits to fill a batch of readings",
    )


class HttpSettings(_Group):
    """The HTTP API (control room and volunteers): address, limits, streams, probes."""

    http_port: int = Field(8080, ge=1, le=65535, description="HTTP API port")
    http_host: str = Field("127.0.0.1", description="HTTP API bind address")
    feed_silent_seconds: float = Field(
        120.0,
        gt=0,
        description="the console warns when no reading has come in for this long (wall clock)",
    )
    max_body_bytes: int = Field(
        64 * 1024, ge=1, description="largest request body the API accepts (bytes); larger: 413"
    )
    photo_max_bytes: int = Field(
        12 * 1024 * 1024,
        ge=1024,
        description="largest photo file `POST /api/photos` takes (bytes); larger: 413",
    )
    photo_max_pixels: int = Field(
        50_000_000,
        ge=10_000,
        description="most pixels (width × height) a photo may have; more (a decompression "
        "bomb): 422 before it is decoded",
    )
    photo_max_edge: int = Field(
        2048, ge=320, le=8192, description="long edge (pixels) a stored photo is scaled down to"
    )
    report_rate_burst: int = Field(
        5, ge=1, description="reports a volunteer may submit in a burst (token-bucket size)"
    )
    report_rate_per_minute: float = Field(
        6.0, gt=0, description="sustained reports per minute per volunteer (bucket refill rate)"
    )
    publish_timeout_seconds: float = Field(
        10.0, gt=0, description="longest wait for the broker to take a record the API produces"
    )
    sse_keepalive_seconds: float = Field(
        15.0, gt=0, description="seconds between keep-alive comments on the alert stream"
    )
    sse_max_seconds: float = Field(
        3600.0, gt=0, description="an alert stream ends after this long; the console reconnects"
    )
    stream_recheck_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="how often an open alert stream re-checks its token (revoked or expired: "
        "the stream ends)",
    )
    auth_failure_limit: int = Field(
        20, ge=1, description="401s from one address within the window before it is answered 429"
    )
    auth_failure_window_seconds: float = Field(
        60.0, gt=0, description="the window of PUHUI_AUTH_FAILURE_LIMIT (seconds)"
    )
    ready_cache_seconds: float = Field(
        1.5, ge=0, le=30, description="how long /readyz reuses its last result (0 = never)"
    )


class CapSettings(_Group):
    """The CAP 1.2 export: who the alerts say they come from."""

    cap_sender: str = Field(
        "puhui.dapuqiao.huangpu.shanghai",
        pattern=r"^[^\s,<&]+$",
        description="CAP <sender>: a globally unique id of the originator (no spaces or commas)",
    )
    cap_sender_code: str = Field(
        "31010100000000",
        pattern=r"^\d{14}$",
        description="GB/T 35965.1 issuing-unit code ZZZZZZDDDUUUXX (310101 = 黄浦区)",
    )
    cap_sender_name: str = Field(
        "上海市黄浦区打浦桥街道 浦汇", description="CAP <senderName>: the issuer's human name"
    )


class WebhookSettings(_Group):
    """Notifications (notifier/): escalation policy, webhook delivery, where it runs."""

    escalation_file: Path | None = Field(
        None, description="escalation policy YAML; default the bundled alerts/data/escalation.yaml"
    )
    webhook_secret: SecretStr | None = Field(
        None,
        min_length=16,
        description="master secret the targets' signing secrets are derived from (unless a "
        "target has its own secret_file); unset = the notifier does not run",
    )
    webhook_timeout_seconds: float = Field(
        5.0, gt=0, le=120, description="longest wait for a webhook receiver to answer one attempt"
    )
    webhook_max_attempts: int = Field(
        6, ge=1, le=20, description="attempts per notification before it is given up (recorded)"
    )
    webhook_backoff_seconds: float = Field(
        1.0, gt=0, description="wait after the first failed attempt; doubles each time, jittered"
    )
    webhook_backoff_max_seconds: float = Field(
        60.0, gt=0, description="longest wait between two attempts (also caps Retry-After)"
    )
    notify_tick_seconds: float = Field(
        1.0, gt=0, le=60, description="how often the notifier checks what is due (wall clock)"
    )
    notify_group: str | None = Field(
        None, description="Kafka consumer group of the notifier; default <app_id>-notifier"
    )
    notifier_in_api: bool = Field(
        True,
        description="run the notifier inside `puhui api` (one machine); false where a separate "
        "`puhui notifier` runs",
    )
    notifier_port: int = Field(9467, ge=1, le=65535, description="`puhui notifier`'s /metrics port")
    notifier_host: str = Field("127.0.0.1", description="`puhui notifier`'s /metrics bind address")


class LogSettings(_Group):
    """Logging: the level and the line format (text or JSON)."""

    log_level: str = Field("INFO", description="log level")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="log lines: text, or json (one object per line with ts, level, logger, msg "
        "and the zone/alert/reading ids the record concerns)",
    )


class Settings(
    KafkaSettings,
    StorageSettings,
    RulesSettings,
    WorkerSettings,
    HttpSettings,
    CapSettings,
    WebhookSettings,
    LogSettings,
):
    """Every knob the worker, the API, the notifier and the CLI share, by group. See the
    README's configuration table."""

    model_config = _CONFIG
