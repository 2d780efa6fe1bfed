"""An app's rating in the catalog: which reviews count, and the columns they make.

A review counts while it is posted, not deleted and not hidden. The catalog keeps per app
the sum and the number of counted ratings, the average shown (to one decimal, the value
`min_rating` filters on, so "4 and up" keeps every app shown as 4.0), and the score
`sort=rating` ranks by: a Bayesian average with a FIXED prior of PRIOR_WEIGHT reviews of
PRIOR_MEAN stars, (C·m + sum) / (C + count). One 5-star review scores 3.64; a hundred
reviews averaging 4.8 score 4.68. A prior that moved with the store's mean rating would
change every app's score with each review: no index could keep the order, and a replay
would rank differently from the live read model.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import sqlalchemy as sa

from domain.review import Review
from projections.batch import Batch
from projections.db import metadata

PRIOR_MEAN = 3.5
PRIOR_WEIGHT = 10

# What the catalog knows of each review: its app, its stars, and whether it counts.
counted_reviews = sa.Table(
    "catalog_reviews",
    metadata,
    sa.Column("review_id", sa.Uuid, primary_key=True),
    sa.Column("app_id", sa.Uuid, nullable=False),
    sa.Column("rating", sa.SmallInteger, nullable=False),
    sa.Column("live", sa.Boolean, nullable=False),
    sa.Column("hidden", sa.Boolean, nullable=False),
)

ReviewEvent = Review.Posted | Review.Edited | Review.Deleted | Review.Hidden | Review.Unhidden
EVENTS: tuple[type[Any], ...] = (
    Review.Posted,
    Review.Edited,
    Review.Deleted,
    Review.Hidden,
    Review.Unhidden,
)


def rating_columns(rating_sum: int, rating_count: int) -> dict[str, Any]:
    """The catalog columns of an app whose counted reviews add up to `rating_sum` stars."""
    average = None
    if rating_count:
        # Half up to tenths, in integers: the same on every backend and every replay.
        average = (20 * rating_sum + rating_count) // (2 * rating_count) / 10
    return {
        "rating_sum": rating_sum,
        "rating_count": rating_count,
        "rating_average": average,
        "rating_score": (PRIOR_WEIGHT * PRIOR_MEAN + rating_sum) / (PRIOR_WEIGHT + rating_count),
    }


def rating_change(batch: Batch, e: ReviewEvent) -> tuple[UUID, int, int] | None:
    """Applies a review event to `catalog_reviews`; returns (app, stars added, reviews
    added) to the app's counted ratings, or None when they do not change."""
    review_id = e.originator_id
    row = batch.get(counted_reviews, review_id)
    if row is None:
        if not isinstance(e, Review.Posted):
            return None  # a review the catalog never saw posted
        row = batch.add(
            counted_reviews,
            {"review_id": review_id, "app_id": e.app_id, "rating": e.rating, "live": False,
             "hidden": False},
        )  # fmt: skip
    before = _counted(row)
    changes: dict[str, Any]
    if isinstance(e, Review.Posted):
        changes = {"rating": e.rating, "live": True}
    elif isinstance(e, Review.Edited):
        changes = {"rating": e.rating}
    elif isinstance(e, Review.Deleted):
        changes = {"live": False}
    else:
        changes = {"hidden": isinstance(e, Review.Hidden)}
    row = batch.update(counted_reviews, review_id, **changes)
    after = _counted(row)
    if before == after:
        return None
    return row["app_id"], after[0] - before[0], after[1] - before[1]


def _counted(row: dict[str, Any]) -> tuple[int, int]:
    """(stars, reviews) a review adds to its app's rating."""
    return (row["rating"], 1) if row["live"] and not row["hidden"] else (0, 0)
