"""Expiry warnings 14, 3 and 1 days before expiry: exactly once each (also with two
processes sweeping at once), re-armed by a renewal; each one a seller notification, an
e-mail through a real SMTP server on loopback (aiosmtpd), and an `installation.expiring`
webhook delivery."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from typing import Any
from uuid import UUID

import pytest
from aiosmtpd.controller import Controller

from application import accounts, installations, webhooks
from application.dispatch import Dispatcher, RetryPolicy
from application.expiry import sweep
from application.secret_box import SecretBox
from application.store import Store
from appstore import processes
from appstore.bootstrap import build_store, create_app
from appstore.settings import Settings
from consumers.mailer import SmtpMailer
from domain.clock import FixedClock
from domain.installation import Installation
from projections.due_installations import DueInstallations
from projections.notifications import EmailOutbox, emails
from projections.read_side import build_projector
from projections.runner import Projector
from projections.webhook_deliveries import delivery_log
from tests import factories as f
from tests.integration.test_api import assert_problem
from tests.webhook_receiver import free_port

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

DAY = timedelta(days=1)


def warned_days(store: Store, installation_id: UUID) -> list[int]:
    return [
        e.days_before
        for e in store.events_of(installation_id)
        if isinstance(e, Installation.ExpiryWarned)
    ]


@pytest.fixture
def projector(store: Store, settings: Settings) -> Iterator[Projector]:
    built = build_projector(store, settings.database_url)
    yield built
    built.engine.dispose()


def swept(store: Store, projector: Projector) -> int:
    projector.catch_up()
    return sweep(store, DueInstallations(projector.engine)).warned


def test_each_threshold_warns_once_as_the_clock_passes_it(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    start = clock.now()
    installation = f.active_installation(store, f.seller(store), f.app(store), "30d")
    assert swept(store, projector) == 0
    for days_after, expected in [(16, [14]), (27, [14, 3]), (29, [14, 3, 1])]:
        clock.set(start + days_after * DAY + timedelta(hours=1))
        assert swept(store, projector) == 1
        assert swept(store, projector) == 0  # once
        assert sweep(store, DueInstallations(projector.engine)).warned == 0  # stale model too
        assert warned_days(store, installation) == expected
    clock.set(start + 30 * DAY + timedelta(hours=1))
    assert swept(store, projector) == 0
    assert warned_days(store, installation) == [14, 3, 1]


def test_a_late_sweep_warns_of_the_most_urgent_threshold_only(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    installation = f.active_installation(store, f.seller(store), f.app(store), "30d")
    clock.advance(29 * DAY + timedelta(hours=12))
    assert swept(store, projector) == 1
    assert swept(store, projector) == 0
    assert warned_days(store, installation) == [1]


def test_a_renewal_re_arms_the_warnings_for_the_new_expiry(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    seller = f.seller(store)
    installation = f.active_installation(store, seller, f.app(store), "30d")
    clock.advance(17 * DAY)
    assert swept(store, projector) == 1
    installations.renew(store, seller, installation, "30d")  # expires 60 days after install
    assert swept(store, projector) == 0
    clock.advance(30 * DAY)  # 13 days before the new expiry
    assert swept(store, projector) == 1
    assert warned_days(store, installation) == [14, 14]


def test_unlimited_cancelled_and_expired_installations_are_not_warned(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    seller = f.seller(store)
    f.active_installation(store, seller, f.app(store), "unlimited")
    cancelled = f.active_installation(store, seller, f.app(store), "30d")
    installations.cancel(store, seller, cancelled)
    clock.advance(20 * DAY)
    assert swept(store, projector) == 0


def test_two_processes_sweeping_at_once_warn_exactly_once(
    settings: Settings, clock: FixedClock
) -> None:
    first, second = build_store(settings, clock=clock), build_store(settings, clock=clock)
    projector = build_projector(first, settings.database_url)
    try:
        ids = [f.active_installation(first, f.seller(first), f.app(first), "30d") for _ in range(8)]
        for days in (16, 27, 29):
            clock.set(clock.now().replace(day=1) + days * DAY)
            projector.catch_up()
            due = DueInstallations(projector.engine)
            ready = threading.Barrier(2)
            results: list[int] = []

            def run(
                store: Store, due: Any = due, ready: Any = ready, results: Any = results
            ) -> None:
                ready.wait()
                results.append(sweep(store, due).warned)

            threads = [threading.Thread(target=run, args=(s,)) for s in (first, second)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert sum(results) == len(ids)
        assert all(warned_days(first, i) == [14, 3, 1] for i in ids)
    finally:
        projector.engine.dispose()
        first.close()
        second.close()


def test_the_developer_gets_an_installation_expiring_webhook(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    developer = f.developer(store)
    app = f.app(store, developer)
    hook = webhooks.subscribe(
        store,
        SecretBox("k"),
        developer,
        app,
        "http://127.0.0.1:9/in",
        ["installation.expiring"],
        allow_loopback=True,
    )
    installation = f.active_installation(store, f.seller(store), app, "30d")
    clock.advance(27 * DAY)
    swept(store, projector)
    projector.catch_up()
    with projector.engine.connect() as conn:
        (row,), _ = delivery_log(conn, hook.id)
    assert row["event_type"] == "installation.expiring"
    assert row["payload"]["installation_id"] == str(installation)
    assert row["payload"]["days_before"] == 3
    assert row["payload"]["expires_at"] == "2026-01-31T00:00:00Z"


def test_the_seller_lists_notifications_and_marks_them_read(
    settings: Settings, clock: FixedClock
) -> None:
    app = create_app(settings, clock=clock)
    store = app.state.store
    with TestClient(app) as http:

        def login(account_id: UUID) -> dict[str, str]:
            email = accounts.account(store, account_id).email
            token = http.post("/v1/sessions", json={"email": email, "password": f.PASSWORD})
            return {"Authorization": f"Bearer {token.json()['token']}"}

        seller, other = f.seller(store), f.seller(store)
        app_id = f.app(store, name="Label Printer")
        installation = f.active_installation(store, seller, app_id, "30d")
        clock.advance(16 * DAY)
        app.state.projector.catch_up()
        sweep(store, DueInstallations(app.state.projector.engine))
        app.state.projector.catch_up()
        listed = http.get("/v1/me/notifications", headers=login(seller))
        assert listed.status_code == 200, listed.text
        page = listed.json()
        assert page["total"] == 1 and page["unread"] == 1
        (item,) = page["items"]
        assert item["kind"] == "expiry_warning" and item["read"] is False
        assert item["installation_id"] == str(installation)
        assert item["app"]["name"] == "Label Printer" and item["app"]["id"] == str(app_id)
        assert "Label Printer expires in 14 days" in item["message"]
        assert http.get("/v1/me/notifications", headers=login(other)).json()["total"] == 0
        path = f"/v1/me/notifications/{item['id']}/read"
        assert_problem(http.post(path, headers=login(other)), 404)
        read = http.post(path, headers=login(seller))
        assert read.status_code == 200 and read.json()["read"] is True
        assert http.post(path, headers=login(seller)).status_code == 200  # again: no change
        after = http.get("/v1/me/notifications?unread=true", headers=login(seller)).json()
        assert after["total"] == 0 and after["unread"] == 0
    store.close()
    app.state.projector.engine.dispose()


class Inbox:
    """An aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


