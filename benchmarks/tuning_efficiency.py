"""Tuning efficiency: loopwise's search strategies at equal compute on the reviews task, over several seeds.

Compute is counted in training examples processed (every trial's, pruned ones included; validation passes
are not counted). Each seed gives every strategy the same budget: ``--budget-trials`` full-length trials,
which is exactly what random search spends; the others ask for trials until the budget is spent (the trial
running when it runs out is cut there and never completes).

Two fidelities, both cheap enough to repeat on one core, both on the course split (train / validation /
test: 5,537 / 307 / 309) with the same validation set: the course's 307 validation reviews move accuracy in
steps of 0.0033, too coarse to compare strategies, so ``--holdout`` reviews (1,500 by default) are held out
of the course's TRAINING split, stratified by label, drawn once with a fixed seed (``HOLDOUT_SEED``, the
same for every fidelity, tuner seed and strategy); trials train on the remaining reviews (4,037 by default)
and the course's validation split is not used. The course's test split (309) scores each job's chosen
trial.

* ``tfidf-sgd`` (the PRIMARY fidelity, the headline): TF-IDF features (word 1-2 grams, sublinear tf,
  min_df 2; fitted once on the training reviews; fixed, not searched) and sklearn's
  ``SGDClassifier(loss="log_loss")`` trained epoch by epoch with ``partial_fit`` on the training rows
  shuffled each epoch with the trial's seed. Searched (``SGD_SPACE``, TrainConfig's names, since
  ``parse_spec`` takes no others): ``learning_rate`` -> ``eta0`` (log 1e-5..1, ``constant`` schedule, fixed)
  and ``weight_decay`` -> ``alpha``, the L2 strength (log 1e-7..1e-1). ``batch_size`` is not searched:
  sklearn's SGD updates after every example, so splitting an epoch into mini-batch ``partial_fit`` calls
  gives the same model (measured: identical accuracies at chunks of 16, 64 and 256) at 5-70x the time;
  an epoch is one call (about 17 ms). A full trial is ``--sgd-epochs`` 27 epochs (Hyperband's rungs at
  1, 3, 9 and 27). It is primary because there the hyperparameters matter, as the learning rate does when
  fine-tuning BERT: a full trial's validation accuracy spans about 0.50 to 0.66 (learning rates below
  1e-4 stay near the 0.60 of an almost untrained model; large rates with strong L2 fall to 0.50-0.58),
  and every job's chosen trial has a learning rate in the top decade of five. Its top is still wide
  enough that 20 random trials get within 10 reviews of the best.
* ``embedding-head`` (beside it, the earlier fidelity): every review embedded once with the frozen bundled
  all-MiniLM-L6-v2 (mean pooling, 128 tokens; cached as .npz in the loopwise cache), standardized with the
  statistics of the training reviews; a trial trains a classification head (384 -> 256 ReLU, dropout 0.1
  -> 3, float32; AdamW with linear warmup and decay over the trial's planned epochs, gradient clipping) for
  ``--head-epochs`` 9 epochs (rungs at 1, 3 and 9), over ``HEAD_SPACE`` (the shape of
  ``default_bayesian.yaml``: learning rate log 1e-5..1e-1, warmup ratio, weight decay, batch size 64-512).
  Its landscape is flat: every strategy's best lies within about 20 of 1,500 validation reviews, so
  reaching random search's best there is luck. It costs about 17 minutes on one core; ``--reuse-head
  FILE`` takes its figures from an earlier result file instead of rerunning it (marked ``reused_from``).

In both, a trial validates after every epoch and reports validation accuracy at step = training examples
seen so far (``make_pruner(spec, train_size=len(train))``). A trial's value is its best validation
accuracy (the kept checkpoint, as in a real job); a job's best is the best COMPLETE trial's
(``study.best_trial``), so a pruned trial's partial score never counts. The search space is a real spec
read by ``parse_spec``, and samplers and pruners come from ``loopwise.tuning.strategies``: the code of real
jobs runs. Strategies: ``random`` (no early stopping, full-length trials), ``random-median`` (random,
``early_stopping: auto``), ``bayesian`` (multivariate TPE, no early stopping), ``hyperband`` (TPE +
Hyperband: loopwise's default, read from the built-in default spec) and ``bayesian-median`` (spec strategy
``bayesian`` with ``early_stopping: auto``: multivariate TPE + the median rule). Same space, budget and
rules for all.

Choosing a default without selection bias: strategies are compared on one set of tuner seeds (the
selection seeds, ``--first-seed 0``), then a candidate picked there is rerun on fresh seeds
(``--first-seed 10``) with ``--candidate NAME``, which applies a rule fixed in advance: the candidate becomes
``default_strategy`` if its median fraction over those fresh seeds is at most 1/3, else loopwise's default
stays. ``--selection FILE`` keeps the selection run's primary-fidelity figures beside the confirmation's
(``selection_seeds``); the top-level ``compute_fraction_vs_random`` is the confirmation seeds' figure.

Figures, per fidelity and strategy, against random search's final best of the same seed:

* ``compute_fraction_vs_random`` (the headline, for the default strategy; at the top level, the primary
  fidelity's): the MEDIAN over seeds of the per-seed fraction = compute until the strategy's best complete
  trial first reaches random search's final best of that seed / random search's total compute (never
  reaching it counts as infinity);
* the MEAN of the per-seed fractions, "never" counted as 1.0 (a lower bound), and how many seeds never
  reach it, and how many reach it within a third of the budget;
* the fraction from the MEAN best-so-far curves over seeds: the compute where the strategy's mean curve
  first reaches random search's mean final best, divided by the (shared) budget;
* mean best validation accuracy at 10/25/33/50/100% of the budget, mean test accuracy of the chosen trial.

Prints JSON and writes benchmarks/results/tuning_efficiency.json (``fidelities``: each fidelity's figures,
per-seed summaries and improvement curves; every trial's parameters only with ``--trial-log``).

    python benchmarks/tuning_efficiency.py [--seeds 10] [--first-seed 0] [--budget-trials 20]
        [--sgd-epochs 27] [--head-epochs 9] [--holdout 1500] [--fidelities tfidf-sgd embedding-head]
        [--strategies ...] [--reuse-head FILE] [--candidate NAME] [--selection FILE]

The published figures (selection seeds 0-9, then confirmation seeds 10-19):

    python benchmarks/tuning_efficiency.py --seeds 10 --budget-trials 20 --fidelities tfidf-sgd \
        --reuse-head benchmarks/results/tuning_efficiency.json --output tuning_efficiency_selection.json
    python benchmarks/tuning_efficiency.py --seeds 10 --first-seed 10 --budget-trials 20 \
        --fidelities tfidf-sgd --strategies random hyperband bayesian-median --candidate bayesian-median \
        --selection tuning_efficiency_selection.json --reuse-head tuning_efficiency_selection.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from loopwise.classifiers.transformer import default_base_model
from loopwise.config import Settings
from loopwise.data.cache import fetch_reviews
from loopwise.data.recipes import REVIEWS_LABELS, reviews_splits
from loopwise.tuning.space import build_config, suggest
from loopwise.tuning.spec import TuningSpec, builtin_spec_path, load_spec, parse_spec
from loopwise.tuning.strategies import make_pruner, make_sampler

RESULTS = Path(__file__).parent / "results" / "tuning_efficiency.json"
MAX_LEN = 128
HIDDEN = 256
DROPOUT = 0.1
TARGET_FRACTION = 1 / 3
#: seed of the stratified validation hold-out drawn from the course's training split (fixed: the same
#: validation set for every tuner seed and strategy)
HOLDOUT_SEED = 20_261_128
#: resolution of the mean best-so-far curves stored in the JSON (fractions of the budget)
CURVE_GRID = tuple(round(i / 50, 2) for i in range(1, 51))
BUDGET_POINTS = (0.1, 0.25, 1 / 3, 0.5, 1.0)
#: benchmark name -> (spec strategy, early_stopping)
STRATEGIES: dict[str, tuple[str, str]] = {
    "random": ("random", "off"),
    "random-median": ("random", "auto"),
    "bayesian": ("bayesian", "off"),
    "hyperband": ("hyperband", "auto"),
    "bayesian-median": ("bayesian", "auto"),
}
#: the embedding-head fidelity's search space (the shape of default_bayesian.yaml, a wider learning rate)
HEAD_SPACE: dict[str, Any] = {
    "learning_rate": {"type": "continuous", "min": 1e-5, "max": 1e-1, "scaling": "log"},
    "warmup_ratio": {"type": "continuous", "min": 0.0, "max": 0.2, "scaling": "linear"},
    "weight_decay": {"type": "continuous", "min": 0.0, "max": 0.1, "scaling": "linear"},
    "batch_size": {"type": "categorical", "values": [64, 128, 256, 512]},
}
#: the tfidf-sgd fidelity's search space, in TrainConfig's names (parse_spec accepts no others):
#: learning_rate -> SGDClassifier's eta0 (constant schedule), weight_decay -> alpha (the L2 strength)
SGD_SPACE: dict[str, Any] = {
    "learning_rate": {"type": "continuous", "min": 1e-5, "max": 1.0, "scaling": "log"},
    "weight_decay": {"type": "continuous", "min": 1e-7, "max": 1e-1, "scaling": "log"},
}
SGD_SCHEDULE = "constant"
TFIDF = {"ngram_range": (1, 2), "sublinear_tf": True, "min_df": 2}
PRIMARY = "tfidf-sgd"
WHY_PRIMARY = (
    "tfidf-sgd is the primary fidelity because there the hyperparameters matter, as the learning rate does "
    "when fine-tuning BERT: a full trial's best validation accuracy spans about 0.50 to 0.66 across the "
    "space (learning rates below 1e-4 stay near the 0.60 of an almost untrained model; large learning "
    "rates with strong L2 fall to 0.50-0.58), and the chosen trials' learning rates all lie in 0.06-0.9, "
    "the top decade of five. On the embedding-head fidelity (beside it) the landscape is flat: every "
    "strategy's best lies within about 20 of 1,500 validation reviews, and reaching random search's best "
    "there is luck. The top of tfidf-sgd is not sharp either: 20 random trials find a trial within about "
    "10 reviews of every strategy's best on every seed."
)


# -- data: the course split, embedded once --------------------------------------------------------------


@dataclass(frozen=True)
class Embedded:
    """Standardized sentence embeddings and label codes of the three splits."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]

    @property
    def n_train(self) -> int:
        return len(self.y["train"])


