"""Configuration, read from the environment once at the entrypoint (prefix ``PUHUI_``).

Nothing below reads ``os.environ`` itself: the CLI builds one :class:`Settings` and passes it down;
tests construct ``Settings(...)`` directly.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob the worker, the API and the CLI share. See the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="PUHUI_", extra="ignore", frozen=True)

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    kafka_controller_port: int = Field(
        9093, ge=1, le=65535, description="controller port of the local broker (puhui kafka)"
    )
    state_dir: Path = Field(Path("./var"), description="broker data, SQLite file, worker state")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<state_dir>/puhui.db"
    )
    zones_file: Path | None = Field(None, description="zone registry YAML; default the bundled one")
    http_port: int = Field(8080, ge=1, le=65535, description="HTTP API port")
    http_host: str = Field("127.0.0.1", description="HTTP API bind address")
    worker_port: int = Field(6066, ge=1, le=65535, description="worker web server (/metrics)")
    worker_host: str = Field("127.0.0.1", description="worker web server bind address")
    topic_partitions: int = Field(4, ge=1, le=1024, description="partitions of the public topics")
    hold_seconds: float = Field(
        300.0, gt=0, description="event-time seconds a condition must stay clear before resolve"
    )
    topic_prefix: str = Field("", description="prefix of every topic name (tests, shared brokers)")
    app_id: str = Field("puhui", description="Faust app id (consumer group)")
    db_batch_size: int = Field(500, ge=1, description="alert records written per transaction")
    db_batch_seconds: float = Field(0.5, gt=0, description="longest wait to fill a write batch")
    log_level: str = Field("INFO", description="log level")

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the state directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'puhui.db').resolve()}"
