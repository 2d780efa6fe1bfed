"""Read your writes: wait until the read models have applied a given log position.

Write routes answer with the position their events reached (`position` in the body and
the `X-Appstore-Position` header). A client sends it back as `X-Appstore-Min-Position` on
a GET, and the read waits (bounded) until every projection has caught up.
"""

from __future__ import annotations

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request

from api.problems import Problem

POSITION_HEADER = "X-Appstore-Position"
MIN_POSITION_HEADER = "X-Appstore-Min-Position"
_MIN_KEY = MIN_POSITION_HEADER.lower().encode("latin-1")
DEFAULT_WAIT = 2.0
# Threads that may sit waiting for the projections at once, apart from the threads that
# run handlers: a burst of writes waiting (each up to the timeout) once took all 40 of
# those, and every read queued behind them. A waiting thread costs no CPU.
WAITERS = 200


async def wait_for_position(
    request: Request, position: int | None, timeout: float | None = None
) -> bool:
    """Waits until the projections reach `position` (True) or the timeout passes (False)."""
    if not position:
        return True
    projector = request.app.state.projector
    limit = request.app.state.consistency_timeout if timeout is None else timeout
    state = request.app.state
    if getattr(state, "waiters", None) is None:  # made on first use, inside the event loop
        state.waiters = CapacityLimiter(WAITERS)
    reached: bool = await anyio.to_thread.run_sync(
        projector.wait, position, limit, limiter=state.waiters
    )
    return reached


def min_position(request: Request) -> int | None:
    """The X-Appstore-Min-Position a client asked for, or None; 400 when malformed."""
    # Straight from the ASGI headers (lower-cased names, as Starlette's `Headers` reads
    # them): asked on every GET, and a missing key costs `Headers.get` an exception.
    raw = next((v.decode("latin-1") for k, v in request.scope["headers"] if k == _MIN_KEY), None)
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
