"""A realistic demo catalog: developers, at least 60 apps over every category and platform,
sellers with installations in every state, and a few sync incidents."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.progress import Progress

from application import accounts, installations, listings, sync_events
from application.store import Store
from domain import values as v
from domain.errors import DomainError
from domain.incident import SyncEvent

DEMO_PASSWORD = "demo-password-123"

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


def demo_listings(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """`count` listings covering every category and platform at least once."""
    rng = random.Random(seed)
    categories, platforms = list(v.CATEGORIES), list(v.PLATFORMS)
    names: set[str] = set()
    out = []
    for n in range(count):
        category = categories[n % len(categories)]
        platform = platforms[n % len(platforms)]
        kind = _KINDS[category]
        while True:
            name = f"{rng.choice(_BRANDS)}{rng.choice(_SUFFIXES)}"
            if name not in names:
                names.add(name)
                break
        extra_platforms = rng.sample(platforms, k=rng.randint(0, 3))
        extra_category = rng.choice(categories)
        domain = f"{name.lower()}.example.com"
        out.append(
            {
                "name": name,
                "tagline": kind["tagline"].format(platform=v.PLATFORMS[platform], name=name),
                "description": kind["description"].format(
                    platform=v.PLATFORMS[platform], name=name
                ),
                "benefits": kind["benefits"],
                "categories": list(dict.fromkeys([category, extra_category])),
                "platforms": list(dict.fromkeys([platform, *extra_platforms])),
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
                "durations": ["30d", "90d", "180d", "365d", "unlimited"]
                if n % 4
                else ["30d", "365d"],
            }
        )
    return out


def load_demo(store: Store, *, apps: int = 72, console: Console | None = None) -> str:
    """Loads the demo data into `store`; returns a one-line summary."""
    catalog = demo_listings(apps)
    developers: list[UUID] = []
    app_ids: list[UUID] = []
    sellers: list[UUID] = []
    installs = incidents = 0
    with Progress(console=console or Console(stderr=True), transient=False) as progress:
        task = progress.add_task("demo catalog", total=apps + 12)
        for n in range(6):
            developers.append(
                accounts.register_account(
                    store,
                    "developer",
                    f"developer{n + 1}@demo.example.com",
                    DEMO_PASSWORD,
                    f"Developer {n + 1}",
                ).id
            )
            progress.advance(task)
        for n, listing in enumerate(catalog):
            app_ids.append(listings.list_app(store, developers[n % len(developers)], listing).id)
            progress.advance(task)
        for n in range(6):
            sellers.append(
                accounts.register_account(
                    store,
                    "seller",
                    f"seller{n + 1}@demo.example.com",
                    DEMO_PASSWORD,
                    f"Demo Shop {n + 1}",
                    "cross_border" if n % 2 else "local",
                ).id
            )
            rng = random.Random(n)
            for app_id in rng.sample(app_ids, k=min(6, len(app_ids))):
                duration = rng.choice(listings.app(store, app_id).durations)
                try:
                    outcome = installations.install(
                        store,
                        sellers[-1],
                        app_id,
                        duration,
                        f"ops@shop{n + 1}.example.com",
                        "+14155550199",
                    )
                    installations.authorize(store, sellers[-1], outcome.id)
                    installs += 1
                    if rng.random() < 0.4:
                        sync_events.record_sync_event(
                            store,
                            SyncEvent(
                                event_id=f"demo-{outcome.id}",
                                installation_id=outcome.id,
                                kind="failure",
                                area=rng.choice(["orders", "fulfillment", "inventory"]),
                                occurred_at=store.clock.now()
                                - timedelta(minutes=rng.randint(1, 600)),
                                error_code=rng.choice(
                                    ["RATE_LIMITED", "SKU_NOT_FOUND", "AUTH_EXPIRED"]
                                ),
                                message="The last sync did not complete; it will be retried.",
                                object_ids=[f"order-{rng.randint(1000, 9999)}"],
                            ),
                        )
                        incidents += 1
                    if rng.random() < 0.15:
                        installations.cancel(store, sellers[-1], outcome.id)
                except DomainError:
                    continue
            progress.advance(task)
    return (
        f"demo loaded: {len(developers)} developers, {len(app_ids)} apps, {len(sellers)} sellers "
        f"(seller1@demo.example.com / {DEMO_PASSWORD}), {installs} installations, {incidents} incidents"
    )
