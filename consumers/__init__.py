"""Kafka consumers of connector sync events (worker), their message schema, and a producer helper."""
