"""Reviews per app: the public list (newest or most helpful first), the seller's own
reviews, the reviews of a developer's apps, and everything ops see (hidden ones too).

A row per review, rewritten by each of its events; `public` is posted, not deleted and
not hidden. Helpful marks are kept per (review, seller) with the position of the posting
they were given to, so a review posted again after a deletion starts without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.app_listing import AppListing
from domain.review import Review
from projections.batch import Batch
from projections.db import UTCDateTime, metadata
from projections.projection import On, Projection, on

# The apps reviews are about: whose they are and what they are called.
review_apps = sa.Table(
    "review_apps",
    metadata,
    sa.Column("app_id", sa.Uuid, primary_key=True),
    sa.Column("developer_id", sa.Uuid, nullable=False),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("slug", sa.String(64), nullable=False),
)

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("app_id", sa.Uuid, nullable=False),
    sa.Column("developer_id", sa.Uuid, nullable=False),
    sa.Column("seller_id", sa.Uuid, nullable=False, index=True),
    sa.Column("seller_name", sa.String(120), nullable=False),
    sa.Column("rating", sa.SmallInteger, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    # The position of the Posted event: helpful marks given to an earlier posting differ.
    sa.Column("posted_seq", sa.BigInteger, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("reply_body", sa.Text, nullable=True),
    sa.Column("replied_at", UTCDateTime, nullable=True),
    sa.Column("reply_updated_at", UTCDateTime, nullable=True),
    sa.Column("helpful", sa.Integer, nullable=False, default=0),
    sa.Column("hidden_at", UTCDateTime, nullable=True),
    sa.Column("hidden_reason", sa.String(500), nullable=True),
    sa.Column("hidden_by", sa.String(64), nullable=True),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.Column("public", sa.Boolean, nullable=False),
)
# One index per public order, so a page is an index walk.
sa.Index(
    "reviews_newest", reviews.c.app_id, reviews.c.public, reviews.c.created_at.desc(), reviews.c.id
)
sa.Index(
    "reviews_helpful",
    reviews.c.app_id,
    reviews.c.public,
    reviews.c.helpful.desc(),
    reviews.c.created_at.desc(),
    reviews.c.id,
)
sa.Index("reviews_of_developer", reviews.c.developer_id, reviews.c.created_at.desc())

helpful_marks = sa.Table(
    "review_helpful_marks",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),  # from (review, seller)
    sa.Column("review_id", sa.Uuid, nullable=False),
    sa.Column("seller_id", sa.Uuid, nullable=False),
    sa.Column("posted_seq", sa.BigInteger, nullable=False),
    sa.Index("review_helpful_marks_by_seller", "seller_id", "review_id"),
)

SORTS = {
    "newest": (reviews.c.created_at.desc(), reviews.c.id),
    "helpful": (reviews.c.helpful.desc(), reviews.c.created_at.desc(), reviews.c.id),
}


class ReviewsProjection(Projection):
    """Builds the reviews of every app from Review events (and the apps' names)."""

    name = "reviews"
    replay_cost = 0.2  # apply time per event of the bench log, relative (see Projection)
    tables = (review_apps, reviews, helpful_marks)

    def handlers(self) -> Sequence[On[Any]]:
        return [
            on(AppListing.Listed, self._listed),
            on(AppListing.Updated, self._renamed),
            on(Review.Posted, self._posted),
            on(Review.Edited, self._edited),
            on(Review.Deleted, self._deleted),
            on(Review.Replied, self._replied),
            on(Review.ReplyEdited, self._reply_edited),
            on(Review.MarkedHelpful, self._marked),
            on(Review.Hidden, self._hidden),
            on(Review.Unhidden, self._unhidden),
        ]

    def _listed(self, batch: Batch, e: AppListing.Listed, position: int) -> None:
        batch.add(
            review_apps,
            {
                "app_id": e.originator_id,
                "developer_id": e.developer_id,
                "name": e.details["name"],
                "slug": e.details["slug"],
            },
        )

    def _renamed(self, batch: Batch, e: AppListing.Updated, position: int) -> None:
        changed = {k: e.changes[k] for k in ("name", "slug") if k in e.changes}
        if changed:
            batch.update(review_apps, e.originator_id, **changed)

    def _posted(self, batch: Batch, e: Review.Posted, position: int) -> None:
        row = {
            "app_id": e.app_id,
            "developer_id": batch.require(review_apps, e.app_id)["developer_id"],
            "seller_id": e.seller_id,
            "seller_name": e.seller_name,
            "rating": e.rating,
            "body": e.body,
            "posted_seq": position,
            "created_at": e.posted_at,
            "updated_at": e.posted_at,
            "reply_body": None,
            "replied_at": None,
            "reply_updated_at": None,
            "helpful": 0,
            "deleted_at": None,
        }
        existing = batch.get(reviews, e.originator_id)
        if existing is None:
            batch.add(reviews, {"id": e.originator_id, **row, "public": True})
        else:  # posted again after a deletion (it may still be hidden)
            batch.update(reviews, e.originator_id, **row, public=existing["hidden_at"] is None)

    def _edited(self, batch: Batch, e: Review.Edited, position: int) -> None:
        batch.update(reviews, e.originator_id, rating=e.rating, body=e.body, updated_at=e.edited_at)

    def _deleted(self, batch: Batch, e: Review.Deleted, position: int) -> None:
        batch.update(reviews, e.originator_id, deleted_at=e.deleted_at, public=False)

    def _replied(self, batch: Batch, e: Review.Replied, position: int) -> None:
        batch.update(
            reviews,
            e.originator_id,
            reply_body=e.body,
            replied_at=e.replied_at,
            reply_updated_at=e.replied_at,
        )

    def _reply_edited(self, batch: Batch, e: Review.ReplyEdited, position: int) -> None:
        batch.update(reviews, e.originator_id, reply_body=e.body, reply_updated_at=e.edited_at)

    def _marked(self, batch: Batch, e: Review.MarkedHelpful, position: int) -> None:
        review = batch.require(reviews, e.originator_id)
        batch.update(reviews, e.originator_id, helpful=review["helpful"] + 1)
        mark_id = uuid5(NAMESPACE_URL, f"appstore:helpful:{e.originator_id}:{e.seller_id}")
        mark = {"review_id": e.originator_id, "seller_id": e.seller_id}
        if batch.get(helpful_marks, mark_id) is None:
            batch.add(helpful_marks, {"id": mark_id, **mark, "posted_seq": review["posted_seq"]})
        else:  # marked before, on an earlier posting
            batch.update(helpful_marks, mark_id, posted_seq=review["posted_seq"])

    def _hidden(self, batch: Batch, e: Review.Hidden, position: int) -> None:
        batch.update(
            reviews,
            e.originator_id,
            hidden_at=e.hidden_at,
            hidden_reason=e.reason,
            hidden_by=e.by,
            public=False,
        )

    def _unhidden(self, batch: Batch, e: Review.Unhidden, position: int) -> None:
        review = batch.require(reviews, e.originator_id)
        batch.update(
            reviews,
            e.originator_id,
            hidden_at=None,
            hidden_reason=None,
            hidden_by=None,
            public=review["deleted_at"] is None,
        )


# --- queries ---------------------------------------------------------------------------------
def review_of(row: Any) -> dict[str, Any]:
    """The public shape of a review row."""
    reply = None
    if row.reply_body is not None:
        reply = {
            "body": row.reply_body,
            "created_at": row.replied_at,
            "updated_at": row.reply_updated_at,
        }
    return {
        "id": row.id,
        "app_id": row.app_id,
        "seller_id": row.seller_id,
        "seller_name": row.seller_name,
        "rating": row.rating,
        "body": row.body,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "reply": reply,
        "helpful": row.helpful,
    }


def moderated_of(row: Any) -> dict[str, Any]:
    """A review as its author and ops see it: with why it is hidden, if it is."""
    hidden = None
    if row.hidden_at is not None:
        hidden = {"reason": row.hidden_reason, "by": row.hidden_by, "hidden_at": row.hidden_at}
    return {**review_of(row), "hidden": hidden}


def _page(
    conn: Connection, where: list[Any], order: Sequence[Any], page: int, page_size: int
) -> tuple[list[Any], int]:
    total = conn.execute(sa.select(sa.func.count()).select_from(reviews).where(*where))
    rows = conn.execute(
        sa.select(reviews)
        .where(*where)
        .order_by(*order)
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    return list(rows), int(total.scalar_one())


def app_reviews(
    conn: Connection, app_id: UUID, *, sort: str = "newest", page: int = 1, page_size: int = 20
) -> tuple[list[dict[str, Any]], int]:
    """An app's public reviews (newest or most helpful first) and how many there are."""
    where = [reviews.c.app_id == app_id, reviews.c.public.is_(True)]
    rows, total = _page(conn, where, SORTS[sort], page, page_size)
    return [review_of(r) for r in rows], total


def rating_breakdown(conn: Connection, app_id: UUID) -> dict[int, int]:
    """How many public reviews of the app give each number of stars (1 to 5)."""
    rows = conn.execute(
        sa.select(reviews.c.rating, sa.func.count())
        .where(reviews.c.app_id == app_id, reviews.c.public.is_(True))
        .group_by(reviews.c.rating)
    )
    counts = {stars: 0 for stars in range(5, 0, -1)}
    counts.update({int(stars): int(n) for stars, n in rows})
    return counts


def public_review(conn: Connection, app_id: UUID, review_id: UUID) -> dict[str, Any] | None:
    """One public review of the app, or None."""
    row = conn.execute(
        sa.select(reviews).where(
            reviews.c.id == review_id, reviews.c.app_id == app_id, reviews.c.public.is_(True)
        )
    ).first()
    return None if row is None else review_of(row)


def own_review(conn: Connection, review_id: UUID) -> dict[str, Any] | None:
    """A review as its author sees it (hidden too; not once deleted), or None."""
    row = conn.execute(
        sa.select(reviews).where(reviews.c.id == review_id, reviews.c.deleted_at.is_(None))
    ).first()
    return None if row is None else moderated_of(row)


def seller_reviews(
    conn: Connection, seller_id: UUID, *, page: int = 1, page_size: int = 20
) -> tuple[list[dict[str, Any]], int]:
    """The seller's own reviews (hidden ones with their reason), newest first."""
    where = [reviews.c.seller_id == seller_id, reviews.c.deleted_at.is_(None)]
    rows, total = _page(conn, where, SORTS["newest"], page, page_size)
    return [moderated_of(r) for r in rows], total


def developer_reviews(
    conn: Connection,
    developer_id: UUID,
    *,
    app_id: UUID | None = None,
    page: int = 1,
    page_size: int = 20,
) -> tuple[list[dict[str, Any]], int]:
    """Public reviews of the developer's apps, newest first, with each app's name."""
    where = [reviews.c.developer_id == developer_id, reviews.c.public.is_(True)]
    if app_id is not None:
        where.append(reviews.c.app_id == app_id)
    rows, total = _page(conn, where, SORTS["newest"], page, page_size)
    names = {}
    if rows:
        found = conn.execute(
            sa.select(review_apps).where(review_apps.c.app_id.in_({r.app_id for r in rows}))
        )
        names = {a.app_id: a for a in found}
    items = [
        {**review_of(r), "app": {"id": r.app_id, "name": names[r.app_id].name,
                                 "slug": names[r.app_id].slug}}
        for r in rows
    ]  # fmt: skip
    return items, total


def all_reviews(
    conn: Connection,
    *,
    app_id: UUID | None = None,
    hidden: bool | None = None,
    page: int = 1,
    page_size: int = 20,
) -> tuple[list[dict[str, Any]], int]:
    """Every posted review (ops): hidden ones with their reason; not deleted ones."""
    where: list[Any] = [reviews.c.deleted_at.is_(None)]
    if app_id is not None:
        where.append(reviews.c.app_id == app_id)
    if hidden is not None:
        where.append(reviews.c.hidden_at.is_not(None) if hidden else reviews.c.hidden_at.is_(None))
    rows, total = _page(conn, where, SORTS["newest"], page, page_size)
    return [moderated_of(r) for r in rows], total


def marked_by(conn: Connection, seller_id: UUID, review_ids: Sequence[UUID]) -> set[UUID]:
    """Which of these reviews (as posted now) the seller marked helpful."""
    if not review_ids:
        return set()
    rows = conn.execute(
        sa.select(helpful_marks.c.review_id)
        .select_from(
            helpful_marks.join(
                reviews,
                sa.and_(
                    reviews.c.id == helpful_marks.c.review_id,
                    reviews.c.posted_seq == helpful_marks.c.posted_seq,
                ),
            )
        )
        .where(helpful_marks.c.seller_id == seller_id, helpful_marks.c.review_id.in_(review_ids))
    )
    return {r[0] for r in rows}