def test_each_warning_is_e_mailed_once_through_a_real_smtp_server(
    store: Store, projector: Projector, clock: FixedClock, settings: Settings
) -> None:
    inbox, port = Inbox(), free_port()
    mailer = SmtpMailer(f"smtp://127.0.0.1:{port}", timeout=5)
    dispatcher = Dispatcher(store, EmailOutbox(projector.engine), mailer, RetryPolicy())
    f.active_installation(store, f.seller(store), f.app(store, name="Parcel Pal"), "30d")
    clock.advance(16 * DAY)
    swept(store, projector)
    projector.catch_up()
    assert dispatcher.step() == 1  # the SMTP server is not there yet: tried, kept
    projector.catch_up()
    with projector.engine.connect() as conn:
        (row,) = conn.execute(emails.select()).all()
    assert row.status == "pending" and "SMTP connection failed" in row.last_error
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock.advance(timedelta(minutes=5))
        projector.catch_up()
        assert dispatcher.step() == 1
        ((to, message),) = inbox.messages
        assert to == ["ops@shop.example.com"]
        assert message["Subject"] == "Parcel Pal expires in 14 days: renew to keep it working"
        assert "Renew it in My apps" in message.get_payload()
        projector.catch_up()
        assert dispatcher.step() == 0
        processes.replay(settings, "notifications")  # rebuilt: nothing is sent again
        projector.catch_up()
        assert dispatcher.step() == 0
        assert len(inbox.messages) == 1
        with projector.engine.connect() as conn:
            (row,) = conn.execute(emails.select()).all()
        assert row.status == "succeeded" and row.attempts == 2
    finally:
        controller.stop()
