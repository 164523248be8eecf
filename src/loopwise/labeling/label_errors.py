"""Likely wrong labels after consolidation, found by cleanlab, and the review queue they go to.

Every labeled item of the job gets an out-of-sample probability for each class from a TF-IDF classifier
fitted on the other folds (scikit-learn's ``cross_val_predict``, up to five stratified folds); cleanlab's
``find_label_issues`` (confident learning) then flags the items whose label those probabilities find
unlikely, ranked by their label's self-confidence. Each flagged item opens a review (once: an item with an
open review is not flagged again) with the model's suggestion; a reviewer keeps the label or changes it,
once, and a change becomes the item's label (``labeled_by`` ``reviewer``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from loopwise.errors import AnswerRefusedError, LabelingError, NotFoundError
from loopwise.labeling.records import Review

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.workforce.records import Worker


def out_of_sample_probabilities(
    texts: list[str], labels: list[str], classes: list[str], *, C: float = 20.0
) -> np.ndarray:
    """Each text's class probabilities from TF-IDF + logistic regression fitted on the other folds."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    index = {label: i for i, label in enumerate(classes)}
    y = np.array([index[label] for label in labels])
    present = np.bincount(y, minlength=len(classes))
    folds = int(min(5, present[present > 0].min()))
    if folds < 2 or np.count_nonzero(present) < 2:
        raise LabelingError("too few labeled items per class to look for label errors (two of each at least)")
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(C=C, max_iter=3000)
    )
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    found = cross_val_predict(model, texts, y, cv=split, method="predict_proba")
    # a class missing from the labels has no column: put it back as zeros
    proba = np.zeros((len(texts), len(classes)))
    proba[:, np.flatnonzero(present)] = found
    return proba


def find_label_errors(store: Store, name: str) -> list[Review]:
    """Flag the job's likely wrong labels and open a review for each; returns the new reviews, most
    suspect first."""
    from cleanlab.filter import find_label_issues

    from loopwise.labeling.lookup import find_job

    job = find_job(store, name)
    with store.uow() as uow:
        items = uow.labels.labeled_for_review(job.id)
    if len(items) < 10:
        raise LabelingError(f"job {name} has {len(items)} labeled items: consolidate first, or label more")
    classes = job.labels
    proba = out_of_sample_probabilities([t for _, t, _ in items], [label for *_, label in items], classes)
    index = {label: i for i, label in enumerate(classes)}
    given = np.array([index[label] for *_, label in items])
    flagged = find_label_issues(given, proba, return_indices_ranked_by="self_confidence")
    suspects = [
        (items[i][0], classes[int(proba[i].argmax())], float(proba[i, given[i]]))
        for i in flagged
        if classes[int(proba[i].argmax())] != items[i][2]
    ]
    with store.uow() as uow:
        return uow.labels.open_reviews(job.id, suspects)


def reviews(store: Store, worker: Worker, job_id: int, *, status: str | None = "open") -> list[Review]:
    from loopwise.labeling.lookup import job_for

    job = job_for(store, worker, job_id)
    with store.uow() as uow:
        return uow.labels.reviews(job.id, status=status)


def decide(store: Store, worker: Worker, review_id: int, label: str) -> Review:
    """The reviewer's decision: keep the label (send it again) or change it; taken once."""
    from loopwise.labeling.lookup import job_for

    with store.uow() as uow:
        found = uow.labels.review(review_id)
    if found is None:
        raise NotFoundError(f"no review {review_id}")
    job = job_for(store, worker, found.job_id)
    if label not in job.labels:
        raise LabelingError(f"{label!r} is not a category of job {job.name}: {', '.join(job.labels)}")
    with store.uow() as uow:
        decided = uow.labels.decide_review(review_id, label, worker.id)
        if decided is None:
            raise AnswerRefusedError(f"review {review_id} was decided already")
        return decided
