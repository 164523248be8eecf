"""The models automated labeling and active learning choose among, job by job, and the cross-fitting that
judges them on people's answers.

Candidates (``AutoLabelSettings.models``):

- ``tfidf``: loopwise's TF-IDF backend (word n-grams and a logistic regression), fast and strong on long,
  wordy texts;
- ``embeddings``: the bundled MiniLM's sentence embeddings (computed once per item and cached:
  :mod:`loopwise.labeling.embeddings`) with a logistic-regression head, strong on short texts;
- ``finetune``: the bundled MiniLM fine-tuned end to end, tried once people have given
  ``finetune_min_labels`` answers (below that it rarely beats the embeddings' head, and it costs minutes
  a fold on a CPU).

Each candidate is cross-fitted: the items people labeled at random are dealt into folds, and each fold is
predicted by a model trained on the other folds plus every actively chosen item. That gives every random
answer an out-of-fold prediction (the candidates' validation figures, and what the certificate checks
thresholds on: :mod:`loopwise.labeling.certificate`) while every answer still trains. Each waiting item
is dealt to one fold too and scored by that fold's model, so it is scored exactly as the answers that
vouch for it were.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from loopwise.classifiers._base import TrainConfig

ModelName = Literal["tfidf", "embeddings", "finetune"]
MODELS: tuple[ModelName, ...] = ("tfidf", "embeddings", "finetune")

#: fit on (training rows, their class indices), then predict each array of rows: class probabilities
FitPredict = Callable[[np.ndarray, np.ndarray, Sequence[np.ndarray]], list[np.ndarray]]


def _full(proba: np.ndarray, seen: np.ndarray, classes: int) -> np.ndarray:
    """Probabilities over every class from a model that saw only the classes ``seen``."""
    out = np.zeros((proba.shape[0], classes))
    out[:, seen] = proba
    return out


def tfidf_learner(texts: Sequence[str], labels: Sequence[str], C: float) -> FitPredict:
    """Loopwise's TF-IDF classifier on the rows' texts."""
    from loopwise.classifiers._base import InMemoryExamples
    from loopwise.classifiers.tfidf import TfidfClassifier

    def fit_predict(train: np.ndarray, y: np.ndarray, predict: Sequence[np.ndarray]) -> list[np.ndarray]:
        model = TfidfClassifier(list(labels), C=C, min_df=1)
        model.fit(InMemoryExamples([texts[i] for i in train], [labels[k] for k in y]), progress=False)
        return [model.predict_proba([texts[i] for i in rows]) for rows in predict]

    return fit_predict


def linear_learner(features: Any, classes: int, C: float) -> FitPredict:
    """A logistic regression on rows of ``features`` (a matrix aligned with the job's items)."""
    from sklearn.linear_model import LogisticRegression

    def fit_predict(train: np.ndarray, y: np.ndarray, predict: Sequence[np.ndarray]) -> list[np.ndarray]:
        model = LogisticRegression(C=C, max_iter=3000).fit(features[train], y)
        seen = model.classes_.astype(int)
        return [
            _full(model.predict_proba(features[rows]), seen, classes) if len(rows) else np.zeros((0, classes))
            for rows in predict
        ]

    return fit_predict


def finetune_learner(
    texts: Sequence[str], labels: Sequence[str], base_model: str | None, config: TrainConfig
) -> FitPredict:
    """The base model fine-tuned on the rows' texts (loopwise's transformers backend)."""
    from loopwise.classifiers._base import InMemoryExamples
    from loopwise.classifiers.transformer import TransformerClassifier

    def fit_predict(train: np.ndarray, y: np.ndarray, predict: Sequence[np.ndarray]) -> list[np.ndarray]:
        model = TransformerClassifier(list(labels), base_model=base_model)
        examples = InMemoryExamples([texts[i] for i in train], [labels[k] for k in y])
        model.fit(examples, config=config, progress=False)
        return [model.predict_proba([texts[i] for i in rows]) for rows in predict]

    return fit_predict


@dataclass(frozen=True)
class CrossFit:
    """One candidate's cross-fitted predictions: ``validating`` (out of fold, one row per random
    answer) and ``waiting`` (each waiting item by the model of the fold it was dealt to)."""

    name: str
    validating: np.ndarray
    waiting: np.ndarray
    accuracy: float
    log_loss: float
    folds: int

    def figures(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 4),
            "log_loss": round(self.log_loss, 4),
            "validated_on": len(self.validating),
            "folds": self.folds,
        }


def deal_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold per answer, each class spread evenly over the folds (at random within a class)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=int)
    offset = 0
    for k in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == k))
        fold[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return fold


def cross_fit(
    name: str,
    fit_predict: FitPredict,
    validating: tuple[np.ndarray, np.ndarray],
    extra: tuple[np.ndarray, np.ndarray],
    waiting: np.ndarray,
    *,
    folds: int,
    seed: int,
) -> CrossFit:
    """Cross-fit one candidate: ``validating`` and ``extra`` are (rows, class indices) of the random
    and the actively chosen answers; ``waiting`` the rows to score."""
    rows, y = validating
    extra_rows, extra_y = extra
    folds = max(2, min(folds, len(rows)))
    fold = deal_folds(y, folds, seed)
    dealt = np.random.default_rng(seed + 1).permutation(len(waiting)) % folds
    out_of_fold: np.ndarray | None = None
    scored: np.ndarray | None = None
    for f in range(folds):
        train = np.concatenate([rows[fold != f], extra_rows])
        train_y = np.concatenate([y[fold != f], extra_y])
        held, dealt_here = np.flatnonzero(fold == f), np.flatnonzero(dealt == f)
        held_proba, waiting_proba = fit_predict(train, train_y, [rows[held], waiting[dealt_here]])
        if out_of_fold is None or scored is None:
            out_of_fold = np.zeros((len(rows), held_proba.shape[1]))
            scored = np.zeros((len(waiting), held_proba.shape[1]))
        out_of_fold[held] = held_proba
        scored[dealt_here] = waiting_proba
    assert out_of_fold is not None and scored is not None
    picked = np.clip(out_of_fold[np.arange(len(y)), y], 1e-12, 1.0)
    accuracy = float((out_of_fold.argmax(axis=1) == y).mean())
    return CrossFit(name, out_of_fold, scored, accuracy, float(-np.log(picked).mean()), folds)


def best(fits: Sequence[CrossFit]) -> CrossFit:
    """The candidate with the highest out-of-fold accuracy (then the lowest log loss, then the first:
    candidates come cheapest first)."""
    return min(fits, key=lambda fit: (-round(fit.accuracy, 6), round(fit.log_loss, 6)))
