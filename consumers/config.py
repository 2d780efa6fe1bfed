"""How the sync-event worker talks to Kafka: its configuration and the topics it needs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

log = logging.getLogger("appstore.consumer")

# The store's aggregate cache for the consumer: off. The worker keeps its own copies of the
# installations it writes (application/kafka_ingest.py); the store's cache would pickle each
# of them again on every save (bench/ingest: 4.6k msg/s with a 5,000 cache, 7.3k without).
AGGREGATE_CACHE = 0
# The defaults of `appstore consume` (its settings take them from here).
TOPIC = "appstore.sync-events"
GROUP_ID = "appstore-consumers"
PARTITIONS = 6  # created topics get this many; run at most this many workers
BATCH_SIZE = 500
# Short, so a worker started while the broker is down still stops promptly on SIGTERM.
BOOTSTRAP_TIMEOUT_MS = 5_000
# Topics it creates accept records well above the 1 MiB a report may have, so an oversized
# report reaches the DLQ with a reason instead of being refused to its connector.
TOPIC_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class WorkerConfig:
    """How the worker talks to Kafka (appstore.bootstrap.worker_config builds it)."""

    bootstrap_servers: str
    topic: str = TOPIC
    group_id: str = GROUP_ID
    partitions: int = PARTITIONS
    replication_factor: int = -1  # -1: the broker's default.replication.factor
    batch_size: int = BATCH_SIZE
    poll_timeout_ms: int = 500
    max_backoff_s: float = 10.0
    client_id: str = "appstore-consumer"
    session_timeout_ms: int = 10_000  # a killed worker's partitions move on after this
    stall_retry_s: float = 60.0  # a stalled partition is fetched again this often
    skip_check_s: float = 2.0  # how often operator skips are looked for in the store
    lag_interval_s: float = 5.0  # how often end offsets are read for the lag

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"


def ensure_topics(config: WorkerConfig) -> None:
    """Creates the topic and its DLQ if they are missing (idempotent)."""
    admin = KafkaAdminClient(
        bootstrap_servers=config.bootstrap_servers,
        client_id=f"{config.client_id}-admin",
        request_timeout_ms=15_000,
        bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
    )
    try:
        existing = set(admin.list_topics())
        for topic in (config.topic, config.dlq_topic):
            if topic in existing:
                continue
            try:
                admin.create_topics(
                    {
                        topic: {
                            "num_partitions": config.partitions,
                            "replication_factor": config.replication_factor,
                            "configs": {"max.message.bytes": str(TOPIC_MAX_MESSAGE_BYTES)},
                        }
                    },
                    timeout_ms=15_000,
                    wait_for_metadata=True,
                )
                log.info("created topic %s (%d partitions)", topic, config.partitions)
            except TopicAlreadyExistsError:
                pass  # another worker won the race
    finally:
        admin.close()