def embed(texts: list[str], model_dir: Path, batch_size: int = 64) -> np.ndarray:
    """Mean-pooled frozen all-MiniLM-L6-v2 embeddings (float32, one row per text, in order)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    order = np.argsort([len(t) for t in texts])  # similar lengths together: little padding
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=MAX_LEN,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out[rows] = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy()
    return out


def stratified_holdout(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of ``size`` rows drawn without replacement, each label in proportion to its share of
    ``labels`` (largest remainders), with a fixed seed; sorted."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = counts * size / len(labels)
    take = np.floor(quotas).astype(int)
    for i in np.argsort(-(quotas - take))[: size - int(take.sum())]:
        take[i] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(picked))


def load_embedded(settings: Settings, csv: Path | None, holdout: int) -> tuple[Embedded, dict[str, Any]]:
    """The course split's embeddings (computed once, cached under the loopwise cache directory), with a
    stratified validation set of ``holdout`` reviews taken out of the training split (0: the course's
    validation split)."""
    csv_path = fetch_reviews(settings, source_file=csv)
    splits = reviews_splits(csv_path)
    model_dir = default_base_model()
    key = hashlib.sha256(f"{splits.sha256}|{model_dir.name}|mean|{MAX_LEN}".encode()).hexdigest()[:16]
    cache = settings.resolved_cache_dir / "benchmarks" / f"tuning_efficiency-{key}.npz"
    started = time.perf_counter()
    if cache.is_file():
        arrays = dict(np.load(cache))
        how = "cached"
    else:
        arrays = {}
        for name in ("train", "validation", "test"):
            frame = splits.frames[name]
            log(f"embedding {len(frame)} {name} reviews with the frozen MiniLM...")
            arrays[f"x_{name}"] = embed(frame["text"].tolist(), model_dir)
            arrays[f"y_{name}"] = np.array([REVIEWS_LABELS.index(v) for v in frame["label"]], dtype=np.int64)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **arrays)
        how = "computed"
    x = {s: arrays[f"x_{s}"] for s in ("train", "validation", "test")}
    y = {s: arrays[f"y_{s}"] for s in ("train", "validation", "test")}
    if holdout:
        if not 0 < holdout < len(y["train"]):
            raise SystemExit(f"--holdout must be below the training split's {len(y['train'])} rows")
        held = stratified_holdout(y["train"], holdout, HOLDOUT_SEED)
        kept = np.setdiff1d(np.arange(len(y["train"])), held)
        x["validation"], y["validation"] = x["train"][held], y["train"][held]
        x["train"], y["train"] = x["train"][kept], y["train"][kept]
    mean, std = x["train"].mean(0), x["train"].std(0) + 1e-6
    data = Embedded(
        x={s: torch.from_numpy((v - mean) / std) for s, v in x.items()},
        y={s: torch.from_numpy(v) for s, v in y.items()},
    )
    info = {
        "embeddings": how,
        "embedding_s": round(time.perf_counter() - started, 1),
        "embeddings_cache": f"$LOOPWISE_HOME/cache/benchmarks/{cache.name}",
        "course_split_sizes": {s: len(arrays[f"y_{s}"]) for s in ("train", "validation", "test")},
        "split_sizes": {s: len(data.y[s]) for s in data.y},
        "label_counts": {
            s: {REVIEWS_LABELS[c]: int((data.y[s] == c).sum()) for c in range(len(REVIEWS_LABELS))}
            for s in data.y
        },
    }
    return data, info


@dataclass(frozen=True)
class Sparse:
    """TF-IDF rows (CSR, float64) and label codes of the three splits."""

    x: dict[str, Any]
    y: dict[str, np.ndarray]

    @property
    def n_train(self) -> int:
        return len(self.y["train"])


def load_tfidf(settings: Settings, csv: Path | None, holdout: int) -> tuple[Sparse, dict[str, Any]]:
    """TF-IDF features of the same reviews and the same validation hold-out as :func:`load_embedded`; the
    vectorizer is fitted once, on the reviews the trials train on."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    started = time.perf_counter()
    splits = reviews_splits(fetch_reviews(settings, source_file=csv))
    texts = {s: splits.frames[s]["text"].tolist() for s in ("train", "validation", "test")}
    y = {
        s: np.array([REVIEWS_LABELS.index(v) for v in splits.frames[s]["label"]], dtype=np.int64)
        for s in texts
    }
    if holdout:
        if not 0 < holdout < len(y["train"]):
            raise SystemExit(f"--holdout must be below the training split's {len(y['train'])} rows")
        held = stratified_holdout(y["train"], holdout, HOLDOUT_SEED)
        kept = np.setdiff1d(np.arange(len(y["train"])), held)
        train = texts["train"]
        texts["validation"], y["validation"] = [train[i] for i in held], y["train"][held]
        texts["train"], y["train"] = [train[i] for i in kept], y["train"][kept]
    vectorizer = TfidfVectorizer(**TFIDF)
    x = {"train": vectorizer.fit_transform(texts["train"]).tocsr()}
    x.update({s: vectorizer.transform(texts[s]).tocsr() for s in ("validation", "test")})
    data = Sparse(x=x, y=y)
    info = {
        "tfidf_s": round(time.perf_counter() - started, 1),
        "tfidf_features": int(x["train"].shape[1]),
        "split_sizes": {s: len(v) for s, v in y.items()},
        "label_counts": {
            s: {REVIEWS_LABELS[c]: int((v == c).sum()) for c in range(len(REVIEWS_LABELS))}
            for s, v in y.items()
        },
    }
    return data, info


