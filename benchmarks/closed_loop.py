"""The closed loop on the reviews data: a model trained on a small labeled seed serves the rest of the data
as live traffic; its uncertain predictions go to people; a retraining pipeline, triggered by the new
labels, retrains, compares, canaries and promotes, by itself. Measured: the champion's test accuracy
against the human answers it took, beside labeling a random sample of the same size and doing nothing.

The data: every non-empty review of the course's CSV with the course's sentiment (rating 1-2 -> -1,
3 -> 0, 4-5 -> 1), cut 80/20 stratified as in ``auto_labeling.py``: the 20% is the test set (4,529), never
seen by any model. From the 80%, at random: a labeled seed (500 training rows and a 300-row held-out
split that the pipeline's comparison gates on); the rest (17,312 reviews) is the traffic.

The loop, all of it loopwise's, on a real ``loopwise`` server on 127.0.0.1 (the embedded default):
- the seed model (TF-IDF + logistic regression, C 4) is the champion behind the endpoint ``reviews``;
- the endpoint's predictions with confidence below 0.70 start human loops (a review flow, one worker
  each); five simulated workers answer the queue through the labeling service, each giving the true label
  except with their error rate (5%, 8%, 10%, 12%, 15%; then another label at random);
- the pipeline ``retrain`` starts when 400 new answers have arrived (its trigger, run by the server):
  gather-labels (the seed's training rows and every completed loop) -> train -> compare with the champion on
  the seed's held-out split (a candidate that is less accurate stops the run) -> canary on the endpoint
  (20% for 2 s, then all, guarded by the rollout's alarms) -> promote;
- the traffic is replayed through the endpoint's HTTP API at a steady pace while all that happens.

Baselines on the same traffic and workers: labeling a random sample of as many reviews as the loop got
answers (one simulated answer each, same error rates; three seeds), trained through the same path; doing
nothing (the seed model). Figure: ``answers_fraction_vs_random``, the answers the loop's champion had
been given when it first reached the random sample's accuracy, divided by the random sample's answers
(target at most 0.5).

Prints JSON and writes benchmarks/results/closed_loop.json.

    python benchmarks/closed_loop.py [--rate 80] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from auto_labeling import ERROR_RATES, LABELS, reviews, split

RESULTS = Path(__file__).resolve().parent / "results" / "closed_loop.json"
SEED_TRAIN, GATE = 500, 300
THRESHOLD = 0.70
RETRAIN_EVERY = 400
C = 4.0
MODEL = "reviews-loop"

PIPELINE = f"""\
name: retrain
triggers:
  - new_labels: {RETRAIN_EVERY}
steps:
  - name: gather
    uses: gather-labels
    with: {{dataset: reviews-gathered, base: "reviews-seed:1", review_flows: [uncertain]}}
  - name: train
    uses: train
    with: {{dataset: "${{gather.dataset}}", backend: tfidf, model_name: {MODEL}, options: {{C: {C}}}}}
  - name: compare
    uses: compare
    with: {{champion: "{MODEL}@champion", candidate: "${{train.model}}", dataset: "reviews-seed:1"}}
  - name: canary
    uses: canary
    with: {{endpoint: reviews, model: "${{train.model}}", percent: 20, share: 100, bake: 2s, poll: 0.2s,
           timeout: 5m}}
  - name: promote
    uses: promote
    with: {{model: "${{train.model}}", comparison: "${{compare.verdict}}", endpoint: reviews,
           variant: "${{canary.variant}}"}}
"""


class Workers:
    """Five simulated workers answering the review queue through the labeling service, each in a thread;
    ``timeline`` is (time, answers so far)."""

    def __init__(self, store: Any, job_id: int, truth: dict[str, str], seed: int = 0) -> None:
        self.store, self.job_id, self.truth = store, job_id, truth
        self.answers = 0
        self.timeline: list[tuple[float, int]] = [(time.time(), 0)]
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.rng = np.random.default_rng(seed)
        self.threads: list[threading.Thread] = []

    def start(self, workers: list[tuple[Any, float]]) -> None:
        for worker, error in workers:
            thread = threading.Thread(target=self._work, args=(worker, error), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _work(self, worker: Any, error: float) -> None:
        from loopwise.labeling import service as labeling

        rng = np.random.default_rng(int(self.rng.integers(1 << 31)))
        while not self.stop.is_set():
            tasks = labeling.next_tasks(self.store, worker, self.job_id)
            if not tasks:
                time.sleep(0.2)
                continue
            for task in tasks:
                label = answer(self.truth[task.source], error, rng)
                labeling.submit(self.store, worker, task.assignment_id, label)
                with self.lock:
                    self.answers += 1
                    self.timeline.append((time.time(), self.answers))

    def given_by(self, moment: float) -> int:
        return max((n for t, n in self.timeline if t <= moment), default=0)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def answer(truth: str, error: float, rng: np.random.Generator) -> str:
    if rng.random() < error:
        return str(rng.choice([label for label in LABELS if label != truth]))
    return truth


def accuracy(store: Any, ref: str, texts: list[str], labels: list[str]) -> float:
    from loopwise import registry
    from loopwise.classifiers import load_classifier
    from loopwise.storage.artifacts.local import local_path

    with store.uow() as uow:
        version = registry.resolve(uow, ref)
    model = load_classifier(local_path(version.uri))
    proba = model.predict_proba(texts)
    predicted = [model.labels[int(i)] for i in proba.argmax(axis=1)]
    return float(np.mean([p == y for p, y in zip(predicted, labels, strict=True)]))


def train_on(store: Any, rows: list[tuple[str, str]], name: str) -> str:
    """A TF-IDF model on ``rows``, imported and trained the way the pipeline's gather and train do."""
    from loopwise.data.service import import_rows
    from loopwise.training.service import TrainRequest, train

    version = import_rows(store, rows, name=name, labels=LABELS, train=0.9, validation=0.1, test=0.0)
    request = TrainRequest(dataset=version.ref, backend="tfidf", model_name=name, options={"C": C})
    outcome = train(store, request, progress=False)
    assert outcome.model is not None
    return str(outcome.model.ref)


