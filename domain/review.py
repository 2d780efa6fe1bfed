"""Review: one seller's rating and words about one app, the developer's reply, the sellers
who found it helpful, and whether ops hid it.

A review's id derives from (seller, app), so the event store itself keeps one review per
seller and app: two first posts racing both append version 1 and only one commits. A
deleted review may be posted again on the same aggregate (its history stays). Every event
keeps who acted and when: the audit history of a review is its event list.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain import values as v
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

RATINGS = range(1, 6)
MAX_BODY = 2000
MAX_REASON = 500


class Review(Aggregate):
    """One seller × one app. Opened once (the uniqueness), then Posted (again after a
    deletion), Edited, Deleted; Replied once by the app's developer, then ReplyEdited;
    MarkedHelpful once per other seller; Hidden and Unhidden by ops."""

    class Opened(Aggregate.Created):
        seller_id: UUID
        app_id: UUID

    class Posted(Aggregate.Event):
        app_id: UUID
        seller_id: UUID
        seller_name: str  # as it was when posting
        rating: int
        body: str
        posted_at: datetime

    class Edited(Aggregate.Event):
        rating: int
        body: str
        edited_at: datetime

    class Deleted(Aggregate.Event):
        deleted_at: datetime

    class Replied(Aggregate.Event):
        developer_id: UUID
        body: str
        replied_at: datetime

    class ReplyEdited(Aggregate.Event):
        developer_id: UUID
        body: str
        edited_at: datetime

    class MarkedHelpful(Aggregate.Event):
        seller_id: UUID
        marked_at: datetime

    class Hidden(Aggregate.Event):
        reason: str
        by: str
        hidden_at: datetime

    class Unhidden(Aggregate.Event):
        by: str
        unhidden_at: datetime

    @staticmethod
    def create_id(seller_id: UUID, app_id: UUID) -> UUID:
        return review_id(seller_id, app_id)

    @event(Opened)
    def __init__(self, seller_id: UUID, app_id: UUID) -> None:
        self.seller_id = seller_id
        self.app_id = app_id
        self.seller_name = ""
        self.rating = 0
        self.body = ""
        self.posted_at: datetime | None = None
        self.updated_at: datetime | None = None
        self.deleted_at: datetime | None = None
        self.reply_body: str | None = None
        self.reply_by: UUID | None = None
        self.replied_at: datetime | None = None
        self.reply_updated_at: datetime | None = None
        self.helpful: list[UUID] = []  # the sellers who marked it, in order
        self.hidden_reason: str | None = None
        self.hidden_by: str | None = None
        self.hidden_at: datetime | None = None

    # --- queries on state -------------------------------------------------------------
    @property
    def is_live(self) -> bool:
        """Posted and not deleted."""
        return self.posted_at is not None and self.deleted_at is None

    @property
    def is_hidden(self) -> bool:
        return self.hidden_at is not None

    @property
    def is_public(self) -> bool:
        """Shown in the store and counted in the app's rating."""
        return self.is_live and not self.is_hidden

    def _require_live(self) -> None:
        if not self.is_live:
            raise ReviewNotFound(f"review {self.id} not found")

    # --- the author -------------------------------------------------------------------
    def post(self, seller_name: str, rating: object, body: object, now: datetime) -> None:
        """Posts the review (again, after a deletion: a fresh one, without the old reply
        or helpful marks). A hidden review stays hidden until ops unhide it."""
        if self.is_live:
            raise AlreadyReviewed("you have reviewed this app already: edit your review instead")
        stars, text = review_rating(rating), review_body(body)
        self._posted(self.app_id, self.seller_id, seller_name, stars, text, now)

    @event(Posted)
    def _posted(
        self,
        app_id: UUID,
        seller_id: UUID,
        seller_name: str,
        rating: int,
        body: str,
        posted_at: datetime,
    ) -> None:
        self.seller_name = seller_name
        self.rating = rating
        self.body = body
        self.posted_at = posted_at
        self.updated_at = posted_at
        self.deleted_at = None
        self.reply_body = self.reply_by = self.replied_at = self.reply_updated_at = None
        self.helpful = []

    def edit(self, rating: object, body: object, now: datetime) -> bool:
        """Changes the rating and text; False (no event) when nothing changed."""
        self._require_live()
        stars, text = review_rating(rating), review_body(body)
        if (stars, text) == (self.rating, self.body):
            return False
        self._edited(stars, text, now)
        return True

    @event(Edited)
    def _edited(self, rating: int, body: str, edited_at: datetime) -> None:
        self.rating = rating
        self.body = body
        self.updated_at = edited_at

    def delete(self, now: datetime) -> None:
        """Removes the review from the store and from the app's rating."""
        self._require_live()
        self._deleted(now)

    @event(Deleted)
    def _deleted(self, deleted_at: datetime) -> None:
        self.deleted_at = deleted_at

    # --- the developer ------------------------------------------------------------------
    def reply(self, developer_id: UUID, body: object, now: datetime) -> bool:
        """The developer's one reply: the first is Replied, a later one edits it
        (ReplyEdited). False (no event) when the text is the same."""
        self._require_live()
        text = review_body(body)
        if self.reply_body is None:
            self._replied(developer_id, text, now)
            return True
        if text == self.reply_body:
            return False
        self._reply_edited(developer_id, text, now)
        return True

    @event(Replied)
    def _replied(self, developer_id: UUID, body: str, replied_at: datetime) -> None:
        self.reply_body = body
        self.reply_by = developer_id
        self.replied_at = replied_at
        self.reply_updated_at = replied_at

    @event(ReplyEdited)
    def _reply_edited(self, developer_id: UUID, body: str, edited_at: datetime) -> None:
        self.reply_body = body
        self.reply_by = developer_id
        self.reply_updated_at = edited_at

    # --- other sellers ------------------------------------------------------------------
    def mark_helpful(self, seller_id: UUID, now: datetime) -> None:
        """Another seller found the review helpful (once)."""
        if not self.is_public:
            raise ReviewNotFound(f"review {self.id} not found")
        if seller_id == self.seller_id:
            raise OwnReview("you cannot mark your own review helpful")
        if seller_id in self.helpful:
            raise AlreadyMarkedHelpful("you marked this review helpful already")
        self._marked_helpful(seller_id, now)

    @event(MarkedHelpful)
    def _marked_helpful(self, seller_id: UUID, marked_at: datetime) -> None:
        self.helpful = [*self.helpful, seller_id]

    # --- ops ----------------------------------------------------------------------------
    def hide(self, reason: object, by: str, now: datetime) -> None:
        """Hides a review that breaks the rules: out of the store and the rating; the
        reason stays in its history."""
        self._require_live()
        if self.is_hidden:
            raise ReviewAlreadyHidden("the review is hidden already")
        self._hidden(v.text(reason, "reason", max_length=MAX_REASON), by, now)

    @event(Hidden)
    def _hidden(self, reason: str, by: str, hidden_at: datetime) -> None:
        self.hidden_reason = reason
        self.hidden_by = by
        self.hidden_at = hidden_at

    def unhide(self, by: str, now: datetime) -> None:
        """Shows a hidden review again."""
        if not self.is_hidden:
            raise ReviewNotHidden("the review is not hidden")
        self._unhidden(by, now)

    @event(Unhidden)
    def _unhidden(self, by: str, unhidden_at: datetime) -> None:
        self.hidden_reason = self.hidden_by = self.hidden_at = None


def review_id(seller_id: UUID, app_id: UUID) -> UUID:
    """The id of the one review a seller may write about an app."""
    return uuid5(NAMESPACE_URL, f"appstore:review:{seller_id}:{app_id}")


def review_rating(value: object, field: str = "rating") -> int:
    """A whole number of stars from 1 to 5."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in RATINGS:
        raise InvalidInput(field, f"must be a whole number from 1 to 5, got {value!r}")
    return value


def review_body(value: object, field: str = "body") -> str:
    """A review's (or reply's) text: not empty, at most 2,000 characters, line breaks
    allowed, no other control characters."""
    return v.text(value, field, max_length=MAX_BODY, multiline=True)


def has_used(installations: Iterable[Installation]) -> bool:
    """Whether a seller has (or had) an authorized installation among these: what makes
    them eligible to review the app. Cancelled or expired since does not matter."""
    return any(i.authorized_at is not None for i in installations)
