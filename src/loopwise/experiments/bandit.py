"""Multi-armed bandits: Thompson sampling over Beta posteriors, and the evidence feedback adds to an arm.

Each arm (a production variant) carries its evidence ``(rewards, pulls)``: the sum of rewards in [0, 1]
and how many answers were rewarded. Its success rate has the posterior Beta(1 + rewards, 1 + pulls -
rewards) under a uniform prior; :func:`thompson` draws from every arm's posterior and picks the best draw.

:class:`BanditBook` remembers a bandit endpoint's recent answers (inference id -> variant and predicted
labels) so that feedback can reward the arm that gave them, once each: a reward as given, labels as the
share of texts answered right. Keeping the evidence (in memory and in the database) is the serving data
plane's job; this module only computes it.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

#: how many recent answers are kept for their feedback
RECENT = 200_000

#: ``(rewards, pulls)`` per variant
Evidence = dict[str, tuple[float, int]]


class Rewarding(Protocol):
    """Feedback on one answer (``loopwise.serving.feedback.Feedback`` is one): a reward in [0, 1], or the
    true labels of the answer's texts, or neither."""

    @property
    def inference_id(self) -> str: ...

    @property
    def labels(self) -> tuple[str, ...] | None: ...

    @property
    def reward(self) -> float | None: ...


def thompson(names: Sequence[str], arms: dict[str, tuple[float, int]], rng: random.Random) -> str:
    """Thompson sampling: draw each arm's success rate from its Beta(1 + rewards, 1 + pulls - rewards)
    posterior and take the best draw (an arm without evidence draws from the uniform prior)."""
    best, best_draw = names[0], -1.0
    for name in names:
        rewards, pulls = arms.get(name, (0.0, 0))
        draw = rng.betavariate(1.0 + rewards, 1.0 + max(0.0, pulls - rewards))
        if draw > best_draw:
            best, best_draw = name, draw
    return best


def posterior_mean(rewards: float, pulls: int) -> float:
    """The mean of an arm's Beta(1 + rewards, 1 + pulls - rewards) posterior: its expected reward."""
    return (1 + rewards) / (2 + pulls)


class BanditBook:
    """The recent answers of bandit endpoints, waiting for their feedback; not thread-safe (the data plane
    uses it from its event loop only)."""

    def __init__(self, keep: int = RECENT) -> None:
        self.keep = keep
        self.recent: OrderedDict[tuple[str, str], tuple[str, list[str]]] = OrderedDict()

    def remember(self, endpoint: str, inference_id: str, variant: str, predicted: list[str]) -> None:
        """Keep an answer; past ``keep`` answers, the oldest is forgotten."""
        self.recent[(endpoint, inference_id)] = (variant, predicted)
        while len(self.recent) > self.keep:
            self.recent.popitem(last=False)

    def evidence(self, endpoint: str, items: Sequence[Rewarding]) -> Evidence:
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
