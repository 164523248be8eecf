"""What one round of automated labeling decides, from people's answers so far (no storage here, so the
same code runs in jobs, in the benchmark and in the certificate's simulation test):

1. cross-fit each candidate model on the answers (:mod:`loopwise.labeling.learners`) and keep the one
   with the best out-of-fold accuracy;
2. certify a confidence threshold on its out-of-fold predictions of the random answers
   (:mod:`loopwise.labeling.certificate`), at the job's confidence level split evenly over the candidates
   compared (a Bonferroni correction: picking the best of several on the same answers must not weaken the
   guarantee);
3. label by machine the waiting items whose confidence reaches the threshold;
4. choose the next batch for people among the rest: ``audit_share`` of it at random (those answers join
   the random ones that validate thresholds, so the certificate tightens round by round), the rest by the
   job's strategy on the chosen model's probabilities and representation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from loopwise.errors import LabelingError
from loopwise.labeling.certificate import Certificate, certify
from loopwise.labeling.learners import MODELS, CrossFit, FitPredict, best, cross_fit

Strategy = Literal["margin", "entropy", "diversity", "random"]
STRATEGIES: tuple[Strategy, ...] = ("margin", "entropy", "diversity", "random")


@dataclass(frozen=True)
class AutoLabelSettings:
    target_accuracy: float = 0.95
    #: the confidence of the accuracy's lower bound
    confidence_level: float = 0.95
    #: the random seed set people label first, as a share of the items (at least ``min_seed``)
    seed_share: float = 0.1
    min_seed: int = 100
    #: items sent to people per round after the seed, as a share of the items (at least 1)
    batch_share: float = 0.05
    #: the part of each batch drawn at random, to validate thresholds on (the rest by ``strategy``)
    audit_share: float = 0.5
    strategy: Strategy = "margin"
    #: the candidate models, compared each round by cross-fitting (see loopwise.labeling.learners)
    models: tuple[str, ...] = MODELS
    folds: int = 5
    #: the fewest answers from people before a fine-tuned transformer is tried
    finetune_min_labels: int = 2000
    finetune_epochs: int = 2
    #: the encoder of ``embeddings`` and ``finetune`` (None: the bundled MiniLM)
    base_model: str | None = None
    #: the answers the first threshold tried holds (default: half the validating answers, between the
    #: fewest that could pass and four times that)
    min_count: int | None = None
    #: the inverse regularisation of the TF-IDF classifier and of the embeddings' head
    C: float = 4.0
    embeddings_C: float = 8.0
    seed: int = 0
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        models = self.models.split(",") if isinstance(self.models, str) else self.models
        object.__setattr__(self, "models", tuple(str(m).strip() for m in models))
        problems = []
        if not 0.5 <= self.target_accuracy < 1:
            problems.append(f"target accuracy {self.target_accuracy}: between 0.5 and 1")
        if not 0.5 <= self.confidence_level < 1:
            problems.append(f"confidence level {self.confidence_level}: between 0.5 and 1")
        if not 0 < self.seed_share < 1 or not 0 < self.batch_share < 1:
            problems.append("seed and batch shares: between 0 and 1")
        if not 0 <= self.audit_share <= 1:
            problems.append(f"audit share {self.audit_share}: between 0 and 1")
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy {self.strategy!r}: one of {', '.join(STRATEGIES)}")
        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models:
            problems.append(f"models {list(self.models)}: one or more of {', '.join(MODELS)}")
        if not 2 <= self.folds <= 20:
            problems.append(f"folds {self.folds}: between 2 and 20")
        if self.min_count is not None and self.min_count < 1:
            problems.append(f"min count {self.min_count}: at least 1")
        if problems:
            raise LabelingError("automated labeling: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "models": list(self.models)}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> AutoLabelSettings:
        """Settings as stored; keys of older versions (``holdout_share``) are left out."""
        return cls(**{k: v for k, v in document.items() if k in cls.__dataclass_fields__})


def select(
    strategy: Strategy, proba: np.ndarray, count: int, *, features: Any = None, seed: int = 0
) -> np.ndarray:
    """Indices of the ``count`` rows of ``proba`` people should label next. ``diversity`` clusters
    the 5 x ``count`` smallest margins on ``features`` (k-means) and takes the smallest margin of each
    cluster (cluster-margin), so a batch does not ask the same thing twice."""
    n = proba.shape[0]
    if count >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return np.sort(rng.choice(n, count, replace=False))
    ordered = np.sort(proba, axis=1)
    margin = ordered[:, -1] - ordered[:, -2]
    if strategy == "entropy":
        entropy = -(proba * np.log(np.clip(proba, 1e-12, 1))).sum(axis=1)
        return np.argsort(-entropy, kind="stable")[:count]
    most_uncertain = np.argsort(margin, kind="stable")
    if strategy == "margin" or features is None:
        return most_uncertain[:count]
    from sklearn.cluster import MiniBatchKMeans

    pool = most_uncertain[: min(n, 5 * count)]
    clusters = MiniBatchKMeans(n_clusters=count, random_state=seed, n_init=3).fit_predict(features[pool])
    picked = []
    for cluster in range(count):
        members = pool[clusters == cluster]
        if len(members):
            picked.append(members[np.argmin(margin[members])])
    taken = set(picked)
    rest = [i for i in pool if i not in taken]
    return np.array(picked + rest[: count - len(picked)])


@dataclass(frozen=True)
class RoundPlan:
    """A round's decisions; ``machine``, ``audit`` and ``active`` index the waiting rows."""

    choice: dict[str, Any]
    certificate: Certificate
    machine: dict[int, tuple[int, float]]
    audit: list[int]
    active: list[int]
    chosen: CrossFit

    def to_dict(self) -> dict[str, Any]:
        return {"model_choice": self.choice, "certificate": self.certificate.to_dict()}


