"""The snapshot of an Installation as plain JSON values (enums and incidents included).

Stored snapshots name this class by the topic `domain.installation:InstallationSnapshot`
(where it lived before): domain/topics.py registers it.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Snapshot

from domain.incident import Incident
from domain.values import Duration, IncidentStatus, InstallationStatus


class InstallationSnapshot(Snapshot):
    """A snapshot of an Installation as plain JSON values (enums and incidents included).

    Installations of busy connectors collect thousands of incident events; snapshots keep
    loading one cheap. The JSON transcoder would turn enums into bare strings and cannot
    key objects by UUID, so state is flattened here and rebuilt on load.
    """

    @classmethod
    def take(cls, aggregate: Any) -> InstallationSnapshot:
        taken = super().take(aggregate)
        state = dict(taken.state)
        state["status"] = str(state["status"].value)
        state["duration"] = str(state["duration"].value)
        # A shallow copy of each incident's fields (their order and values are asdict's):
        # asdict copies each of the up to 100 object ids one by one, ~120 µs an incident,
        # and a busy installation is snapshotted every 100 events.
        state["incidents"] = [
            {
                **vars(incident),
                "object_ids": list(incident.object_ids),
                "status": incident.status.value,
            }
            for incident in state["incidents"].values()
        ]
        return cls(
            originator_id=taken.originator_id,
            originator_version=taken.originator_version,
            timestamp=taken.timestamp,
            topic=taken.topic,
            state=state,
        )

    def mutate(self, _: None) -> Any:
        aggregate = super().mutate(_)
        state = aggregate.__dict__
        state["status"] = InstallationStatus(state["status"])
        state["duration"] = Duration(state["duration"])
        incidents = [
            Incident(**{**item, "status": IncidentStatus(item["status"])})
            for item in state["incidents"]
        ]
        state["incidents"] = {incident.id: incident for incident in incidents}
        return aggregate
