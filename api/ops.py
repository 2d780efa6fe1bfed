"""Liveness, readiness (store reachable, projection lag), metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.routing import Call, Endpoint

# Readiness fails when a projection is further behind than this many events.
MAX_READY_LAG = 10_000


class Health(BaseModel):
    status: str


class ProjectionState(BaseModel):
    position: int
    lag: int


class Readiness(BaseModel):
    status: str
    head: int
    projections: dict[str, ProjectionState]
    # The in-process Kafka consumer (serve with APPSTORE_KAFKA_BOOTSTRAP_SERVERS): its status,
    # lag per partition and stalled partitions (consumers.health.ConsumerHealth.snapshot).
    consumer: dict[str, Any] | None = None


async def healthz(call: Call) -> Health:
    """The process is up."""
    return Health(status="ok")


async def readyz(call: Call) -> Any:
    """The store is reachable; each projection's position and lag behind the log head; the
    in-process Kafka consumer (if any) runs, lags little and has no stalled partition."""
    projector = call.state.projector
    consumer_health = call.state.consumer_health

    def check() -> dict[str, Any]:
        head = projector.head()
        positions = projector.positions()
        return {
            "head": head,
            "projections": {
                n: {"position": p, "lag": max(0, head - p)} for n, p in positions.items()
            },
        }

    try:
        state = await call.run(check)
    except Exception as error:  # the database is unreachable: not ready
        return JSONResponse({"status": "unavailable", "detail": str(error)[:200]}, status_code=503)
    worst = max((p["lag"] for p in state["projections"].values()), default=0)
    status = "ok" if worst <= MAX_READY_LAG else "lagging"
    if consumer_health is not None:
        state["consumer"] = consumer_health.snapshot()
        if status == "ok" and not state["consumer"]["ready"]:
            status = f"consumer_{state['consumer']['status']}"  # e.g. consumer_stalled
    body = Readiness.model_validate({"status": status, **state}).model_dump(mode="json")
    return JSONResponse(body, status_code=200 if status == "ok" else 503)


async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


endpoints = [
    Endpoint("GET", "/healthz", healthz, "Liveness", "ops", response=Health),
    Endpoint("GET", "/readyz", readyz, "Readiness and projection lag", "ops",
             response=Readiness),
]  # fmt: skip

plain_routes = [
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
]
