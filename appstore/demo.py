"""A realistic demo catalog: developers, at least 60 apps over every category and platform,
sellers with installations in every state, and a few sync incidents.

Run again, it adds apps to the store (`--apps N`): names, slugs and content continue the
same sequence, and the apps are appended through the domain aggregates in large batches
(the events of `list_app`: AppListing.Listed + SlugClaim.Claimed), so a 100k-app store
takes minutes, not hours.
"""

from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from domain import values as v
from domain.app_listing import AppListing, SlugClaim, slug_claim_id, validate_listing
from domain.credentials import new_token, token_hash
from domain.errors import DomainError, EmailTaken
from domain.store import AppStore, SyncEvent

DEMO_PASSWORD = "demo-password-123"
# A first load covers every category and platform (60 = lcm of 12 categories, 10 platforms).
MIN_APPS = 60
# Apps per append (two events each): one transaction, like a bulk import.
APPS_PER_SAVE = 500

# (category, tagline template, description template, benefits, scopes)
_KINDS: dict[str, dict[str, Any]] = {
    "integrations": {
        "tagline": "Bring your {platform} store to TikTok Shop in minutes",
        "description": (
            "{name} links your existing {platform} store with TikTok Shop. Products, prices "
            "and stock flow across automatically, and every TikTok order lands in your "
            "{platform} admin, so you keep working where you already work."
        ),
        "benefits": [
            "One-click product import",
            "Orders in your usual admin",
            "Price rules per channel",
        ],
        "scopes": [
            "shop.read",
            "products.read",
            "products.write",
            "orders.read",
            "inventory.write",
        ],
    },
    "connectors": {
        "tagline": "Sync products and inventory from {platform}",
        "description": (
            "{name} keeps catalog and inventory in step between {platform} and TikTok Shop. "
            "Changes propagate within a minute and conflicts are flagged, never overwritten silently."
        ),
        "benefits": [
            "Inventory sync every minute",
            "Variant and attribute mapping",
            "Conflict alerts",
        ],
        "scopes": ["products.read", "products.write", "inventory.read", "inventory.write"],
    },
    "multi-channel-management": {
        "tagline": "Every channel, one dashboard",
        "description": (
            "{name} manages catalog, inventory, shipments and refunds across TikTok Shop, "
            "{platform} and more from a single dashboard, with rules that route each order to "
            "the right warehouse."
        ),
        "benefits": ["Central catalog", "Order routing rules", "Refunds across channels"],
        "scopes": [
            "products.read",
            "orders.read",
            "orders.write",
            "fulfillment.write",
            "inventory.write",
        ],
    },
    "print-on-demand": {
        "tagline": "Custom products with zero upfront cost",
        "description": (
            "Design shirts, mugs and posters with {name}. We print, pack and ship each order "
            "as it comes in, and push tracking numbers back to TikTok Shop."
        ),
        "benefits": ["No inventory", "300+ products", "Automatic fulfillment"],
        "scopes": ["products.write", "orders.read", "fulfillment.write"],
    },
    "shipping-fulfillment": {
        "tagline": "Ship faster with live rates and tracking",
        "description": (
            "{name} pulls TikTok Shop orders in real time, buys labels at discounted rates and "
            "uploads tracking to your buyers automatically."
        ),
        "benefits": ["Discounted labels", "Automatic tracking upload", "Batch printing"],
        "scopes": ["orders.read", "fulfillment.read", "fulfillment.write"],
    },
    "product-listing": {
        "tagline": "Better listings, more sales",
        "description": (
            "{name} writes and bulk-edits titles, descriptions and attributes, checks them "
            "against TikTok Shop rules and fixes rejected listings."
        ),
        "benefits": ["Bulk editing", "Listing quality checks", "AI-assisted titles"],
        "scopes": ["products.read", "products.write"],
    },
    "customer-engagement": {
        "tagline": "Turn buyers into fans",
        "description": (
            "{name} sends order updates, review requests and win-back messages that respect "
            "TikTok Shop's messaging policies."
        ),
        "benefits": ["Review requests", "Order update messages", "Segmented campaigns"],
        "scopes": ["orders.read", "customers.read"],
    },
    "optimization": {
        "tagline": "Know what sells and why",
        "description": (
            "{name} analyses orders, fees and returns to show your real margin per product "
            "and suggests prices that keep you competitive."
        ),
        "benefits": ["Profit per product", "Fee breakdowns", "Repricing suggestions"],
        "scopes": ["orders.read", "products.read", "finance.read"],
    },
    "inventory-management": {
        "tagline": "Never oversell again",
        "description": (
            "{name} tracks stock across warehouses and channels, reserves units for open "
            "orders and reorders before you run out."
        ),
        "benefits": ["Multi-warehouse stock", "Low-stock alerts", "Purchase orders"],
        "scopes": ["inventory.read", "inventory.write", "orders.read"],
    },
    "analytics": {
        "tagline": "Dashboards for every metric that matters",
        "description": "{name} turns your TikTok Shop data into daily dashboards and exports.",
        "benefits": ["Daily dashboards", "CSV and sheet exports", "Cohort analysis"],
        "scopes": ["shop.read", "orders.read", "finance.read"],
    },
    "marketing": {
        "tagline": "Grow with creators and campaigns",
        "description": "{name} finds creators for your products and tracks the sales they drive.",
        "benefits": ["Creator discovery", "Affiliate tracking", "Campaign reports"],
        "scopes": ["products.read", "orders.read"],
    },
    "customer-service": {
        "tagline": "Answer every buyer in one inbox",
        "description": "{name} gathers buyer messages, returns and disputes into one shared inbox.",
        "benefits": ["Shared inbox", "Canned replies", "Return automation"],
        "scopes": ["orders.read", "customers.read", "orders.write"],
    },
}