# -- one trial: a classification head on the embeddings ---------------------------------------------------


@dataclass
class TrialRecord:
    number: int
    params: dict[str, Any]
    state: str = "RUNNING"
    examples: int = 0
    #: the study's cumulative compute when the trial ended
    finished_at: int = 0
    epochs_run: int = 0
    best_val_acc: float | None = None
    test_acc_at_best: float | None = None
    val_accs: list[float] = field(default_factory=list)


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def run_head_trial(
    trial: optuna.Trial, spec: TuningSpec, data: Embedded, budget_left: int, record: TrialRecord
) -> TrialState:
    """Train the head for the trial's epochs, reporting validation accuracy at step = examples seen; stop
    when the pruner says so or ``budget_left`` examples are spent (then the trial stays unfinished)."""
    config = build_config(spec, record.params)
    torch.manual_seed(config.seed * 100_003 + trial.number)
    x, y, n = data.x["train"], data.y["train"], data.n_train
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Dropout(DROPOUT),
        torch.nn.Linear(HIDDEN, len(REVIEWS_LABELS)),
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_ratio * total_steps)

    def factor(step: int) -> float:  # linear warmup, then linear decay to 0 (the trainer's schedule)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    for epoch in range(1, config.epochs + 1):
        if record.examples + n > budget_left:
            return TrialState.RUNNING  # the budget ends inside this epoch: the trial never completes
        model.train()
        for index in torch.randperm(n).split(config.batch_size):
            loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            schedule.step()
        record.examples += n
        record.epochs_run = epoch
        model.eval()
        val_acc = _accuracy(model, data.x["validation"], data.y["validation"])
        record.val_accs.append(round(val_acc, 4))
        if record.best_val_acc is None or val_acc > record.best_val_acc:
            record.best_val_acc = val_acc
            record.test_acc_at_best = _accuracy(model, data.x["test"], data.y["test"])
        trial.report(val_acc, record.examples)
        if trial.should_prune():
            return TrialState.PRUNED
    return TrialState.COMPLETE


