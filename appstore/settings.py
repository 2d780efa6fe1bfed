"""Settings, read once from the environment (prefix APPSTORE_)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the processes read from the environment."""

    model_config = SettingsConfigDict(env_prefix="APPSTORE_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./var/appstore.db",
        description="sqlite:///path/to/file.db (embedded) or postgresql://user:pw@host:port/db",
    )
    ops_token: str | None = Field(default=None, description="bearer token for the ops routes")
    kafka_bootstrap_servers: str | None = Field(
        default=None, description="unset: no Kafka; set: serve also runs the consumer"
    )
    sync_events_topic: str = "appstore.sync-events"
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str | None = Field(
        default=None,
        description="signs the pages' CSRF tokens; unset: a random key per process, so set it "
        "when several workers serve the pages",
    )
    # Fast argon2 parameters, for tests and the demo only.
    fast_password_hashing: bool = False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
