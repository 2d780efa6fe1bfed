"""Ratings and reviews: a seller who used an app reviews it (one review, editable), the
app's developer replies, other sellers mark reviews helpful, ops hide those that break the
rules. The public list reads projections/reviews.py; commands answer from the aggregate."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from api.auth import current_session, require_ops
from api.my_apps import AppRef
from api.pagination import Page, PageQuery
from api.problems import Problem
from api.routing import Call, Endpoint, Link
from application import reviews
from application.store import Outcome
from domain.review import MAX_BODY, MAX_REASON, Review
from projections import catalog_search
from projections import reviews as read_model


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5, strict=True, description="stars, a whole number 1-5")
    body: str = Field(
        max_length=MAX_BODY,
        description=f"what you think of the app: not empty, at most {MAX_BODY:,} characters, "
        "line breaks allowed, no other control characters",
    )


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(max_length=MAX_BODY, description="the developer's answer (one per review)")


class HideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=MAX_REASON, description="which rule it breaks (kept)")


class ReplyOut(BaseModel):
    body: str
    created_at: datetime
    updated_at: datetime


class ReviewOut(BaseModel):
    id: UUID
    app_id: UUID
    seller_id: UUID
    seller_name: str = Field(description="the seller's name when the review was posted")
    rating: int
    body: str
    created_at: datetime
    updated_at: datetime
    reply: ReplyOut | None = Field(description="the app developer's reply, if any")
    helpful: int = Field(description="sellers who found it helpful")


class HiddenOut(BaseModel):
    reason: str
    by: str
    hidden_at: datetime


class ModeratedReviewOut(ReviewOut):
    """A review as its author and ops see it."""

    hidden: HiddenOut | None = Field(description="set while ops hide it: not in the store")


class DeveloperReviewOut(ReviewOut):
    app: AppRef


class ReviewPage(Page[ReviewOut]):
    pass


class ModeratedReviewPage(Page[ModeratedReviewOut]):
    pass


class DeveloperReviewPage(Page[DeveloperReviewOut]):
    pass


class ReviewParams(PageQuery):
    sort: Literal["newest", "helpful"] = Field(
        default="newest", description="newest first, or most helpful first"
    )


class DeveloperReviewParams(PageQuery):
    app_id: UUID | None = Field(default=None, description="only this app's reviews")


class OpsReviewParams(PageQuery):
    app_id: UUID | None = Field(default=None, description="only this app's reviews")
    hidden: bool | None = Field(default=None, description="only hidden (true) or shown (false)")


def review_out(review: Review) -> dict[str, Any]:
    """The Review shape of SPEC.md from the aggregate (`hidden` for its author and ops)."""
    reply = None
    if review.reply_body is not None:
        reply = {
            "body": review.reply_body,
            "created_at": review.replied_at,
            "updated_at": review.reply_updated_at,
        }
    hidden = None
    if review.hidden_at is not None:
        hidden = {"reason": review.hidden_reason, "by": review.hidden_by, "hidden_at": review.hidden_at}  # fmt: skip
    return {
        "id": review.id,
        "app_id": review.app_id,
        "seller_id": review.seller_id,
        "seller_name": review.seller_name,
        "rating": review.rating,
        "body": review.body,
        "created_at": review.posted_at,
        "updated_at": review.updated_at,
        "reply": reply,
        "helpful": len(review.helpful),
        "hidden": hidden,
    }


async def _answer(call: Call, app_id: UUID, outcome: Outcome) -> dict[str, Any]:
    """The review a command acted on, once the read models show it."""
    found = await call.run(reviews.review, call.state.store, app_id, outcome.id)
    await call.written(outcome.position)
    return review_out(found)


def _review_id(call: Call) -> UUID:
    return call.path_id("review_id", "review")


async def post_review(call: Call) -> ReviewOut:
    """Reviews an app the seller has (or had) installed and authorized: one per seller."""
    session = await current_session(call.request, role="seller")
    app_id = call.path_id("id", "app")
    body: ReviewIn = call.body
    outcome = await call.run(
        reviews.post, call.state.store, session.account_id, app_id, body.rating, body.body
    )
    call.headers["Location"] = f"/v1/apps/{app_id}/reviews/{outcome.id}"
    return ReviewOut.model_validate(await _answer(call, app_id, outcome))


async def edit_review(call: Call) -> ModeratedReviewOut:
    """The author changes their rating and text."""
    session = await current_session(call.request, role="seller")
    app_id = call.path_id("id", "app")
    body: ReviewIn = call.body
    outcome = await call.run(
        reviews.edit,
        call.state.store,
        session.account_id,
        app_id,
        _review_id(call),
        body.rating,
        body.body,
    )
    return ModeratedReviewOut.model_validate(await _answer(call, app_id, outcome))


async def delete_review(call: Call) -> Response:
    """The author deletes their review (they may post one again)."""
    session = await current_session(call.request, role="seller")
    app_id = call.path_id("id", "app")
    outcome = await call.run(
        reviews.delete, call.state.store, session.account_id, app_id, _review_id(call)
    )
    await call.written(outcome.position)
    return Response(status_code=204)


async def reply_to_review(call: Call) -> ReviewOut:
    """The app's developer replies; replying again edits the reply."""
    session = await current_session(call.request, role="developer")
    app_id = call.path_id("id", "app")
    body: ReplyIn = call.body
    outcome = await call.run(
        reviews.reply, call.state.store, session.account_id, app_id, _review_id(call), body.body
    )
    return ReviewOut.model_validate(await _answer(call, app_id, outcome))


