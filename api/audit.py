"""Ops audit routes over the event log (APPSTORE_OPS_TOKEN)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from api.auth import require_ops
from api.problems import Problem
from api.routing import Call, Endpoint
from projections.audit import aggregate_history, jsonable, read_log, redacted, state_at


class AuditEventOut(BaseModel):
    position: int
    aggregate_id: UUID
    version: int
    event_type: str
    timestamp: str
    payload: dict[str, Any]


class AuditEventPage(BaseModel):
    items: list[AuditEventOut]
    total: int


class LogPage(BaseModel):
    items: list[AuditEventOut]
    next_after: int = Field(description="pass as `after` for the next page")


class AggregateState(BaseModel):
    id: UUID
    type: str
    version: int
    state: dict[str, Any]


class StateParams(BaseModel):
    version: int | None = Field(default=None, ge=1, le=2**31, description="default: the latest")


class LogParams(BaseModel):
    after: int = Field(default=0, ge=0, le=2**62, description="events after this position")
    limit: int = Field(default=100, ge=1, le=1000)


async def history(call: Call) -> AuditEventPage:
    """Every event of one aggregate, in version order, with global positions."""
    require_ops(call.request)
    aggregate_id = call.path_id("id", "aggregate")
    events = await call.run(aggregate_history, call.state.store, aggregate_id)
    if not events:
        raise Problem(404, "Aggregate not found", f"no events for {aggregate_id}")
    items = [e.as_json() for e in events]
    return AuditEventPage.model_validate({"items": items, "total": len(items)})


async def aggregate_state(call: Call) -> AggregateState:
    """The aggregate's state at a version (default the latest)."""
    require_ops(call.request)
    aggregate_id = call.path_id("id", "aggregate")
    p: StateParams = call.query
    store = call.state.store
    aggregate = await call.run(state_at, store, aggregate_id, p.version)
    if aggregate is None:
        raise Problem(404, "Aggregate not found", f"no version {p.version} of {aggregate_id}")
    # An aggregate may keep an index of its own events (`derived_state`): not shown.
    hidden = ("_id", "_version", "_pending_events", *getattr(aggregate, "derived_state", ()))
    state = {
        k.lstrip("_"): jsonable(value) for k, value in vars(aggregate).items() if k not in hidden
    }
    return AggregateState(
        id=aggregate.id,
        type=type(aggregate).__name__,
        version=aggregate.version,
        state=redacted(state),
    )


async def global_log(call: Call) -> LogPage:
    """The global event log after a position."""
    require_ops(call.request)
    p: LogParams = call.query
    events = await call.run(read_log, call.state.store, p.after, p.limit)
    items = [e.as_json() for e in events]
    return LogPage.model_validate(
        {"items": items, "next_after": events[-1].position if events else p.after}
    )


endpoints = [
    Endpoint("GET", "/v1/audit/aggregates/{id}/events", history, "Aggregate history", "ops",
             response=AuditEventPage, auth="ops"),
    Endpoint("GET", "/v1/audit/aggregates/{id}", aggregate_state, "Aggregate state at a version",
             "ops", query=StateParams, response=AggregateState, auth="ops"),
    Endpoint("GET", "/v1/audit/events", global_log, "The global event log", "ops",
             query=LogParams, response=LogPage, auth="ops"),
]  # fmt: skip
