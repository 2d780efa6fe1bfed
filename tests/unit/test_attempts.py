"""Attempts that trust kept copies (application/attempts.py): an outcome stands only once
the log confirmed every copy it was decided on; any attempt after the first trusts none."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from application.attempts import MAX_ATTEMPTS, Attempts, StaleReads
from domain.errors import ConcurrentUpdate

COPY = uuid4()


def run(attempts: Attempts, outcomes: list[object], stale_log: set[UUID]) -> tuple[object, list]:
    """Runs an attempt that trusts COPY at version 3 (when it may) and then ends as the next
    of `outcomes` says (a value, or an exception to raise); records what each try saw."""
    seen: list[tuple[bool, dict[UUID, int]]] = []
    asked: list[dict[UUID, int]] = []

    def attempt() -> object:
        reads = attempts.current()
        assert reads is not None
        if reads.trusting:
            reads.trust(COPY, 3)
        seen.append((reads.trusting, dict(reads.trusted)))
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def stale(versions: dict[UUID, int]) -> bool:
        asked.append(dict(versions))
        return bool(stale_log & set(versions))

    return attempts.run(attempt, stale), [seen, asked]


def test_an_outcome_decided_on_a_stale_copy_without_an_append_is_decided_again() -> None:
    """Nothing appended (a command with nothing to do): a probe confirms the copy."""
    outcome, (seen, asked) = run(Attempts(trusting=True), ["stale", "fresh"], {COPY})
    assert outcome == "fresh"
    assert seen == [(True, {COPY: 3}), (False, {})]  # the second trusts nothing
    assert asked == [{COPY: 3}]


def test_a_confirmed_outcome_stands_after_one_probe() -> None:
    outcome, (seen, asked) = run(Attempts(trusting=True), ["done"], set())
    assert outcome == "done" and len(seen) == 1 and asked == [{COPY: 3}]


def test_an_error_on_a_current_copy_is_raised_once() -> None:
    with pytest.raises(KeyError):
        run(Attempts(trusting=True), [KeyError("x"), "never"], set())


def test_a_stale_append_is_tried_again_at_once_and_a_lost_race_until_the_limit() -> None:
    outcome, (seen, _) = run(Attempts(trusting=True), [StaleReads("stale"), "fresh"], set())
    assert outcome == "fresh" and [t for t, _ in seen] == [True, False]
    with pytest.raises(ConcurrentUpdate):
        run(Attempts(trusting=False), [StaleReads("x")] * MAX_ATTEMPTS, set())


def test_without_appends_that_confirm_nothing_is_trusted_nor_probed() -> None:
    outcome, (seen, asked) = run(Attempts(trusting=False), ["done"], {COPY})
    assert outcome == "done" and seen == [(False, {})] and asked == []