async def mark_helpful(call: Call) -> ReviewOut:
    """Another seller found the review helpful (once)."""
    session = await current_session(call.request, role="seller")
    app_id = call.path_id("id", "app")
    outcome = await call.run(
        reviews.mark_helpful, call.state.store, session.account_id, app_id, _review_id(call)
    )
    return ReviewOut.model_validate(await _answer(call, app_id, outcome))


async def list_reviews(call: Call) -> ReviewPage:
    """A listed app's reviews, newest or most helpful first (hidden ones are left out)."""
    app_id = call.path_id("id", "app")
    p: ReviewParams = call.query
    if await call.read(catalog_search.find_app, str(app_id)) is None:
        raise Problem(404, "App not found", f"no listed app {app_id}")
    items, total = await call.read(
        read_model.app_reviews, app_id, sort=p.sort, page=p.page, page_size=p.page_size
    )
    return ReviewPage.of(items, total, p)


async def get_review(call: Call) -> ReviewOut:
    """One shown review of an app."""
    app_id = call.path_id("id", "app")
    found = await call.read(read_model.public_review, app_id, _review_id(call))
    if found is None:
        raise Problem(404, "Review not found", "no such review of this app")
    return ReviewOut.model_validate(found)


async def my_reviews(call: Call) -> ModeratedReviewPage:
    """The seller's reviews, newest first; a hidden one says why."""
    session = await current_session(call.request, role="seller")
    p: PageQuery = call.query
    items, total = await call.read(
        read_model.seller_reviews, session.account_id, page=p.page, page_size=p.page_size
    )
    return ModeratedReviewPage.of(items, total, p)


async def developer_reviews(call: Call) -> DeveloperReviewPage:
    """Reviews of my apps, newest first (to reply to)."""
    session = await current_session(call.request, role="developer")
    p: DeveloperReviewParams = call.query
    items, total = await call.read(
        read_model.developer_reviews,
        session.account_id,
        app_id=p.app_id,
        page=p.page,
        page_size=p.page_size,
    )
    return DeveloperReviewPage.of(items, total, p)


