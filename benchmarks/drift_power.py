"""Drift detection power: loopwise's monitoring checks against Evidently's text and embedding drift, on the
same windows of review traffic; and the time loopwise takes to check a million captured records.

The model is the bundled MiniLM fine-tuned briefly (``--train-steps``, batch 16) and run as endpoints serve
it (its ONNX export), which gives every text's probabilities and sentence embedding. It learns from 4,000
reviews drawn at random (balanced by class down to the smallest, as the course does), not from the course's
split: that split holds nearly every negative review of the data set and would leave traffic without them.
The other reviews, in their natural mix of classes (never trained on), are cut in two at random: 3,000 make
the baseline (loopwise's suggested constraints, unedited; 1,000 reference embeddings) and the rest is
traffic. Windows are drawn without replacement from it, in six scenarios:

* ``in_distribution``: reviews as they come (every alarm here is a false alarm);
* ``one_department``: reviews of the Dresses department only (27% of traffic otherwise);
* ``negative_surge``: negative reviews (rating 1-2) make 30% of the window instead of about 10%;
* ``truncated``: every review cut at 64 characters, as by a field limit upstream;
* ``garbled``: 10% of the texts garbled: character noise, UTF-16 read as 8-bit text, binary data, or the
  review wrapped in escaped HTML (one of the four at random);
* ``other_language``: 10% of the texts in Spanish, Italian, Portuguese, Dutch, German or French: real
  sentences from the chatterbot-corpus package, three to six joined into a text of a review's length.

For each window size (100, 300, 500, 1,000) and each of ``--repetitions`` windows, loopwise raises an alarm
when ``check_window`` (data quality and drift, the baseline's constraints) finds any violation; Evidently
when its text drift or its embeddings drift is detected (its defaults, the same 1,000 reference texts and
embeddings: see benchmarks/_drift_evidently.py, run in Evidently's own environment, made here).

Speed: one million captured records (two variants, 24 hour partitions, packed embeddings, 20,000 of them
with ground truth) checked by ``run_monitor`` (all three kinds), with the default reading processes and
with one.

Prints JSON and writes benchmarks/results/drift_power.json.

    python benchmarks/drift_power.py [--repetitions 200] [--train-steps 100] [--records 1000000]
"""

from __future__ import annotations

import argparse
import html
import json
import os
import platform
import random
import shutil
import string
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "drift_power.json"
EVIDENTLY_VENV = HERE / ".venvs" / "evidently"
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.23", "pandas<3", "chatterbot-corpus==1.3.3"]
SCENARIOS = ("in_distribution", "one_department", "negative_surge", "truncated", "garbled", "other_language")
SIZES = (100, 300, 500, 1000)
TRAINING_TEXTS = 4000
BASELINE_TEXTS = 3000
DEPARTMENT = "Dresses"
NEGATIVE_SHARE = 0.30
TRUNCATE_AT = 64
GARBLED_SHARE = 0.10
FOREIGN_SHARE = 0.10
LANGUAGES = ("spanish", "italian", "portuguese", "dutch", "german", "french")
VARIANTS_TEXTS = 2000  # truncated and garbled versions made of pool reviews
FOREIGN_TEXTS = 1500
EVIDENTLY_SHARDS = 2


def _note(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


# --- Evidently's environment ------------------------------------------------------------------------------


def evidently_python() -> Path:
    """Evidently's own virtual environment (made on first use: Evidently 0.7 needs pandas < 3)."""
    python = EVIDENTLY_VENV / "bin" / "python"
    marker = EVIDENTLY_VENV / ".installed"
    if not marker.exists() or marker.read_text() != " ".join(EVIDENTLY_REQUIREMENTS):
        _note("installing", *EVIDENTLY_REQUIREMENTS, "into", EVIDENTLY_VENV)
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY_REQUIREMENTS]
        subprocess.run(pip, check=True)
        marker.write_text(" ".join(EVIDENTLY_REQUIREMENTS))
    return python


