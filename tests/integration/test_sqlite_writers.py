"""On the embedded SQLite store, several writer threads of one process and a projector
stepping at the same time all get through (no pool timeout: writers queue in the Store)."""

from __future__ import annotations

import threading
from pathlib import Path

from application import accounts
from appstore.bootstrap import build_store
from appstore.settings import Settings
from projections.read_side import build_projector


def test_concurrent_writers_and_a_projector_do_not_wait_each_other_out(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/s.db", fast_password_hashing=True)
    store = build_store(settings)
    projector = build_projector(store, settings.database_url, batch_size=50)
    stop = threading.Event()
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(60):
                accounts.register_account(
                    store, "seller", f"w{n}-{i}@x.example.com", "pw-123456789", "W"
                )
        except BaseException as error:  # reported below, with the others
            failures.append(error)

    projecting = threading.Thread(target=projector.run_forever, args=(stop, 0.001))
    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    projecting.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=120)
    stop.set()
    projecting.join(timeout=30)
    store.close()
    projector.engine.dispose()
    assert failures == []
