"""The developer console's listing form: the listing fields of domain/app_listing.py as
form fields, and back.

Lists are one item a line (benefits, compatibility, image and video URLs, redirect URIs);
FAQs are question/answer pairs; categories, platforms, scopes and durations are checkboxes.
Each field is checked alone by the domain's own `validate_listing`, so every wrong field
gets its error next to it at once, with the domain's words.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from domain import values as v
from domain.app_listing import LISTING_FIELDS, validate_listing
from domain.errors import InvalidInput
from web.forms import Form, field_errors

EMPTY_FAQS = 2
LABELS = {
    "name": "App name",
    "slug": "Address (slug)",
    "tagline": "Tagline",
    "description": "Description",
    "benefits": "Key benefits",
    "categories": "Categories",
    "platforms": "Platforms",
    "media": "Media",
    "compatibility": "Compatibility",
    "partner_url": "Partner website",
    "faqs": "FAQs",
    "contact_email": "Support e-mail",
    "contact_phone": "Support phone",
    "scopes": "Scopes",
    "redirect_uris": "Redirect URIs",
    "durations": "Durations offered",
}


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def listing_of(form: Form) -> dict[str, Any]:
    """The listing fields the form holds (slug only when given)."""
    questions, answers = form.all("faq_question"), form.all("faq_answer")
    faqs = [
        {"question": q, "answer": a} for q, a in zip(questions, answers, strict=False) if q or a
    ]
    media = [{"type": "image", "url": url} for url in _lines(form["image_urls"])]
    media += [{"type": "video", "url": url} for url in _lines(form["video_urls"])]
    details: dict[str, Any] = {
        "name": form["name"],
        "tagline": form["tagline"],
        "description": form.raw("description").strip(),
        "benefits": _lines(form["benefits"]),
        "categories": form.all("categories"),
        "platforms": form.all("platforms"),
        "media": media,
        "compatibility": _lines(form["compatibility"]),
        "partner_url": form["partner_url"],
        "faqs": faqs,
        "contact": {"email": form["contact_email"], "phone": form["contact_phone"]},
        "scopes": form.all("scopes"),
        "redirect_uris": _lines(form["redirect_uris"]),
        "durations": form.all("durations"),
    }
    if form["slug"]:
        details["slug"] = form["slug"]
    return details


def form_values(details: dict[str, Any]) -> dict[str, Any]:
    """What the form shows for these listing fields (a listing's, or what was sent)."""
    media = details.get("media", [])
    contact = details.get("contact", {})
    faqs = list(details.get("faqs", []))
    return {
        "name": details.get("name", ""),
        "slug": details.get("slug", ""),
        "tagline": details.get("tagline", ""),
        "description": details.get("description", ""),
        "benefits": "\n".join(details.get("benefits", [])),
        "categories": list(details.get("categories", [])),
        "platforms": list(details.get("platforms", [])),
        "image_urls": "\n".join(m["url"] for m in media if m["type"] == "image"),
        "video_urls": "\n".join(m["url"] for m in media if m["type"] == "video"),
        "compatibility": "\n".join(details.get("compatibility", [])),
        "partner_url": details.get("partner_url", ""),
        "faqs": faqs + [{"question": "", "answer": ""}] * EMPTY_FAQS,
        "contact_email": contact.get("email", ""),
        "contact_phone": contact.get("phone", ""),
        "scopes": list(details.get("scopes", [])),
        "redirect_uris": "\n".join(details.get("redirect_uris", [])),
        "durations": list(details.get("durations", [d.value for d in v.Duration])),
    }


def form_field(field: str) -> str:
    """The form field a listing field's error belongs to: `faqs[1].answer` → `faqs`."""
    if field.startswith("contact."):
        return field.replace(".", "_")
    name = field.split("[", 1)[0].split(".", 1)[0]
    return "contact_email" if name == "contact" else name


def errors_of(error: InvalidInput) -> dict[str, str]:
    """A domain error on a listing field, as `{form field: message}`."""
    field = form_field(error.field)
    return field_errors(InvalidInput(field, error.reason), LABELS, default=field)


def check(details: dict[str, Any]) -> dict[str, str]:
    """Every wrong field of a listing, each with its message (empty when all is well)."""
    errors: dict[str, str] = {}
    checks: list[tuple[str, Callable[[], object]]] = [
        (key, functools.partial(validate_listing, {key: details[key]}, partial=True))
        for key in LISTING_FIELDS
        if key in details and key != "contact"
    ]
    # The contact is two fields of the form: each is checked (and told) on its own.
    contact = details.get("contact", {})
    checks += [
        ("contact_email", lambda: v.email_address(contact.get("email"), "contact.email")),
        ("contact_phone", lambda: v.phone_number(contact.get("phone"), "contact.phone")),
    ]
    for field, run in checks:
        if field.startswith("contact_") and not contact.get(field.removeprefix("contact_")):
            errors[field] = f"Enter the {LABELS[field].lower()}."
            continue
        try:
            run()
        except InvalidInput as error:
            for name, text in errors_of(error).items():
                errors.setdefault(name, text)
    return errors