_BRANDS = [
    "Parcel",
    "Stock",
    "Cart",
    "Ship",
    "Print",
    "List",
    "Sync",
    "Channel",
    "Bright",
    "Swift",
    "Atlas",
    "Harbor",
    "Pixel",
    "Nimbus",
    "Orbit",
    "Summit",
    "Maple",
    "Cobalt",
    "Juniper",
    "Quill",
    "Beacon",
    "Falcon",
    "Willow",
    "Ember",
]
_SUFFIXES = ["Hub", "Flow", "Pilot", "Link", "Works", "Bridge", "Station", "Desk", "Kit", "Pro"]


# Product tiers and platforms qualify the brand names once those run out.
_TIERS = ["Lite", "Plus", "Go", "One", "Max", "Studio", "Cloud", "Express", "Prime", "Edge"]
_NAMES = [f"{brand}{suffix}" for brand in _BRANDS for suffix in _SUFFIXES]
random.Random(7).shuffle(_NAMES)


def _named(n: int) -> tuple[str, str | None]:
    """The n-th demo app's name and the platform the name mentions (if any)."""
    block, base = divmod(n, len(_NAMES))
    block, platform = divmod(block, len(v.PLATFORMS) + 1)
    edition, tier = divmod(block, len(_TIERS) + 1)
    name = _NAMES[base]
    if tier:
        name += f" {_TIERS[tier - 1]}"
    slug = list(v.PLATFORMS)[platform - 1] if platform else None
    if slug:
        name += f" for {v.PLATFORMS[slug]}"
    if edition:
        name += f" {edition + 1}"
    return name, slug


def demo_name(n: int) -> str:
    """The n-th demo app's name, unique for every n (no retry loop: any n in constant time).

    The first 240 are brand + suffix ("ParcelHub"); then a tier, a platform and an
    edition qualify them ("ParcelHub Max for Etsy", "ParcelHub for Etsy 2").
    """
    return _named(n)[0]


def demo_listing(n: int) -> dict[str, Any]:
    """The n-th demo listing (always the same for the same n)."""
    rng = random.Random(n)
    categories, platforms = list(v.CATEGORIES), list(v.PLATFORMS)
    category = categories[n % len(categories)]
    platform = platforms[n % len(platforms)]
    kind = _KINDS[category]
    name, named = _named(n)
    extra_platforms = rng.sample(platforms, k=rng.randint(0, 3))
    extra_category = rng.choice(categories)
    domain = f"{v.slugify(name)}.example.com"
    return {
        "name": name,
        "tagline": kind["tagline"].format(platform=v.PLATFORMS[platform], name=name),
        "description": kind["description"].format(platform=v.PLATFORMS[platform], name=name),
        "benefits": kind["benefits"],
        "categories": list(dict.fromkeys([category, extra_category])),
        "platforms": list(dict.fromkeys([platform, *([named] if named else []), *extra_platforms])),
        "media": [
            {"type": "image", "url": f"https://cdn.{domain}/screens/dashboard.png"},
            {"type": "image", "url": f"https://cdn.{domain}/screens/settings.png"},
            {"type": "video", "url": f"https://cdn.{domain}/videos/tour.mp4"},
        ],
        "compatibility": [
            f"{v.PLATFORMS[platform]} (all plans)",
            "TikTok Shop US, UK and SEA markets",
        ],
        "partner_url": f"https://{domain}",
        "faqs": [
            {
                "question": "Is there a free trial?",
                "answer": "Yes: 14 days, no card needed.",
            },
            {
                "question": "How do I connect my shop?",
                "answer": f"Click Install now, then authorize {name} to access your shop.",
            },
            {
                "question": "What happens when I cancel?",
                "answer": "Access stops at once and we delete your shop data within 30 days.",
            },
        ],
        "contact": {"email": f"support@{domain}", "phone": f"+1415555{n % 10000:04d}"},
        "scopes": kind["scopes"],
        "redirect_uris": [f"https://{domain}/oauth/callback"],
        "durations": ["30d", "90d", "180d", "365d", "unlimited"] if n % 4 else ["30d", "365d"],
    }


