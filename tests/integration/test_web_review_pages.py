"""Ratings and reviews on the store's pages over HTTP (ASGI, no browser): ratings on cards
and the app's page, the review form only for a seller who used the app, errors by their
field, edit and delete, helpful once, sort and filter by rating. Chromium drives the same
pages in tests/browser/test_review_pages.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from html import unescape
from typing import Any
from uuid import UUID

import pytest
from starlette.applications import Starlette

from application import listings, reviews
from application.store import Store
from appstore.bootstrap import create_app
from appstore.settings import Settings
from domain.clock import FixedClock
from domain.review import Review, review_id
from tests import factories as f
from tests.integration.test_web_pages import Visitor, location, settle


@pytest.fixture
def asgi(settings: Settings, store: Store) -> Iterator[Starlette]:
    app = create_app(settings, store=store, consistency_timeout=5.0)
    yield app
    app.state.projector.engine.dispose()


@pytest.fixture
def visitors(asgi: Starlette, store: Store) -> Iterator[Any]:
    opened: list[Visitor] = []

    def visitor(account_id: UUID | None = None) -> Visitor:
        opened.append(Visitor(asgi, store))
        settle(asgi, store.head())
        return opened[-1].sign_in(account_id) if account_id else opened[-1]

    yield visitor
    for each in opened:
        each.close()


def text_of(page: Any) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", page.text)))


def test_only_a_seller_who_used_the_app_gets_the_review_form(visitors: Any, store: Store) -> None:
    app_id = f.app(store, name="Parcel Pilot")
    slug = listings.app(store, app_id).details["slug"]
    user, stranger = f.seller(store), f.seller(store)
    f.active_installation(store, user, app_id)

    anonymous = visitors().get(f"/apps/{slug}")
    assert "No reviews yet" in text_of(anonymous) and "to review an app" in text_of(anonymous)
    assert 'action="/apps/' + slug + '/review"' not in anonymous.text

    outsider = visitors(stranger)
    assert 'action="/apps/' + slug + '/review"' not in outsider.get(f"/apps/{slug}").text
    assert outsider.get(f"/apps/{slug}/review").status_code == 403
    refused = outsider.post(f"/apps/{slug}/review", rating="5", body="Great")
    assert refused.status_code == 403 and store.load(review_id(stranger, app_id), Review) is None

    seller = visitors(user)
    assert 'action="/apps/' + slug + '/review"' in seller.get(f"/apps/{slug}").text


def test_a_review_is_posted_with_errors_by_field_then_edited_and_deleted(
    visitors: Any, store: Store
) -> None:
    app_id = f.app(store, name="Parcel Pilot")
    slug = listings.app(store, app_id).details["slug"]
    user = f.seller(store)
    f.active_installation(store, user, app_id)
    seller = visitors(user)
    seller.get(f"/apps/{slug}")

    empty = seller.post(f"/apps/{slug}/review", rating="", body="")
    assert empty.status_code == 422 and 'id="rating-error"' in empty.text
    wordless = seller.post(f"/apps/{slug}/review", rating="4", body="   ")
    assert wordless.status_code == 422 and 'id="body-error"' in wordless.text
    assert "Your review must not be empty" in text_of(wordless)
    too_long = seller.post(f"/apps/{slug}/review", rating="4", body="x" * 2001)
    assert too_long.status_code == 422 and 'id="body-error"' in too_long.text
    assert store.load(review_id(user, app_id), Review) is None  # nothing half-written

    posted = seller.post(f"/apps/{slug}/review", rating="4", body="Labels print fast.")
    assert posted.status_code == 303 and location(posted).startswith(f"/apps/{slug}?done=posted")
    page = text_of(seller.get(location(posted)))
    assert "your review is posted" in page and "Labels print fast." in page
    assert "4.0 (1 review)" in page and "Update my review" in page

    edited = seller.post(f"/apps/{slug}/review", rating="2", body="Labels print slowly.")
    assert edited.status_code == 303
    page = text_of(seller.get(location(edited)))
    assert "2.0 (1 review)" in page and "Labels print slowly." in page
    assert [type(e).__name__ for e in store.events_of(review_id(user, app_id))][-1] == "Edited"

    deleted = seller.post(f"/apps/{slug}/review/delete")
    assert deleted.status_code == 303
    page = text_of(seller.get(location(deleted)))
    assert "Your review is deleted" in page and "No reviews yet" in page


def test_helpful_once_and_the_orders_of_the_reviews(
    visitors: Any, store: Store, clock: FixedClock
) -> None:
    app_id = f.app(store, name="Parcel Pilot")
    slug = listings.app(store, app_id).details["slug"]
    authors = [f.seller(store) for _ in range(3)]
    ids = []
    for n, author in enumerate(authors):
        f.active_installation(store, author, app_id)
        ids.append(reviews.post(store, author, app_id, 5 - n, f"Opinion number {n}").id)
        clock.advance(timedelta(minutes=1))  # posted one after the other
    reader = visitors(f.seller(store))
    reader.get(f"/apps/{slug}")
    marked = reader.post(f"/apps/{slug}/reviews/{ids[0]}/helpful")
    assert marked.status_code == 303 and location(marked).endswith(f"#review-{ids[0]}")
    again = reader.post(f"/apps/{slug}/reviews/{ids[0]}/helpful")
    assert again.status_code == 409
    author = visitors(authors[2])
    author.get(f"/apps/{slug}")
    assert author.post(f"/apps/{slug}/reviews/{ids[2]}/helpful").status_code == 403

    newest = text_of(reader.get(f"/apps/{slug}"))
    helpful = text_of(reader.get(f"/apps/{slug}?reviews=helpful"))
    assert newest.index("Opinion number 2") < newest.index("Opinion number 0")
    assert helpful.index("Opinion number 0") < helpful.index("Opinion number 2")
    assert "You found it helpful" in helpful and "1 found this helpful" in helpful


def test_cards_show_ratings_and_the_store_sorts_and_filters_by_them(
    visitors: Any, store: Store
) -> None:
    good, fair = f.app(store, name="Good Labels"), f.app(store, name="Fair Labels")
    for app_id, stars in ((good, 5), (good, 4), (fair, 3)):
        author = f.seller(store)
        f.active_installation(store, author, app_id)
        reviews.post(store, author, app_id, stars, "Opinion")
    browser = visitors()
    top = text_of(browser.get("/?sort=rating"))
    assert top.index("Good Labels") < top.index("Fair Labels")
    assert "4.5 (2 reviews)" in top and "3.0 (1 review)" in top
    filtered = text_of(browser.get("/?min_rating=4"))
    assert "Good Labels" in filtered and "Fair Labels" not in filtered
    assert "4 stars and up" in filtered
