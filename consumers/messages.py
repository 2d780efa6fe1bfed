"""The sync-event message connectors publish (Kafka value, or the HTTP body), and its parsing.

Wire format (JSON, UTF-8), key = the installation id::

    {"event_id": "run-42-orders", "installation_id": "<uuid>", "app_id": "<uuid>",
     "kind": "failure", "area": "orders", "error_code": "SKU_NOT_FOUND",
     "message": "3 orders reference unknown SKUs", "object_ids": ["o-1", "o-2"],
     "occurred_at": "2026-11-25T20:00:00Z"}

Unknown fields are ignored, so connectors may send newer fields to an older store. A
success may carry `"error_code": null` or leave it out. `occurred_at` may use any UTC offset
(`Z`, `+02:00`, `-05:30`); it is stored in UTC. The key may be null: the installation id in
the value decides where a report applies. A value may be up to 1 MiB (`MAX_VALUE_BYTES`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from domain.store import SyncEvent

# Short machine codes in the DLQ `reason` header; operators filter and alert on them.
REASON_INVALID_JSON = "invalid_json"
REASON_SCHEMA = "schema_violation"
REASON_UNKNOWN_INSTALLATION = "unknown_installation"
REASON_CANCELLED = "installation_cancelled"
REASON_NOT_ACTIVE = "installation_not_active"
REASON_REJECTED = "rejected"
REASON_PROCESSING_ERROR = "processing_error"
REASON_TOO_LARGE = "value_too_large"

# The largest value read (uncompressed). Kafka's own default message limit is about 1 MB.
MAX_VALUE_BYTES = 1024 * 1024

# A connector may report many affected objects; the domain keeps the newest 100 anyway.
MAX_OBJECT_IDS = 10_000


class SyncEventMessage(BaseModel):
    """One connector sync result, as published to `appstore.sync-events`."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)

    event_id: str = Field(min_length=1, max_length=200, description="unique per installation")
    installation_id: UUID
    app_id: UUID | None = Field(default=None, description="checked against the installation")
    kind: Literal["failure", "success"]
    area: str = Field(min_length=1, max_length=64, description="orders, inventory, …")
    error_code: str | None = Field(
        default=None,
        max_length=120,
        description="required for a failure; null or absent is fine for a success",
    )
    message: str = Field(default="", max_length=20_000)
    object_ids: list[str] = Field(default_factory=list, max_length=MAX_OBJECT_IDS)
    occurred_at: AwareDatetime

    @field_validator("occurred_at", mode="after")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _failure_has_error_code(self) -> SyncEventMessage:
        if self.kind == "failure" and not self.error_code:
            raise ValueError("error_code is required when kind is 'failure'")
        return self

    def to_sync_event(self) -> SyncEvent:
        """The domain's view of this message."""
        return SyncEvent(
            event_id=self.event_id,
            installation_id=self.installation_id,
            kind=self.kind,
            area=self.area,
            occurred_at=self.occurred_at,
            error_code=self.error_code or "",
            message=self.message,
            object_ids=list(self.object_ids),
            app_id=self.app_id,
        )

    def to_json_bytes(self) -> bytes:
        """The wire form (what the producer helper sends)."""
        return self.model_dump_json().encode()


class PoisonMessage(Exception):
    """A message that can never be applied; it belongs in the DLQ with this reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_message(value: bytes | None) -> SyncEventMessage:
    """Validates a Kafka record value; raises PoisonMessage with a DLQ reason if it is bad."""
    if value is None:
        raise PoisonMessage(REASON_INVALID_JSON, "empty record value (tombstone)")
    if len(value) > MAX_VALUE_BYTES:
        raise PoisonMessage(
            REASON_TOO_LARGE, f"{len(value)} bytes; at most {MAX_VALUE_BYTES} are read"
        )
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, ValueError) as error:
        raise PoisonMessage(REASON_INVALID_JSON, str(error)[:500]) from None
    if not isinstance(data, dict):
        raise PoisonMessage(REASON_SCHEMA, f"expected a JSON object, got {type(data).__name__}")
    try:
        return SyncEventMessage.model_validate(data)
    except ValidationError as error:
        raise PoisonMessage(REASON_SCHEMA, _describe(error)) from None


def _describe(error: ValidationError) -> str:
    """`field: problem; field: problem` — short enough for a Kafka header."""
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "message"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)[:500]
