"""Whole journeys in Chromium: a developer lists an app and a seller finds, installs, renews
and cancels it; an authorization link with sign-up; a sync failure becoming an incident the
seller acknowledges and resolves. axe and 375/1280 screenshots on every page on the way."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import pytest
from playwright.sync_api import expect

from application import accounts, installations, listings
from tests import factories as f
from tests.browser.support import (
    PASSWORD,
    LiveServer,
    Watch,
    check_page,
    follow,
    open_context,
    serving,
    sign_in,
    tab_to,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
_n = itertools.count(1)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A store of its own: the apps these journeys list stay out of the other tests' catalog."""
    with serving(tmp_path_factory.mktemp("journeys")) as server:
        yield server


@contextmanager
def browsing(browser: Any, live_server: LiveServer, watch: Watch) -> Iterator[Any]:
    """Another person's browser (its own cookies), watched like the `page` fixture's."""
    context = open_context(browser, live_server, watch)
    page = context.new_page()
    page.on("console", watch.console)
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    page.on("response", watch.response)
    try:
        yield page
    finally:
        context.close()


def menu(page: Any, name: str) -> Any:
    """A link of the header's main navigation."""
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def sign_up(page: Any, role: str, name: str, email: str) -> None:
    page.goto("/signup")
    page.get_by_label(re.compile("A developer" if role == "developer" else "A seller")).check()
    page.get_by_label("Shop or company name").fill(name)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    follow(page, page.get_by_role("button", name="Create account"))


def installation_id_of(page: Any) -> UUID:
    match = re.search(r"/my-apps/([0-9a-f-]{36})", page.url)
    assert match, page.url
    return UUID(match.group(1))


def when(moment: datetime) -> str:
    return moment.strftime("%d %B %Y, %H:%M UTC")


def list_an_app_in_the_console(page: Any, name: str) -> dict[str, str]:
    """The developer lists an app through the form; returns what the credentials page shows."""
    follow(page, menu(page, "Developer"))
    check_page(page, "developer-console-empty")
    follow(page, page.get_by_role("link", name="List a new app"))
    check_page(page, "developer-listing-form")

    # Sent half-filled: every wrong field says so next to itself, and what was typed stays.
    page.get_by_label("App name").fill(name)
    page.get_by_label("Partner website").fill("http://not-https.example.com")
    page.get_by_label("Redirect URIs").fill("https://parcel.example.com/cb#fragment")
    follow(page, page.get_by_role("button", name="List the app"))
    for field, text in [
        ("tagline", "must not be empty"),
        ("categories", "At least one category"),
        ("partner_url", "not an absolute https URL"),
        ("scopes", "At least one scope"),
        ("redirect_uris", "must not contain a fragment"),
        ("contact_email", "Enter the support e-mail"),
        ("contact_phone", "Enter the support phone"),
    ]:
        expect(page.locator(f"#{field}-error")).to_contain_text(text)
    assert page.locator("#name-error").count() == 0
    assert page.get_by_label("App name").input_value() == name
    check_page(page, "developer-listing-errors")

    page.get_by_label("Tagline").fill("Labels and tracking for every parcel")
    page.get_by_label("Description").fill("Prints labels.\n\nUploads tracking numbers.")
    page.get_by_label("Key benefits").fill("Cheaper labels\nTracking uploaded for you")
    page.get_by_label("Shipping and fulfillment").check()
    page.get_by_label("Etsy").check()
    page.get_by_label("Partner website").fill("https://parcel.example.com")
    page.get_by_label("Question 1").fill("Which carriers?")
    page.get_by_label("Answer 1").fill("All the big ones.")
    page.get_by_label("Support e-mail").fill("help@parcel.example.com")
    page.get_by_label("Support phone").fill("+14155550199")
    page.get_by_label(re.compile("^See your orders")).check()
    page.get_by_label(re.compile("^Ship orders and upload tracking")).check()
    page.get_by_label("Redirect URIs").fill("https://parcel.example.com/oauth/callback")
    follow(page, page.get_by_role("button", name="List the app"))

    expect(page.get_by_role("heading", level=1)).to_have_text(f"{name} is listed")
    shown = {
        "client_id": page.get_by_label("Client ID").input_value(),
        "client_secret": page.get_by_label("Client secret").input_value(),
        "link": page.get_by_label(re.compile("^Authorization link")).input_value(),
    }
    assert shown["client_secret"].startswith("cs_")
    check_page(page, "developer-credentials")
    follow(page, page.get_by_role("link", name=re.compile("I have copied it")))
    # Shown once: the app's page has the client id and the link, never the secret.
    assert shown["client_id"] in page.content() and shown["client_secret"] not in page.content()
    assert page.get_by_label(re.compile("^Link for")).input_value() == shown["link"]
    check_page(page, "developer-app")
    return shown


