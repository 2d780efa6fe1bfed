"""The Review aggregate's rules, without a store: ratings, texts, one reply, helpful once,
hiding with a reason, posting again after a deletion; and who may review."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import (
    AlreadyMarkedHelpful,
    AlreadyReviewed,
    InvalidInput,
    OwnReview,
    ReviewAlreadyHidden,
    ReviewNotFound,
    ReviewNotHidden,
)
from domain.installation import Installation
from domain.review import MAX_BODY, Review, has_used, review_body, review_id, review_rating

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SELLER, APP, DEVELOPER = uuid4(), uuid4(), uuid4()


def posted(rating: int = 4, body: str = "Does what it says.") -> Review:
    review = Review(seller_id=SELLER, app_id=APP)
    review.post("Ann's Shop", rating, body, T0)
    return review


def names(review: Review) -> list[str]:
    return [type(e).__name__ for e in review.collect_events()]


def test_the_review_id_derives_from_seller_and_app() -> None:
    assert posted().id == review_id(SELLER, APP)
    assert review_id(SELLER, APP) != review_id(APP, SELLER)
    assert review_id(SELLER, APP) != review_id(SELLER, uuid4())


def test_a_first_post_is_opened_then_posted_with_who_and_when() -> None:
    review = posted(5, "  Saved me hours.\nEvery day.  ")
    events = review.collect_events()
    assert [type(e).__name__ for e in events] == ["Opened", "Posted"]
    post: Any = events[1]
    assert (post.seller_id, post.app_id, post.seller_name) == (SELLER, APP, "Ann's Shop")
    assert (post.rating, post.body, post.posted_at) == (5, "Saved me hours.\nEvery day.", T0)
    assert review.is_public


@pytest.mark.parametrize("rating", [0, 6, -1, 4.5, "5", None, True, 10**40])
def test_a_rating_is_a_whole_number_of_stars_from_1_to_5(rating: object) -> None:
    with pytest.raises(InvalidInput) as error:
        review_rating(rating)
    assert error.value.field == "rating"


@pytest.mark.parametrize(
    "body",
    ["", "   \n ", "x" * (MAX_BODY + 1), "nul \x00 inside", "bell \x07", "bidi \u202e", None, 7],
)
def test_a_body_is_not_empty_not_too_long_and_has_no_control_characters(body: object) -> None:
    with pytest.raises(InvalidInput) as error:
        review_body(body)
    assert error.value.field == "body"


def test_a_body_of_2000_characters_with_line_breaks_and_tabs_is_fine() -> None:
    text = ("Line one\tand a tab.\r\n" * 200)[:MAX_BODY]
    assert review_body(text) == text.strip()


@given(st.text(max_size=2100))
def test_any_text_is_either_a_review_body_or_a_named_refusal(text: str) -> None:
    try:
        body = review_body(text)
    except InvalidInput as error:
        assert error.field == "body"
    else:
        assert 0 < len(body) <= MAX_BODY and body == body.strip()


def test_a_second_post_is_refused_but_a_deleted_review_may_be_posted_again() -> None:
    review = posted()
    with pytest.raises(AlreadyReviewed):
        review.post("Ann's Shop", 5, "Again", T0)
    review.reply(DEVELOPER, "Thanks!", T0)
    review.mark_helpful(uuid4(), T0)
    review.delete(T0 + timedelta(days=1))
    assert not review.is_live
    with pytest.raises(ReviewNotFound):
        review.edit(3, "changed", T0)
    review.post("Ann's Shop", 2, "It broke my listings.", T0 + timedelta(days=2))
    assert review.is_public and review.rating == 2
    assert review.reply_body is None and review.helpful == []  # a fresh review
    assert names(review)[-2:] == ["Deleted", "Posted"]


def test_an_edit_changes_rating_and_text_and_an_identical_one_records_nothing() -> None:
    review = posted(4, "Good")
    assert review.edit(4, "Good", T0) is False
    assert review.edit(2, "Good until the update", T0 + timedelta(hours=1)) is True
    assert (review.rating, review.body, review.updated_at) == (
        2,
        "Good until the update",
        T0 + timedelta(hours=1),
    )
    assert names(review) == ["Opened", "Posted", "Edited"]


def test_the_developer_replies_once_and_edits_that_reply() -> None:
    review = posted()
    assert review.reply(DEVELOPER, "Thanks for the feedback", T0) is True
    assert review.reply(DEVELOPER, "Thanks for the feedback", T0) is False
    assert review.reply(DEVELOPER, "Fixed in 2.1", T0 + timedelta(days=1)) is True
    assert review.reply_body == "Fixed in 2.1"
    assert (review.replied_at, review.reply_updated_at) == (T0, T0 + timedelta(days=1))
    assert names(review)[-2:] == ["Replied", "ReplyEdited"]
    with pytest.raises(InvalidInput):
        review.reply(DEVELOPER, " ", T0)


def test_another_seller_marks_a_review_helpful_once_and_the_author_never() -> None:
    review = posted()
    other = uuid4()
    review.mark_helpful(other, T0)
    with pytest.raises(AlreadyMarkedHelpful):
        review.mark_helpful(other, T0)
    with pytest.raises(OwnReview):
        review.mark_helpful(SELLER, T0)
    review.mark_helpful(uuid4(), T0)
    assert len(review.helpful) == 2


def test_ops_hide_with_a_reason_kept_and_unhide() -> None:
    review = posted()
    with pytest.raises(InvalidInput) as error:
        review.hide("", "ops", T0)
    assert error.value.field == "reason"
    review.hide("Advertises another app", "ops", T0)
    assert not review.is_public and review.is_live
    with pytest.raises(ReviewAlreadyHidden):
        review.hide("again", "ops", T0)
    with pytest.raises(ReviewNotFound):  # hidden reviews are not shown: nothing to mark
        review.mark_helpful(uuid4(), T0)
    review.delete(T0)
    review.post("Ann's Shop", 5, "New text", T0)  # posting again does not lift the hiding
    assert review.is_hidden
    review.unhide("ops", T0)
    assert review.is_public
    with pytest.raises(ReviewNotHidden):
        review.unhide("ops", T0)
    hidden = [e for e in review.collect_events() if isinstance(e, Review.Hidden)]
    assert [(e.reason, e.by) for e in hidden] == [("Advertises another app", "ops")]


def _installation(authorized: bool, cancelled: bool = False) -> Installation:
    installation = Installation(
        seller_id=SELLER,
        app_id=APP,
        duration="30d",
        contact_email="a@b.example.com",
        contact_phone="+14155550100",
        scopes=["orders.read"],
        installed_at=T0,
    )
    if authorized:
        installation.authorize(T0)
        if cancelled:
            installation.cancel(T0)
    else:
        installation.decline(T0)
    return installation


def test_an_authorized_installation_now_or_before_makes_a_seller_eligible() -> None:
    assert not has_used([])
    assert not has_used([_installation(authorized=False)])
    assert has_used([_installation(authorized=False), _installation(True, cancelled=True)])
    assert has_used([_installation(authorized=True)])
