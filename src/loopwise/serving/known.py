"""What an endpoint knows, to check the feedback sent to it: the inference ids it answered, its classes.

Feedback joins the captured requests by inference id (A/B reports, model-quality monitoring, retraining),
so feedback for an id the endpoint never answered, or with a label its models do not have, is a mistake (a
wrong endpoint, another system's ids, labels in another vocabulary) that would silently feed those figures.
It is refused, naming the ids and labels, unless the caller says it is deliberate (``allow_unknown``).

An inference id is known to the endpoint when any of these holds:

* the server that gets the feedback answered it: each server remembers the last :data:`RECENT` ids it
  answered per endpoint, whatever the capture share;
* it is in the endpoint's capture (every captured request, from any server, across restarts; a record is
  written within a second of its answer);
* feedback for it was recorded before (sending it again replaces it).

With ``capture.share: 1`` every id the endpoint answered is known to every server, for as long as the
capture is kept. With a sampled capture, an id that was not sampled is known only to the server that
answered it, until :data:`RECENT` newer answers push it out or the server restarts: delayed ground truth
for such ids, or feedback through another replica behind a load balancer, needs ``allow_unknown`` (or a
capture share of 1). A label is known when it is a class of a model of one of the endpoint's variants in
its current configuration.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from loopwise.errors import EndpointConfigError
from loopwise.serving.capture import CapturedIds
from loopwise.serving.records import Feedback

if TYPE_CHECKING:
    from loopwise.serving.config import EndpointConfig
    from loopwise.serving.endpoints import Endpoint
    from loopwise.storage import UnitOfWork

#: how many of its latest answers a server remembers per endpoint (about 17 MB for 100,000 uuid4 ids)
RECENT = 100_000
#: how many unknown ids an error lists
SHOWN = 10


class RecentAnswers:
    """The ids a server answered lately, per endpoint. Used from the event loop only (not thread-safe)."""

    def __init__(self, keep: int = RECENT) -> None:
        self.keep = keep
        self._ids: dict[str, OrderedDict[str, None]] = {}

    def add(self, endpoint: str, inference_id: str) -> None:
        ids = self._ids.get(endpoint)
        if ids is None:
            ids = self._ids[endpoint] = OrderedDict()
        ids[inference_id] = None
        if len(ids) > self.keep:
            ids.popitem(last=False)

    def unanswered(self, endpoint: str, inference_ids: Sequence[str]) -> list[str]:
        """Those of ``inference_ids`` this server did not answer lately (in their order, once each)."""
        answered = self._ids.get(endpoint)
        return [i for i in dict.fromkeys(inference_ids) if answered is None or i not in answered]


class Known:
    """What a server knows of its endpoints to check their feedback: the ids it answered lately, the
    capture's ids, and the classes of the model versions it looked up (a version's classes never change).
    One per server (the data plane's); a command line makes its own."""

    def __init__(self, capture_root: Path, keep: int = RECENT) -> None:
        self.answered = RecentAnswers(keep)
        self.captured = CapturedIds(capture_root)
        self._classes: dict[int, tuple[str, ...]] = {}

    def classes(self, uow: UnitOfWork, config: EndpointConfig) -> list[str]:
        """The classes of the models of the configuration's variants."""
        found: set[str] = set()
        for variant in config.variants:
            version = variant.model_version_id
            if version is not None:
                if version not in self._classes:
                    self._classes[version] = tuple(uow.models.get_by_id(version).labels)
                found.update(self._classes[version])
        return sorted(found)

    def check(
        self,
        uow: UnitOfWork,
        endpoint: Endpoint,
        items: Sequence[Feedback],
        unanswered: Sequence[str] | None = None,
    ) -> None:
        """Raise :class:`EndpointConfigError` naming every inference id of ``items`` the endpoint does
        not know and every label that is none of its classes (see the module's docstring).
        ``unanswered``: those of the items' ids this server did not answer lately
        (:meth:`RecentAnswers.unanswered`, called on the event loop); all of them when not given."""
        name = endpoint.name
        unknown = list(dict.fromkeys([i.inference_id for i in items] if unanswered is None else unanswered))
        if unknown:
            fed = uow.feedback.known(name, unknown)
            unknown = [i for i in unknown if i not in fed]
        if unknown:
            found = self.captured.find(name, unknown)
            unknown = [i for i in unknown if i not in found]
        classes = self.classes(uow, endpoint.config)
        labels = set(classes)
        strange = [] if not classes else [x for i in items for x in i.labels or () if x not in labels]
        strange = list(dict.fromkeys(strange))
        if unknown or strange:
            raise _refusal(name, unknown, strange, classes)


def _refusal(
    endpoint: str, unknown: list[str], strange: list[str], classes: list[str]
) -> EndpointConfigError:
    said = []
    if unknown:
        more = f" and {len(unknown) - SHOWN} more" if len(unknown) > SHOWN else ""
        said.append(f"{len(unknown)} inference id(s) it did not answer ({', '.join(unknown[:SHOWN])}{more})")
    if strange:
        listed = ", ".join(repr(x) for x in strange[:SHOWN])
        said.append(f"label(s) its models do not have ({listed}; its classes: {', '.join(classes)})")
    return EndpointConfigError(
        f"the feedback for endpoint {endpoint!r} names {' and '.join(said)}: send the inference ids the "
        "endpoint answered and labels among its classes; if this is deliberate (ground truth for requests "
        'its capture does not hold), send {"items": [...], "allow_unknown": true} '
        "(`--allow-unknown` on the command line)",
        [
            *(("inference_id", f"{i!r}: not answered by {endpoint}") for i in unknown[:20]),
            *(("labels", f"{x!r}: not a class of its models") for x in strange[:20]),
        ],
    )
