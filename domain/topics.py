"""Stored topics of classes that moved: events keep the topic they were stored with.

eventsourcing stores each event's class path ("module:Class.Event") and each aggregate's
("originator_topic"); a database written by an earlier release names the old places.
Registering an aggregate's old path also resolves its nested event classes.
"""

from __future__ import annotations

from eventsourcing.utils import register_topic

from domain.claims import EmailClaim, InstallationSlot, SlugClaim, SyncEventReceipt
from domain.installation_snapshot import InstallationSnapshot

# old topic -> the class now (release 7555afe kept claims beside their aggregates)
MOVED: dict[str, type] = {
    "domain.account:EmailClaim": EmailClaim,
    "domain.app_listing:SlugClaim": SlugClaim,
    "domain.installation:InstallationSlot": InstallationSlot,
    "domain.installation:SyncEventReceipt": SyncEventReceipt,
    # moved when expiry warnings came (snapshots stored before name the old place)
    "domain.installation:InstallationSnapshot": InstallationSnapshot,
}


def register_moved_topics() -> None:
    """Lets old topics resolve to the moved classes (idempotent)."""
    for topic, cls in MOVED.items():
        register_topic(topic, cls)
