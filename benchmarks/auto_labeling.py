"""Automated labeling and active learning on the reviews data, with simulated workers.

The data: every non-empty review of the course's CSV with the course's sentiment (rating 1-2 -> -1,
3 -> 0, 4-5 -> 1), in its natural mix of classes (22,628 reviews; 77% positive).

Part 1, automated labeling: a labeling job over 80% of the reviews (the other 20% are the test set of
part 2) with ``--auto-label`` (target accuracy 0.95 at 95% confidence, the defaults), three workers per
item, and a pool of five simulated workers whose answers are the true label except with their error
rate (5%, 8%, 10%, 12%, 15%), uniformly another label then. The workers answer through the labeling
service (next item, submit), round after round, until every item has a label. Figures: the share of
items the machine labeled, the accuracy of the machine labels against the true labels, the human
answers given against the answers needed to label everything by hand (three per item).

Part 2, active learning against random sampling: loopwise's TF-IDF classifier trained on a growing set
of true labels from the 80% pool, measured on the 20% test set; ``margin`` (loopwise's default strategy)
and ``diversity`` pick each next batch from the model of the previous one, random sampling picks at
random (three seeds each). Figure: the labels each needs to come within one point of the accuracy of
training on the whole pool, and the ratio active / random (target at most 0.5).

Prints JSON and writes benchmarks/results/auto_labeling.json.

    python benchmarks/auto_labeling.py [--step 500] [--seeds 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ERROR_RATES = (0.05, 0.08, 0.10, 0.12, 0.15)
LABELS = ["-1", "0", "1"]
RESULTS = Path(__file__).resolve().parent / "results" / "auto_labeling.json"


def reviews(csv_path: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    with csv_path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            text = (row.get("Review Text") or "").strip()
            if not text:
                continue
            rating = int(row["Rating"])
            texts.append(text)
            labels.append("-1" if rating <= 2 else "0" if rating == 3 else "1")
    return texts, labels


def split(labels: list[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """80/20, stratified by class."""
    rng = np.random.default_rng(seed)
    pool, test = [], []
    for label in LABELS:
        members = rng.permutation([i for i, y in enumerate(labels) if y == label])
        cut = round(0.2 * len(members))
        test.extend(members[:cut])
        pool.extend(members[cut:])
    return np.sort(pool), np.sort(test)


def simulate_job(texts: list[str], truth: list[str]) -> dict[str, Any]:
    from loopwise.config import Settings
    from loopwise.labeling import service
    from loopwise.labeling.auto import run_round
    from loopwise.labeling.jobs import COURSE_CATEGORIES
    from loopwise.labeling.manifest import parse_records
    from loopwise.labeling.output import labeled_items
    from loopwise.labeling.planning import AutoLabelSettings
    from loopwise.storage import Store
    from loopwise.workforce import service as workforce

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as home:
        store = Store.open(Settings(home=Path(home)))
        workforce.create_team(store, "labelers")
        workers = [
            (workforce.create_worker(store, f"sim{i}@example.com", teams=("labelers",))[0], rate)
            for i, rate in enumerate(ERROR_RATES)
        ]
        items = parse_records([{"source": t} for t in texts], where="the reviews")
        job = service.create_job(
            store, "reviews-auto", items, team="labelers", categories=list(COURSE_CATEGORIES),
            workers_per_item=3, auto_label=AutoLabelSettings(),
        )  # fmt: skip
        answers = 0
        rounds = []
        started = time.perf_counter()
        while service.find_job(store, "reviews-auto").status == "InProgress":
            progress = True
            while progress:  # each worker takes the next item and answers it, in turn
                progress = False
                for worker, rate in workers:
                    tasks = service.next_tasks(store, worker, job.id)
                    if not tasks:
                        continue
                    right = truth[tasks[0].position - 1]
                    answer = right if rng.random() >= rate else rng.choice([x for x in LABELS if x != right])
                    service.submit(store, worker, tasks[0].assignment_id, answer)
                    answers += 1
                    progress = True
            report = run_round(store, "reviews-auto")
            rounds.append(report.to_dict())
            print(f"round {report.round}: {report.to_dict()}", file=sys.stderr, flush=True)
        labeled = labeled_items(store, service.find_job(store, "reviews-auto"))
        store.close()
    machine = [i for i in labeled if i.labeled_by == "machine"]
    people = [i for i in labeled if i.labeled_by == "human"]
    machine_right = sum(i.label == truth[i.position - 1] for i in machine)
    people_right = sum(i.label == truth[i.position - 1] for i in people)
    return {
        "items": len(texts),
        "labeled": len(labeled),
        "machine_labeled": len(machine),
        "machine_share": round(len(machine) / len(texts), 4),
        "machine_label_accuracy": round(machine_right / len(machine), 4) if machine else None,
        "human_label_accuracy": round(people_right / len(people), 4) if people else None,
        "human_answers": answers,
        "answers_by_hand": 3 * len(texts),
        "human_answers_share": round(answers / (3 * len(texts)), 4),
        "rounds": rounds,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def learning_curves(texts: list[str], labels: list[str], step: int, seeds: int) -> dict[str, Any]:
    """Labels needed to come within a point of training on the whole pool, by strategy."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from loopwise.labeling.planning import AutoLabelSettings, select

    pool, test = split(labels)
    y = np.array(labels)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2).fit(
        [texts[i] for i in pool]
    )
    features = vectorizer.transform(texts)
    C = AutoLabelSettings().C

    def fit(rows: np.ndarray) -> Any:
        return LogisticRegression(C=C, max_iter=3000).fit(features[rows], y[rows])

    def accuracy(model: Any) -> float:
        return float((model.predict(features[test]) == y[test]).mean())

    full = accuracy(fit(pool))
    goal = full - 0.01

    def needed(strategy: str, seed: int) -> tuple[int, list[tuple[int, float]]]:
        rng = np.random.default_rng(seed)
        order = rng.permutation(pool)
        labeled = list(order[:step])
        curve = []
        while True:
            model = fit(np.array(labeled))
            curve.append((len(labeled), round(accuracy(model), 4)))
            if curve[-1][1] >= goal or len(labeled) >= len(pool):
                return len(labeled), curve
            rest = np.setdiff1d(pool, labeled)
            if strategy == "random":
                picks = rng.choice(len(rest), min(step, len(rest)), replace=False)
            else:
                proba = model.predict_proba(features[rest])
                picks = select(strategy, proba, step, features=features[rest], seed=seed)  # type: ignore[arg-type]
            labeled.extend(rest[picks].tolist())

    found: dict[str, Any] = {"full_pool_accuracy": round(full, 4), "pool": len(pool), "test": len(test)}
    for strategy in ("random", "margin", "diversity"):
        runs = [needed(strategy, seed) for seed in range(seeds)]
        found[strategy] = {
            "labels_needed": [n for n, _ in runs],
            "mean_labels_needed": float(np.mean([n for n, _ in runs])),
            "curves": [c for _, c in runs],
        }
        print(strategy, found[strategy]["labels_needed"], file=sys.stderr, flush=True)
    found["label_fraction_vs_random"] = round(
        found["margin"]["mean_labels_needed"] / found["random"]["mean_labels_needed"], 4
    )
    found["diversity_fraction_vs_random"] = round(
        found["diversity"]["mean_labels_needed"] / found["random"]["mean_labels_needed"], 4
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--step", type=int, default=500, help="labels added per active-learning step")
    parser.add_argument("--seeds", type=int, default=3, help="repetitions of each learning curve")
    parser.add_argument("--skip-job", action="store_true", help="only the learning curves (part 2)")
    args = parser.parse_args()

    from loopwise.config import Settings
    from loopwise.data.cache import fetch_reviews

    texts, labels = reviews(fetch_reviews(Settings()))
    pool, _ = split(labels)
    started = time.perf_counter()
    figures: dict[str, Any] = {}
    if not args.skip_job:
        figures["auto_labeling"] = simulate_job([texts[i] for i in pool], [labels[i] for i in pool])
    figures["active_learning"] = learning_curves(texts, labels, args.step, args.seeds)
    result = {
        "benchmark": "auto_labeling",
        "command": "python benchmarks/auto_labeling.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "machine_label_accuracy": figures.get("auto_labeling", {}).get("machine_label_accuracy"),
        "machine_share": figures.get("auto_labeling", {}).get("machine_share"),
        "human_answers_share": figures.get("auto_labeling", {}).get("human_answers_share"),
        "label_fraction_vs_random": figures["active_learning"]["label_fraction_vs_random"],
        "wall_s": round(time.perf_counter() - started, 1),
        **figures,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        json.dumps(
            {k: v for k, v in result.items() if k not in ("auto_labeling", "active_learning")}, indent=2
        )
    )


if __name__ == "__main__":
    main()
