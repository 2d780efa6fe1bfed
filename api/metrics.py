"""Prometheus metrics: request counts and latency per route, log head and projection lag, and
the in-process Kafka consumer's lag and stalls when `serve` runs one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from application.loops import Loops
from projections.runner import Projector


class _ProjectionCollector(Collector):
    """Reads the log head and the tracking positions at scrape time."""

    def __init__(self, projector: Projector) -> None:
        self.projector = projector

    def collect(self) -> Iterator[Any]:
        try:
            head = self.projector.head()
            positions = self.projector.positions()
        except Exception:  # a scrape must not fail because the database is down
            return
        yield GaugeMetricFamily(
            "appstore_events_appended", "events appended to the log (its head position)", head
        )
        lag = GaugeMetricFamily(
            "appstore_projection_lag_events", "events not yet applied", labels=["projection"]
        )
        position = GaugeMetricFamily(
            "appstore_projection_position", "tracking position", labels=["projection"]
        )
        for name, pos in positions.items():
            lag.add_metric([name], max(0, head - pos))
            position.add_metric([name], pos)
        yield lag
        yield position


class LoopCollector(Collector):
    """Every background loop's health (application/loops.py) as gauges, read at scrape time
    (the API's /metrics, and the health server of the other processes)."""

    def __init__(self, loops: Loops) -> None:
        self.loops = loops

    def collect(self) -> Iterator[Any]:
        labels = ["loop"]
        up = GaugeMetricFamily("appstore_loop_up", "1 while the loop runs", labels=labels)
        ready = GaugeMetricFamily(
            "appstore_loop_ready", "1 when the loop is ready (/readyz)", labels=labels
        )
        failures = GaugeMetricFamily(
            "appstore_loop_consecutive_failures", "failed attempts in a row", labels=labels
        )
        lag = GaugeMetricFamily("appstore_loop_lag", "how far behind the loop is", labels=labels)
        age = GaugeMetricFamily(
            "appstore_loop_last_success_age_seconds",
            "seconds since the loop's last successful step",
            labels=labels,
        )
        for name, state in self.loops.snapshot().items():
            up.add_metric([name], 1 if state["alive"] else 0)
            ready.add_metric([name], 1 if state["ready"] else 0)
            failures.add_metric([name], state["consecutive_failures"])
            if state["lag"] is not None:
                lag.add_metric([name], state["lag"])
            if state["last_success_age_s"] is not None:
                age.add_metric([name], state["last_success_age_s"])
        yield from (up, ready, failures, lag, age)


class Metrics:
    """One registry per app (so tests can build many apps)."""

    def __init__(
        self, projector: Projector, consumer_health: Any = None, loops: Loops | None = None
    ) -> None:
        """`consumer_health`: an in-process Kafka consumer's state, whose metrics join ours;
        `loops`: the process's background loops."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "appstore_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "appstore_http_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.registry.register(_ProjectionCollector(projector))
        if loops is not None:
            self.registry.register(LoopCollector(loops))
        if consumer_health is not None:
            self.registry.register(consumer_health.collector())
            self.registry.register(consumer_health.counters())

    def observe(self, method: str, route: str, status: int, started: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(time.perf_counter() - started)


class MetricsMiddleware:
    """Counts every request by route template and status, and times it (pure ASGI)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: dict[Any, str] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = self._template(scope)
            self.metrics.observe(scope["method"], route, status, started)

    def _template(self, scope: Any) -> str:
        """The matched route's path template (e.g. /v1/apps/{id}), not the raw path."""
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return "unmatched"
        template = self._templates.get(endpoint)
        if template is None:
            router = scope.get("router")
            for route in getattr(router, "routes", []):
                if getattr(route, "endpoint", None) is endpoint:
                    template = str(getattr(route, "path", "unmatched"))
                    break
            self._templates[endpoint] = template or "unmatched"
        return self._templates[endpoint]
