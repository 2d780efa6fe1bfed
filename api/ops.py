"""Liveness, readiness (store reachable, projection lag), metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.routing import Call, Endpoint
from application.availability import unavailable_reason

# /readyz answers within a second whatever the store does: a probe of the database (only
# made when no projector runs in this process) gets this long, on threads of its own.
PROBE_TIMEOUT_S = 0.8
_probes = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz")


class Health(BaseModel):
    status: str


class ProjectionState(BaseModel):
    position: int
    lag: int


class LoopState(BaseModel):
    """A background loop as application.loops.LoopHealth reports it."""

    status: str
    ready: bool
    alive: bool
    consecutive_failures: int
    last_error: str | None = None
    last_success_age_s: float | None = None
    failing_for_s: float | None = None
    lag: int | None = None
    lag_above_for_s: float | None = None
    detail: str | None = None


class Readiness(BaseModel):
    status: str
    head: int | None = None
    projections: dict[str, ProjectionState] = {}
    # Seconds since the projector of this process measured head and positions.
    measured_age_s: float | None = None
    # Every background loop of this process (projector, sweeper, consumer): not ready when
    # one is stopped, failing, stalled or lagging (application/loops.py).
    loops: dict[str, LoopState] = {}
    # The in-process Kafka consumer (serve with APPSTORE_KAFKA_BOOTSTRAP_SERVERS): its status,
    # lag per partition and stalled partitions (consumers.health.ConsumerHealth.snapshot).
    consumer: dict[str, Any] | None = None
    detail: str | None = None


async def healthz(call: Call) -> Health:
    """The process is up."""
    return Health(status="ok")


async def readyz(call: Call) -> Any:
    """Ready when every background loop runs and keeps up, and the store answers.

    Probes the database for at most PROBE_TIMEOUT_S (none while the projector of this
    process already reports it failing: its last measurement is shown). Answers within 1 s
    whatever the store does.
    """
    state = call.state
    loops = state.loops.snapshot()
    body: dict[str, Any] = {"status": "ok", "loops": loops}
    projector_loop = loops.get("projector")
    measured = state.projector.measured
    if projector_loop is None or projector_loop["ready"]:
        probe = asyncio.get_running_loop().run_in_executor(_probes, state.projector.measure)
        try:
            measured = await asyncio.wait_for(probe, PROBE_TIMEOUT_S)
        except Exception as error:  # unreachable, or too slow to say: not ready
            reason = unavailable_reason(error) or type(error).__name__
            body.update(status="unavailable", detail=f"the store did not answer: {reason}")
            if projector_loop is None:
                return _answer(body, state)
        if projector_loop is None and max(measured.lag.values(), default=0) > (
            state.readiness.max_lag
        ):
            body["status"] = "lagging"  # (a projector elsewhere: no time to judge it by)
    for name, loop in loops.items():
        if body["status"] == "ok" and not loop["ready"]:
            body["status"] = f"{name}_{loop['status']}"  # e.g. projector_failing
    if measured is not None:
        body["head"] = measured.head
        body["measured_age_s"] = round(time.monotonic() - measured.at, 3)
        body["projections"] = {
            name: {"position": position, "lag": max(0, measured.head - position)}
            for name, position in measured.positions.items()
        }
    return _answer(body, state)


def _answer(body: dict[str, Any], state: Any) -> JSONResponse:
    if state.consumer_health is not None:
        body["consumer"] = state.consumer_health.snapshot()
    content = Readiness.model_validate(body).model_dump(mode="json")
    return JSONResponse(content, status_code=200 if body["status"] == "ok" else 503)


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
