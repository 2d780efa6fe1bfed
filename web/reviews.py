"""Reviews on the app's page: its rating with how many reviews give each number of stars,
the reviews (newest or most helpful first, a page at a time) with the developer's reply,
and, for a seller who has (or had) an authorized installation, a form to write or edit
their review (or delete it); other sellers mark a review helpful.

Reads come from the reviews projection; commands go through application/reviews.py, as
the API's do, so the same rules hold (eligibility, one review per seller, named errors).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from application import reviews
from domain.errors import DomainError, Forbidden, InvalidInput, NotEligibleToReview, NotFound
from domain.review import MAX_BODY, review_id
from projections import catalog_search
from projections import reviews as read_model
from web.access import for_sellers
from web.forms import Form, field_errors
from web.pages import message, read, render, settled
from web.session import Visitor

PAGE_SIZE = 10
ORDERS = {"newest": "Newest", "helpful": "Most helpful"}
LABELS = {"rating": "Rating", "body": "Your review"}
STARS = [(str(n), f"{n} star{'s' if n > 1 else ''}", note) for n, note in (
    (5, "excellent"), (4, "good"), (3, "fair"), (2, "poor"), (1, "bad"))]  # fmt: skip
DONE = {
    "posted": "Thank you: your review is posted.",
    "edited": "Your review is updated.",
    "deleted": "Your review is deleted. You may write a new one at any time.",
    "helpful": "Thank you: you marked the review helpful.",
}


def _page_number(value: str | None) -> int:
    try:
        return max(1, min(10_000, int(value or 1)))
    except ValueError:
        return 1


def reviews_of(request: Request, app: dict[str, Any], who: Visitor | None) -> dict[str, Any]:
    """What the app's page shows of its reviews (and the visitor's own, for a seller)."""
    query = request.query_params
    order = query.get("reviews", "newest")
    order = order if order in ORDERS else "newest"
    page = _page_number(query.get("reviews_page"))
    app_id = UUID(str(app["id"]))
    seller = who.account_id if who is not None and who.is_seller else None

    def q(conn: Any) -> tuple[Any, ...]:
        items, total = read_model.app_reviews(
            conn, app_id, sort=order, page=page, page_size=PAGE_SIZE
        )
        breakdown = read_model.rating_breakdown(conn, app_id)
        mine, marked = None, set()
        if seller is not None:
            mine = read_model.own_review(conn, review_id(seller, app_id))
            marked = read_model.marked_by(conn, seller, [item["id"] for item in items])
        return items, total, breakdown, mine, marked

    items, total, breakdown, mine, marked = read(request, q)
    eligible = seller is not None and (
        mine is not None or reviews.may_review(request.app.state.store, seller, app_id)
    )
    values = {"rating": str(mine["rating"]), "body": mine["body"]} if mine else {}
    return {
        "items": items,
        "total": total,
        "order": order,
        "orders": ORDERS,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "breakdown": breakdown,
        "counted": sum(breakdown.values()),
        "mine": mine,
        "marked": marked,
        "eligible": eligible,
        "form": _form(values, {}),
        "done": DONE.get(query.get("done", "")),
    }


def _form(values: dict[str, str], errors: dict[str, str]) -> dict[str, Any]:
    return {"values": values, "errors": errors, "stars": STARS, "max_body": MAX_BODY}


def _app(request: Request) -> dict[str, Any] | None:
    """The listed app named by the slug in the path (its catalog detail), or None."""
    slug = request.path_params["slug"]
    row = read(request, lambda conn: catalog_search.find_app(conn, slug))
    return None if row is None else catalog_search.detail_of(row)


def _no_app(request: Request) -> Response:
    return message(request, 404, "Page not found", "No listed app has this address.")


def _back(app: dict[str, Any], done: str, anchor: str = "reviews") -> Response:
    return RedirectResponse(f"/apps/{app['slug']}?done={done}#{anchor}", status_code=303)


def _own(request: Request, seller: Visitor, app: dict[str, Any]) -> dict[str, Any] | None:
    own = review_id(seller.account_id, UUID(str(app["id"])))
    return read(request, lambda conn: read_model.own_review(conn, own))


def _form_page(
    request: Request, app: dict[str, Any], mine: Any, form: dict[str, Any], status: int = 200
) -> Response:
    return render(request, "review_form.html", status=status, app=app, mine=mine, form=form)


@for_sellers
def review_page(request: Request, seller: Visitor) -> Response:
    """GET /apps/{slug}/review: write (or edit) my review of the app."""
    app = _app(request)
    if app is None:
        return _no_app(request)
    mine = _own(request, seller, app)
    if mine is None and not reviews.may_review(
        request.app.state.store, seller.account_id, UUID(str(app["id"]))
    ):
        return _not_eligible(request, app)
    values = {"rating": str(mine["rating"]), "body": mine["body"]} if mine else {}
    return _form_page(request, app, mine, _form(values, {}))


def _not_eligible(request: Request, app: dict[str, Any]) -> Response:
    text = f"Only a shop that has installed and authorized {app['name']} may review it."
    links = {f"Install {app['name']}": f"/apps/{app['slug']}/install"}
    return message(request, 403, "You cannot review this app yet", text, **links)


@for_sellers
def save_review(request: Request, seller: Visitor, form: Form) -> Response:
    """POST /apps/{slug}/review: posts my review, or edits the one I wrote."""
    app = _app(request)
    if app is None:
        return _no_app(request)
    app_id = UUID(str(app["id"]))
    mine = _own(request, seller, app)
    values = {"rating": form["rating"], "body": form.raw("body").strip()}
    rating: object = int(values["rating"]) if values["rating"].isdigit() else values["rating"]
    store = request.app.state.store
    try:
        if not values["rating"]:
            raise InvalidInput("rating", "choose how many stars you give, from 1 to 5")
        if mine is None:
            outcome = reviews.post(store, seller.account_id, app_id, rating, values["body"])
        else:
            outcome = reviews.edit(
                store, seller.account_id, app_id, mine["id"], rating, values["body"]
            )
    except InvalidInput as error:
        errors = field_errors(error, LABELS, "body")
        return _form_page(request, app, mine, _form(values, errors), status=422)
    except NotEligibleToReview:
        return _not_eligible(request, app)
    except DomainError as error:
        back = {f"Back to {app['name']}": f"/apps/{app['slug']}#reviews"}
        return message(request, 409, "Your review was not saved", error.detail, **back)
    settled(request, outcome.position)
    return _back(app, "posted" if mine is None else "edited", "your-review")


@for_sellers
def delete_review(request: Request, seller: Visitor, form: Form) -> Response:
    """POST /apps/{slug}/review/delete: deletes my review (I may write another later)."""
    app = _app(request)
    mine = None if app is None else _own(request, seller, app)
    if app is None or mine is None:
        return _no_app(request)
    outcome = reviews.delete(
        request.app.state.store, seller.account_id, UUID(str(app["id"])), mine["id"]
    )
    settled(request, outcome.position)
    return _back(app, "deleted")


@for_sellers
def mark_helpful(request: Request, seller: Visitor, form: Form) -> Response:
    """POST /apps/{slug}/reviews/{review}/helpful: another seller's review helped me."""
    app = _app(request)
    if app is None:
        return _no_app(request)
    try:
        review = UUID(request.path_params["review"])
        outcome = reviews.mark_helpful(
            request.app.state.store, seller.account_id, UUID(str(app["id"])), review
        )
    except (ValueError, NotFound):
        text = "No review of this app is at this address."
        return message(
            request, 404, "Review not found", text, **{app["name"]: f"/apps/{app['slug']}"}
        )
    except DomainError as error:
        back = {f"Back to {app['name']}": f"/apps/{app['slug']}#reviews"}
        status = 403 if isinstance(error, Forbidden) else 409
        return message(request, status, "Not marked helpful", error.detail, **back)
    settled(request, outcome.position)
    return _back(app, "helpful", f"review-{review}")
