"""Reviews through the store port, on both backends: who may review (from the event
store), one review per seller and app, replies by the app's developer only, helpful
marks, hiding; nothing is appended when a command is refused."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from application import installations, listings, reviews
from application.store import Store
from domain import errors
from domain.clock import FixedClock
from domain.review import Review, review_id
from tests import factories as f


def unchanged(store: Store, command: object, *args: object) -> errors.DomainError:
    """Runs a command that must be refused; checks it appended nothing; returns the error."""
    before = store.head()
    with pytest.raises(errors.DomainError) as refused:
        command(*args)  # type: ignore[operator]
    assert store.head() == before
    return refused.value


@pytest.fixture
def app_id(store: Store) -> UUID:
    return f.app(store)


def test_a_seller_who_never_installed_the_app_may_not_review_it(store: Store, app_id: UUID) -> None:
    seller = f.seller(store)
    assert not reviews.may_review(store, seller, app_id)
    error = unchanged(store, reviews.post, store, seller, app_id, 5, "Great")
    assert isinstance(error, errors.NotEligibleToReview)


def test_an_installation_never_authorized_does_not_make_a_seller_eligible(
    store: Store, app_id: UUID
) -> None:
    seller = f.seller(store)
    pending = installations.install(store, seller, app_id, "30d", "a@b.example.com", "+14155550100")
    assert not reviews.may_review(store, seller, app_id)
    installations.decline(store, seller, pending.id)
    installations.install(store, seller, app_id, "30d", "a@b.example.com", "+14155550100")
    assert not reviews.may_review(store, seller, app_id)  # pending again, then declined: never
    error = unchanged(store, reviews.post, store, seller, app_id, 4, "Looks nice")
    assert isinstance(error, errors.NotEligibleToReview)


def test_a_seller_who_authorized_then_cancelled_may_still_review(
    store: Store, app_id: UUID
) -> None:
    seller = f.seller(store)
    installation = f.active_installation(store, seller, app_id)
    installations.cancel(store, seller, installation)
    # A new install, still pending, points the slot elsewhere: the old one still counts.
    installations.install(store, seller, app_id, "30d", "a@b.example.com", "+14155550100")
    assert reviews.may_review(store, seller, app_id)
    outcome = reviews.post(store, seller, app_id, 2, "Stopped syncing, so I cancelled.")
    review = reviews.review(store, app_id, outcome.id)
    assert review.rating == 2 and review.seller_name.startswith("Seller ")


def test_an_expired_installation_still_counts(store: Store, clock: FixedClock) -> None:
    app_id = f.app(store)
    seller = f.seller(store)
    installation = f.active_installation(store, seller, app_id, "30d")
    clock.advance(timedelta(days=31))
    installations.expire(store, installation)
    assert reviews.post(store, seller, app_id, 4, "Worked well while I had it").position


def test_one_review_per_seller_and_app_then_edit_and_delete_and_post_again(
    store: Store, app_id: UUID
) -> None:
    seller = f.seller(store)
    f.active_installation(store, seller, app_id)
    first = reviews.post(store, seller, app_id, 5, "Great")
    assert first.id == review_id(seller, app_id)
    error = unchanged(store, reviews.post, store, seller, app_id, 4, "Great again")
    assert isinstance(error, errors.AlreadyReviewed)
    assert reviews.edit(store, seller, app_id, first.id, 5, "Great").position is None
    reviews.edit(store, seller, app_id, first.id, 3, "Good, then slower")
    reviews.delete(store, seller, app_id, first.id)
    error = unchanged(store, reviews.delete, store, seller, app_id, first.id)
    assert isinstance(error, errors.ReviewNotFound)
    again = reviews.post(store, seller, app_id, 4, "Back, and it is better now")
    assert again.id == first.id
    kinds = [type(e).__name__ for e in store.events_of(first.id)]
    assert kinds == ["Opened", "Posted", "Edited", "Deleted", "Posted"]


def test_another_sellers_review_is_not_found_for_edit_or_delete(store: Store, app_id: UUID) -> None:
    author, other = f.seller(store), f.seller(store)
    f.active_installation(store, author, app_id)
    posted = reviews.post(store, author, app_id, 5, "Great")
    for command, args in ((reviews.edit, (1, "Bad")), (reviews.delete, ())):
        error = unchanged(store, command, store, other, app_id, posted.id, *args)
        assert isinstance(error, errors.ReviewNotFound)
    error = unchanged(store, reviews.edit, store, author, f.app(store), posted.id, 1, "Bad")
    assert isinstance(error, errors.ReviewNotFound)  # the review of another app


def test_bad_input_names_its_field_before_anything_is_looked_up(store: Store, app_id: UUID) -> None:
    seller = f.seller(store)  # not even eligible: the input is checked first
    for rating, body, field in ((0, "ok", "rating"), (6, "ok", "rating"), (5, "  ", "body")):
        error = unchanged(store, reviews.post, store, seller, app_id, rating, body)
        assert isinstance(error, errors.InvalidInput) and error.field == field


def test_developers_and_delisted_apps_are_refused(store: Store) -> None:
    developer = f.developer(store)
    app_id = f.app(store, developer)
    seller = f.seller(store)
    f.active_installation(store, seller, app_id)
    assert isinstance(
        unchanged(store, reviews.post, store, developer, app_id, 5, "My own app!"),
        errors.WrongRole,
    )
    listings.delist_app(store, developer, app_id)
    assert isinstance(
        unchanged(store, reviews.post, store, seller, app_id, 5, "Great"), errors.AppDelisted
    )
    assert isinstance(
        unchanged(store, reviews.post, store, seller, uuid4(), 5, "Great"), errors.AppNotFound
    )


def test_only_the_apps_developer_replies_and_replying_again_edits(store: Store) -> None:
    developer, stranger = f.developer(store), f.developer(store)
    app_id = f.app(store, developer)
    seller = f.seller(store)
    f.active_installation(store, seller, app_id)
    posted = reviews.post(store, seller, app_id, 3, "Setup was confusing")
    error = unchanged(store, reviews.reply, store, stranger, app_id, posted.id, "Hi")
    assert isinstance(error, errors.AppNotFound)
    reviews.reply(store, developer, app_id, posted.id, "Sorry! The wizard is new in 2.0")
    reviews.reply(store, developer, app_id, posted.id, "Sorry! Try the new setup wizard")
    review = reviews.review(store, app_id, posted.id)
    assert review.reply_body == "Sorry! Try the new setup wizard"
    kinds = [type(e).__name__ for e in store.events_of(posted.id)]
    assert kinds[-2:] == ["Replied", "ReplyEdited"]


def test_helpful_once_per_seller_not_the_author_and_not_a_developer(
    store: Store, app_id: UUID
) -> None:
    author, reader = f.seller(store), f.seller(store)
    f.active_installation(store, author, app_id)
    posted = reviews.post(store, author, app_id, 5, "Great")
    reviews.mark_helpful(store, reader, app_id, posted.id)  # no installation needed
    refusals = [
        (reader, errors.AlreadyMarkedHelpful),
        (author, errors.OwnReview),
        (f.developer(store), errors.WrongRole),
    ]
    for who, kind in refusals:
        assert isinstance(
            unchanged(store, reviews.mark_helpful, store, who, app_id, posted.id), kind
        )
    assert reviews.review(store, app_id, posted.id).helpful == [reader]


def test_hiding_keeps_the_reason_and_who_in_the_history(store: Store, app_id: UUID) -> None:
    seller = f.seller(store)
    f.active_installation(store, seller, app_id)
    posted = reviews.post(store, seller, app_id, 1, "Call 555-0100 for a better app")
    reviews.hide(store, posted.id, "Advertising")
    assert isinstance(
        unchanged(store, reviews.hide, store, posted.id, "again"), errors.ReviewAlreadyHidden
    )
    reviews.unhide(store, posted.id)
    hidden = [e for e in store.events_of(posted.id) if isinstance(e, Review.Hidden)]
    assert [(e.reason, e.by) for e in hidden] == [("Advertising", "ops")]
    assert isinstance(unchanged(store, reviews.hide, store, uuid4(), "Spam"), errors.ReviewNotFound)
