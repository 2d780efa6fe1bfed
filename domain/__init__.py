"""The store's domain: aggregates, their events, the commands on them and domain errors.

Nothing here knows about HTTP, Kafka or SQL; the `eventsourcing` library persists the events.
"""
