"""Settings: one object, read once from the environment (prefix APPSTORE_).

Sections group what one process tunes: `serve` (APPSTORE_SERVE_*), `projector`
(APPSTORE_PROJECTOR_*), `consumer` (APPSTORE_CONSUMER_*). README's settings table is made
from this class (`appstore settings`), and a test keeps the two equal.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumers import config as consumer


class ServeSettings(BaseSettings):
    """`appstore serve`: the API (and, embedded, the projections and the consumer)."""

    model_config = SettingsConfigDict(env_prefix="APPSTORE_SERVE_", extra="ignore")

    workers: int = Field(
        default=1,
        ge=1,
        description="API worker processes; each also runs the projections and the sweeper",
    )
    projections: bool = Field(
        default=True,
        description="false where separate `appstore project` processes build the read models",
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="larger request bodies are refused (413)"
    )
    body_timeout: float = Field(
        default=20.0, gt=0, description="seconds a client has to send a request body (else 408)"
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="seconds a client has to send a request's headers (else the connection "
        "is closed)",
    )
    keep_alive: int = Field(
        default=5, ge=1, description="seconds an idle keep-alive connection stays open"
    )
    dispatch: bool = Field(
        default=True,
        description="false where separate `appstore dispatch` processes send webhooks and e-mails",
    )


class ProjectorSettings(BaseSettings):
    """The projection runner, in `serve` or `appstore project`."""

    model_config = SettingsConfigDict(env_prefix="APPSTORE_PROJECTOR_", extra="ignore")

    batch_size: int = Field(default=1000, ge=1, description="events per projection transaction")
    replay_batch_size: int = Field(
        default=2000, ge=1, description="events per transaction when `replay` rebuilds"
    )
    replay_workers: int = Field(
        default=2,
        ge=1,
        description="processes `replay` rebuilds the read models in, each a share of them"
        " (PostgreSQL)",
    )
    poll_interval: float = Field(default=0.05, gt=0, description="seconds between idle polls")
    sweep_interval: float = Field(
        default=30.0, gt=0, description="seconds between expiry sweeps in `serve`"
    )


class ConsumerSettings(BaseSettings):
    """The Kafka consumer of sync events, in `serve` or `appstore consume`."""

    model_config = SettingsConfigDict(env_prefix="APPSTORE_CONSUMER_", extra="ignore")

    group_id: str = Field(default=consumer.GROUP_ID, description="Kafka consumer group")
    partitions: int = Field(
        default=consumer.PARTITIONS,
        ge=1,
        description="partitions of the topics it creates (≥ consumers)",
    )
    batch_size: int = Field(
        default=consumer.BATCH_SIZE, ge=1, description="messages per poll and transaction"
    )


class ReadySettings(BaseSettings):
    """When `/readyz` says not ready because a background loop falls behind."""

    model_config = SettingsConfigDict(env_prefix="APPSTORE_READY_", extra="ignore")

    max_lag: int = Field(
        default=1000,
        ge=0,
        description="events (projector) or messages (consumer) a background loop may lag "
        "behind; above it for `APPSTORE_READY_LAG_SECONDS`, /readyz answers 503 `lagging`",
    )
    lag_seconds: float = Field(
        default=30.0,
        ge=0,
        description="how long a lag above `APPSTORE_READY_MAX_LAG` may last before /readyz "
        "answers 503",
    )


class WebhookSettings(BaseSettings):
    """Webhook subscriptions and the dispatcher, in `serve` or `appstore dispatch`."""

    model_config = SettingsConfigDict(env_prefix="APPSTORE_WEBHOOKS_", extra="ignore")

    allow_loopback: bool = Field(
        default=False,
        description="true lets webhook URLs point at 127.0.0.1/localhost over http "
        "(development and tests)",
    )
    secret_key: str | None = Field(
        default=None,
        description="encrypts webhook signing secrets at rest; unset: derived from "
        "APPSTORE_SECRET_KEY, else a key file beside the SQLite database (or in ./var); "
        "every process must use the same one",
    )
    retry_hours: float = Field(
        default=24.0, gt=0, description="how long a delivery is retried before it fails"
    )
    first_retry: float = Field(
        default=5.0, gt=0, description="seconds before the first retry; doubles each time"
    )
    max_retry_interval: float = Field(
        default=3600.0, gt=0, description="longest wait between two attempts, in seconds"
    )
    timeout: float = Field(default=10.0, gt=0, description="seconds one POST (or e-mail) may take")
    concurrency: int = Field(default=8, ge=1, description="POSTs in flight per dispatcher")
    batch_size: int = Field(default=100, ge=1, description="deliveries claimed per round")
    poll_interval: float = Field(
        default=0.2, gt=0, description="seconds between idle dispatcher rounds"
    )


class Settings(BaseSettings):
    """Everything the processes read from the environment."""

    model_config = SettingsConfigDict(env_prefix="APPSTORE_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./var/appstore.db",
        description="event store and read models: `sqlite:///path.db` (embedded) or "
        "`postgresql://user:pw@host:5432/db`",
    )
    database_timeout: int = Field(
        default=2,
        ge=1,
        le=30,
        description="seconds a store call waits for a database connection or lock before "
        "the request fails with 503 (two attempts: a client hears within about twice this)",
    )
    ops_token: str | None = Field(default=None, description="bearer token for the ops routes")
    kafka_bootstrap_servers: str | None = Field(
        default=None, description="unset: no Kafka; set: `serve` also runs the consumer"
    )
    sync_events_topic: str = Field(
        default=consumer.TOPIC, description="topic of connector sync events"
    )
    host: str = Field(default="127.0.0.1", description="where `serve` listens (`--host`)")
    port: int = Field(default=8000, description="where `serve` listens (`--port`)")
    public_url: str | None = Field(
        default=None,
        description="the store's public base URL: the OAuth issuer and every absolute URL "
        "(never taken from the Host header); unset: http://{HOST}:{PORT}",
    )
    trusted_proxies: str | None = Field(
        default=None,
        description="comma-separated addresses (or *) of reverse proxies whose "
        "X-Forwarded-For/-Proto are believed; unset: none",
    )
    secret_key: str | None = Field(
        default=None,
        description="signs the pages' CSRF tokens; unset: a random key per process, so set it "
        "when several workers serve the pages",
    )
    smtp_url: str | None = Field(
        default=None,
        description="`smtp://user:pw@host:587?starttls=true` or `smtps://…`: expiry warnings "
        "are also e-mailed to the installation's contact address; unset: notifications only",
    )
    smtp_from: str = Field(
        default="App & Service Store <no-reply@appstore.invalid>",
        description="the From of those e-mails",
    )
    fast_password_hashing: bool = Field(
        default=False, description="cheap argon2 parameters: for tests and the demo only"
    )
    serve: ServeSettings = Field(default_factory=ServeSettings)

    @field_validator("public_url")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError("must be an absolute http(s) URL without a query")
        return value.strip().rstrip("/")

    def base_url(self) -> str:
        """The public base URL (APPSTORE_PUBLIC_URL, or where `serve` listens)."""
        return self.public_url or f"http://{self.host}:{self.port}"

    projector: ProjectorSettings = Field(default_factory=ProjectorSettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    ready: ReadySettings = Field(default_factory=ReadySettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)


SECTIONS: dict[str, type[BaseSettings]] = {
    "serve": ServeSettings,
    "projector": ProjectorSettings,
    "consumer": ConsumerSettings,
    "ready": ReadySettings,
    "webhooks": WebhookSettings,
}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()


def environment_variables() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every setting, in the order of the classes."""
    rows: list[tuple[str, str, str]] = []

    def add(prefix: str, fields: dict[str, FieldInfo]) -> None:
        for name, info in fields.items():
            if name in SECTIONS:
                continue
            default = info.get_default(call_default_factory=True)
            if default is None:
                shown = "unset"
            else:
                shown = str(default).lower() if isinstance(default, bool) else str(default)
            rows.append((f"{prefix}{name.upper()}", shown, info.description or ""))

    add("APPSTORE_", Settings.model_fields)
    for section in SECTIONS.values():
        add(str(section.model_config.get("env_prefix", "")), section.model_fields)
    return rows


def settings_table() -> str:
    """README's settings table (markdown)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for variable, default, meaning in environment_variables():
        shown = default if default == "unset" else f"`{default}`"
        lines.append(f"| `{variable}` | {shown} | {meaning} |")
    return "\n".join(lines)
