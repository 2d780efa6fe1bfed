"""One review per seller and app under real concurrent posts (separate processes on
PostgreSQL): the review's id derives from the pair, so racing first posts all append
version 1 of one aggregate and exactly one commits."""

from __future__ import annotations

import multiprocessing as mp
from uuid import UUID

import pytest

from application import reviews
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain import errors
from domain.clock import FixedClock
from domain.review import Review, review_id
from tests import factories as f

pytestmark = pytest.mark.postgres
WORKERS = 4


def _post(url: str, seller: str, app: str, n: int, barrier, results) -> None:  # type: ignore[no-untyped-def]
    store = build_store(Settings(database_url=url, fast_password_hashing=True), clock=FixedClock())
    barrier.wait()
    try:
        reviews.post(store, UUID(seller), UUID(app), n + 1, f"Review number {n}")
        results.put("posted")
    except (errors.AlreadyReviewed, errors.ConcurrentUpdate) as error:
        results.put(type(error).__name__)
    store.close()


def test_concurrent_first_posts_leave_exactly_one_review(postgres_url: str) -> None:
    store = build_store(
        Settings(database_url=postgres_url, fast_password_hashing=True), clock=FixedClock()
    )
    seller, app = f.seller(store), f.app(store)
    f.active_installation(store, seller, app)

    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [
        ctx.Process(target=_post, args=(postgres_url, str(seller), str(app), n, barrier, results))
        for n in range(WORKERS)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    assert outcomes.count("posted") == 1, outcomes
    assert set(outcomes) <= {"posted", "AlreadyReviewed", "ConcurrentUpdate"}
    events = [type(e).__name__ for e in store.application.events.get(review_id(seller, app))]
    assert events == ["Opened", "Posted"]
    found = store.load(review_id(seller, app), Review)
    assert found is not None and found.is_public
    store.close()