def run_loop(
    store: Any,
    texts: list[str],
    labels: list[str],
    seed_rows: list[int],
    gate: list[int],
    traffic: list[int],
    test: list[int],
    rate: float,
) -> dict[str, Any]:
    import httpx

    from loopwise import registry
    from loopwise.app import background_server
    from loopwise.data.service import import_rows
    from loopwise.labeling.jobs import COURSE_CATEGORIES
    from loopwise.pipelines import service as pipelines
    from loopwise.pipelines.deployment import variant_name
    from loopwise.review import service as review
    from loopwise.serving.config import parse_endpoint_config
    from loopwise.serving.service import create_endpoint
    from loopwise.training.service import TrainRequest, train
    from loopwise.workforce import service as workforce

    test_texts, test_labels = [texts[i] for i in test], [labels[i] for i in test]
    rows = [(texts[i], labels[i]) for i in seed_rows + gate]
    share = SEED_TRAIN / (SEED_TRAIN + GATE)
    seed = import_rows(
        store, rows, name="reviews-seed", labels=LABELS, train=share, validation=0.0, test=1 - share
    )
    outcome = train(
        store,
        TrainRequest(dataset=seed.ref, backend="tfidf", model_name=MODEL, options={"C": C}),
        progress=False,
    )
    assert outcome.model is not None
    with store.uow() as uow:
        registry.set_alias(uow, outcome.model.ref, "champion")
    workforce.create_team(store, "reviewers")
    people = [
        (workforce.create_worker(store, f"w{i}@example.com", teams=("reviewers",))[0], error)
        for i, error in enumerate(ERROR_RATES)
    ]
    flow = review.create_flow(
        store,
        "uncertain",
        team="reviewers",
        categories=list(COURSE_CATEGORIES),
        task_count=1,
        conditions={"confidence_below": THRESHOLD},
    )
    config = {
        "variants": [{"name": variant_name(outcome.model.ref), "model": outcome.model.ref}],
        "review": {"flow": "uncertain"},
    }
    create_endpoint(store, "reviews", parse_endpoint_config(config))
    path = Path(store.settings.home) / "retrain.yaml"
    path.write_text(PIPELINE, encoding="utf-8")
    pipelines.create_pipeline(store, path)
    truth = {texts[i]: labels[i] for i in traffic}
    token = workforce.program_token(store, "closed-loop-benchmark")
    workers = Workers(store, flow.job_id, truth)
    started = time.time()
    with (
        background_server(store, pipeline_interval_s=1.0, review_interval_s=0.5) as (url, _),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client,
    ):
        workers.start(people)
        for n, i in enumerate(traffic, start=1):
            due = started + n / rate
            if due > time.time():
                time.sleep(due - time.time())
            client.post("/api/v1/endpoints/reviews/predict", json={"texts": [texts[i]]}).raise_for_status()
            if n % 2000 == 0:
                print(f"traffic {n}/{len(traffic)}: {workers.answers} answers", file=sys.stderr, flush=True)
        traffic_s = time.time() - started
        _drain(store, flow, workers)
        _wait_runs(store)
        workers.close()
    runs = sorted(pipelines.list_runs(store, "retrain", limit=1000), key=lambda r: r.id)
    curve = [
        {
            "answers_used": 0,
            "answers_given": 0,
            "model": outcome.model.ref,
            "run": None,
            "accuracy": accuracy(store, outcome.model.ref, test_texts, test_labels),
        }
    ]
    rejected = []
    for run in runs:
        outputs = run.outputs()
        if "train" not in outputs:
            continue
        model = outputs["train"]["model"]
        point = {
            "answers_used": outputs["gather"]["new_labels"],
            "model": model,
            "run": run.id,
            "accuracy": accuracy(store, model, test_texts, test_labels),
        }
        if run.status == "Succeeded" and outputs["promote"]["outcome"] == "promoted":
            promoted = run.step("promote").ended_at
            point["answers_given"] = workers.given_by(promoted.timestamp() if promoted else time.time())
            curve.append(point)
        else:
            rejected.append({**point, "error": run.error})
    return {
        "traffic": len(traffic),
        "traffic_s": round(traffic_s, 1),
        "answers": workers.answers,
        "runs": len(runs),
        "promoted": len(curve) - 1,
        "curve": curve,
        "not_promoted": rejected,
    }


