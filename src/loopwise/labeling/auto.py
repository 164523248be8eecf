"""Automated labeling with active learning, as Ground Truth does it but open and adjustable.

People first label a random seed set; part of it (the holdout) never trains a model and only measures
one. Each round then:

1. consolidates the people's answers;
2. trains a fast classifier (loopwise's TF-IDF backend, registered as ``<job>-auto``) on the people's
   labels outside the holdout;
3. chooses a confidence threshold per class on the holdout by fixed-sequence testing: thresholds are
   tried from the highest confidence down (starting at four times the smallest count that could pass
   at all: 236 items for 0.95 at 95%), each kept only while the one-sided Clopper-Pearson lower bound (at
   ``confidence_level``) of the accuracy above it reaches ``target_accuracy``; a class whose first
   threshold fails gets no machine labels this round;
4. labels by machine the waiting items whose predicted class passes its threshold (each marked with the
   model version and the threshold);
5. sends the most informative of the rest to people: ``margin`` (the smallest gap between the two most
   likely classes), ``entropy``, ``diversity`` (k-means clusters over the most uncertain, one item from
   each, so a batch does not repeat itself) or ``random``;

until every item has a label. The holdout is a random sample, so it stands for the items the machine
labels; actively chosen items only ever train.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from loopwise.errors import LabelingError
from loopwise.labeling.lookup import find_job

if TYPE_CHECKING:
    from pathlib import Path

    from loopwise.classifiers.tfidf import TfidfClassifier
    from loopwise.labeling.records import LabelingJob
    from loopwise.registry.records import ModelVersion
    from loopwise.storage import Store

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
    #: the part of the seed set that only measures models (never trains them)
    holdout_share: float = 0.5
    #: items sent to people per round after the seed, as a share of the items (at least 1)
    batch_share: float = 0.05
    strategy: Strategy = "margin"
    #: the fewest holdout items a first threshold is tried on (default: four times the fewest that could
    #: pass at all, 236 for 0.95 at 95%: a sequence that starts where one error fails it is fragile)
    min_count: int | None = None
    #: the TF-IDF classifier's inverse regularisation
    C: float = 4.0
    seed: int = 0
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        problems = []
        if not 0.5 <= self.target_accuracy < 1:
            problems.append(f"target accuracy {self.target_accuracy}: between 0.5 and 1")
        if not 0.5 <= self.confidence_level < 1:
            problems.append(f"confidence level {self.confidence_level}: between 0.5 and 1")
        if not 0 < self.seed_share < 1 or not 0 < self.batch_share < 1:
            problems.append("seed and batch shares: between 0 and 1")
        if not 0 < self.holdout_share < 1:
            problems.append(f"holdout share {self.holdout_share}: between 0 and 1")
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy {self.strategy!r}: one of {', '.join(STRATEGIES)}")
        if problems:
            raise LabelingError("automated labeling: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> AutoLabelSettings:
        return cls(**document)


def lower_bound(correct: int, total: int, level: float) -> float:
    """The one-sided Clopper-Pearson lower bound of a proportion at confidence ``level``."""
    from scipy.stats import beta

    if total == 0 or correct == 0:
        return 0.0
    return float(beta.ppf(1 - level, correct, total - correct + 1))


def fewest_passing(target: float, level: float) -> int:
    """The fewest items, all right, whose accuracy's lower bound reaches ``target``."""
    return math.ceil(math.log(1 - level) / math.log(target))


def choose_thresholds(
    proba: np.ndarray, truth: np.ndarray, target: float, level: float, min_count: int | None = None
) -> list[float | None]:
    """Per class, the lowest confidence threshold whose accuracy on the holdout (``proba`` rows with
    ``truth`` class indices) keeps a lower bound of at least ``target`` in a fixed sequence from the
    top; None where the first threshold tried fails. The sequence starts at ``min_count`` items (four
    times the fewest that could pass, unless told): where it starts depends on the target and level
    only, never on the labels, so the choice stays valid."""
    predicted, confidence = proba.argmax(axis=1), proba.max(axis=1)
    fewest = fewest_passing(target, level)
    start = max(fewest, 4 * fewest if min_count is None else min_count)
    chosen: list[float | None] = []
    for k in range(proba.shape[1]):
        mine = np.flatnonzero(predicted == k)
        order = mine[np.argsort(-confidence[mine], kind="stable")]
        scores = confidence[order]
        right = np.cumsum(truth[order] == k)
        threshold = None
        for i in range(start, len(order) + 1):
            if i < len(order) and scores[i] == scores[i - 1]:
                continue  # a threshold keeps every item of equal confidence or none
            if lower_bound(int(right[i - 1]), i, level) < target:
                break
            threshold = float(scores[i - 1])
        chosen.append(threshold)
    return chosen


