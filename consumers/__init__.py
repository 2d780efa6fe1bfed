"""Kafka consumers of connector sync events, the DLQ, and a producer helper for connectors."""
