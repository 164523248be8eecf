"""loopwise on a GPU: training speed per precision, model FLOPs utilisation, the course's Lab 1 with
roberta-base, and serving on ONNX Runtime's CUDA provider, each against the CPU. One command, at most 8
minutes, for a machine with an NVIDIA GPU; ``--smoke`` shrinks every part so that it runs anywhere (this
CPU machine included) and writes to a temporary file, never to benchmarks/results.

Three parts, each in its own process under its own time cap (a part that fails or runs out of time
records its error, and the others still run):

* ``train``: the bundled MiniLM fine-tuned on synthetic texts (batch 32, max_seq_length 128) on the CPU
  (fp32) and on the GPU in fp32, bf16 (where the GPU has it) and fp16; examples/s from the profiler's
  training time. MFU = 6 x parameters x tokens/s / the GPU's peak dense FLOP/s in that precision
  (:data:`PEAK_TFLOPS`, from NVIDIA's data sheets; tokens counted with padding, as the GPU computes them;
  fp32 against the non-tensor-core peak, since torch leaves TF32 matmuls off by default).
* ``lab1``: the course's tuning spec (``specs/course_lab1.yaml``) and budget as in
  ``benchmarks/course_lab1.py`` with ``--base-model`` (a local roberta-base directory; else ``roberta-base``
  from the Hugging Face cache), test accuracy against the course's 0.767. Without roberta-base the part
  runs with the bundled MiniLM and records ``roberta_test_accuracy: null`` and why. The course data come
  from the loopwise cache, or ``--reviews CSV`` on a machine without network.
* ``serving``: the MiniLM ONNX export answering one text per request, back to back, on the CPU provider
  and on the CUDA provider in fp32 and fp16: requests/s and p50/p99 latency. Without ``onnxruntime-gpu``
  the CUDA rows record that the provider was unavailable.

    python benchmarks/gpu.py [--base-model DIR] [--reviews CSV] [--smoke] [--out FILE]

Writes benchmarks/results/gpu.json (keys ``roberta_test_accuracy``, ``train_examples_per_s``, ``mfu``,
``serving_requests_per_s``, ``serving_p99_ms``, ``device_name``, ``parts``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).parent / "results" / "gpu.json"
#: the repository, written as "." in recorded errors (no machine's paths in results)
ROOT = Path(__file__).resolve().parent.parent
COURSE_TEST_ACCURACY = 0.767
LABELS = ["-1", "0", "1"]
#: peak dense TFLOP/s per precision (no sparsity), by a part of the name torch gives the GPU; first match
PEAK_TFLOPS: list[tuple[str, dict[str, float]]] = [
    ("H200", {"fp32": 66.9, "bf16": 989.4, "fp16": 989.4}),
    ("H100 PCIe", {"fp32": 51.2, "bf16": 756.0, "fp16": 756.0}),
    ("H100", {"fp32": 66.9, "bf16": 989.4, "fp16": 989.4}),  # SXM
    ("A100", {"fp32": 19.5, "bf16": 312.0, "fp16": 312.0}),
    ("L4", {"fp32": 30.3, "bf16": 121.0, "fp16": 121.0}),
    ("A10", {"fp32": 31.2, "bf16": 125.0, "fp16": 125.0}),
]
MFU_FORMULA = "6 * parameters * padded tokens per second / peak dense FLOP/s of the GPU in that precision"
#: each part's time cap in seconds: (full, smoke); the full caps add up to under 8 minutes with start-up
CAPS = {"train": (140, 600), "lab1": (230, 900), "serving": (80, 300)}
SIZES = {  # full, smoke
    "gpu_steps": (60, 2),
    "cpu_steps": (8, 2),
    "lab1_budget": (20_000, 128),
    "requests": (300, 10),
}


def size(name: str, smoke: bool) -> int:
    return SIZES[name][1 if smoke else 0]


def peak_tflops(device_name: str) -> dict[str, float] | None:
    return next((peaks for key, peaks in PEAK_TFLOPS if key in device_name), None)


def synthetic_texts(count: int, seed: int = 0) -> list[str]:
    """Review-like texts of 40-100 words drawn from a fixed word list (tokenized length varies)."""
    import random

    rng = random.Random(seed)
    words = [
        "the",
        "dress",
        "fit",
        "was",
        "great",
        "lovely",
        "awful",
        "terrible",
        "okay",
        "fine",
        "perfect",
        "small",
        "large",
        "color",
        "fabric",
        "soft",
        "returned",
        "ordered",
        "again",
        "would",
        "recommend",
        "not",
        "really",
        "comfortable",
        "cheap",
        "quality",
        "expected",
        "size",
    ]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(40, 100))) for _ in range(count)]


# -- parts (each runs in its own process) -------------------------------------------------------------


def part_train(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from loopwise.classifiers import InMemoryExamples, TrainConfig
    from loopwise.classifiers.transformer import TransformerClassifier

    texts = synthetic_texts(2000)
    data = InMemoryExamples(texts, [LABELS[i % 3] for i in range(len(texts))])
    runs: list[tuple[str, str, int]] = [("cpu", "fp32", size("cpu_steps", args.smoke))]
    name = None
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        gpu_steps = size("gpu_steps", args.smoke)
        precisions = ["fp32", "bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
        runs += [("cuda:0", precision, gpu_steps) for precision in precisions]
    speeds, mfu, details = {}, {}, {}
    peaks = peak_tflops(name or "")
    for device, precision, steps in runs:
        classifier = TransformerClassifier(LABELS, max_seq_length=128)
        config = TrainConfig(
            batch_size=32, epochs=1, steps_per_epoch=steps, device=device, precision=precision, seed=0
        )
        profile = classifier.fit(data, None, config, progress=False).profile
        key = f"{device.split(':')[0]}_{precision}"
        speeds[key] = profile["examples_per_s"]
        parameters = sum(p.numel() for p in classifier.model.parameters())
        tokens_per_s = profile["padded_tokens"] / profile["train_s"] if profile["train_s"] else 0.0
        if device != "cpu" and peaks is not None:
            mfu[key] = round(6 * parameters * tokens_per_s / (peaks[precision] * 1e12), 4)
        details[key] = {"steps": steps, "parameters": parameters, "tokens_per_s": round(tokens_per_s, 1)}
        details[key] |= {k: profile.get(k) for k in ("train_s", "gpu_utilization", "peak_gpu_memory_mb")}
    return {
        "device_name": name,
        "train_gpu": None if name else "no CUDA device: the CPU run only",
        "train_examples_per_s": speeds,
        "mfu": mfu if name else None,
        "mfu_peak_tflops": peaks,
        "train_runs": details,
    }


def find_roberta(base_model: str | None) -> tuple[str | None, str | None]:
    """A roberta-base to fine-tune, and why there is none (None, reason)."""
    if base_model:
        if Path(base_model).is_dir():
            return base_model, None
        return None, f"--base-model {base_model} is not a directory"
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained("roberta-base", local_files_only=True)
    except Exception as exc:
        return None, f"roberta-base is not in the Hugging Face cache and no --base-model was given ({exc})"[
            :300
        ]
    return "roberta-base", None


def part_lab1(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    from course_lab1 import run_tuning
    from loopwise.config import Settings
    from loopwise.data.cache import fetch_reviews
    from loopwise.data.service import prepare_reviews
    from loopwise.storage import Store

    roberta, why_not = find_roberta(args.base_model)
    user = Settings()
    home = Path(tempfile.mkdtemp(prefix="loopwise-gpu-lab1-"))
    settings = Settings(home=home, cache_dir=user.resolved_cache_dir)
    store = Store.open(settings)
    try:
        dataset = prepare_reviews(store, fetch_reviews(settings, source_file=args.reviews))
        budget = size("lab1_budget", args.smoke)
        overrides: dict[str, Any] = {"name": "lab1-gpu"} | ({"base_model": roberta} if roberta else {})
        if args.smoke:  # batches of 128 and 256 take minutes a step on a CPU: the smoke run checks the path
            overrides["parameters"] = {
                "learning_rate": {"type": "continuous", "min": 1e-5, "max": 5e-5},
                "batch_size": {"type": "categorical", "values": [16, 32]},
            }
        run = run_tuning(store, "course", dataset.ref, budget, overrides)
    finally:
        store.close()
    accuracy = run["test_accuracy"]
    return {
        "roberta_test_accuracy": accuracy if roberta else None,
        "roberta_missing": why_not,
        "lab1": {
            "base_model": roberta or "all-MiniLM-L6-v2 (bundled)",
            "test_accuracy": accuracy,
            "course_reference_test_accuracy": COURSE_TEST_ACCURACY,
            "budget_examples": budget,
            **{k: run[k] for k in ("best_params", "validation_accuracy", "trial_wall_s", "trials")},
        },
    }


def part_serving(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    from loopwise.classifiers._providers import CUDA
    from loopwise.classifiers.onnx import OnnxClassifier, export_onnx
    from loopwise.classifiers.transformer import TransformerClassifier

    directory = Path(tempfile.mkdtemp(prefix="loopwise-gpu-onnx-"))
    cuda = CUDA in ort.get_available_providers()
    export_onnx(TransformerClassifier(LABELS, max_seq_length=128), directory, fp16=cuda)
    texts = synthetic_texts(size("requests", args.smoke), seed=1)
    placements = [("cpu", "fp32"), *([("cuda:0", "fp32"), ("cuda:0", "fp16")] if cuda else [])]
    rates, p99s, rows = {}, {}, {}
    for device, precision in placements:
        classifier = OnnxClassifier.load(directory, precision=precision, device=device)  # type: ignore[arg-type]
        key = f"{device.split(':')[0]}_{precision}"
        for text in texts[:5]:  # warm-up: the first runs allocate and pick kernels
            classifier.predict_proba([text])
        latencies = []
        started = time.perf_counter()
        for text in texts:
            begun = time.perf_counter()
            classifier.predict_proba([text])
            latencies.append((time.perf_counter() - begun) * 1000)
        wall = time.perf_counter() - started
        rates[key] = round(len(texts) / wall, 1)
        p99s[key] = round(float(np.percentile(latencies, 99)), 2)
        rows[key] = {"provider": classifier.provider, "fallback": classifier.fallback}
        rows[key]["p50_ms"] = round(float(np.percentile(latencies, 50)), 2)
    result: dict[str, Any] = {"serving_requests_per_s": rates, "serving_p99_ms": p99s, "serving_runs": rows}
    if not cuda:
        result["serving_cuda"] = (
            f"unavailable: ONNX Runtime here has no {CUDA} (providers: "
            f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu (loopwise[gpu])"
        )
    return result


PARTS = {"train": part_train, "lab1": part_lab1, "serving": part_serving}


# -- the driver -----------------------------------------------------------------------------------------


def run_part(name: str, args: argparse.Namespace, passed: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Part ``name`` in a child process under its cap: (its figures, its status)."""
    cap = CAPS[name][1 if args.smoke else 0]
    with tempfile.TemporaryDirectory(prefix="loopwise-gpu-part-") as scratch:
        result = Path(scratch) / "part.json"
        command = [sys.executable, __file__, *passed, "--part", name, "--part-result", str(result)]
        started = time.monotonic()
        try:
            done = subprocess.run(command, timeout=cap, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            status = {"status": "timed out", "error": f"stopped after its cap of {cap} s"}
        else:
            if done.returncode == 0 and result.exists():
                figures = json.loads(result.read_text(encoding="utf-8"))
                return figures, {"status": "ok", "seconds": round(time.monotonic() - started, 1)}
            tail = (done.stderr or done.stdout).replace(str(ROOT), ".").strip().splitlines()[-3:]
            status = {"status": "failed", "error": " | ".join(tail)[-600:] or f"exit {done.returncode}"}
    status["seconds"] = round(time.monotonic() - started, 1)
    return {}, status


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-model", help="a local roberta-base directory for the Lab 1 part")
    parser.add_argument("--reviews", help="the course reviews CSV (default: the loopwise cache)")
    parser.add_argument("--smoke", action="store_true", help="shrink every part; write to a temporary file")
    parser.add_argument("--out", type=Path, help="where to write the JSON (default: results/gpu.json)")
    parser.add_argument("--only", choices=sorted(PARTS), action="append", help="run only these parts")
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--part-result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        figures = PARTS[args.part](args)
        args.part_result.write_text(json.dumps(figures, default=str), encoding="utf-8")
        return
    passed = ["--smoke"] if args.smoke else []
    for option, value in (("--base-model", args.base_model), ("--reviews", args.reviews)):
        passed += [option, value] if value else []
    started = time.monotonic()
    document: dict[str, Any] = {
        "benchmark": "gpu",
        "command": "python benchmarks/gpu.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "device_name": None,
        "roberta_test_accuracy": None,
        "train_examples_per_s": None,
        "mfu": None,
        "mfu_formula": MFU_FORMULA,
        "serving_requests_per_s": None,
        "serving_p99_ms": None,
        "parts": {},
    }
    for name in args.only or list(PARTS):
        figures, status = run_part(name, args, passed)
        document.update({k: v for k, v in figures.items() if v is not None or k not in document})
        document["parts"][name] = status
        print(f"{name}: {status}", file=sys.stderr, flush=True)
    document["wall_s"] = round(time.monotonic() - started, 1)
    out = args.out or (Path(tempfile.gettempdir()) / "loopwise-gpu-smoke.json" if args.smoke else RESULTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    print(json.dumps(document, indent=2, default=str))
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