def _drain(store: Any, flow: Any, workers: Workers, timeout_s: float = 600) -> None:
    """Wait until every loop the traffic started has its answer and is settled."""
    from loopwise.review.service import list_loops

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page, _ = list_loops(store, flow=flow.name, status="InProgress", max_results=1)
        if not page:
            return
        time.sleep(1.0)
    raise RuntimeError(f"loops still in progress after {timeout_s:.0f} s ({workers.answers} answers)")


def _wait_runs(store: Any, timeout_s: float = 900) -> None:
    """Let the pipeline's trigger look once more (2 s), then wait for the run in progress, if any."""
    from loopwise.pipelines import service as pipelines

    time.sleep(2.5)
    deadline = time.monotonic() + timeout_s
    while any(r.status == "Running" for r in pipelines.list_runs(store, "retrain", limit=1000)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"a pipeline run was still running after {timeout_s:.0f} s")
        time.sleep(1.0)


def random_baseline(
    store: Any,
    texts: list[str],
    labels: list[str],
    seed_train: list[int],
    traffic: list[int],
    test: list[int],
    sizes: list[int],
    seeds: int,
) -> dict[str, Any]:
    """Seed + a random sample of the traffic, each answered once by a simulated worker, per size."""
    test_texts, test_labels = [texts[i] for i in test], [labels[i] for i in test]
    found: dict[str, Any] = {}
    for size in sizes:
        scores = []
        for seed in range(seeds):
            rng = np.random.default_rng(100 + seed)
            picked = rng.choice(traffic, size=size, replace=False)
            errors = rng.choice(ERROR_RATES, size=size)
            rows = [(texts[i], labels[i]) for i in seed_train]
            rows += [(texts[i], answer(labels[i], e, rng)) for i, e in zip(picked, errors, strict=True)]
            scores.append(
                accuracy(store, train_on(store, rows, f"random-{size}-{seed}"), test_texts, test_labels)
            )
        found[str(size)] = {
            "accuracies": [round(s, 4) for s in scores],
            "mean": round(float(np.mean(scores)), 4),
        }
        print(f"random {size}: {found[str(size)]}", file=sys.stderr, flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=80.0, help="traffic: requests a second")
    parser.add_argument("--limit", type=int, default=None, help="replay only this many reviews (a quick run)")
    parser.add_argument("--seeds", type=int, default=3, help="random samples per size")
    args = parser.parse_args()

    from loopwise.config import Settings
    from loopwise.data.cache import fetch_reviews
    from loopwise.storage import Store

    texts, labels = reviews(fetch_reviews(Settings()))
    pool, test = split(labels)
    order = [int(i) for i in np.random.default_rng(1).permutation(pool)]
    seed_train, gate, traffic = (
        order[:SEED_TRAIN],
        order[SEED_TRAIN : SEED_TRAIN + GATE],
        order[SEED_TRAIN + GATE :],
    )
    traffic = traffic[: args.limit] if args.limit else traffic
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="loopwise-closed-loop-") as home:
        store = Store.open(Settings(home=Path(home)))
        loop = run_loop(store, texts, labels, seed_train, gate, traffic, test, args.rate)
        sizes = sorted({p["answers_given"] for p in loop["curve"][1:]} | {loop["answers"]})
        random = random_baseline(store, texts, labels, seed_train, traffic, test, sizes, args.seeds)
        store.close()
    nothing = loop["curve"][0]["accuracy"]
    target = random[str(loop["answers"])]["mean"]
    reached = next((p for p in loop["curve"] if p["accuracy"] >= target), None)
    result = {
        "benchmark": "closed_loop",
        "command": "python benchmarks/closed_loop.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "answers_fraction_vs_random": None
        if reached is None
        else round(reached["answers_given"] / loop["answers"], 4),
        "answers_used_fraction_vs_random": None
        if reached is None
        else round(reached["answers_used"] / loop["answers"], 4),
        "loop_final_accuracy": loop["curve"][-1]["accuracy"],
        "random_accuracy": target,
        "random_answers": loop["answers"],
        "nothing_accuracy": nothing,
        "settings": {
            "seed_train": SEED_TRAIN,
            "gate": GATE,
            "threshold": THRESHOLD,
            "retrain_every": RETRAIN_EVERY,
            "C": C,
            "rate": args.rate,
            "error_rates": list(ERROR_RATES),
            "test": len(test),
        },
        "loop": loop,
        "random": random,
        "wall_s": round(time.perf_counter() - wall, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in ("loop", "random")}, indent=2))


if __name__ == "__main__":
    main()