def foreign_sentences(python: Path) -> dict[str, list[str]]:
    """Each language's sentences from the chatterbot-corpus package (installed beside Evidently)."""
    import yaml

    where = subprocess.run(
        [
            str(python),
            "-c",
            "import chatterbot_corpus, os; print(os.path.dirname(chatterbot_corpus.__file__))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    found = {}
    for language in LANGUAGES:
        lines: list[str] = []
        for path in sorted((Path(where) / "data" / language).glob("*.yml")):
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for conversation in document.get("conversations") or []:
                lines += [str(line).strip() for line in conversation if str(line).strip()]
        found[language] = sorted(set(lines))
    return found


# --- the texts ---------------------------------------------------------------------------------------------


def garble(text: str, rng: random.Random) -> str:
    """``text`` as one of four failures of an upstream system would deliver it."""
    kind = rng.randrange(4)
    if kind == 0:  # character noise: 30% of the characters replaced by digits and symbols
        noise = string.punctuation + string.digits
        return "".join(rng.choice(noise) if rng.random() < 0.3 else c for c in text)
    if kind == 1:  # UTF-16 bytes read as 8-bit text
        return text.encode("utf-16-le").decode("latin-1")
    if kind == 2:  # binary data where text was expected
        return bytes(rng.randrange(256) for _ in range(len(text))).decode("utf-8", errors="replace")
    escaped = html.escape(text).replace("'", "&#39;")  # the review inside escaped HTML
    return f'<div class="review-body"><p class="text">{escaped}</p></div>'


def compose(sentences: list[str], rng: random.Random) -> str:
    return " ".join(rng.sample(sentences, rng.randint(3, 6)))


def prepare(work: Path, steps: int, python: Path) -> dict[str, Any]:
    """The texts, their groups and the model's answers on them (cached in ``work``)."""
    data_file, texts_file, meta_file = work / "data.npz", work / "texts.json", work / "meta.json"
    if meta_file.exists() and json.loads(meta_file.read_text()).get("train_steps") == steps:
        arrays = np.load(data_file)
        return {
            **json.loads(meta_file.read_text()),
            "texts": json.loads(texts_file.read_text()),
            **{name: arrays[name] for name in arrays.files},
        }
    import pandas as pd

    from _common import fine_tune
    from loopwise.config import Settings
    from loopwise.data.cache import fetch_reviews
    from loopwise.data.service import import_dataset
    from loopwise.registry.exports import serving_dir
    from loopwise.serving.worker import load_for_serving
    from loopwise.storage import Store

    csv_path = fetch_reviews(Settings())
    frame = pd.read_csv(csv_path)
    frame = frame[frame["Review Text"].notna() & frame["Rating"].notna()]
    frame = frame[frame["Review Text"].astype(str).str.strip() != ""].drop_duplicates("Review Text")
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    # the model learns from a part of the reviews of its own (the course's balanced split holds nearly
    # every negative review, which would leave none for traffic in its natural mix)
    sentiment = {1: "-1", 2: "-1", 3: "0", 4: "1", 5: "1"}
    training = frame.iloc[:TRAINING_TEXTS]
    frame = frame.iloc[TRAINING_TEXTS:].reset_index(drop=True)
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    store = Store.open(Settings(home=home))
    train_csv = work / "train.csv"
    pd.DataFrame(
        {"text": training["Review Text"], "sentiment": training["Rating"].astype(int).map(sentiment)}
    ).to_csv(train_csv, index=False)
    dataset = import_dataset(
        store, train_csv, name="drift-train", text_column="text", label_column="sentiment", balance=True
    )
    _note(f"fine-tuning MiniLM for {steps} steps on {dataset.ref}")
    model = fine_tune(store, dataset.ref, steps, name="drift-minilm")
    natural = frame["Review Text"].astype(str).tolist()
    rng = random.Random(0)
    pool = list(range(BASELINE_TEXTS, len(natural)))
    truncated = [natural[i][:TRUNCATE_AT] for i in rng.sample(pool, VARIANTS_TEXTS)]
    garbled = [garble(natural[i], rng) for i in rng.sample(pool, VARIANTS_TEXTS)]
    sentences = foreign_sentences(python)
    foreign = [compose(sentences[LANGUAGES[i % len(LANGUAGES)]], rng) for i in range(FOREIGN_TEXTS)]
    texts = natural + truncated + garbled + foreign
    groups = (
        ["baseline"] * BASELINE_TEXTS
        + ["natural"] * (len(natural) - BASELINE_TEXTS)
        + ["truncated"] * len(truncated)
        + ["garbled"] * len(garbled)
        + ["foreign"] * len(foreign)
    )
    padding = [""] * (len(texts) - len(natural))
    departments = frame["Department Name"].fillna("").astype(str).tolist() + padding
    ratings = frame["Rating"].astype(int).tolist() + [0] * len(padding)

    classifier = load_for_serving(serving_dir(store, model))
    proba = np.empty((len(texts), len(classifier.labels)), dtype=np.float32)
    embeddings = np.empty((len(texts), 384), dtype=np.float32)
    started = time.perf_counter()
    chunk = 512
    for start in range(0, len(texts), chunk):
        answers, vectors = classifier.predict_with_embeddings(texts[start : start + chunk])
        proba[start : start + chunk], embeddings[start : start + chunk] = answers, vectors
        done = min(start + chunk, len(texts))
        _note(f"model answers: {done}/{len(texts)} texts ({done / (time.perf_counter() - started):.0f}/s)")
    store.close()
    meta = {
        "train_steps": steps,
        "model": model.ref,
        "labels": list(classifier.labels),
        "languages": list(LANGUAGES),
        "sentences": {language: len(lines) for language, lines in sentences.items()},
    }
    np.savez(
        data_file,
        proba=proba,
        embeddings=embeddings,
        groups=np.array(groups),
        departments=np.array(departments),
        ratings=np.array(ratings),
    )
    texts_file.write_text(json.dumps(texts))
    meta_file.write_text(json.dumps(meta))
    return prepare(work, steps, python)


def draw_windows(data: dict[str, Any], repetitions: int, seed: int = 1) -> dict[str, dict[int, list[Any]]]:
    """Per scenario and size, ``repetitions`` windows as rows of the data."""
    groups, departments, ratings = data["groups"], data["departments"], data["ratings"]
    natural = np.flatnonzero(groups == "natural")
    pools = {
        "natural": natural,
        "department": natural[departments[natural] == DEPARTMENT],
        "negative": natural[ratings[natural] <= 2],
        "not_negative": natural[ratings[natural] > 2],
        "truncated": np.flatnonzero(groups == "truncated"),
        "garbled": np.flatnonzero(groups == "garbled"),
        "foreign": np.flatnonzero(groups == "foreign"),
    }
    rng = np.random.default_rng(seed)

    def mix(n: int, share: float, special: str, rest: str = "natural") -> np.ndarray:
        k = round(share * n)
        rows = np.concatenate(
            [rng.choice(pools[special], k, replace=False), rng.choice(pools[rest], n - k, replace=False)]
        )
        return rng.permutation(rows)

    draw = {
        "in_distribution": lambda n: rng.choice(pools["natural"], n, replace=False),
        "one_department": lambda n: rng.choice(pools["department"], n, replace=False),
        "negative_surge": lambda n: mix(n, NEGATIVE_SHARE, "negative", "not_negative"),
        "truncated": lambda n: rng.choice(pools["truncated"], n, replace=False),
        "garbled": lambda n: mix(n, GARBLED_SHARE, "garbled"),
        "other_language": lambda n: mix(n, FOREIGN_SHARE, "foreign"),
    }
    return {
        scenario: {size: [draw[scenario](size) for _ in range(repetitions)] for size in SIZES}
        for scenario in SCENARIOS
    }


# --- the two detectors ---------------------------------------------------------------------------------


def make_baseline(data: dict[str, Any], folder: Path) -> Any:
    from loopwise.monitoring import baseline as baselines

    rows = np.flatnonzero(data["groups"] == "baseline")
    texts = [data["texts"][i] for i in rows]
    statistics, constraints, vocab, reference = baselines.compute(
        texts,
        data["proba"][rows].astype(np.float64),
        data["labels"],
        data["embeddings"][rows],
        source={"benchmark": "drift_power"},
    )
    baselines.save(folder, statistics, constraints, vocab, reference)
    baseline = baselines.load(folder)
    # the baseline's reference texts: the rows whose embeddings it kept
    position = {data["embeddings"][i].tobytes(): int(i) for i in rows}
    return baseline, [position[vector.tobytes()] for vector in baseline.embeddings]


def run_loopwise(baseline: Any, data: dict[str, Any], windows: dict[str, dict[int, list[Any]]]) -> dict:
    from loopwise.monitoring.checks import check_window
    from loopwise.monitoring.window import window_of

    texts, proba, embeddings = data["texts"], data["proba"].astype(np.float64), data["embeddings"]
    results: dict[str, dict[int, list[dict[str, Any]]]] = {}
    started, done = time.perf_counter(), 0
    total = sum(len(reps) for sizes in windows.values() for reps in sizes.values())
    for scenario, sizes in windows.items():
        for size, reps in sizes.items():
            found = results.setdefault(scenario, {}).setdefault(size, [])
            for rows in reps:
                window = window_of(baseline, [texts[i] for i in rows], proba[rows], embeddings[rows])
                report = check_window(baseline, window)
                found.append(
                    {
                        "alarm": report.status == "violations",
                        "fired": sorted({v.constraint for v in report.violations}),
                    }
                )
                done += 1
                if done % 200 == 0:
                    rate = done / (time.perf_counter() - started)
                    _note(f"loopwise: {done}/{total} windows, {rate:.1f}/s")
    return {"results": results, "seconds": time.perf_counter() - started}


def summarize(loopwise: dict, evidently: dict | None) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    for scenario in SCENARIOS:
        per_size = {}
        for size in SIZES:
            ours = loopwise["results"][scenario][size]
            row: dict[str, Any] = {"loopwise": float(np.mean([r["alarm"] for r in ours]))}
            fired: dict[str, int] = {}
            for r in ours:
                for name in r["fired"]:
                    fired[name] = fired.get(name, 0) + 1
            row["loopwise_checks"] = {name: n / len(ours) for name, n in sorted(fired.items())}
            if evidently is not None:
                theirs = evidently["results"][scenario][str(size)]
                text = [r["text_drift"] for r in theirs]
                embedded = [r["embeddings_drift"] for r in theirs]
                row["evidently"] = float(np.mean([a or b for a, b in zip(text, embedded, strict=True)]))
                row["evidently_text"] = float(np.mean(text))
                row["evidently_embeddings"] = float(np.mean(embedded))
            per_size[str(size)] = row
        scenarios[scenario] = per_size
    return scenarios


def start_evidently(
    python: Path, work: Path, reference: list[int], windows: dict[str, dict[int, list[Any]]]
) -> list[subprocess.Popen[bytes]]:
    """Evidently's decisions on the same windows, in its own environment: EVIDENTLY_SHARDS processes of
    one thread each (it takes about three times loopwise's time), each with its share of the scenarios."""
    spec = {
        "embeddings": str(work / "data.npz"),
        "texts": str(work / "texts.json"),
        "reference": reference,
        "windows": {
            s: {str(n): [r.tolist() for r in reps] for n, reps in d.items()} for s, d in windows.items()
        },
        "check_with_report": 4,
    }
    (work / "evidently-spec.json").write_text(json.dumps(spec))
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    script = str(HERE / "_drift_evidently.py")
    return [
        subprocess.Popen(
            [
                python,
                script,
                work / "evidently-spec.json",
                work / f"evidently-{i}.json",
                str(i),
                str(EVIDENTLY_SHARDS),
            ],
            env=one_thread,
        )
        for i in range(EVIDENTLY_SHARDS)
    ]


def collect_evidently(processes: list[subprocess.Popen[bytes]], work: Path) -> dict[str, Any]:
    if any(process.wait() != 0 for process in processes):
        raise SystemExit("Evidently's run failed (see above)")
    shards = [json.loads((work / f"evidently-{i}.json").read_text()) for i in range(len(processes))]
    return {
        "results": {scenario: found for shard in shards for scenario, found in shard["results"].items()},
        "checked_with_report": [check for shard in shards for check in shard["checked_with_report"]],
        "seconds": sum(shard["seconds"] for shard in shards),
        "versions": shards[0]["versions"],
    }


# --- speed: a million captured records -------------------------------------------------------------------


def speed(data: dict[str, Any], baseline_folder: Path, records: int, work: Path) -> dict[str, Any]:
    from loopwise.config import Settings
    from loopwise.monitoring.service import baseline_dir, run_monitor
    from loopwise.serving.capture import CaptureWriter
    from loopwise.serving.records import Feedback
    from loopwise.storage import Store

    home = work / "speed-home"
    shutil.rmtree(home, ignore_errors=True)
    store = Store.open(Settings(home=home))
    shutil.copytree(baseline_folder, baseline_dir(store, "drift-base"))
    rows = np.flatnonzero(data["groups"] == "natural")
    texts, proba, embeddings, labels = data["texts"], data["proba"], data["embeddings"], data["labels"]
    sentiment = {1: "-1", 2: "-1", 3: "0", 4: "1", 5: "1"}
    end = datetime(2026, 11, 30, tzinfo=UTC)
    start = end - timedelta(hours=24)
    rng = np.random.default_rng(2)
    picks = rng.choice(rows, records)
    writer = CaptureWriter(store.artifacts.host_dir("capture"))
    began = time.perf_counter()
    step = 24 * 3600 / records
    for i, row in enumerate(picks.tolist()):
        variant = "A" if i % 2 == 0 else "B"
        record = {
            "inference_id": f"{variant}-{i}",
            "endpoint": "shop",
            "variant": variant,
            "model": data["model"],
            "time": (start + timedelta(seconds=i * step)).timestamp(),
            "latency_ms": 5.0,
            "model_ms": 4.0,
            "input": [texts[row]],
            "labels": labels,
            "probabilities": proba[row : row + 1],
            "predicted_label": [labels[int(proba[row].argmax())]],
            "embedding": embeddings[row : row + 1],
        }
        while not writer.offer(record):
            writer.flush()
        if (i + 1) % 200_000 == 0:
            _note(f"captured {i + 1}/{records} records ({time.perf_counter() - began:.0f} s)")
    writer.close()
    capture_bytes = sum(p.stat().st_size for p in store.artifacts.host_dir("capture").rglob("*.jsonl"))
    truth = [
        Feedback(f"{'A' if i % 2 == 0 else 'B'}-{i}", (sentiment[int(data["ratings"][picks[i]])],))
        for i in range(0, records, max(1, records // 20_000))
    ]
    with store.uow() as uow:
        for first in range(0, len(truth), 500):
            uow.feedback.put("shop", truth[first : first + 500])
    figures: dict[str, Any] = {
        "records": records,
        "capture_bytes": capture_bytes,
        "ground_truth": len(truth),
        "workers_default": os.cpu_count(),
    }
    for name, workers in (("parallel", None), ("one_process", 1)):
        began = time.perf_counter()
        report = run_monitor(store, "shop", "drift-base", hours=24, now=end, workers=workers)
        seconds = time.perf_counter() - began
        figures[f"seconds_{name}"] = round(seconds, 2)
        figures[f"texts_{name}"] = sum(v["texts"] for v in report["variants"].values())
        _note(f"run_monitor over {records} records ({name}): {seconds:.1f} s")
        if name == "parallel":
            figures["labelled"] = sum(v["model_quality"]["labelled"] for v in report["variants"].values())
            figures["status"] = {name: v["status"] for name, v in report["variants"].items()}
    store.close()
    shutil.rmtree(home, ignore_errors=True)
    return figures


# --- the run ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repetitions", type=int, default=200, help="windows per scenario and size")
    parser.add_argument("--train-steps", type=int, default=100, help="fine-tuning steps of the model")
    parser.add_argument("--records", type=int, default=1_000_000, help="captured records for the speed test")
    parser.add_argument("--skip-evidently", action="store_true", help="leave Evidently out")
    parser.add_argument("--skip-speed", action="store_true", help="leave the speed test out")
    parser.add_argument(
        "--only-speed",
        action="store_true",
        help="only the speed test (on a quiet machine), its figures put into the saved results",
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="where the model's answers are cached (default: a temp dir)"
    )
    args = parser.parse_args()

    python = evidently_python()
    work = args.work or Path(tempfile.mkdtemp(prefix="drift-power-"))
    work.mkdir(parents=True, exist_ok=True)
    data = prepare(work, args.train_steps, python)
    baseline, reference = make_baseline(data, work / "baseline")
    if args.only_speed:
        figures = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        figures["speed"] = speed(data, work / "baseline", args.records, work)
        figures["seconds_for_1m_records"] = figures["speed"]["seconds_parallel"] * 1_000_000 / args.records
        figures["speed"]["command"] = "python benchmarks/drift_power.py " + " ".join(sys.argv[1:])
        figures["speed"]["date"] = datetime.now(UTC).isoformat(timespec="seconds")
        RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps(figures["speed"], indent=2))
        return
    windows = draw_windows(data, args.repetitions)

    processes = [] if args.skip_evidently else start_evidently(python, work, reference, windows)
    from threadpoolctl import threadpool_limits

    # one core for loopwise while Evidently's processes run beside it
    with threadpool_limits(1 if processes else None):
        ours = run_loopwise(baseline, data, windows)
    evidently = collect_evidently(processes, work) if processes else None

    scenarios = summarize(ours, evidently)
    false_alarms = {size: scenarios["in_distribution"][str(size)]["loopwise"] for size in SIZES}
    figures: dict[str, Any] = {
        "false_alarm_rate": max(false_alarms.values()),
        "false_alarm_rate_by_size": false_alarms,
        "scenarios": scenarios,
        "repetitions": args.repetitions,
        "sizes": list(SIZES),
        "loopwise_seconds": round(ours["seconds"], 1),
        "model": {k: data[k] for k in ("model", "train_steps", "labels")},
        "texts": {
            g: int(np.sum(data["groups"] == g))
            for g in ("baseline", "natural", "truncated", "garbled", "foreign")
        },
        "foreign_sentences": data["sentences"],
        "constraints": baseline.constraints,
    }
    if evidently is not None:
        figures["evidently_false_alarm_rate"] = max(
            scenarios["in_distribution"][str(size)]["evidently"] for size in SIZES
        )
        figures["evidently_seconds"] = round(evidently["seconds"], 1)
        figures["evidently_versions"] = evidently["versions"]
        figures["evidently_checked_with_report"] = evidently["checked_with_report"]
        figures["not_below_evidently"] = {
            scenario: all(row["loopwise"] >= row["evidently"] for row in per_size.values())
            for scenario, per_size in scenarios.items()
            if scenario != "in_distribution"
        }
    if not args.skip_speed:
        figures["speed"] = speed(data, work / "baseline", args.records, work)
        figures["seconds_for_1m_records"] = figures["speed"]["seconds_parallel"] * 1_000_000 / args.records
        figures["speed"]["command"] = "python benchmarks/drift_power.py " + " ".join(sys.argv[1:])
    figures["command"] = "python benchmarks/drift_power.py " + " ".join(sys.argv[1:])
    figures["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    figures["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