def run_sgd_trial(
    trial: optuna.Trial, spec: TuningSpec, data: Sparse, budget_left: int, record: TrialRecord
) -> TrialState:
    """Train ``SGDClassifier(loss="log_loss")`` epoch by epoch with ``partial_fit`` (the training rows
    shuffled each epoch with the trial's seed), reporting validation accuracy at step = examples seen.
    sklearn's SGD updates after every example, so the whole shuffled epoch goes in one call: splitting it
    into chunks gives the same model, only slower."""
    from sklearn.linear_model import SGDClassifier

    config = build_config(spec, record.params)
    seed = config.seed * 100_003 + trial.number
    rng = np.random.default_rng(seed)
    x, y, n = data.x["train"], data.y["train"], data.n_train
    model = SGDClassifier(
        loss="log_loss",
        learning_rate=SGD_SCHEDULE,
        eta0=config.learning_rate,
        alpha=config.weight_decay,
        shuffle=False,  # this loop shuffles, with the trial's seed
        random_state=seed,
        n_jobs=1,
    )
    classes = np.arange(len(REVIEWS_LABELS))

    def accuracy(split: str) -> float:
        scores = np.nan_to_num(model.decision_function(data.x[split]))  # a diverged model still scores
        return float((scores.argmax(1) == data.y[split]).mean())

    for epoch in range(1, config.epochs + 1):
        if record.examples + n > budget_left:
            return TrialState.RUNNING  # the budget ends inside this epoch: the trial never completes
        order = rng.permutation(n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow at the largest learning rates
            model.partial_fit(x[order], y[order], classes=classes)
        record.examples += n
        record.epochs_run = epoch
        val_acc = accuracy("validation")
        record.val_accs.append(round(val_acc, 4))
        if record.best_val_acc is None or val_acc > record.best_val_acc:
            record.best_val_acc = val_acc
            record.test_acc_at_best = accuracy("test")
        trial.report(val_acc, record.examples)
        if trial.should_prune():
            return TrialState.PRUNED
    return TrialState.COMPLETE


@dataclass(frozen=True)
class Fidelity:
    """A cheap stand-in for a tuning job's trials: its data, search space, trial loop and full length."""

    name: str
    data: Any
    space: dict[str, Any]
    epochs: int
    trial: Callable[[optuna.Trial, TuningSpec, Any, int, TrialRecord], TrialState]
    info: dict[str, Any]

    @property
    def n_train(self) -> int:
        return int(self.data.n_train)


# -- one strategy, one seed --------------------------------------------------------------------------------


def benchmark_spec(
    strategy: str, early_stopping: str, seed: int, budget_trials: int, epochs: int, space: dict[str, Any]
) -> TuningSpec:
    return parse_spec(
        {
            "name": f"tuning-efficiency-{strategy}",
            "dataset": "reviews",
            "static": {"epochs": epochs, "seed": seed},
            "parameters": space,
            "objective": {"metric": "val_acc", "direction": "maximize"},
            "strategy": strategy,
            "early_stopping": early_stopping,
            "max_trials": budget_trials,
            "seed": seed,
        }
    )


def run_strategy(
    name: str, seed: int, fidelity: Fidelity, budget_trials: int, trial_log: bool = False
) -> dict[str, Any]:
    """One tuning job of strategy ``name`` with a budget of ``budget_trials`` full trials of examples
    (``trial_log``: keep every trial's parameters and outcome in the result)."""
    strategy, early_stopping = STRATEGIES[name]
    spec = benchmark_spec(strategy, early_stopping, seed, budget_trials, fidelity.epochs, fidelity.space)
    budget = budget_trials * fidelity.epochs * fidelity.n_train
    study = optuna.create_study(
        study_name=f"{spec.name}-seed{seed}",  # Hyperband's brackets hash the study name: keep it fixed
        direction=spec.objective.direction,
        sampler=make_sampler(spec),
        pruner=make_pruner(spec, train_size=fidelity.n_train),
    )
    used, best, best_record, curve, records = 0, None, None, [], []
    started = time.perf_counter()
    while used < budget:
        trial = study.ask()
        record = TrialRecord(trial.number, suggest(trial, spec))
        state = fidelity.trial(trial, spec, fidelity.data, budget - used, record)
        used += record.examples
        record.finished_at, record.state = used, state.name
        records.append(record)
        if state is TrialState.RUNNING:
            break  # budget spent mid-trial
        if state is TrialState.COMPLETE:
            assert record.best_val_acc is not None
            study.tell(trial, record.best_val_acc)
            if best is None or record.best_val_acc > best:
                best, best_record = record.best_val_acc, record
                curve.append((used, best, record.test_acc_at_best))
        else:
            study.tell(trial, state=state)
    states = [r.state for r in records]

    def _params(r: TrialRecord) -> dict[str, Any]:
        return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in r.params.items()}

    result: dict[str, Any] = {
        "budget_examples": budget,
        "used_examples": used,
        "trials": len(records),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "cut_by_budget": states.count("RUNNING"),
        "best_val_acc": None if best is None else round(best, 4),
        "test_acc_of_best": round(curve[-1][2], 4) if curve else None,
        "best_params": None if best_record is None else _params(best_record),
        #: (compute, best validation accuracy so far, that trial's test accuracy) at each improvement
        "curve": [[c, round(v, 4), round(t, 4)] for c, v, t in curve],
        "seconds": round(time.perf_counter() - started, 1),
    }
    if trial_log:
        result["trial_log"] = [
            {
                "n": r.number,
                "state": r.state,
                "epochs": r.epochs_run,
                "best_val_acc": None if r.best_val_acc is None else round(r.best_val_acc, 4),
                "params": _params(r),
            }
            for r in records
        ]
    return result


