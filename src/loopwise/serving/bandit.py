"""The bookkeeping of multi-armed bandit endpoints: their recent answers, and the evidence feedback adds.

The router picks arms with :func:`loopwise.serving.router.thompson` from each arm's ``(rewards, pulls)``.
This book remembers the bandit endpoints' recent answers (inference id -> variant and predicted labels) so
that feedback can reward the arm that gave them, once each: a reward in [0, 1] as given, labels as the
share of texts answered right.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from loopwise.serving.feedback import Feedback

#: how many recent answers are kept for their feedback
RECENT = 200_000

Evidence = dict[str, tuple[float, int]]


class BanditBook:
    def __init__(self, keep: int = RECENT) -> None:
        self.keep = keep
        self.recent: OrderedDict[tuple[str, str], tuple[str, list[str]]] = OrderedDict()

    def remember(self, endpoint: str, inference_id: str, variant: str, predicted: list[str]) -> None:
        self.recent[(endpoint, inference_id)] = (variant, predicted)
        while len(self.recent) > self.keep:
            self.recent.popitem(last=False)

    def evidence(self, endpoint: str, items: Sequence[Feedback]) -> Evidence:
        """``(rewards, pulls)`` per variant for the remembered answers among ``items`` (each counts once;
        answers no longer remembered, or feedback with neither reward nor labels, count for nothing)."""
        evidence: Evidence = {}
        for item in items:
            remembered = self.recent.pop((endpoint, item.inference_id), None)
            if remembered is None:
                continue
            variant, predicted = remembered
            if item.reward is not None:
                reward = item.reward
            elif item.labels is not None:
                pairs = list(zip(predicted, item.labels, strict=False))
                reward = sum(p == t for p, t in pairs) / max(1, len(pairs))
            else:
                continue
            total, pulls = evidence.get(variant, (0.0, 0))
            evidence[variant] = (total + reward, pulls + 1)
        return evidence