def test_a_listed_app_is_found_installed_renewed_and_cancelled(
    browser: Any, live_server: LiveServer, watch: Watch
) -> None:
    n = next(_n)
    name = f"Parcel Pilot {n}"
    with browsing(browser, live_server, watch) as developer:
        sign_up(developer, "developer", "Parcel Co", f"parcel{n}@example.com")
        listed = list_an_app_in_the_console(developer, name)
        link = urlsplit(listed["link"])
        assert link.path == "/oauth/authorize"
        assert parse_qs(link.query) == {
            "client_id": [listed["client_id"]],
            "response_type": ["code"],
            "redirect_uri": ["https://parcel.example.com/oauth/callback"],
        }

        with browsing(browser, live_server, watch) as page:
            sign_up(page, "seller", "Harbour Goods", f"harbour{n}@example.com")
            # browse → filter → search → detail
            page.get_by_label(re.compile(r"^Shipping and fulfillment \(\d+\)")).check()
            follow(page, page.get_by_role("button", name="Apply filters"))
            page.get_by_role("searchbox", name="Search apps").fill(name)
            page.get_by_role("searchbox", name="Search apps").press("Enter")
            page.wait_for_url(re.compile(r"q=Parcel"))
            follow(page, page.get_by_role("link", name=f"Learn more about {name}"))
            follow(page, page.get_by_role("link", name="Install now", exact=True))

            # Installation information: errors next to the field; the keyboard gets through.
            expect(page.get_by_role("heading", level=1)).to_have_text("Installation information")
            assert page.get_by_label("Contact e-mail").input_value() == f"harbour{n}@example.com"
            check_page(page, "install-info")
            page.get_by_label("Contact phone").fill("12")
            follow(page, page.get_by_role("button", name="Next"))
            expect(page.locator("#contact_phone-error")).to_contain_text("E.164")
            assert page.get_by_label("Contact phone").get_attribute("aria-invalid") == "true"
            check_page(page, "install-info-errors")
            page.get_by_label("Contact phone").fill("+14155550123")
            follow(page, page.get_by_label("Contact phone"), key="Enter")

            expect(page.get_by_role("heading", level=1)).to_have_text("Confirm the installation")
            expect(page.locator(".summary")).to_contain_text("30 days")
            check_page(page, "install-confirm")
            tab_to(page, "Confirm")
            follow(page, page.locator(":focus"), key="Enter")

            heading = "Review the authorization conditions"
            expect(page.get_by_role("heading", level=1)).to_have_text(heading)
            sees = page.locator("h2:text-is('It can see') + .scopes")
            changes = page.locator("h2:text-is('It can change') + .scopes")
            expect(sees).to_contain_text("See your orders, including buyer shipping addresses")
            expect(changes).to_contain_text("Ship orders and upload tracking numbers")
            check_page(page, "install-conditions")
            # Authorized, the seller goes on to the app with a one-time code for its
            # developer (the app's site is not reachable here: look at the request).
            callback = "https://parcel.example.com/oauth/callback"
            with page.expect_request(lambda r: r.url.startswith(callback)) as sent:
                page.get_by_role("button", name="Authorize", exact=True).click()
            assert sent.value.is_navigation_request()
            assert set(parse_qs(urlsplit(sent.value.url).query)) == {"code", "iss"}
            page.wait_for_url(re.compile("^chrome-error://"))  # unreachable here: it failed

            # My apps shows it active.
            page.goto("/my-apps")
            follow(page, page.locator(".row", has_text=name).get_by_role("link").first)
            installation_id = installation_id_of(page)
            expect(page.locator(".installation .badge")).to_have_text("Active")
            check_page(page, "my-app")
            follow(page, menu(page, "My apps"))
            row = page.locator(".row", has_text=name)
            expect(row).to_contain_text("Active")
            expect(row).to_contain_text("30 days left")
            check_page(page, "my-apps")
            follow(page, page.get_by_role("link", name=re.compile(r"^Expiring within 14 days")))
            expect(page.locator(".row", has_text=name)).to_have_count(0)

            # Renew: choose a duration, see the new expiry, confirm.
            follow(page, page.get_by_role("link", name="All (", exact=False))
            follow(page, page.locator(".row", has_text=name).get_by_role("link", name="Renew"))
            old_expiry = installations.installation(live_server.store, installation_id).expires_at
            assert old_expiry is not None
            new_expiry = old_expiry + timedelta(days=365)
            choice = page.get_by_label(re.compile(r"^1 year"))
            expect(choice.locator("xpath=following-sibling::label")).to_contain_text(
                new_expiry.strftime("until %d %B %Y")
            )
            check_page(page, "my-app-renew")
            choice.check()
            follow(page, page.get_by_role("button", name="Review the renewal"))
            expect(page.locator(".summary")).to_contain_text(when(new_expiry))
            check_page(page, "my-app-renew-confirm")
            follow(page, page.get_by_role("button", name=f"Renew {name}"))
            expect(page.get_by_role("status")).to_contain_text(f"{name} is renewed")
            renewed = installations.installation(live_server.store, installation_id)
            assert renewed.expires_at == new_expiry

            # Cancel, behind a page that says what it does.
            follow(page, page.get_by_role("link", name="Cancel", exact=True))
            warning = page.locator(".warning")
            expect(warning).to_contain_text("Access stops at once")
            expect(warning).to_contain_text("The developer loses access")
            check_page(page, "my-app-cancel")
            follow(page, page.get_by_role("button", name=f"Cancel {name} now"))
            expect(page.locator(".installation .badge")).to_have_text("Cancelled")
            assert page.get_by_role("link", name="Renew").count() == 0
            follow(page, menu(page, "My apps"))
            follow(page, page.get_by_role("link", name=re.compile(r"^Cancelled")))
            expect(page.locator(".row", has_text=name)).to_contain_text("Cancelled")
            check_page(page, "my-apps-cancelled")

        # The developer console shows it cancelled, without the seller's data.
        follow(developer, developer.get_by_role("link", name="Installations", exact=True))
        row = developer.locator(".row", has_text=name)
        expect(row).to_contain_text("Cancelled")
        expect(row).to_contain_text("seller data removed")
        assert f"harbour{n}@example.com" not in row.inner_text()
        check_page(developer, "developer-installations")


