"""Read models of the workforce for the server and the sign-in page, so that adapters never open a
unit of work themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopwise.storage import Store


def has_admin(store: Store) -> bool:
    """Whether any admin account exists (none yet: the sign-in page and ``loopwise server`` say how to
    make the first)."""
    with store.uow() as uow:
        return bool(uow.workforce.count_admins())
