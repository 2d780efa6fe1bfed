"""A realistic demo catalog: developers, at least 60 apps over every category and platform,
sellers with installations in every state, a few sync incidents, and reviews
(appstore/demo_reviews.py).

Run again, it adds apps to the store (`--apps N`): names, slugs and content continue the
same sequence, and the apps are listed in large batches (`listings.import_apps`: the events
of `list_app`, AppListing.Listed + SlugClaim.Claimed), so a 100k-app store takes minutes,
not hours.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from application import accounts, installations, listings, sync_events
from application.store import Store
from appstore.demo_listings import demo_listing, demo_name
from appstore.demo_reviews import REVIEWERS, review_apps
from domain import values as v
from domain.claims import SlugClaim, slug_claim_id
from domain.errors import DomainError, EmailTaken
from domain.incident import SyncEvent

DEMO_PASSWORD = "demo-password-123"
# A first load covers every category and platform (60 = lcm of 12 categories, 10 platforms).
MIN_APPS = 60
# Apps per append (two events each): one transaction, like a bulk import.
APPS_PER_SAVE = 500


def _account(store: Store, role: str, n: int) -> tuple[UUID, bool]:
    """The n-th demo developer or seller: (id, created now), signed in if already there."""
    email = f"{role}{n}@demo.example.com"
    name = f"Developer {n}" if role == "developer" else f"Demo Shop {n}"
    kind = None if role == "developer" else ("local", "cross_border")[(n + 1) % 2]
    try:
        return accounts.register_account(store, role, email, DEMO_PASSWORD, name, kind).id, True
    except EmailTaken:
        return accounts.authenticate(store, email, DEMO_PASSWORD).id, False


def _demo_apps_listed(store: Store) -> int:
    """How many demo apps the store has. Each run lists the next ones in sequence, so the
    listed ones are a prefix of it: an exponential, then binary, search over slug claims."""

    def claimed(n: int) -> bool:
        return store.load(slug_claim_id(v.slugify(demo_name(n))), SlugClaim) is not None

    if not claimed(0):
        return 0
    low, high = 0, 1  # claimed(low) and, once the loop ends, not claimed(high)
    while claimed(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if claimed(middle):
            low = middle
        else:
            high = middle
    return high


def _list_apps(
    store: Store,
    developers: list[UUID],
    start: int,
    count: int,
    on_saved: Callable[[int], None],
) -> list[UUID]:
    """Lists `count` demo apps from the `start`-th, APPS_PER_SAVE per transaction."""
    listed: list[UUID] = []
    sequence = itertools.count(start)
    while len(listed) < count:
        numbers = list(itertools.islice(sequence, min(APPS_PER_SAVE, count - len(listed))))
        batch = [(developers[n % len(developers)], demo_listing(n)) for n in numbers]
        saved = listings.import_apps(store, batch)
        listed += saved
        on_saved(len(saved))
    return listed


def _install_for(store: Store, seller: UUID, n: int, app_ids: list[UUID]) -> tuple[int, int]:
    """Installs a few apps for a new demo seller: active, cancelled, some with incidents."""
    rng = random.Random(n)
    installs = incidents = 0
    for app_id in rng.sample(app_ids, k=min(6, len(app_ids))):
        duration = rng.choice(listings.app(store, app_id).durations)
        try:
            outcome = installations.install(
                store, seller, app_id, duration, f"ops@shop{n + 1}.example.com", "+14155550199"
            )
            installations.authorize(store, seller, outcome.id)
            installs += 1
            if rng.random() < 0.4:
                sync_events.record_sync_event(
                    store,
                    SyncEvent(
                        event_id=f"demo-{outcome.id}",
                        installation_id=outcome.id,
                        kind="failure",
                        area=rng.choice(["orders", "fulfillment", "inventory"]),
                        occurred_at=store.clock.now() - timedelta(minutes=rng.randint(1, 600)),
                        error_code=rng.choice(["RATE_LIMITED", "SKU_NOT_FOUND", "AUTH_EXPIRED"]),
                        message="The last sync did not complete; it will be retried.",
                        object_ids=[f"order-{rng.randint(1000, 9999)}"],
                    ),
                )
                incidents += 1
            if rng.random() < 0.15:
                installations.cancel(store, seller, outcome.id)
        except DomainError:
            continue
    return installs, incidents


def load_demo(store: Store, *, apps: int = 72, console: Console | None = None) -> str:
    """Adds the demo data to `store` (`apps` more apps; at least 60 the first time);
    returns a one-line summary. Developers and sellers are created once, then reused."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console or Console(stderr=True)) as progress:
        task = progress.add_task("developers", total=6)
        developers = []
        for n in range(1, 7):
            developers.append(_account(store, "developer", n)[0])
            progress.advance(task)
        start = _demo_apps_listed(store)
        count = apps if start else max(apps, MIN_APPS)
        task = progress.add_task("apps", total=count)
        app_ids = _list_apps(
            store, developers, start, count, lambda saved: progress.advance(task, saved)
        )
        task = progress.add_task("sellers and installations", total=6)
        new_sellers = installs = incidents = 0
        for n in range(1, 7):
            seller, created = _account(store, "seller", n)
            if created:  # a seller's installations are made once, with the seller
                new_sellers += 1
                made, raised = _install_for(store, seller, n - 1, app_ids)
                installs += made
                incidents += raised
            progress.advance(task)
        task = progress.add_task("reviews", total=REVIEWERS)
        posted = review_apps(
            store,
            lambda n: _account(store, "seller", n),
            app_ids,
            lambda: progress.advance(task),
        )
    return (
        f"demo loaded: {len(app_ids)} apps added ({start + len(app_ids)} demo apps in all),"
        f" {len(developers)} developers, {new_sellers} new sellers"
        f" (seller1@demo.example.com / {DEMO_PASSWORD}), {installs} installations,"
        f" {incidents} incidents, {posted} reviews"
    )
