"""ConsumerOffsets: an operator's skips of a stalled partition, asked for and carried out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.errors import InvalidInput
from domain.ingest import ConsumerOffsets, offsets_id

NOW = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def test_one_aggregate_per_group_and_topic() -> None:
    offsets = ConsumerOffsets(group="appstore-consumers", topic="appstore.sync-events")
    assert offsets.id == offsets_id("appstore-consumers", "appstore.sync-events")
    assert offsets.id != offsets_id("appstore-consumers", "other")


def test_a_skip_needs_a_reason_and_sane_numbers() -> None:
    offsets = ConsumerOffsets(group="g", topic="t")
    for partition, offset, reason in ((-1, 3, "r"), (0, -3, "r"), (0, 3, "  "), (0, 3, "x" * 501)):
        with pytest.raises(InvalidInput):
            offsets.request_skip(partition, offset, reason, "ops", NOW)
    assert not offsets.pending


def test_a_skip_is_pending_until_carried_out_and_counts_what_was_given_up() -> None:
    offsets = ConsumerOffsets(group="g", topic="t")
    offsets.request_skip(2, 40, "corrupt lz4 batch", "ops", NOW)
    offsets.request_skip(2, 45, "the batch ends at 45", "ops", NOW)  # a newer ask replaces it
    assert offsets.pending[2].to_offset == 45
    offsets.record_skip(2, 38, 40, "worker", NOW)  # an older target: still pending
    assert offsets.pending[2].to_offset == 45
    offsets.record_skip(2, 40, 45, "worker", NOW)
    assert not offsets.pending
    assert offsets.skipped == 2 + 5
    names = [type(e).__name__ for e in offsets.collect_events()]
    assert names == ["Opened", "SkipRequested", "SkipRequested", "Skipped", "Skipped"]
