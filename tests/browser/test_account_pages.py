"""Sign up, sign in and sign out in Chromium: sessions, cookies, CSRF, errors by the field."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from application import accounts
from domain.errors import InvalidCredentials
from tests.browser.support import PASSWORD, LiveServer, check_page, follow

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]
_n = itertools.count(1)


def cookie(page: Any, name: str) -> dict[str, Any]:
    found = [c for c in page.context.cookies() if c["name"] == name]
    assert found, f"no {name} cookie"
    return dict(found[0])


def test_sign_up_as_a_cross_border_seller_then_sign_out(page: Any, live_server: LiveServer) -> None:
    email = f"new-shop{next(_n)}@example.com"
    page.goto("/")
    follow(page, page.get_by_role("link", name="Sign up"))
    check_page(page, "signup")
    page.get_by_label("A seller: I install apps for my shop").check()
    page.get_by_label("Cross-border seller").check()
    page.get_by_label("Shop or company name").fill("Harbour Goods")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    follow(page, page.get_by_role("button", name="Create account"))

    page.wait_for_url(re.compile(r"/$"))
    expect(page.get_by_text("Signed in as Harbour Goods")).to_be_visible()
    account = accounts.authenticate(live_server.store, email, PASSWORD)
    assert (account.role, account.account_type) == ("seller", "cross_border")
    session = cookie(page, "appstore_session")
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert cookie(page, "appstore_csrf")["httpOnly"]
    assert accounts.session_for(live_server.store, session["value"]) is not None

    follow(page, page.get_by_role("button", name="Sign out"))
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    assert "appstore_session" not in [c["name"] for c in page.context.cookies()]
    # Signing out ended the session itself, not only the cookie.
    assert accounts.session_for(live_server.store, session["value"]) is None


def test_a_bad_sign_up_shows_each_error_next_to_its_field(
    page: Any, live_server: LiveServer
) -> None:
    page.goto("/signup")
    page.get_by_label("Shop or company name").fill("Tiny Shop")
    page.get_by_label("E-mail").fill("tiny@example.com")
    page.get_by_label("Password").fill("short")
    follow(page, page.get_by_role("button", name="Create account"))

    password = page.get_by_label("Password")
    assert password.get_attribute("aria-invalid") == "true"
    error = page.locator("#password-error")
    assert "at least 10 characters" in error.inner_text()
    assert "password-error" in (password.get_attribute("aria-describedby") or "")
    # The error sits in the password field's group, and what was typed is kept.
    assert page.locator(".field--error #password").count() == 1
    assert page.get_by_label("Shop or company name").input_value() == "Tiny Shop"
    assert page.get_by_label("E-mail").input_value() == "tiny@example.com"
    summary = page.get_by_role("alert")
    summary.get_by_role("link").click()
    assert page.evaluate("document.activeElement.id") == "password"
    check_page(page, "signup-errors")

    page.get_by_label("E-mail").fill("not-an-address")
    page.get_by_label("Password").fill(PASSWORD)
    follow(page, page.get_by_role("button", name="Create account"))
    assert page.get_by_label("E-mail").get_attribute("aria-invalid") == "true"
    assert "not a valid e-mail address" in page.locator("#email-error").inner_text()
    assert page.locator("#password-error").count() == 0

    accounts.register_account(live_server.store, "seller", "taken@example.com", PASSWORD, "Taken")
    page.get_by_label("E-mail").fill("taken@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    follow(page, page.get_by_role("button", name="Create account"))
    assert "already has an account" in page.locator("#email-error").inner_text()
    with pytest.raises(InvalidCredentials):
        accounts.authenticate(live_server.store, "tiny@example.com", "short")


def test_a_wrong_password_is_told_next_to_the_field(page: Any) -> None:
    page.goto("/signin")
    check_page(page, "signin")
    page.get_by_label("E-mail").fill("seller1@demo.example.com")
    page.get_by_label("Password").fill("not the password")
    follow(page, page.get_by_role("button", name="Sign in"))
    assert "is wrong" in page.locator("#password-error").inner_text()
    assert page.get_by_label("E-mail").input_value() == "seller1@demo.example.com"
    check_page(page, "signin-error")

    page.get_by_label("Password").fill(PASSWORD)
    follow(page, page.get_by_role("button", name="Sign in"))
    expect(page.get_by_text("Signed in as Demo Shop 1")).to_be_visible()


def test_sign_in_returns_to_the_page_it_was_asked_from(page: Any) -> None:
    page.goto("/?sort=name&page=2")
    follow(page, page.get_by_role("link", name="Sign in"))
    page.get_by_label("E-mail").fill("seller2@demo.example.com")
    page.get_by_label("Password").fill(PASSWORD)
    follow(page, page.get_by_role("button", name="Sign in"))
    assert page.url.endswith("/?sort=name&page=2")


def test_a_form_without_its_csrf_token_is_refused(page: Any, live_server: LiveServer) -> None:
    page.goto("/signin")
    page.evaluate("document.querySelector('input[name=csrf_token]').remove()")
    page.get_by_label("E-mail").fill("seller1@demo.example.com")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_response(re.compile(r"/signin$")) as answer:
        follow(page, page.get_by_role("button", name="Sign in"))
    assert answer.value.status == 403
    expect(page.get_by_role("heading", name="This form has expired")).to_be_visible()
    assert "appstore_session" not in [c["name"] for c in page.context.cookies()]
    # Another site's form (no cookie, no token) is refused too.
    response = page.request.post(f"{live_server.url}/signout", form={"x": "1"})
    assert response.status == 403
