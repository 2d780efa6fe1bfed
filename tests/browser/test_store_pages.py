"""The store's pages in Chromium: browse, filter, search, sort, pages, detail, recently viewed."""

from __future__ import annotations

import itertools
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from application import accounts
from tests.browser.support import (
    PASSWORD,
    LiveServer,
    Watch,
    check_page,
    follow,
    open_context,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]
_n = itertools.count(1)


def query_of(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def card_titles(page: Any) -> list[str]:
    return [t.strip() for t in page.locator(".cards .card__title").all_inner_texts()]


def new_seller(live_server: LiveServer) -> str:
    email = f"browser-seller{next(_n)}@example.com"
    accounts.register_account(live_server.store, "seller", email, PASSWORD, "Browser Shop", "local")
    return email


def test_browse_filter_search_sort_paginate_and_open_an_app(page: Any) -> None:
    page.goto("/")
    heading = page.get_by_role("heading", level=1)
    assert re.match(r"72 apps", heading.inner_text())
    assert len(card_titles(page)) == 24
    check_page(page, "home")

    # Filter by category: the left-hand filters, applied with their button.
    page.get_by_label(re.compile(r"^Shipping and fulfillment \(\d+\)")).check()
    follow(page, page.get_by_role("button", name="Apply filters"))
    assert query_of(page)["category"] == ["shipping-fulfillment"]
    filtered = int(heading.inner_text().split()[0])
    assert 0 < filtered < 72
    for card in page.locator(".cards .card").all_inner_texts():
        assert "Shipping and fulfillment" in card
    check_page(page, "home-filtered")

    # Search from the top bar, within the filter; then sort by newest.
    page.get_by_role("searchbox", name="Search apps").fill("ship")
    page.get_by_role("searchbox", name="Search apps").press("Enter")
    page.wait_for_url(re.compile(r"q=ship"))
    assert query_of(page)["category"] == ["shipping-fulfillment"]
    assert "for “ship”" in heading.inner_text()
    assert page.get_by_label("Sort by").input_value() == "relevant"
    page.get_by_label("Sort by").select_option("name")
    follow(page, page.get_by_role("button", name="Sort", exact=True))
    assert query_of(page)["sort"] == ["name"]
    titles = card_titles(page)
    assert titles == sorted(titles, key=str.casefold)

    # A shared URL shows the same page; removing the filter chip keeps the search.
    shared = page.url
    page.goto(shared)
    assert card_titles(page) == titles
    follow(page, page.get_by_role("link", name=re.compile("Shipping and fulfillment.*remove")))
    assert "category" not in query_of(page) and query_of(page)["q"] == ["ship"]

    # Pages: next, then page 3 by number.
    page.goto("/?sort=name")
    first = card_titles(page)
    follow(page, page.get_by_role("link", name="Next page"))
    assert query_of(page)["page"] == ["2"]
    second = card_titles(page)
    assert second and not set(first) & set(second)
    assert first + second == sorted(first + second, key=str.casefold)
    follow(page, page.get_by_role("link", name="Page 3", exact=True))
    assert page.get_by_role("link", name="Page 3", exact=True).get_attribute("aria-current")
    assert "Next page" not in page.locator(".pagination").inner_text()

    # Learn more opens the detail page.
    name = card_titles(page)[0]
    follow(page, page.get_by_role("link", name=f"Learn more about {name}"))
    assert page.get_by_role("heading", level=1).inner_text() == name


def test_app_detail_shows_everything_a_seller_needs(page: Any, live_server: LiveServer) -> None:
    page.goto("/?sort=name")
    name = card_titles(page)[0]
    follow(page, page.get_by_role("link", name=f"Learn more about {name}"))
    slug = urlsplit(page.url).path.rsplit("/", 1)[-1]
    for section in ("Media", "Description", "Key benefits", "FAQs", "Compatibility"):
        expect(page.get_by_role("heading", name=section, exact=True)).to_be_visible()
    assert page.locator("video[controls]").count() == 1
    mailto = page.get_by_role("link", name="Contact developer").first.get_attribute("href")
    assert mailto and mailto.startswith("mailto:")
    assert page.locator('a[href^="tel:+"]').count() == 1
    assert page.get_by_role("link", name=re.compile("^Partner website")).count() == 1
    assert page.locator("#related-title + .cards .card").count() > 0

    # FAQs expand (keyboard too).
    faq = page.locator("details.faq").first
    answer = faq.locator("p")
    expect(answer).to_be_hidden()
    faq.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(answer).to_be_visible()
    check_page(page, "app-detail")

    # Installing needs a seller: sign in first, then back to the install steps.
    follow(page, page.get_by_role("link", name="Install now", exact=True))
    assert urlsplit(page.url).path == "/signin"
    assert query_of(page)["next"] == [f"/apps/{slug}/install"]
    sign_in(page, new_seller(live_server))
    assert urlsplit(page.url).path == f"/apps/{slug}/install"
    expect(page.get_by_role("heading", level=1)).to_have_text("Installation information")


def test_a_signed_in_seller_sees_recently_viewed_apps(page: Any, live_server: LiveServer) -> None:
    page.goto("/?sort=name")
    first, second = card_titles(page)[:2]
    follow(page, page.get_by_role("link", name=f"Learn more about {first}"))
    assert page.get_by_role("heading", name="Recently viewed").count() == 0
    expect(page.get_by_text("to see the apps you viewed recently")).to_be_visible()

    sign_in(page, new_seller(live_server))
    page.goto("/?sort=name")
    follow(page, page.get_by_role("link", name=f"Learn more about {first}"))
    page.go_back()
    follow(page, page.get_by_role("link", name=f"Learn more about {second}"))
    recent = page.locator("#recent-title + .cards .card__title").all_inner_texts()
    assert recent == [first]
    check_page(page, "app-detail-signed-in")


def test_the_keyboard_reaches_the_content_first(page: Any) -> None:
    page.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.closest('main') !== null")
    assert focused


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("home-search-empty", "/?q=zzzzqqq"),
        ("home-bad-query", "/?category=nope&page=x&sort=upside-down"),
        ("not-found", "/apps/no-such-app"),
    ],
)
def test_odd_addresses_still_give_a_readable_page(page: Any, name: str, url: str) -> None:
    response = page.goto(url)
    assert response is not None
    assert response.status in (200, 404)
    check_page(page, name)