def select(
    strategy: Strategy, proba: np.ndarray, count: int, *, features: Any = None, seed: int = 0
) -> np.ndarray:
    """Indices of the ``count`` rows of ``proba`` people should label next."""
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
    # diversity: cluster the 5 x count most uncertain and take the most uncertain of each cluster
    from sklearn.cluster import MiniBatchKMeans

    pool = most_uncertain[: min(n, 5 * count)]
    clusters = MiniBatchKMeans(n_clusters=count, random_state=seed, n_init=3).fit_predict(features[pool])
    picked = []
    for cluster in range(count):
        members = pool[clusters == cluster]
        if len(members):
            picked.append(members[np.argmin(margin[members])])
    rest = [i for i in pool if i not in set(picked)]
    return np.array(picked + rest[: count - len(picked)])


@dataclass(frozen=True)
class RoundReport:
    round: int
    model: str
    thresholds: dict[str, float | None]
    machine_labeled: int
    sent_to_people: int
    waiting: int
    holdout: int
    trained_on: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_round(store: Store, name: str) -> RoundReport:
    """One round of automated labeling for job ``name`` (see the module's text); refused while people
    still have open items."""
    from loopwise.storage.locks import named_lock

    job = find_job(store, name)
    with named_lock(store.engine, f"auto-label-{job.id}"):
        settings, waiting = _start_round(store, job)
        if not waiting:  # the last batch is answered: the job is done
            with store.uow() as uow:
                uow.labeling.set_status(job.id, "Completed", when="InProgress")
            return RoundReport(len(settings.rounds) + 1, "", {}, 0, 0, 0, 0, 0)
        return _label_round(store, job, settings)


def _start_round(store: Store, job: LabelingJob) -> tuple[AutoLabelSettings, int]:
    """Check that the job may have a round now and consolidate the people's answers (step 1); returns
    the job's settings and how many items wait."""
    from loopwise.labeling.output import consolidate_job

    name = job.name
    with store.uow() as uow:
        settings_document = uow.labels.auto_label(job.id)
        if settings_document is None:
            raise LabelingError(f"job {name} was not created with automated labeling (--auto-label)")
        settings = AutoLabelSettings.from_dict(settings_document)
        counts = uow.labeling.status_counts(job.id)
    if job.status != "InProgress":
        raise LabelingError(f"job {name} is {job.status}: no more rounds")
    if counts.get("open", 0):
        raise LabelingError(f"job {name}: people still have {counts['open']} open items this round")
    consolidate_job(store, name, "dawid-skene" if job.workers_per_item > 1 else "majority")
    return settings, counts.get("waiting", 0)


def _label_round(store: Store, job: LabelingJob, settings: AutoLabelSettings) -> RoundReport:
    """Steps 2 to 5 of a round, for a job with waiting items; records the round."""
    with store.uow() as uow:
        people = uow.labels.human_labeled(job.id)
        waiting = uow.labels.waiting_items(job.id)
    labels = job.labels
    train = [(text, label) for text, label, pool in people if pool != "holdout"]
    holdout = [(text, label) for text, label, pool in people if pool == "holdout"]
    if len({label for _, label in train}) < 2:
        raise LabelingError(f"job {job.name}: the people's labels hold fewer than two classes: label more")
    number = len(settings.rounds) + 1
    model, folder = _train(store, job, settings, train, number)
    thresholds = _holdout_thresholds(model, labels, holdout, settings)
    by_class = dict(zip(labels, thresholds, strict=True))
    version = _register_model(store, job, folder, number, by_class)
    proba = model.predict_proba([text for _, text in waiting]) if waiting else np.zeros((0, len(labels)))
    machine = _machine_labels(waiting, proba, thresholds, labels)
    rest = [row for row, (item_id, _) in enumerate(waiting) if item_id not in machine]
    chosen = _for_people(model, settings, job, waiting, rest, proba, number)
    report = RoundReport(
        round=number,
        model=version.ref,
        thresholds=by_class,
        machine_labeled=len(machine),
        sent_to_people=len(chosen),
        waiting=len(rest) - len(chosen),
        holdout=len(holdout),
        trained_on=len(train),
    )
    rounds = [*settings.rounds, {**report.to_dict(), "at": datetime.now(UTC).isoformat()}]
    with store.uow() as uow:
        uow.labels.set_machine_labels(job.id, machine, version.ref)
        uow.labels.release(job.id, chosen, pool="active")
        uow.labels.set_auto_label(job.id, {**settings.to_dict(), "rounds": rounds})
        if not uow.labeling.open_items(job.id):
            uow.labeling.set_status(job.id, "Completed", when="InProgress")
    (folder / "round.json").write_text(json.dumps(rounds[-1], indent=2) + "\n", encoding="utf-8")
    return report