# -- figures ------------------------------------------------------------------------------------------------


def best_at(run: dict[str, Any], compute: float) -> float | None:
    """Best validation accuracy known once ``compute`` examples are spent (None: no trial complete yet)."""
    known = [v for c, v, _ in run["curve"] if c <= compute + 1e-9]
    return known[-1] if known else None


def compute_to_reach(run: dict[str, Any], target: float) -> int | None:
    """The compute at which the run's best first reaches ``target`` (None: never, within its budget)."""
    return next((c for c, v, _ in run["curve"] if v >= target - 1e-9), None)


def mean_curve_at(by_seed: dict[int, dict[str, Any]], compute: float) -> float | None:
    """The mean over seeds of the best-so-far validation accuracy at ``compute`` (None until every seed
    has a complete trial)."""
    values = [best_at(run, compute) for run in by_seed.values()]
    return None if any(v is None for v in values) else statistics.fmean(v for v in values if v is not None)


def mean_curve_reach(by_seed: dict[int, dict[str, Any]], target: float) -> int | None:
    """The compute at which the mean best-so-far curve over seeds first reaches ``target`` (exact: the
    mean of step functions only changes where one of them does; None: never, within the budget)."""
    points = sorted({c for run in by_seed.values() for c, _, _ in run["curve"]})
    for compute in points:
        value = mean_curve_at(by_seed, compute)
        if value is not None and value >= target - 1e-9:
            return compute
    return None


def bootstrap_median(fractions: list[float], resamples: int = 10_000) -> list[float | None]:
    """A 95% percentile bootstrap interval of the median over seeds (None: "never", an infinite end)."""
    rng = np.random.default_rng(0)
    values = np.array([1e9 if math.isinf(f) else f for f in fractions])
    medians = np.median(rng.choice(values, size=(resamples, len(values))), axis=1)
    ends = np.percentile(medians, [2.5, 97.5])
    return [None if e > 1 else round(float(e), 4) for e in ends]