def test_the_pages_work_without_javascript(
    browser: Any, live_server: LiveServer, watch: Watch
) -> None:
    context = open_context(browser, live_server, watch, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/")
        page.get_by_label(re.compile(r"^Etsy \(\d+\)")).check()
        follow(page, page.get_by_role("button", name="Apply filters"))
        assert query_of(page)["platform"] == ["etsy"]
        page.get_by_label("Sort by").select_option("new")
        follow(page, page.get_by_role("button", name="Sort", exact=True))
        assert query_of(page) == {"platform": ["etsy"], "sort": ["new"]}
        sign_in(page, new_seller(live_server))
        expect(page.get_by_text("Signed in as")).to_be_visible()
        follow(page, page.get_by_role("button", name="Sign out"))
        expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    finally:
        context.close()
    assert not watch.offsite


def test_filters_fold_away_on_a_phone(page: Any) -> None:
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto("/")
    etsy = page.get_by_label(re.compile(r"^Etsy \(\d+\)"))
    expect(etsy).to_be_hidden()
    page.get_by_text("Filters", exact=True).click()
    etsy.check()
    follow(page, page.get_by_role("button", name="Apply filters"))
    assert query_of(page)["platform"] == ["etsy"]
    expect(page.locator("summary")).to_have_text("Filters (1 selected)")
    page.set_viewport_size({"width": 1280, "height": 800})
    expect(page.get_by_label(re.compile(r"^Amazon \(\d+\)"))).to_be_visible()