def plan_round(
    candidates: Mapping[str, FitPredict],
    validating: tuple[np.ndarray, np.ndarray],
    extra: tuple[np.ndarray, np.ndarray],
    waiting: np.ndarray,
    settings: AutoLabelSettings,
    *,
    batch: int,
    seed: int,
    skipped: Mapping[str, str] | None = None,
    features: Callable[[str, np.ndarray], Any] | None = None,
) -> RoundPlan:
    """One round's decisions (see the module's text) for ``waiting`` rows, from the random answers
    ``validating`` and the actively chosen ones ``extra`` ((rows, class indices) each). ``features(name,
    rows)`` gives the representation a candidate learned from, for the diversity strategy."""
    fits = [
        cross_fit(name, fit_predict, validating, extra, waiting, folds=settings.folds, seed=seed)
        for name, fit_predict in candidates.items()
    ]
    chosen = best(fits)
    level = 1 - (1 - settings.confidence_level) / len(fits)
    y = validating[1]
    certificate = certify(
        chosen.validating.max(axis=1),
        chosen.validating.argmax(axis=1) == y,
        settings.target_accuracy,
        level,
        start=settings.min_count,
    )
    certificate = replace(certificate, confidence=settings.confidence_level)  # the level stated
    machine = _machine(chosen.waiting, certificate.threshold)
    rest = np.array([row for row in range(len(waiting)) if row not in machine], dtype=int)
    audit, active = _for_people(chosen, settings, waiting, rest, batch, seed, features)
    choice = {
        "chosen": chosen.name,
        "metric": "accuracy",
        "confidence_per_candidate": round(level, 6),
        "candidates": {
            **{fit.name: fit.figures() for fit in fits},
            **{name: {"skipped": why} for name, why in (skipped or {}).items()},
        },
    }
    return RoundPlan(choice, certificate, machine, audit, active, chosen)


def _machine(proba: np.ndarray, threshold: float | None) -> dict[int, tuple[int, float]]:
    """The waiting rows whose confidence reaches the threshold, with their class and confidence."""
    if threshold is None or not len(proba):
        return {}
    confidence, predicted = proba.max(axis=1), proba.argmax(axis=1)
    return {
        int(row): (int(predicted[row]), float(confidence[row]))
        for row in np.flatnonzero(confidence >= threshold)
    }


def _for_people(
    chosen: CrossFit,
    settings: AutoLabelSettings,
    waiting: np.ndarray,
    rest: np.ndarray,
    batch: int,
    seed: int,
    features: Callable[[str, np.ndarray], Any] | None,
) -> tuple[list[int], list[int]]:
    """The next batch among ``rest`` (waiting rows the machine left): a random audit part, then the
    strategy's picks among what remains."""
    if not len(rest):
        return [], []
    rng = np.random.default_rng(seed)
    audit_count = min(len(rest), round(settings.audit_share * batch))
    audit = rng.choice(rest, audit_count, replace=False) if audit_count else np.zeros(0, dtype=int)
    remaining = np.setdiff1d(rest, audit)
    wanted = min(len(remaining), batch - audit_count)
    if not wanted:
        return sorted(audit.tolist()), []
    representation = (
        features(chosen.name, waiting[remaining])
        if settings.strategy == "diversity" and features is not None
        else None
    )
    picks = select(settings.strategy, chosen.waiting[remaining], wanted, features=representation, seed=seed)
    return sorted(audit.tolist()), [int(remaining[p]) for p in picks]
