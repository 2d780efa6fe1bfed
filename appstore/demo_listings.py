"""The demo catalog's listings: realistic names, taglines, descriptions, benefits and
scopes for every category and platform, the same for the same number."""

from __future__ import annotations

import random
from typing import Any

from domain import values as v

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