REDIRECT = "https://connector.example.com/oauth/callback"


def test_an_authorization_link_signs_up_a_seller_and_a_sync_failure_becomes_an_incident(
    browser: Any, live_server: LiveServer, watch: Watch
) -> None:
    n = next(_n)
    store = live_server.store
    developer_email = f"links{n}@example.com"
    developer_id = accounts.register_account(
        store, "developer", developer_email, PASSWORD, "Link Co"
    ).id
    listing = f.listing(name=f"Stock Relay {n}", redirect_uris=[REDIRECT])
    listed = listings.list_app(store, developer_id, listing)
    live_server.settle(listed.position)

    with browsing(browser, live_server, watch) as developer:
        sign_in(developer, developer_email)
        developer.goto(f"/developer/apps/{listed.id}")
        link = developer.get_by_label(re.compile("^Link for")).input_value()

        with browsing(browser, live_server, watch) as page:
            # The connector's callback is not reachable: answer it here and look at the request.
            page.route(
                f"{REDIRECT}**",
                lambda route: route.fulfill(
                    status=200, content_type="text/html", body="<!doctype html><title>cb</title>"
                ),
            )
            page.goto(f"{link}&state=st-{n}")
            expect(page.get_by_role("heading", level=1)).to_have_text(
                f"Log in to authorize Stock Relay {n}"
            )
            assert page.get_by_role("searchbox").count() == 0  # a focused page
            check_page(page, "oauth-login")
            follow(page, page.get_by_role("button", name="Sign up"))
            check_page(page, "oauth-signup")
            email = f"relay-shop{n}@example.com"
            page.get_by_label("Select your account type").select_option("cross_border")
            page.get_by_label("Shop or your name").fill("Relay Shop")
            page.get_by_label("E-mail").fill(email)
            page.get_by_label("Password").fill("short")
            follow(page, page.get_by_role("button", name="Sign up and continue"))
            expect(page.locator("#password-error")).to_contain_text("at least 10 characters")
            page.get_by_label("Password").fill(PASSWORD)
            follow(page, page.get_by_role("button", name="Sign up and continue"))

            expect(page.get_by_role("heading", level=1)).to_have_text("Installation information")
            check_page(page, "oauth-info")
            page.get_by_label(re.compile(r"^90 days")).check()
            page.get_by_label("Contact phone").fill("+14155550177")
            follow(page, page.get_by_role("button", name="Next"))
            follow(page, page.get_by_role("button", name="Confirm"))
            check_page(page, "oauth-conditions")
            with page.expect_request(lambda r: r.url.startswith(REDIRECT)) as sent:
                page.get_by_role("button", name="Authorize", exact=True).click()
            assert sent.value.is_navigation_request()
            answer = parse_qs(urlsplit(sent.value.url).query)
            assert answer["state"] == [f"st-{n}"] and answer["iss"] == [live_server.url]

            token = page.request.post(
                f"{live_server.url}/oauth/token",
                form={
                    "grant_type": "authorization_code",
                    "code": answer["code"][0],
                    "redirect_uri": REDIRECT,
                    "client_id": listed.client_id,
                    "client_secret": listed.client_secret,
                },
            )
            assert token.status == 200, token.text()
            granted = token.json()

            def report(event_id: str, object_ids: list[str]) -> None:
                sent = page.request.post(
                    f"{live_server.url}/v1/sync-events",
                    headers={"Authorization": f"Bearer {granted['access_token']}"},
                    data={
                        "event_id": event_id,
                        "installation_id": granted["installation_id"],
                        "kind": "failure",
                        "area": "orders",
                        "error_code": "SKU_NOT_FOUND",
                        "message": "3 orders reference unknown SKUs",
                        "object_ids": object_ids,
                        "occurred_at": datetime.now(UTC).isoformat(),
                    },
                )
                assert sent.status == 202, sent.text()

            report(f"run-{n}-1", ["order-1001", "order-1002"])

            # The seller sees it in My apps (the store's own sign-in).
            page.goto("/signin")
            sign_in(page, email)
            follow(page, menu(page, "My apps"))
            row = page.locator(".row", has_text=f"Stock Relay {n}")
            expect(row).to_contain_text("1 unresolved incident")
            follow(page, row.get_by_role("link", name=re.compile("1 unresolved incident")))
            incident = page.locator(".incident")
            expect(incident).to_contain_text("Orders: SKU_NOT_FOUND")
            expect(incident).to_contain_text("3 orders reference unknown SKUs")
            expect(incident).to_contain_text("order-1002")
            expect(incident.locator(".badge")).to_have_text("Open")
            report(f"run-{n}-2", ["order-1003"])
            page.reload()
            expect(incident).to_contain_text("Seen 2 times")
            expect(incident).to_contain_text("order-1003")
            check_page(page, "my-app-incident")

            follow(page, incident.get_by_role("button", name=re.compile("^Acknowledge")))
            expect(page.get_by_role("status")).to_contain_text("acknowledged")
            expect(incident.locator(".badge")).to_have_text("Acknowledged")
            follow(page, incident.get_by_role("button", name=re.compile("^Resolve")))
            expect(incident.locator(".badge")).to_have_text("Resolved")
            assert incident.get_by_role("button").count() == 0
            follow(page, menu(page, "My apps"))
            expect(page.locator(".row", has_text=f"Stock Relay {n}")).not_to_contain_text(
                "unresolved"
            )

        follow(developer, developer.get_by_role("link", name="Incidents", exact=True))
        seen = developer.locator(".incident", has_text=f"Stock Relay {n}")
        expect(seen).to_contain_text("SKU_NOT_FOUND")
        expect(seen.locator(".badge")).to_have_text("Resolved")
        assert email not in seen.inner_text()
        check_page(developer, "developer-incidents")


