"""Building what sends things out: the webhook and e-mail dispatchers, their supervised
loops, and the secret box.

Part of the composition root (appstore/bootstrap.py uses it for `serve`,
appstore/processes.py for `appstore dispatch`).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from application.dispatch import Dispatcher, RetryPolicy
from application.loops import LoopHealth, Loops, ReadinessPolicy, Step, SupervisedLoop
from application.secret_box import SecretBox
from application.store import Store
from application.webhooks import WebhookChannel
from appstore.settings import Settings
from consumers.mailer import SmtpMailer
from consumers.webhook_http import GuardedPoster
from projections.notifications import EmailOutbox
from projections.webhook_deliveries import WebhookDeliveries

log = logging.getLogger("appstore")

KEY_FILE = "webhook-secrets.key"
# Seconds between two counts of a dispatcher's backlog (its lag on /readyz).
COUNT_EVERY = 1.0


def key_file(settings: Settings) -> Path:
    """Where the generated webhook secret key lives: beside the SQLite database, or ./var."""
    url = settings.database_url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url.split("://", 1)[1][1:]).parent / KEY_FILE
    return Path("var") / KEY_FILE


def secret_box(settings: Settings) -> SecretBox:
    """The box sealing webhook signing secrets: APPSTORE_WEBHOOKS_SECRET_KEY, else
    APPSTORE_SECRET_KEY, else a key generated once into a file (mode 0600)."""
    configured = settings.webhooks.secret_key or settings.secret_key
    if configured:
        return SecretBox(configured)
    path = key_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32))
            if not settings.database_url.startswith("sqlite"):
                log.warning(
                    "webhook secrets sealed with a key generated in %s: set "
                    "APPSTORE_WEBHOOKS_SECRET_KEY when processes run on several machines",
                    path,
                )
    return SecretBox(path.read_text().strip())


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry schedule of these settings. A claim's lease covers two batches (the one
    in flight while it was claimed, then its own) sent `concurrency` at a time, each POST
    within the timeout, with room to record the outcomes."""
    w = settings.webhooks
    rounds = math.ceil(w.batch_size / w.concurrency)
    return RetryPolicy(
        retry_for=timedelta(hours=w.retry_hours),
        first_delay=timedelta(seconds=w.first_retry),
        max_delay=timedelta(seconds=w.max_retry_interval),
        lease=timedelta(seconds=2 * rounds * w.timeout + 5),
    )


def build_dispatchers(store: Store, engine: Engine, settings: Settings) -> list[Dispatcher]:
    """The webhook dispatcher, and the e-mail one when APPSTORE_SMTP_URL is set."""
    w = settings.webhooks
    policy = retry_policy(settings)
    poster = GuardedPoster(
        timeout=w.timeout, allow_loopback=w.allow_loopback, concurrency=w.concurrency
    )
    channel = WebhookChannel(store, secret_box(settings), poster)
    found = [Dispatcher(store, WebhookDeliveries(engine), channel, policy, batch_size=w.batch_size)]
    if settings.smtp_url:
        mailer = SmtpMailer(settings.smtp_url, sender=settings.smtp_from, timeout=w.timeout)
        found.append(
            Dispatcher(store, EmailOutbox(engine), mailer, policy, batch_size=w.batch_size)
        )
    return found


def dispatcher_loops(
    dispatchers: list[Dispatcher], settings: Settings, loops: Loops, policy: ReadinessPolicy
) -> list[SupervisedLoop]:
    """Each dispatcher's supervised loop, its health registered in `loops` as
    `dispatcher-<channel>` and judged by `policy`.

    Its lag is the deliveries the read model finds due that nobody has claimed (work
    waiting for a dispatcher), counted at most once a second and up to `max_lag` + 1:
    enough to judge readiness by, where a full count of a large backlog would cost more
    than the step it measures.
    """
    found = []
    for dispatcher in dispatchers:
        name = f"dispatcher-{dispatcher.channel.name}"
        health = loops.register(LoopHealth(name, policy=policy))
        loop = dispatcher.loop(settings.webhooks.poll_interval, health)
        loop.step = _counting_lag(dispatcher, loop.step, health)
        found.append(loop)
    return found


def _counting_lag(dispatcher: Dispatcher, step: Step, health: LoopHealth) -> Step:
    counted_at = -COUNT_EVERY

    def step_and_count() -> bool:
        nonlocal counted_at
        busy = step()
        if time.monotonic() - counted_at >= COUNT_EVERY:
            now = dispatcher.store.clock.now()
            health.report_lag(len(dispatcher.due.due(now, health.policy.max_lag + 1)))
            counted_at = time.monotonic()
        return busy

    return step_and_count
