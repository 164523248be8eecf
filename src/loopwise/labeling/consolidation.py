"""Annotation consolidation: one label and a confidence per item from several workers' answers, each
worker's estimated quality, and how much the workers agree.

* ``majority``: the most frequent answer; its confidence is the share of answers that gave it, and a tie
  goes to the answer of the workers who agree most with the others' majority elsewhere (then to the
  category listed first).
* ``dawid-skene`` (the default, as Ground Truth's consolidation): crowd-kit's Dawid-Skene EM, which learns
  each worker's confusion matrix, so a careful worker outweighs two careless ones; the confidence is the
  item's posterior probability of its label. A worker's quality is their estimated accuracy: the diagonal
  of their confusion matrix weighted by the class priors.

Agreement: Krippendorff's alpha (nominal; any number of answers per item) with the ``krippendorff``
package, and Fleiss' kappa over the items with the job's full count of answers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from loopwise._extras import needs_extra
from loopwise.errors import LabelingError

Method = Literal["majority", "dawid-skene"]
METHODS: tuple[Method, ...] = ("dawid-skene", "majority")


@dataclass(frozen=True)
class Vote:
    item_id: int
    worker: str
    label: str


@dataclass(frozen=True)
class Consolidated:
    """Each answered item's label and confidence, each worker's quality, and the agreement figures."""

    method: Method
    labels: dict[int, str]
    confidence: dict[int, float]
    #: estimated accuracy per worker (Dawid-Skene), or agreement with the others' majority (majority)
    worker_quality: dict[str, float]
    krippendorff_alpha: float | None
    fleiss_kappa: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "items": len(self.labels),
            "worker_quality": {w: round(q, 4) for w, q in sorted(self.worker_quality.items())},
            "krippendorff_alpha": None
            if self.krippendorff_alpha is None
            else round(self.krippendorff_alpha, 4),
            "fleiss_kappa": None if self.fleiss_kappa is None else round(self.fleiss_kappa, 4),
        }


def consolidate(
    votes: Sequence[Vote],
    categories: Sequence[str],
    method: Method = "dawid-skene",
    *,
    per_item: int | None = None,
) -> Consolidated:
    """Consolidate ``votes`` (labels among ``categories``); ``per_item``: the job's answers per item, for
    Fleiss' kappa."""
    if method not in METHODS:
        raise LabelingError(f"unknown consolidation method {method!r}: use {' or '.join(METHODS)}")
    unknown = {v.label for v in votes} - set(categories)
    if unknown:
        raise LabelingError(f"answers outside the categories {list(categories)}: {sorted(unknown)}")
    if not votes:
        return Consolidated(method, {}, {}, {}, None, None)
    if method == "majority":
        labels, confidence, quality = _majority(votes, categories)
    else:
        labels, confidence, quality = _dawid_skene(votes, categories)
    counts = _counts(votes, categories)
    return Consolidated(
        method,
        labels,
        confidence,
        quality,
        krippendorff_alpha(counts),
        fleiss_kappa(counts, per_item) if per_item and per_item > 1 else None,
    )


def _agreement_with_others(votes: Sequence[Vote]) -> dict[str, float]:
    by_item: dict[int, list[Vote]] = defaultdict(list)
    for vote in votes:
        by_item[vote.item_id].append(vote)
    agreed: Counter[str] = Counter()
    compared: Counter[str] = Counter()
    for item_votes in by_item.values():
        for vote in item_votes:
            others = Counter(v.label for v in item_votes if v.worker != vote.worker)
            if not others:
                continue
            top = max(others.values())
            compared[vote.worker] += 1
            agreed[vote.worker] += others[vote.label] == top and list(others.values()).count(top) == 1
    return {w: agreed[w] / compared[w] for w in compared}


def _majority(
    votes: Sequence[Vote], categories: Sequence[str]
) -> tuple[dict[int, str], dict[int, float], dict[str, float]]:
    quality = _agreement_with_others(votes)
    order = {label: i for i, label in enumerate(categories)}
    by_item: dict[int, list[Vote]] = defaultdict(list)
    for vote in votes:
        by_item[vote.item_id].append(vote)
    labels: dict[int, str] = {}
    confidence: dict[int, float] = {}
    for item_id, item_votes in by_item.items():
        counts = Counter(v.label for v in item_votes)
        weight: dict[str, float] = defaultdict(float)
        for v in item_votes:
            weight[v.label] += quality.get(v.worker, 0.0)
        best = min(counts, key=lambda label: (-counts[label], -weight[label], order[label]))
        labels[item_id] = best
        confidence[item_id] = counts[best] / len(item_votes)
    return labels, confidence, quality


def _dawid_skene(
    votes: Sequence[Vote], categories: Sequence[str]
) -> tuple[dict[int, str], dict[int, float], dict[str, float]]:
    import pandas as pd

    # crowd-kit's package requires transformers, so it comes with loopwise[train]
    with needs_extra("Dawid-Skene consolidation (--method majority needs no extra)"):
        from crowdkit.aggregation import DawidSkene

    frame = pd.DataFrame(
        {
            "task": [v.item_id for v in votes],
            "worker": [v.worker for v in votes],
            "label": [v.label for v in votes],
        }
    )
    model = DawidSkene(n_iter=100, tol=1e-6)
    model.fit(frame)
    probas, priors, errors = model.probas_, model.priors_, model.errors_
    assert probas is not None and priors is not None and errors is not None  # set by fit
    labels: dict[int, str] = {}
    confidence: dict[int, float] = {}
    for item_id, row in probas.iterrows():
        labels[int(item_id)] = str(row.idxmax())
        confidence[int(item_id)] = float(row.max())
    quality = {}
    for worker in frame["worker"].unique():
        accuracy = 0.0
        for label, prior in priors.items():
            if (worker, label) in errors.index and label in errors.columns:
                accuracy += float(prior) * float(errors.loc[(worker, label), label])
        quality[str(worker)] = accuracy
    return labels, confidence, quality


def _counts(votes: Sequence[Vote], categories: Sequence[str]) -> np.ndarray:
    """Items x categories: how many workers gave each item each category."""
    index = {label: i for i, label in enumerate(categories)}
    items = sorted({v.item_id for v in votes})
    row = {item: i for i, item in enumerate(items)}
    counts = np.zeros((len(items), len(categories)), dtype=np.int64)
    for vote in votes:
        counts[row[vote.item_id], index[vote.label]] += 1
    return counts


def krippendorff_alpha(counts: np.ndarray) -> float | None:
    """Krippendorff's alpha (nominal) from an items x categories count matrix; None when no item has
    two answers or every answer is the same category (alpha is undefined then)."""
    import krippendorff

    usable = counts[counts.sum(axis=1) >= 2]
    if usable.shape[0] == 0 or np.count_nonzero(usable.sum(axis=0)) < 2:
        return None
    return float(krippendorff.alpha(value_counts=usable, level_of_measurement="nominal"))


def fleiss_kappa(counts: np.ndarray, raters: int) -> float | None:
    """Fleiss' kappa over the items rated by exactly ``raters`` workers (Fleiss, 1971); None when fewer
    than two such items, or when chance agreement is total."""
    rows = counts[counts.sum(axis=1) == raters].astype(float)
    if rows.shape[0] < 2 or raters < 2:
        return None
    shares = rows.sum(axis=0) / rows.sum()
    per_item = (np.square(rows).sum(axis=1) - raters) / (raters * (raters - 1))
    observed, expected = per_item.mean(), float(np.square(shares).sum())
    if expected >= 1.0:
        return None
    return float((observed - expected) / (1 - expected))
