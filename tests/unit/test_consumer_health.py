"""ConsumerHealth: what /readyz says about the consumer, from the states its worker reports."""

from __future__ import annotations

import time

from kafka.structs import TopicPartition

from consumers.health import STALL_UNDECODABLE, ConsumerHealth, Stall


def _stall(offset: int = 7) -> Stall:
    return Stall("t", 0, offset, 10, STALL_UNDECODABLE, "UnsupportedCodecError: x", time.time())


def test_ready_only_while_running_unstalled_connected_and_caught_up() -> None:
    health = ConsumerHealth(max_ready_lag=100, failing_grace_s=0.05)
    assert health.snapshot()["status"] == "stopped"
    health.started("t", "g")
    health.assigned([TopicPartition("t", 0), TopicPartition("t", 1)])
    health.committed({TopicPartition("t", 0): 5, TopicPartition("t", 1): 0})
    health.ends({TopicPartition("t", 0): 5, TopicPartition("t", 1): 101})
    state = health.snapshot()
    assert (state["status"], state["ready"]) == ("lagging", False)
    assert state["partitions"]["t-1"]["lag"] == 101
    health.committed({TopicPartition("t", 1): 1})
    assert health.snapshot()["status"] == "ok"

    health.failed(ConnectionError("no broker"))
    assert health.snapshot()["status"] == "ok"  # a blip is not an outage
    time.sleep(0.1)
    assert health.snapshot()["status"] == "failing"
    assert "no broker" in health.snapshot()["last_error"]
    health.worked()
    assert health.snapshot()["status"] == "ok"

    assert health.stall(_stall())
    assert not health.stall(_stall())  # the same stall again is no news (no second log line)
    assert health.stall(_stall(offset=8))
    state = health.snapshot()
    assert (state["status"], state["stalled"]) == ("stalled", ["t-0"])
    assert state["partitions"]["t-0"]["stalled"]["skip_command"].startswith(
        "appstore consume --skip-to 0:10 --reason"
    )
    health.assigned([TopicPartition("t", 1)])  # revoked: its new owner reports it
    assert health.snapshot()["status"] == "ok" and "t-0" not in health.snapshot()["partitions"]
    health.stopped()
    assert health.snapshot()["status"] == "stopped"