# --- ops -------------------------------------------------------------------------------------
async def ops_reviews(call: Call) -> ModeratedReviewPage:
    """Every review (not deleted ones), hidden ones with their reason."""
    require_ops(call.request)
    p: OpsReviewParams = call.query
    items, total = await call.read(
        read_model.all_reviews, app_id=p.app_id, hidden=p.hidden, page=p.page, page_size=p.page_size
    )
    return ModeratedReviewPage.of(items, total, p)


async def _moderate(call: Call, outcome: Outcome) -> ModeratedReviewOut:
    found = await call.run(call.state.store.load, outcome.id, Review)
    await call.written(outcome.position)
    return ModeratedReviewOut.model_validate(review_out(found))


async def hide_review(call: Call) -> ModeratedReviewOut:
    """Hides a review that breaks the rules: out of the store and the app's rating. The
    reason is kept in the review's history (GET /v1/audit/aggregates/{id}/events)."""
    require_ops(call.request)
    body: HideIn = call.body
    outcome = await call.run(reviews.hide, call.state.store, _review_id(call), body.reason)
    return await _moderate(call, outcome)


async def unhide_review(call: Call) -> ModeratedReviewOut:
    """Shows a hidden review again."""
    require_ops(call.request)
    outcome = await call.run(reviews.unhide, call.state.store, _review_id(call))
    return await _moderate(call, outcome)


REVIEW = "/v1/apps/{id}/reviews/{review_id}"
# What a review's answer leads to (OpenAPI links): its app and its id.
THIS = {"id": "$response.body#/app_id", "review_id": "$response.body#/id"}
ON_REVIEW = (
    Link("Reply", "reply_to_review", THIS),
    Link("MarkHelpful", "mark_helpful", THIS),
    Link("Delete", "delete_review", THIS),
)

endpoints = [
    Endpoint("POST", "/v1/apps/{id}/reviews", post_review, "Review an app", "reviews",
             body=ReviewIn, response=ReviewOut, status=201, auth="seller", errors=(409,),
             links=(Link("Edit", "edit_review", THIS), *ON_REVIEW)),
    Endpoint("GET", "/v1/apps/{id}/reviews", list_reviews, "An app's reviews", "reviews",
             query=ReviewParams, response=ReviewPage),
    Endpoint("GET", REVIEW, get_review, "One review", "reviews", response=ReviewOut),
    Endpoint("PUT", REVIEW, edit_review, "Edit my review", "reviews", body=ReviewIn,
             response=ModeratedReviewOut, auth="seller", errors=(409,), links=ON_REVIEW),
    Endpoint("DELETE", REVIEW, delete_review, "Delete my review", "reviews", status=204,
             auth="seller", errors=(409,)),
    Endpoint("PUT", REVIEW + "/reply", reply_to_review, "Reply to a review of my app", "reviews",
             body=ReplyIn, response=ReviewOut, auth="developer", errors=(409,)),
    Endpoint("POST", REVIEW + "/helpful", mark_helpful, "Mark a review helpful", "reviews",
             response=ReviewOut, auth="seller", errors=(409,)),
    Endpoint("GET", "/v1/me/reviews", my_reviews, "My reviews", "reviews", query=PageQuery,
             response=ModeratedReviewPage, auth="seller"),
    Endpoint("GET", "/v1/developer/reviews", developer_reviews, "Reviews of my apps", "reviews",
             query=DeveloperReviewParams, response=DeveloperReviewPage, auth="developer"),
    Endpoint("GET", "/v1/audit/reviews", ops_reviews, "Every review (ops)", "ops",
             query=OpsReviewParams, response=ModeratedReviewPage, auth="ops"),
    Endpoint("POST", "/v1/audit/reviews/{review_id}/hide", hide_review, "Hide a review", "ops",
             body=HideIn, response=ModeratedReviewOut, auth="ops", errors=(409,)),
    Endpoint("POST", "/v1/audit/reviews/{review_id}/unhide", unhide_review, "Show a hidden review",
             "ops", response=ModeratedReviewOut, auth="ops", errors=(409,)),
]  # fmt: skip
