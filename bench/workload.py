"""Bulk event generation for the read-side benchmarks: a realistic catalog, sellers,
installations and incidents, appended through the domain aggregates in large transactions
(so building a 100k-event log takes seconds, not the hours single commands would).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from application.store import Store
from domain import values as v
from domain.account import Account
from domain.app_listing import AppListing, validate_listing
from domain.incident import SyncEvent
from domain.installation import Installation
from domain.review import Review

ADJECTIVES = [
    "smart",
    "swift",
    "bright",
    "easy",
    "clever",
    "rapid",
    "global",
    "simple",
    "bold",
    "prime",
    "lucky",
    "super",
    "magic",
    "true",
    "happy",
    "green",
    "blue",
    "silver",
    "golden",
    "open",
    "total",
    "instant",
    "quick",
    "handy",
    "neat",
]
NOUNS = [
    "label",
    "order",
    "stock",
    "parcel",
    "invoice",
    "review",
    "coupon",
    "bundle",
    "catalog",
    "listing",
    "shipment",
    "return",
    "refund",
    "loyalty",
    "email",
    "chat",
    "sms",
    "pricing",
    "inventory",
    "sync",
    "feed",
    "print",
    "mockup",
    "tracking",
    "tax",
    "warehouse",
    "photo",
    "video",
    "ads",
    "badge",
    "upsell",
    "translation",
    "currency",
    "analytics",
    "report",
]
VERBS = [
    "sync",
    "import",
    "export",
    "print",
    "ship",
    "track",
    "repair",
    "tune",
    "boost",
    "translate",
    "price",
    "bundle",
    "notify",
    "schedule",
    "automate",
    "forecast",
    "recommend",
]
START = datetime(2026, 1, 1, tzinfo=UTC)


def listing(rng: random.Random, n: int) -> dict[str, object]:
    name = f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS).title()} {n}"
    # 40 words: a dozen from the store's vocabulary, the rest from a long tail (as real
    # descriptions are), so one store word is in about a fifth of the descriptions.
    words = [rng.choice(NOUNS + VERBS) for _ in range(12)]
    words += [f"{rng.choice(ADJECTIVES)}{rng.randrange(2000)}" for _ in range(28)]
    rng.shuffle(words)
    return validate_listing(
        {
            "name": name,
            "slug": f"app-{n}",
            "tagline": f"{rng.choice(VERBS).title()} your {rng.choice(NOUNS)}s automatically",
            "description": " ".join(words),
            "benefits": [f"{rng.choice(VERBS)} {rng.choice(NOUNS)}s" for _ in range(3)],
            "categories": rng.sample(list(v.CATEGORIES), rng.randint(1, 2)),
            "platforms": rng.sample(list(v.PLATFORMS), rng.randint(0, 3)),
            "media": [],
            "compatibility": [],
            "partner_url": "https://partner.example.com",
            "faqs": [{"question": "Trial?", "answer": "Yes."}],
            "contact": {"email": "support@partner.example.com", "phone": "+14155550100"},
            "scopes": ["orders.read", "products.write"],
            "redirect_uris": ["https://partner.example.com/cb"],
            "durations": ["30d", "90d", "unlimited"],
        },
        partial=False,
    )


# How the bench's reviews rate apps: mostly good, some poor (a spread for sort=rating).
STARS = (1, 2, 3, 3, 4, 4, 4, 5, 5, 5)


def append_catalog(
    store: Store,
    *,
    apps: int,
    installs_per_app: int = 0,
    incident_every: int = 0,
    sellers: int = 50,
    batch_events: int = 1000,
    seed: int = 7,
    on_batch: Callable[[int], None] | None = None,
    reviewed_share: float = 0.0,
) -> int:
    """Appends apps (+ installations, authorizations, incidents, and a review by the seller
    of `reviewed_share` of the installations); returns events appended."""
    rng = random.Random(seed)
    now = START
    developer = Account(
        role="developer",
        email=f"dev-{uuid.uuid4().hex[:8]}@example.com",
        password_hash="x",
        name="Bench Developer",
        account_type=None,
        registered_at=now,
    )
    people = [
        Account(
            role="seller",
            email=f"s{i}-{uuid.uuid4().hex[:8]}@example.com",
            password_hash="x",
            name=f"Seller {i}",
            account_type="local",
            registered_at=now,
        )
        for i in range(sellers)
    ]
    store.save(developer, *people)
    total = 1 + len(people)
    pending: list[object] = []
    pending_events = 0
    n_installs = 0
    for n in range(apps):
        now = START + timedelta(minutes=n)
        app = AppListing(
            developer_id=developer.id,
            details=listing(rng, n),
            client_secret_hash="x",
            listed_at=now,
        )
        pending.append(app)
        pending_events += 1
        for k in range(installs_per_app):
            n_installs += 1
            installation = Installation(
                seller_id=people[(n + k) % len(people)].id,
                app_id=app.id,
                duration="90d",
                contact_email="ops@shop.example.com",
                contact_phone="+14155550101",
                scopes=["orders.read"],
                installed_at=now,
            )
            installation.authorize(now)
            pending_events += 2
            if incident_every and n_installs % incident_every == 0:
                report = SyncEvent(
                    f"ev-{n_installs}", installation.id, "failure", "orders", now, "E_TIMEOUT",
                    "timed out", ["o-1"],
                )  # fmt: skip
                installation.record_sync(report, now)
                pending_events += 1
            pending.append(installation)
            if reviewed_share and rng.random() < reviewed_share:
                seller = people[(n + k) % len(people)]
                review = Review(seller_id=seller.id, app_id=app.id)
                review.post(seller.name, rng.choice(STARS), "Does what it says.", now)
                pending.append(review)
                pending_events += 2
        if pending_events >= batch_events:
            store.save(*pending)  # type: ignore[arg-type]
            total += pending_events
            if on_batch:
                on_batch(pending_events)
            pending, pending_events = [], 0
    if pending:
        store.save(*pending)  # type: ignore[arg-type]
        total += pending_events
        if on_batch:
            on_batch(pending_events)
    return total