def test_install_now_from_search_results_goes_straight_to_authorization(
    page: Any, live_server: LiveServer
) -> None:
    n = next(_n)
    email = f"quick{n}@example.com"
    accounts.register_account(live_server.store, "seller", email, PASSWORD, "Quick Shop")
    name = f"Quick Label {n}"
    listed = listings.list_app(
        live_server.store, f.developer(live_server.store), f.listing(name=name)
    )
    live_server.settle(listed.position)
    page.goto(f"/?q={name}")
    follow(page, page.get_by_role("link", name=re.compile(f"^Install now.*{name}$")))
    assert urlsplit(page.url).path == "/signin"  # signed out: sign in first, then come back
    sign_in(page, email)

    expect(page.get_by_role("heading", level=1)).to_have_text("Review the authorization conditions")
    unlimited = page.get_by_label(re.compile(r"^Unlimited"))
    expect(unlimited).to_be_checked()
    expect(unlimited.locator("xpath=following-sibling::label")).to_contain_text("never expires")
    assert page.get_by_label("Contact e-mail").input_value() == email
    check_page(page, "install-quick")
    follow(page, page.get_by_role("button", name="Authorize", exact=True))
    expect(page.locator("#contact_phone-error")).to_contain_text("phone number")
    check_page(page, "install-quick-errors")
    page.get_by_label("Contact phone").fill("+14155550111")
    callback = f.listing()["redirect_uris"][0]
    with page.expect_request(lambda r: r.url.startswith(callback)) as sent:
        page.get_by_role("button", name="Authorize", exact=True).click()
    assert set(parse_qs(urlsplit(sent.value.url).query)) == {"code", "iss"}  # on to the app
    page.wait_for_url(re.compile("^chrome-error://"))  # unreachable here: it failed

    page.goto("/my-apps")
    follow(page, page.locator(".row", has_text=name).get_by_role("link").first)
    expect(page.locator(".installation .badge")).to_have_text("Active")
    expect(page.locator(".summary")).to_contain_text("Never (until you cancel)")
    assert page.get_by_role("link", name="Renew").count() == 0  # unlimited never expires

    # Installing it again is told it is active, with the way to My apps.
    page.goto(f"/?q={name}")
    follow(page, page.get_by_role("link", name=re.compile(f"^Install now.*{name}$")))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"{name} is already active in your shop"
    )
    check_page(page, "install-already")
    follow(page, page.get_by_role("link", name=f"Open {name} in My apps"))
    expect(page.locator(".installation h1")).to_have_text(name)


def test_each_role_is_refused_the_others_pages(page: Any, live_server: LiveServer) -> None:
    n = next(_n)
    email = f"refused{n}@example.com"
    accounts.register_account(live_server.store, "developer", email, PASSWORD, "Dev")
    sign_in(page, email)
    response = page.goto("/my-apps")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("My apps is not for this account")
    check_page(page, "refused")
    assert page.get_by_role("link", name="My apps").count() == 0
    follow(page, page.get_by_role("link", name="Developer console"))
    assert urlsplit(page.url).path == "/developer"
