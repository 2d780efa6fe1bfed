"""The service layer: one module per use-case area, one function per command.

Each command loads aggregates through the store port (`application.store.Store`), lets
them decide, and saves their new events in one transaction. Nothing here knows about
HTTP, Kafka or read models.
"""
