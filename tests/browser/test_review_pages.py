"""Ratings and reviews in Chromium: stars on the cards of the Top rated sort and the
minimum rating filter, the app's page with its reviews in both orders, and a seller who
used an app writing a review (errors by their field first), then editing it. axe and
375/1280 screenshots on every page on the way."""

from __future__ import annotations

import itertools
import re
from typing import Any
from uuid import UUID

import pytest
from playwright.sync_api import expect

from application import accounts, installations, listings
from tests.browser.support import PASSWORD, LiveServer, check_page, follow, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]
_n = itertools.count(1)


def ratings_of(page: Any) -> list[float]:
    """The averages the cards show, in order (cards without reviews left out)."""
    texts = page.locator(".cards .card .rating__average").all_inner_texts()
    return [float(t) for t in texts]


def test_top_rated_and_a_minimum_rating_show_stars_on_the_cards(page: Any) -> None:
    page.goto("/")
    page.get_by_label("Sort by").select_option("rating")
    follow(page, page.get_by_role("button", name="Sort", exact=True))
    first = page.locator(".cards .card").first
    expect(first.locator(".rating__count")).to_contain_text(re.compile(r"\(\d+ reviews?\)"))
    assert len(ratings_of(page)) >= 10
    check_page(page, "home-top-rated")

    page.get_by_label("4 stars and up").check()
    follow(page, page.get_by_role("button", name="Apply filters"))
    shown = ratings_of(page)
    assert shown and min(shown) >= 4.0
    assert page.locator(".cards .card .rating__none").count() == 0
    expect(page.get_by_role("list", name="Active filters")).to_contain_text("4 stars and up")
    check_page(page, "home-min-rating")

    # The best ranked app: its stars, the breakdown, the reviews in both orders.
    follow(
        page, page.locator(".cards .card").first.get_by_role("link", name=re.compile("^Learn more"))
    )
    expect(page.locator(".detail__meta.rating")).to_contain_text("reviews")
    reviews = page.get_by_role("region", name="Ratings and reviews")
    expect(reviews.get_by_role("table", name="Reviews by number of stars")).to_be_visible()
    assert page.locator(".review").count() >= 2
    check_page(page, "app-reviews")
    follow(
        page,
        page.get_by_role("navigation", name="Order of reviews").get_by_role(
            "link", name="Most helpful"
        ),
    )
    counts = [int(t.split()[0]) for t in page.locator(".review__foot > span").all_inner_texts()]
    assert counts == sorted(counts, reverse=True)
    check_page(page, "app-reviews-helpful")


def test_a_seller_who_used_an_app_reviews_it_then_edits_the_review(
    page: Any, live_server: LiveServer
) -> None:
    store = live_server.store
    email = f"reviewer{next(_n)}@example.com"
    seller = accounts.register_account(store, "seller", email, PASSWORD, "Review Shop", "local").id
    app_id = _an_app(live_server)
    installed = installations.install(
        store, seller, app_id, listings.app(store, app_id).durations[0], email, "+14155550100"
    )
    live_server.settle(installations.authorize(store, seller, installed.id).position)
    slug = listings.app(store, app_id).details["slug"]

    page.goto(f"/apps/{slug}")
    sign_in(page, email)
    page.goto(f"/apps/{slug}#reviews")
    form = page.get_by_role("region", name="Ratings and reviews")
    follow(page, form.get_by_role("button", name="Post my review"))
    expect(page.locator("#rating-error")).to_contain_text("from 1 to 5")
    check_page(page, "review-errors")

    page.get_by_label("4 stars").check()
    page.get_by_label("Your review").fill("Set up in minutes.\nSupport answered the same day.")
    follow(page, page.get_by_role("button", name="Post my review"))
    expect(page.get_by_role("status")).to_contain_text("your review is posted")
    mine = page.locator(".review", has_text="Set up in minutes.")
    expect(mine).to_contain_text("Review Shop")
    check_page(page, "app-review-posted")

    page.get_by_label("5 stars").check()
    follow(page, page.get_by_role("button", name="Update my review"))
    expect(page.get_by_role("status")).to_contain_text("Your review is updated")
    expect(mine.locator(".review__stars")).to_contain_text("Rated 5 out of 5")


def _an_app(live_server: LiveServer) -> UUID:
    """A demo app (the last one listed); a new review is the newest, so it shows first."""
    notifications = live_server.store.notifications(1, live_server.store.head())
    listed = [n.originator_id for n in notifications if n.topic.endswith("AppListing.Listed")]
    return listed[-1]
