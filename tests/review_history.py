"""The review commands of the generated histories (tests/histories.py `World`): post (by
a seller who used the app), edit, delete, reply (the app's developer), mark helpful (another
seller), hide and unhide (ops). Like the other commands, each aims at a target it applies
to and makes one when there is none; one time in eight (n % 8 == 0) it takes any, most
likely to be refused."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from application import listings, reviews
from application.store import Store
from domain.installation import Installation
from domain.review import Review, review_id
from tests import factories as f

REVIEW_WEIGHTS = {
    "review": 4,
    "edit_review": 2,
    "delete_review": 1,
    "reply": 2,
    "helpful": 2,
    "hide": 1,
    "unhide": 1,
}
REVIEW_EVENTS = (
    "Review.Posted",
    "Review.Edited",
    "Review.Deleted",
    "Review.Replied",
    "Review.ReplyEdited",
    "Review.MarkedHelpful",
    "Review.Hidden",
    "Review.Unhidden",
)
BODIES = ["Works well.", "Setup took a while.\nThen fine.", "Support answered fast", "Meh"]


class ReviewCommands:
    """Mixed into World, which provides these."""

    store: Store
    sellers: list[UUID]
    apps: list[UUID]
    installations: list[UUID]
    _load: Callable[[UUID], Installation]
    _seller: Callable[[int], None]
    _app: Callable[[int], None]

    def _reviews(self, test: Callable[[Review], bool] = lambda r: True) -> list[Review]:
        """The reviews written so far that pass `test` (every one when n % 8 == 0)."""
        ids = {review_id(i.seller_id, i.app_id): None for i in map(self._load, self.installations)}
        found = [self.store.load(i, Review) for i in ids]
        return [r for r in found if r is not None and test(r)]

    def _review_target(self, n: int, test: Callable[[Review], bool]) -> Review:
        """A posted review passing `test` (made if need be: then a public one); when
        n % 8 == 0 any posted one, or one never posted (the command is refused)."""
        if n % 8 == 0:
            every = self._reviews(lambda r: r.posted_at is not None)
            if every:
                return every[(n // 8) % len(every)]
            return Review(seller_id=self.sellers[0], app_id=self.apps[0])  # never saved
        fitting = self._reviews(lambda r: r.posted_at is not None and test(r))
        if fitting:
            return fitting[(n // 8) % len(fitting)]
        made = self.store.load(self._review(n | 1), Review)
        assert made is not None and made.is_public
        return made

    def _review(self, n: int) -> UUID:
        """A seller who used an app and has no live review of it posts one."""
        body = BODIES[n % len(BODIES)]
        if n % 8 == 0:  # any seller and app: maybe not eligible, maybe reviewed already
            seller, app_id = (
                self.sellers[n % len(self.sellers)],
                self.apps[(n // 8) % len(self.apps)],
            )
            return reviews.post(self.store, seller, app_id, n % 5 + 1, body).id
        used = {
            (i.seller_id, i.app_id)
            for i in map(self._load, self.installations)
            if i.authorized_at is not None and listings.app(self.store, i.app_id).is_listed
        }
        free = [
            pair
            for pair in sorted(used)
            if not (found := self.store.load(review_id(*pair), Review))
            or not (found.is_live or found.is_hidden)
        ]
        if not free:  # a new seller installs a listed app
            listed = [a for a in self.apps if listings.app(self.store, a).is_listed]
            if not listed:
                self._app(n)
                listed = [self.apps[-1]]
            self._seller(n)
            app_id = listed[n % len(listed)]
            self.installations.append(f.active_installation(self.store, self.sellers[-1], app_id))
            free = [(self.sellers[-1], app_id)]
        seller, app_id = free[n % len(free)]
        return reviews.post(self.store, seller, app_id, n % 5 + 1, body).id

    def _edit_review(self, n: int) -> None:
        target = self._review_target(n, lambda r: r.is_live)
        reviews.edit(
            self.store, target.seller_id, target.app_id, target.id, (n + 2) % 5 + 1, BODIES[n % 3]
        )

    def _delete_review(self, n: int) -> None:
        target = self._review_target(n, lambda r: r.is_live)
        reviews.delete(self.store, target.seller_id, target.app_id, target.id)

    def _reply(self, n: int) -> None:
        target = self._review_target(n, lambda r: r.is_live)
        developer = listings.app(self.store, target.app_id).developer_id
        reviews.reply(self.store, developer, target.app_id, target.id, f"Thanks ({n % 3})")

    def _helpful(self, n: int) -> None:
        target = self._review_target(n, lambda r: r.is_public)
        if n % 8 == 0:
            reader = self.sellers[n % len(self.sellers)]
        else:
            others = [s for s in self.sellers if s != target.seller_id and s not in target.helpful]
            if not others:
                self._seller(n)
                others = [self.sellers[-1]]
            reader = others[n % len(others)]
        reviews.mark_helpful(self.store, reader, target.app_id, target.id)

    def _hide(self, n: int) -> None:
        target = self._review_target(n, lambda r: r.is_public)
        reviews.hide(self.store, target.id, f"Breaks rule {n % 4}")

    def _unhide(self, n: int) -> None:
        target = self._review_target(n, lambda r: r.is_hidden)
        if not target.is_hidden and n % 8:
            reviews.hide(self.store, target.id, "Spam")
        reviews.unhide(self.store, target.id)
