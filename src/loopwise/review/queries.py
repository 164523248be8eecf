"""Read models of human review for the API and the console: what a page or an answer shows, read in
one place so that adapters never open a unit of work themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopwise.review import service

if TYPE_CHECKING:
    from loopwise.review.records import Flow
    from loopwise.storage import Store
    from loopwise.workforce.records import Worker


def flow_with_counts(store: Store, name: str, worker: Worker | None = None) -> tuple[Flow, dict[str, int]]:
    """The flow ``worker`` may see (:func:`loopwise.review.service.find_flow`) and its loops counted by
    status."""
    found = service.find_flow(store, name, worker)
    with store.uow() as uow:
        return found, uow.review.count(found.id)


def loop_output(store: Store, name: str, worker: Worker | None = None) -> dict[str, Any]:
    """The output.json of the loop ``worker`` may see (:func:`loopwise.review.output.read_output`)."""
    from loopwise.review.output import read_output

    return read_output(store, service.describe_loop(store, name, worker))
