"""Read your writes: wait until the read models have applied a given log position.

Write routes answer with the position their events reached (`position` in the body and
the `X-Appstore-Position` header). A client sends it back as `X-Appstore-Min-Position` on
a GET, and the read waits (bounded) until every projection has caught up.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.problems import Problem

POSITION_HEADER = "X-Appstore-Position"
MIN_POSITION_HEADER = "X-Appstore-Min-Position"
DEFAULT_WAIT = 2.0


async def wait_for_position(
    request: Request, position: int | None, timeout: float | None = None
) -> bool:
    """Waits until the projections reach `position` (True) or the timeout passes (False)."""
    if not position:
        return True
    projector = request.app.state.projector
    limit = request.app.state.consistency_timeout if timeout is None else timeout
    reached: bool = await run_in_threadpool(projector.wait, position, limit)
    return reached


def min_position(request: Request) -> int | None:
    """The X-Appstore-Min-Position a client asked for, or None; 400 when malformed."""
    raw = request.headers.get(MIN_POSITION_HEADER)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise Problem(
            400,
            "Bad header",
            f"{MIN_POSITION_HEADER} must be a non-negative integer",
            errors=[{"field": MIN_POSITION_HEADER, "message": "not an integer"}],
        ) from None
    if value < 0:
        raise Problem(400, "Bad header", f"{MIN_POSITION_HEADER} must not be negative")
    return value
