"""The demo catalog's reviews: sellers who installed and authorized apps rate them, with a
realistic spread (each app has a quality its reviews scatter around; popular apps get more
reviews, a few get a single one), developers reply to some, other sellers mark some
helpful, so `sort=rating` and the detail pages' reviews show something.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from uuid import UUID

from application import installations, listings, reviews
from application.store import Store
from domain.errors import DomainError

# Reviewing sellers made by the demo (after the six sellers with incidents), and the apps
# they pick among: the first ones of the catalog (a 100k-app demo stays quick to load).
REVIEWERS = 24
REVIEWED_APPS = 72
WORDS = {
    5: [
        "Set up in ten minutes and it has run without a hitch since.",
        "Exactly what our shop needed. Support answered within the hour.",
        "Saves us hours every week; orders sync the moment they come in.",
    ],
    4: [
        "Works well. The settings took a while to find, but then it was fine.",
        "Good value. A couple of reports we would like are missing.",
        "Reliable sync. The dashboard could be faster with many orders.",
    ],
    3: [
        "Does the job, but the setup guide is out of date.",
        "Fine for small shops; it struggled when we ran a sale.",
    ],
    2: [
        "Sync failed twice in the first week and support was slow to answer.",
        "Too many manual steps for what it promises.",
    ],
    1: [
        "Orders went missing and we had to fix them by hand. Uninstalled.",
        "Could not connect our shop at all.",
    ],
}
REPLIES = {
    1: "Sorry to read this. We fixed the connection issue: please write to our support.",
    2: "Thanks for the honest feedback: the setup has fewer steps since our last release.",
    3: "Thank you! The guide is updated now.",
}


def _stars(rng: random.Random, quality: float) -> int:
    return max(1, min(5, round(rng.gauss(quality, 0.8))))


def review_apps(
    store: Store,
    account: Callable[[int], tuple[UUID, bool]],
    app_ids: list[UUID],
    on_reviewer: Callable[[], None],
) -> int:
    """Makes the demo reviewers (`account(n)` gives the n-th seller: id, created now) and,
    for each one created now, installs, authorizes and reviews a few apps; returns how
    many reviews were posted."""
    rng = random.Random(14)
    pool = app_ids[:REVIEWED_APPS]
    # Each app's quality (the stars its reviews scatter around) and popularity (how often
    # it is picked); the last few are picked rarely, so some apps have one review only.
    quality = {app_id: rng.choice([4.7, 4.5, 4.2, 3.9, 3.5, 2.8, 2.2]) for app_id in pool}
    weights = [1.0 / (1 + i % 12) for i in range(len(pool))]
    posted: list[tuple[UUID, UUID, UUID, int]] = []  # (seller, app, review, stars)
    sellers: list[UUID] = []
    for n in range(REVIEWERS):
        seller, created = account(7 + n)
        sellers.append(seller)
        if created and pool:
            chosen = set(rng.choices(pool, weights=weights, k=rng.randint(4, 9)))
            for app_id in chosen:
                try:
                    listing = listings.app(store, app_id)
                    outcome = installations.install(
                        store,
                        seller,
                        app_id,
                        listing.durations[0],
                        f"owner@shop{7 + n}.example.com",
                        "+14155550123",
                    )
                    installations.authorize(store, seller, outcome.id)
                    stars = _stars(rng, quality[app_id])
                    review = reviews.post(store, seller, app_id, stars, rng.choice(WORDS[stars])).id
                    posted.append((seller, app_id, review, stars))
                    if stars in REPLIES and rng.random() < 0.5:
                        reviews.reply(store, listing.developer_id, app_id, review, REPLIES[stars])
                except DomainError:
                    continue
        on_reviewer()
    for seller, app_id, review, _ in posted:
        for reader in rng.sample(sellers, k=rng.randint(0, 3)):
            if reader != seller:
                try:
                    reviews.mark_helpful(store, reader, app_id, review)
                except DomainError:
                    continue
    return len(posted)
