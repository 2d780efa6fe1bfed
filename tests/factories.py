"""Builders of valid domain input, so each test states only what it is about."""

from __future__ import annotations

import itertools
from typing import Any
from uuid import UUID

from application import accounts, installations, listings
from application.store import Store

_counter = itertools.count(1)
PASSWORD = "correct horse battery staple"


def listing(**overrides: Any) -> dict[str, Any]:
    """A complete, valid app listing."""
    n = next(_counter)
    data: dict[str, Any] = {
        "name": f"Order Sync {n}",
        "tagline": "Keep orders in sync between your shops",
        "description": "Imports orders every minute and pushes tracking numbers back.",
        "benefits": ["Real-time order import", "Automatic tracking upload"],
        "categories": ["connectors"],
        "platforms": ["shopify", "amazon"],
        "media": [{"type": "image", "url": "https://cdn.example.com/shot.png"}],
        "compatibility": ["Shopify Basic and above"],
        "partner_url": "https://ordersync.example.com",
        "faqs": [{"question": "Is there a trial?", "answer": "Yes, 14 days."}],
        "contact": {"email": "support@ordersync.example.com", "phone": "+14155550100"},
        "scopes": ["orders.read", "fulfillment.write"],
        "redirect_uris": ["https://ordersync.example.com/oauth/callback"],
        "durations": ["30d", "90d", "180d", "365d", "unlimited"],
    }
    data.update(overrides)
    return data


def developer(store: Store) -> UUID:
    n = next(_counter)
    return accounts.register_account(
        store, "developer", f"dev{n}@example.com", PASSWORD, f"Dev {n}"
    ).id


def seller(store: Store, account_type: str = "local") -> UUID:
    n = next(_counter)
    return accounts.register_account(
        store, "seller", f"seller{n}@example.com", PASSWORD, f"Seller {n}", account_type
    ).id


def app(store: Store, developer_id: UUID | None = None, **overrides: Any) -> UUID:
    developer_id = developer_id or developer(store)
    return listings.list_app(store, developer_id, listing(**overrides)).id


def active_installation(store: Store, seller_id: UUID, app_id: UUID, duration: str = "30d") -> UUID:
    installation_id = installations.install(
        store, seller_id, app_id, duration, "ops@shop.example.com", "+14155550101"
    ).id
    installations.authorize(store, seller_id, installation_id)
    return installation_id