def _train(
    store: Store, job: LabelingJob, settings: AutoLabelSettings, train: list[tuple[str, str]], number: int
) -> tuple[TfidfClassifier, Path]:
    """Step 2: the round's TF-IDF classifier, fitted on the people's labels outside the holdout and saved
    under the job's artifacts; returns it and its folder."""
    from loopwise.classifiers._base import InMemoryExamples
    from loopwise.classifiers.tfidf import TfidfClassifier

    model = TfidfClassifier(job.labels, C=settings.C, min_df=1)
    model.fit(InMemoryExamples([t for t, _ in train], [label for _, label in train]), progress=False)
    folder = store.artifacts.path(f"labeling/{job.name}/models/round-{number}")
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder)
    return model, folder


def _holdout_thresholds(
    model: TfidfClassifier, labels: list[str], holdout: list[tuple[str, str]], settings: AutoLabelSettings
) -> list[float | None]:
    """Step 3: each class's confidence threshold, chosen on the holdout (none without a holdout)."""
    if not holdout:
        return [None] * len(labels)
    index = {label: i for i, label in enumerate(labels)}
    proba = model.predict_proba([t for t, _ in holdout])
    truth = np.array([index[label] for _, label in holdout])
    return choose_thresholds(
        proba, truth, settings.target_accuracy, settings.confidence_level, settings.min_count
    )


def _register_model(
    store: Store, job: LabelingJob, folder: Path, number: int, by_class: dict[str, float | None]
) -> ModelVersion:
    """The round's model in the registry, as ``<job>-auto`` with its thresholds."""
    from loopwise.registry import register

    with store.uow() as uow:
        return register(
            uow,
            f"{job.name}-auto",
            backend="tfidf",
            uri=folder.as_uri(),
            labels=list(job.labels),
            params={"labeling_job": job.name, "round": number, "thresholds": by_class},
            description=f"automated labeling of job {job.name}, round {number}",
        )


def _machine_labels(
    waiting: list[tuple[int, str]], proba: np.ndarray, thresholds: list[float | None], labels: list[str]
) -> dict[int, tuple[str, float, float]]:
    """Step 4: the waiting items whose predicted class passes its threshold, by item id, with their
    label, confidence and threshold."""
    predicted, confidence = proba.argmax(axis=1), proba.max(axis=1)
    machine: dict[int, tuple[str, float, float]] = {}
    for row, (item_id, _) in enumerate(waiting):
        threshold = thresholds[predicted[row]]
        if threshold is not None and confidence[row] >= threshold:
            machine[item_id] = (labels[predicted[row]], float(confidence[row]), threshold)
    return machine


def _for_people(
    model: TfidfClassifier,
    settings: AutoLabelSettings,
    job: LabelingJob,
    waiting: list[tuple[int, str]],
    rest: list[int],
    proba: np.ndarray,
    number: int,
) -> list[int]:
    """Step 5: the item ids of the next batch for people, chosen by the job's strategy among ``rest``
    (rows of ``waiting`` the machine did not label)."""
    if not rest:
        return []
    batch = max(1, round(settings.batch_share * job.items_count))
    features = (
        model.vectorizer.transform([waiting[r][1] for r in rest])
        if settings.strategy == "diversity"
        else None
    )
    picks = select(settings.strategy, proba[rest], batch, features=features, seed=settings.seed + number)
    return [waiting[rest[int(p)]][0] for p in picks]


def initial_pools(count: int, settings: AutoLabelSettings) -> list[tuple[str, str | None]]:
    """Each item's first status and pool: the random seed set (its holdout part apart) open for people,
    the rest waiting."""
    rng = np.random.default_rng(settings.seed)
    seed_size = min(count, max(settings.min_seed, round(settings.seed_share * count)))
    seed = rng.permutation(count)[:seed_size]
    holdout = set(seed[: round(settings.holdout_share * seed_size)].tolist())
    chosen = set(seed.tolist())
    return [
        ("open", "holdout" if i in holdout else "seed") if i in chosen else ("waiting", None)
        for i in range(count)
    ]


def run_due_rounds(store: Store) -> list[RoundReport]:
    """A round for every job whose people have answered all they were given while items wait (the
    server calls this every few seconds; several servers may: the job's lock makes one do it)."""
    import logging

    with store.uow() as uow:
        due = uow.labels.auto_jobs_due()
    reports = []
    for name in due:
        try:
            reports.append(run_round(store, name))
        except LabelingError as exc:  # another server ran it meanwhile, or the labels are too few
            logging.getLogger(__name__).info("automated labeling of %s: %s", name, exc)
    return reports