def demo_listings(count: int, start: int = 0) -> list[dict[str, Any]]:
    """`count` demo listings from the `start`-th; the first 60 cover every category and
    platform."""
    return [demo_listing(n) for n in range(start, start + count)]


def _account(store: AppStore, role: str, n: int) -> tuple[UUID, bool]:
    """The n-th demo developer or seller: (id, created now), signed in if already there."""
    email = f"{role}{n}@demo.example.com"
    name = f"Developer {n}" if role == "developer" else f"Demo Shop {n}"
    kind = None if role == "developer" else ("local", "cross_border")[(n + 1) % 2]
    try:
        return store.register_account(role, email, DEMO_PASSWORD, name, kind).id, True
    except EmailTaken:
        return store.authenticate(email, DEMO_PASSWORD).id, False


def _demo_apps_listed(store: AppStore) -> int:
    """How many demo apps the store has. Each run lists the next ones in sequence, so the
    listed ones are a prefix of it: an exponential, then binary, search over slug claims."""

    def claimed(n: int) -> bool:
        return slug_claim_id(v.slugify(demo_name(n))) in store.repository

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


def _new_app(store: AppStore, developer: UUID, n: int) -> tuple[AppListing, SlugClaim]:
    """The aggregates `list_app` would save for the n-th demo listing."""
    fields = validate_listing(demo_listing(n), partial=False)
    app = AppListing(
        developer_id=developer,
        details=fields,
        client_secret_hash=token_hash(new_token("cs_")),  # demo secrets are never shown
        listed_at=store.clock.now(),
    )
    return app, SlugClaim(slug=fields["slug"], app_id=app.id)


def _list_apps(
    store: AppStore,
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
        batch = [_new_app(store, developers[n % len(developers)], n) for n in numbers]
        try:
            store.save(*(aggregate for pair in batch for aggregate in pair))
            saved = [app.id for app, _ in batch]
        except IntegrityError:
            # A slug is taken (an app listed by hand). The failed save consumed the
            # aggregates' pending events: build them again and save them one by one.
            saved = []
            for n in numbers:
                app, claim = _new_app(store, developers[n % len(developers)], n)
                with contextlib.suppress(IntegrityError):
                    store.save(app, claim)
                    saved.append(app.id)
        listed += saved
        on_saved(len(saved))
    return listed


def _install_for(store: AppStore, seller: UUID, n: int, app_ids: list[UUID]) -> tuple[int, int]:
    """Installs a few apps for a new demo seller: active, cancelled, some with incidents."""
    rng = random.Random(n)
    installs = incidents = 0
    for app_id in rng.sample(app_ids, k=min(6, len(app_ids))):
        duration = rng.choice(store.app(app_id).durations)
        try:
            outcome = store.install(
                seller, app_id, duration, f"ops@shop{n + 1}.example.com", "+14155550199"
            )
            store.authorize(seller, outcome.id)
            installs += 1
            if rng.random() < 0.4:
                store.record_sync_event(
                    SyncEvent(
                        event_id=f"demo-{outcome.id}",
                        installation_id=outcome.id,
                        kind="failure",
                        area=rng.choice(["orders", "fulfillment", "inventory"]),
                        occurred_at=store.clock.now() - timedelta(minutes=rng.randint(1, 600)),
                        error_code=rng.choice(["RATE_LIMITED", "SKU_NOT_FOUND", "AUTH_EXPIRED"]),
                        message="The last sync did not complete; it will be retried.",
                        object_ids=[f"order-{rng.randint(1000, 9999)}"],
                    )
                )
                incidents += 1
            if rng.random() < 0.15:
                store.cancel(seller, outcome.id)
        except DomainError:
            continue
    return installs, incidents


def load_demo(store: AppStore, *, apps: int = 72, console: Console | None = None) -> str:
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
    return (
        f"demo loaded: {len(app_ids)} apps added ({start + len(app_ids)} demo apps in all),"
        f" {len(developers)} developers, {new_sellers} new sellers"
        f" (seller1@demo.example.com / {DEMO_PASSWORD}), {installs} installations,"
        f" {incidents} incidents"
    )
