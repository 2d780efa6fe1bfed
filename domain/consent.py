"""Consent per scope: what a seller may leave out, grant later, or revoke.

A listing asks for required `scopes` and `optional_scopes`. The seller grants every required
scope they are asked for and chooses among the optional ones (at install, or on the
conditions page); a later request for scopes not granted before is answered scope by scope;
an optional scope can be revoked at any time. "Required" means the listing's current
`scopes`: an app that needs a scope to work keeps it until the installation is cancelled.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from domain.errors import InvalidInput, RequiredScope, ScopeNotGranted
from domain.values import SCOPES

_ORDER = {scope: i for i, scope in enumerate(SCOPES)}


def in_scope_order(scopes: Iterable[str]) -> list[str]:
    """The scopes de-duplicated, in the vocabulary's order (as granted lists show them)."""
    unique = list(dict.fromkeys(scopes))
    return sorted(unique, key=lambda s: _ORDER.get(s, len(_ORDER)))


def chosen_scopes(
    asked: Sequence[str], chosen: Iterable[str], required: Collection[str], field: str = "scopes"
) -> list[str]:
    """What the seller grants out of `asked`: the chosen scopes, each one asked for, and
    every asked scope the app requires (leaving one out is a RequiredScope error)."""
    picked = list(dict.fromkeys(chosen))
    extra = [s for s in picked if s not in asked]
    if extra:
        raise InvalidInput(field, f"the app does not ask for {', '.join(extra)}")
    missing = [s for s in asked if s in required and s not in picked]
    if missing:
        raise RequiredScope(field, f"the app requires {', '.join(missing)}; it cannot be left out")
    if not picked:
        raise InvalidInput(field, "grant at least one scope, or decline")
    return in_scope_order(picked)


def check_revocable(
    scope: str, granted: Collection[str], required: Collection[str], field: str = "scope"
) -> None:
    """A scope can be revoked when it is granted, optional, and not the last one left."""
    if scope not in granted:
        raise ScopeNotGranted(field, f"{scope} is not granted to this app")
    if scope in required:
        raise RequiredScope(
            field, f"the app requires {scope}; cancel the installation to end its access"
        )
    if len(granted) == 1:
        raise InvalidInput(
            field, f"{scope} is the app's last access; cancel the installation instead"
        )