def summarize(runs: dict[str, dict[int, dict[str, Any]]], default: str) -> dict[str, Any]:
    seeds = sorted(runs["random"])
    per_seed: dict[str, Any] = {}
    fractions: dict[str, list[float]] = {name: [] for name in runs}
    for seed in seeds:
        random_run = runs["random"][seed]
        target, budget = random_run["best_val_acc"], random_run["budget_examples"]
        row: dict[str, Any] = {"random_best_val_acc": target, "budget_examples": budget}
        for name, by_seed in runs.items():
            run = by_seed[seed]
            reach = compute_to_reach(run, target)
            fraction = math.inf if reach is None else reach / budget
            fractions[name].append(fraction)
            row[name] = {
                "best_val_acc": run["best_val_acc"],
                "test_acc_of_best": run["test_acc_of_best"],
                "compute_to_reach_random_best": reach,
                "fraction_of_random_compute": None if reach is None else round(fraction, 4),
                "trials": run["trials"],
                "complete": run["complete"],
                "pruned": run["pruned"],
            }
        per_seed[str(seed)] = row

    def _median(values: list[float]) -> float | None:
        middle = statistics.median(values)
        return None if math.isinf(middle) else round(middle, 4)

    budget = runs["random"][seeds[0]]["budget_examples"]  # the same for every seed and strategy
    random_mean_final = statistics.fmean(runs["random"][s]["best_val_acc"] for s in seeds)
    strategies: dict[str, Any] = {}
    for name, by_seed in runs.items():
        bests = [by_seed[s]["best_val_acc"] for s in seeds]
        tests = [by_seed[s]["test_acc_of_best"] for s in seeds]
        points = {}
        for point in BUDGET_POINTS:
            values = [best_at(by_seed[s], point * by_seed[s]["budget_examples"]) for s in seeds]
            known = [v for v in values if v is not None]
            points[f"{point:.2f}"] = {
                "mean_best_val_acc": round(statistics.fmean(known), 4) if known else None,
                "seeds_with_a_complete_trial": len(known),
            }
        reached = [f for f in fractions[name] if not math.isinf(f)]
        curve_reach = mean_curve_reach(by_seed, random_mean_final)
        mean_curve = [mean_curve_at(by_seed, g * budget) for g in CURVE_GRID]
        strategies[name] = {
            "mean_best_val_acc": round(statistics.fmean(bests), 4),
            "mean_test_acc_of_best": round(statistics.fmean(t for t in tests if t is not None), 4),
            "best_val_acc_by_budget_fraction": points,
            "median_fraction_to_reach_random_best": _median(fractions[name]),
            "median_fraction_bootstrap_95ci": bootstrap_median(fractions[name]),
            "mean_fraction_never_as_1": round(statistics.fmean(min(f, 1.0) for f in fractions[name]), 4),
            "mean_fraction_when_reached": round(statistics.fmean(reached), 4) if reached else None,
            "fraction_from_mean_curves": None if curve_reach is None else round(curve_reach / budget, 4),
            "seeds_reaching_random_best": f"{len(reached)}/{len(seeds)}",
            "seeds_never_reaching_random_best": len(seeds) - len(reached),
            "seeds_within_target_fraction": sum(f <= TARGET_FRACTION + 1e-9 for f in fractions[name]),
            "per_seed_fractions": [None if math.isinf(f) else round(f, 4) for f in fractions[name]],
            "mean_trials": round(statistics.fmean(by_seed[s]["trials"] for s in seeds), 1),
            "mean_pruned": round(statistics.fmean(by_seed[s]["pruned"] for s in seeds), 1),
            #: the mean over seeds of the best-so-far validation accuracy at CURVE_GRID (null until every
            #: seed has a complete trial)
            "mean_curve": [None if v is None else round(v, 4) for v in mean_curve],
        }
    headline = _median(fractions[default])
    figures = strategies[default]
    return {
        "compute_fraction_vs_random": headline,
        "definition": (
            "compute_fraction_vs_random is the MEDIAN over seeds of the per-seed fraction: the compute "
            "(training examples, all trials, pruned ones too) the default strategy spends until its best "
            "complete trial's validation accuracy reaches random search's final best of the same seed, "
            "divided by random search's total compute (the budget every strategy gets); never reaching it "
            "within the budget counts as infinity (null if the median is infinite)"
        ),
        "compute_fraction_vs_random_mean_never_as_1": figures["mean_fraction_never_as_1"],
        "compute_fraction_vs_random_from_mean_curves": figures["fraction_from_mean_curves"],
        "seeds_never_reaching_random_best": figures["seeds_never_reaching_random_best"],
        "target_fraction": round(TARGET_FRACTION, 4),
        "target_met": headline is not None and headline <= TARGET_FRACTION + 1e-9,
        "default_strategy": default,
        "aggregates": {
            "mean_fraction_never_as_1": (
                "the mean over seeds of the per-seed fractions, a seed that never reaches random search's "
                "final best counted as 1.0 (a lower bound: it would need more than the budget)"
            ),
            "fraction_from_mean_curves": (
                "the compute at which the mean over seeds of the strategy's best-so-far curve first reaches "
                "the mean over seeds of random search's final best, divided by the budget"
            ),
            "median_fraction_bootstrap_95ci": "95% bootstrap interval of the median over seeds (null: never)",
            "mean_curve_grid": list(CURVE_GRID),
            "random_mean_final_best_val_acc": round(random_mean_final, 4),
        },
        "strategies": strategies,
        "per_seed": per_seed,
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


HEADLINE_KEYS = (
    "compute_fraction_vs_random",
    "definition",
    "compute_fraction_vs_random_mean_never_as_1",
    "compute_fraction_vs_random_from_mean_curves",
    "seeds_never_reaching_random_best",
    "target_fraction",
    "target_met",
    "default_strategy",
)


def head_fidelity(args: argparse.Namespace) -> Fidelity:
    data, data_info = load_embedded(Settings(), args.csv, args.holdout)
    info = {
        "task": "reviews sentiment, the course split (reviews_splits defaults)",
        "validation": _validation(args.holdout, "heads"),
        "features": "frozen all-MiniLM-L6-v2, mean pooling, max 128 tokens, standardized (head-training "
        "reviews' statistics)",
        "head": f"384 -> {HIDDEN} ReLU, dropout {DROPOUT} -> 3; AdamW, warmup/linear decay, clipping",
        "epochs_per_full_trial": args.head_epochs,
        "search_space": HEAD_SPACE,
        **data_info,
    }
    return Fidelity("embedding-head", data, HEAD_SPACE, args.head_epochs, run_head_trial, info)


def sgd_fidelity(args: argparse.Namespace) -> Fidelity:
    data, data_info = load_tfidf(Settings(), args.csv, args.holdout)
    info = {
        "task": "reviews sentiment, the course split (reviews_splits defaults)",
        "validation": _validation(args.holdout, "trials"),
        "features": "TF-IDF, word 1-2 grams, sublinear tf, min_df 2, fitted once on the training reviews "
        "(fixed, not searched)",
        "model": f"sklearn SGDClassifier(loss='log_loss', learning_rate='{SGD_SCHEDULE}', shuffle=False), "
        "one-vs-rest over the 3 labels; partial_fit once per epoch on the training rows shuffled with the "
        "trial's seed (sklearn's SGD updates per example, so mini-batch chunks give the same model: "
        "batch_size is not searched)",
        "parameter_mapping": {
            "learning_rate": "eta0 (constant schedule)",
            "weight_decay": "alpha (L2 strength)",
        },
        "epochs_per_full_trial": args.sgd_epochs,
        "search_space": SGD_SPACE,
        **data_info,
    }
    return Fidelity("tfidf-sgd", data, SGD_SPACE, args.sgd_epochs, run_sgd_trial, info)


def _validation(holdout: int, who: str) -> str:
    if not holdout:
        return "the course's validation split"
    return (
        f"{holdout} reviews held out of the course's training split, stratified by label, seed "
        f"{HOLDOUT_SEED} (fixed across tuner seeds and strategies); {who} train on the rest; the course's "
        "validation split is unused; test: the course's test split"
    )


def reused(path: Path, name: str) -> dict[str, Any]:
    """Fidelity ``name``'s figures from an earlier result file (this script's format, or the earlier
    one-fidelity format, whose only fidelity was the embedding head)."""
    earlier = json.loads(path.read_text())
    if "fidelities" in earlier:
        if name not in earlier["fidelities"]:
            raise SystemExit(f"{path} holds no {name} figures to reuse")
        return earlier["fidelities"][name]
    if name != "embedding-head":
        raise SystemExit(f"{path} is a one-fidelity result: it holds embedding-head figures only")
    kept = ("aggregates", "strategies", "per_seed", "fidelity", "seeds", "runs", "runtime_s")
    return {
        **{key: earlier[key] for key in (*HEADLINE_KEYS, *kept) if key in earlier},
        "reused_from": {
            "note": "not rerun: the figures of the earlier one-fidelity run of this benchmark, unchanged",
            **{k: earlier.get(k) for k in ("command", "date", "runtime_s", "threads", "machine", "optuna")},
        },
    }


def decide(
    runs: dict[str, dict[int, dict[str, Any]]], candidate: str, default: str, seeds: list[int]
) -> tuple[str, dict[str, Any]]:
    """The decision rule, fixed before the seeds it is applied to were run: ``candidate`` becomes the
    default strategy if its median fraction over these seeds is at most 1/3; else ``default`` stays."""
    if candidate not in runs:
        raise SystemExit(f"--candidate {candidate} is not among --strategies")
    median = summarize(runs, candidate)["compute_fraction_vs_random"]
    met = median is not None and median <= TARGET_FRACTION + 1e-9
    return (candidate if met else default), {
        "rule": (
            f"fixed before these seeds were run: {candidate} becomes default_strategy if its median "
            f"fraction to reach random search's final best over these seeds is <= 1/3 (never = infinity); "
            f"else {default} (loopwise's default) stays"
        ),
        "candidate": candidate,
        "loopwise_default": default,
        "seeds": seeds,
        "candidate_median_fraction": median,
        "rule_met": met,
        "default_strategy": candidate if met else default,
    }


def selected(path: Path, name: str) -> dict[str, Any]:
    """Fidelity ``name``'s figures from an earlier result file (the selection seeds), with its command."""
    earlier = json.loads(path.read_text())
    if name not in earlier.get("fidelities", {}):
        raise SystemExit(f"{path} holds no {name} figures")
    return {
        **earlier["fidelities"][name],
        "from": {k: earlier.get(k) for k in ("command", "date", "runtime_s", "threads", "machine", "optuna")},
    }


def _seed_set(figures: dict[str, Any], note: str) -> dict[str, Any]:
    """One seed set's median fraction (and seeds reaching random's best) per strategy."""
    return {
        "seeds": figures["seeds"],
        "note": note,
        "median_fraction_by_strategy": {
            s: f["median_fraction_to_reach_random_best"] for s, f in figures["strategies"].items()
        },
        "seeds_reaching_random_best": {
            s: f["seeds_reaching_random_best"] for s, f in figures["strategies"].items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="how many tuner seeds (at least 5)")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="the first tuner seed: seeds FIRST..FIRST+N-1 (default 0)"
    )
    parser.add_argument(
        "--budget-trials", type=int, default=20, help="compute budget per seed, in full-length trials"
    )
    parser.add_argument(
        "--fidelities",
        nargs="+",
        default=[PRIMARY, "embedding-head"],
        choices=[PRIMARY, "embedding-head"],
        help="the fidelities to run (the first present of tfidf-sgd, embedding-head is the headline)",
    )
    parser.add_argument(
        "--reuse-head",
        type=Path,
        default=None,
        help="take the embedding-head figures from this earlier result file instead of running them",
    )
    parser.add_argument("--sgd-epochs", type=int, default=27, help="epochs of a full tfidf-sgd trial (3^3)")
    parser.add_argument(
        "--head-epochs", "--epochs", type=int, default=9, help="epochs of a full embedding-head trial (3^2)"
    )
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=list(STRATEGIES),
        choices=list(STRATEGIES),
        help="random is always run",
    )
    parser.add_argument(
        "--holdout",
        type=int,
        default=1500,
        help="validation reviews held out of the course's training split, stratified (0: course validation)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads, embedding too (small matrices: 1 is fastest)"
    )
    parser.add_argument(
        "--candidate",
        choices=list(STRATEGIES),
        default=None,
        help="a candidate default strategy: it becomes default_strategy if its median fraction on the "
        "primary fidelity over THESE seeds is at most 1/3, else loopwise's default stays (use fresh seeds)",
    )
    parser.add_argument(
        "--selection",
        type=Path,
        default=None,
        help="an earlier result file (the seeds the candidate was picked on): its primary-fidelity figures "
        "are kept beside this run's as selection_seeds",
    )
    parser.add_argument("--trial-log", action="store_true", help="keep every trial's parameters in the JSON")
    parser.add_argument("--csv", type=Path, default=None, help="the reviews CSV (default: the data cache)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    started = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    default = load_spec(builtin_spec_path("default_bayesian")).strategy
    names = ["random", *[n for n in args.strategies if n != "random"]]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    torch.set_num_threads(args.threads)  # before embedding (a first run) too
    fidelities: dict[str, dict[str, Any]] = {}
    if args.reuse_head is not None:
        fidelities["embedding-head"] = reused(args.reuse_head, "embedding-head")
    for fidelity_name in args.fidelities:
        if fidelity_name in fidelities:
            continue
        fidelity_started = time.perf_counter()
        fidelity = sgd_fidelity(args) if fidelity_name == PRIMARY else head_fidelity(args)
        runs: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in names}
        for seed in seeds:
            for name in names:
                run = run_strategy(name, seed, fidelity, args.budget_trials, args.trial_log)
                runs[name][seed] = run
                log(
                    f"{fidelity.name} seed {seed} {name:>15}: best val {run['best_val_acc']:.4f} after "
                    f"{run['trials']} trials ({run['complete']} complete, {run['pruned']} pruned), "
                    f"{run['seconds']:.1f} s"
                )
        chosen = default if default in runs else "random"
        decision = None
        if args.candidate is not None and fidelity_name == PRIMARY:
            chosen, decision = decide(runs, args.candidate, chosen, seeds)
        fidelities[fidelity.name] = {
            **summarize(runs, chosen),
            **({} if decision is None else {"decision": decision}),
            "fidelity": {
                **fidelity.info,
                "compute_unit": "training examples processed (all trials, pruned ones too; not validation)",
                "budget_per_seed_examples": args.budget_trials * fidelity.epochs * fidelity.n_train,
                "budget_per_seed_full_trials": args.budget_trials,
                "report_step": "examples seen by the trial, each epoch; make_pruner(train_size=len(train))",
                "trial_value": "best validation accuracy over the trial's epochs (the kept checkpoint)",
                "job_best": "best COMPLETE trial (study.best_trial); pruned trials never count",
                "spec_max_trials": args.budget_trials,
            },
            "seeds": seeds,
            "runs": {name: {str(s): run for s, run in by_seed.items()} for name, by_seed in runs.items()},
            "runtime_s": round(time.perf_counter() - fidelity_started, 1),
        }
    order = [PRIMARY, "embedding-head"]
    fidelities = {name: fidelities[name] for name in order if name in fidelities}
    primary = next(iter(fidelities))
    seed_sets: dict[str, Any] = {}
    if args.selection is not None:
        figures = fidelities[primary]
        selection = selected(args.selection, primary)
        figures["seed_set"] = "confirmation" if "decision" in figures else "second"
        figures["selection_seeds"] = selection
        seed_sets = {
            "compute_fraction_vs_random_selection_seeds": selection["strategies"]
            .get(figures["default_strategy"], {})
            .get("median_fraction_to_reach_random_best"),
            "selection_seeds": _seed_set(selection, "seeds the candidate was picked on"),
            "confirmation_seeds": _seed_set(figures, "fresh seeds; the decision rule is applied to these"),
        }
    result = {
        "benchmark": "tuning_efficiency",
        **{key: fidelities[primary][key] for key in HEADLINE_KEYS},
        **({"decision": fidelities[primary]["decision"]} if "decision" in fidelities[primary] else {}),
        **seed_sets,
        "primary_fidelity": primary,
        "why_primary": WHY_PRIMARY,
        "fidelities": fidelities,
        "optuna": optuna.__version__,
        "sklearn": _version("scikit-learn"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "runtime_s": round(time.perf_counter() - started, 1),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    printed = {  # the raw runs, per-seed rows and curves: see the file
        **{key: value for key, value in result.items() if key != "fidelities"},
        "fidelities": {
            name: {k: v for k, v in figures.items() if k in (*HEADLINE_KEYS, "aggregates", "runtime_s")}
            | {
                "strategies": {
                    s: {k: v for k, v in f.items() if k != "mean_curve"}
                    for s, f in figures["strategies"].items()
                }
            }
            for name, figures in fidelities.items()
        },
    }
    print(json.dumps(printed, indent=2))


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
