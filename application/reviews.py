"""Ratings and reviews: post, edit and delete (the author), reply (the app's developer),
mark helpful (another seller), hide and unhide (ops).

Who may review is read from the event store, not a read model: the seller's
InstallationSlot for the app names every installation it ever pointed at, and one of them
must have been authorized (domain.review.has_used).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from application.accounts import account, require_role
from application.listings import app as load_app
from application.listings import own_app
from application.store import Outcome, Store
from domain import values as v
from domain.claims import InstallationSlot, installation_slot_id
from domain.errors import AppDelisted, NotEligibleToReview, ReviewNotFound
from domain.installation import Installation
from domain.review import Review, has_used, review_body, review_id, review_rating

# Who hides and unhides reviews: the ops token has no name of its own.
OPS = "ops"


def review(store: Store, app_id: UUID, id_: UUID) -> Review:
    """The review with this id about this app (posted, deleted or hidden), or ReviewNotFound."""
    found = store.load(id_, Review)
    if found is None or found.app_id != app_id or found.posted_at is None:
        raise ReviewNotFound(f"review {id_} not found")
    return found


def may_review(store: Store, seller_id: UUID, app_id: UUID) -> bool:
    """Whether the seller has (or had) an authorized installation of the app."""
    slot = store.load(installation_slot_id(seller_id, app_id), InstallationSlot)
    if slot is None:
        return False
    found = (store.load(i, Installation) for i in slot.installation_ids)
    return has_used(i for i in found if i is not None)


def post(store: Store, seller_id: UUID, app_id: UUID, rating: object, body: object) -> Outcome:
    """Posts the seller's review of a listed app they have (or had) authorized; one per
    seller and app (a second → AlreadyReviewed; after a deletion it may be posted again)."""
    stars, text = review_rating(rating), review_body(body)
    require_role(store, seller_id, v.Role.SELLER)
    if not load_app(store, app_id).is_listed:
        raise AppDelisted(f"app {app_id} is no longer listed")
    if not may_review(store, seller_id, app_id):
        raise NotEligibleToReview(
            "only a seller who has installed and authorized this app may review it"
        )
    name = account(store, seller_id).name

    def attempt() -> Outcome:
        found = store.load(review_id(seller_id, app_id), Review)
        if found is None:
            found = Review(seller_id=seller_id, app_id=app_id)
        found.post(name, stars, text, store.clock.now())
        return Outcome(found.id, store.save(found))

    return store.retrying(attempt)


def _by_author(
    store: Store,
    seller_id: UUID,
    app_id: UUID,
    id_: UUID,
    act: Callable[[Review, datetime], bool | None],
) -> Outcome:
    """Loads the seller's own review (another's is not found), acts, appends; retried."""

    def attempt() -> Outcome:
        found = review(store, app_id, id_)
        if found.seller_id != seller_id:
            raise ReviewNotFound(f"review {id_} not found")
        changed = act(found, store.clock.now())
        return Outcome(found.id, store.save(found) if changed is not False else None)

    return store.retrying(attempt)


def edit(
    store: Store, seller_id: UUID, app_id: UUID, id_: UUID, rating: object, body: object
) -> Outcome:
    """The author changes the rating and text (position None when nothing changed)."""
    stars, text = review_rating(rating), review_body(body)
    return _by_author(store, seller_id, app_id, id_, lambda r, now: r.edit(stars, text, now))


def delete(store: Store, seller_id: UUID, app_id: UUID, id_: UUID) -> Outcome:
    """The author removes the review (from the store and from the app's rating)."""
    return _by_author(store, seller_id, app_id, id_, lambda r, now: r.delete(now))


def reply(store: Store, developer_id: UUID, app_id: UUID, id_: UUID, body: object) -> Outcome:
    """The app's developer replies to a review; replying again edits the one reply (the
    aggregate decides, inside the retried attempt, which of Replied or ReplyEdited it is)."""
    text = review_body(body)

    def attempt() -> Outcome:
        own_app(store, developer_id, app_id)  # another developer's app: not found
        found = review(store, app_id, id_)
        changed = found.reply(developer_id, text, store.clock.now())
        return Outcome(found.id, store.save(found) if changed else None)

    return store.retrying(attempt)


def mark_helpful(store: Store, seller_id: UUID, app_id: UUID, id_: UUID) -> Outcome:
    """Another seller found the review helpful (once per seller; not the author)."""
    require_role(store, seller_id, v.Role.SELLER)

    def attempt() -> Outcome:
        found = review(store, app_id, id_)
        found.mark_helpful(seller_id, store.clock.now())
        return Outcome(found.id, store.save(found))

    return store.retrying(attempt)


def _by_ops(store: Store, id_: UUID, act: Callable[[Review, datetime], None]) -> Outcome:
    def attempt() -> Outcome:
        found = store.load(id_, Review)
        if found is None or found.posted_at is None:
            raise ReviewNotFound(f"review {id_} not found")
        act(found, store.clock.now())
        return Outcome(found.id, store.save(found))

    return store.retrying(attempt)


def hide(store: Store, id_: UUID, reason: object, by: str = OPS) -> Outcome:
    """Ops hide a review that breaks the rules; the reason stays in its history."""
    return _by_ops(store, id_, lambda r, now: r.hide(reason, by, now))


def unhide(store: Store, id_: UUID, by: str = OPS) -> Outcome:
    """Ops show a hidden review again."""
    return _by_ops(store, id_, lambda r, now: r.unhide(by, now))
