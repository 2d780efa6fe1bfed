"""The store's pages of the log (application/log_reads.py `notifications`, plain tuples on
PostgreSQL) are the recorder's own `select_notifications`, notification for notification."""

from __future__ import annotations

from application.store import Store
from tests import factories as f


def test_pages_of_the_log_are_the_recorders(store: Store) -> None:
    developer = f.developer(store)
    seller = f.seller(store)
    for _ in range(3):
        f.active_installation(store, seller, f.app(store, developer))
    head = store.head()
    assert head > 10
    recorder = store.application.recorder
    for start in (0, 1, 2, head // 2, head - 1, head, head + 1):
        for limit in (1, 3, head, 10_000):
            for inclusive in (True, False):
                page = store.notifications(start, limit, inclusive=inclusive)
                assert list(page) == list(
                    recorder.select_notifications(
                        start=start, limit=limit, inclusive_of_start=inclusive
                    )
                ), (start, limit, inclusive)
                assert all(type(n.state) is bytes for n in page)
