"""A small publisher for connector developers: report each sync run to the App & Service Store.

Usage::

    from consumers.producer import SyncEventPublisher

    with SyncEventPublisher("kafka-1:9092") as store:
        # A sync of orders failed: the seller sees an incident in "My apps and incidents".
        store.publish_failure(
            installation_id, area="orders", error_code="SKU_NOT_FOUND",
            message="3 orders reference unknown SKUs", object_ids=["o-1", "o-2", "o-3"],
        )
        # The next orders sync worked: the open orders incidents are resolved.
        store.publish_success(installation_id, area="orders")

Rules the store relies on:

- The record key is the installation id, so one installation's reports stay in order.
- `event_id` identifies one report: sending it again (a retry) has no second effect. Pass
  your own stable id (e.g. your sync run id + area) so retries after a crash dedupe too;
  by default a random one is made.
- Repeated failures of the same area + error code group into one incident (its count
  grows) until a success of that area resolves it.
- `publish_*` returns a future; call `flush()` (or leave the `with` block) before you
  consider the reports delivered. Sends use acks=all and retries.
- Reports for unknown or cancelled installations, or that break the schema, land in
  `<topic>.dlq` with a `reason` header instead of the store.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal
from uuid import UUID

from kafka.producer import KafkaProducer
from kafka.producer.future import FutureRecordMetadata

from application.sync_events import SyncEventMessage
from consumers.config import TOPIC


class SyncEventPublisher:
    """Publishes connector sync results to the store's Kafka topic."""

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        *,
        topic: str = TOPIC,
        app_id: UUID | None = None,
        **producer_config: Any,
    ) -> None:
        """`app_id`, if given, goes into every report (the store checks it matches).

        Extra keyword arguments go to kafka-python's KafkaProducer (e.g. security settings).
        """
        config: dict[str, Any] = {
            "acks": "all",
            "linger_ms": 5,
            # kafka-python 3 defaults to an idempotent producer: retries keep order per key.
            "request_timeout_ms": 15_000,
            "max_block_ms": 30_000,
        }
        config.update(producer_config)
        self.topic = topic
        self.app_id = app_id
        self._producer = KafkaProducer(bootstrap_servers=bootstrap_servers, **config)

    def publish_failure(
        self,
        installation_id: UUID | str,
        *,
        area: str,
        error_code: str,
        message: str = "",
        object_ids: list[str] | None = None,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> FutureRecordMetadata:
        """Reports a failed sync of `area` (raises or groups into an incident)."""
        return self._publish(
            "failure", installation_id, area, error_code, message, object_ids, event_id, occurred_at
        )

    def publish_success(
        self,
        installation_id: UUID | str,
        *,
        area: str,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> FutureRecordMetadata:
        """Reports a successful sync of `area` (resolves its open incidents)."""
        return self._publish("success", installation_id, area, "", "", None, event_id, occurred_at)

    def _publish(
        self,
        kind: Literal["failure", "success"],
        installation_id: UUID | str,
        area: str,
        error_code: str,
        message: str,
        object_ids: list[str] | None,
        event_id: str | None,
        occurred_at: datetime | None,
    ) -> FutureRecordMetadata:
        report = SyncEventMessage(
            event_id=event_id or uuid.uuid4().hex,
            installation_id=UUID(str(installation_id)),
            app_id=self.app_id,
            kind=kind,
            area=area,
            error_code=error_code,
            message=message,
            object_ids=object_ids or [],
            occurred_at=occurred_at or datetime.now(UTC),
        )
        future: FutureRecordMetadata = self._producer.send(
            self.topic, key=str(report.installation_id).encode(), value=report.to_json_bytes()
        )
        return future

    def flush(self, timeout: float | None = None) -> None:
        """Blocks until every report sent so far is acknowledged by the broker."""
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flushes and closes the connection."""
        self._producer.close(timeout=timeout)

    def __enter__(self) -> SyncEventPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
