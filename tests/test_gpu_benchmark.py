"""benchmarks/gpu.py's pure pieces: the peak-FLOPs table behind MFU and the search for roberta-base (the
script itself runs in --smoke mode on a CPU machine; see docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_flops_are_looked_up_by_the_name_torch_gives_the_gpu(gpu: ModuleType) -> None:
    assert gpu.peak_tflops("NVIDIA H100 80GB HBM3") == {"fp32": 66.9, "bf16": 989.4, "fp16": 989.4}
    assert gpu.peak_tflops("NVIDIA H100 PCIe")["bf16"] == 756.0  # PCIe before the SXM row
    assert gpu.peak_tflops("NVIDIA H200")["fp16"] == 989.4
    assert gpu.peak_tflops("Tesla T4") is None  # unknown: MFU is not guessed


def test_without_roberta_the_lab1_part_says_why(gpu: ModuleType, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    model, why = gpu.find_roberta(str(tmp_path / "nowhere"))
    assert model is None and "is not a directory" in why
    assert gpu.find_roberta(str(tmp_path)) == (str(tmp_path), None)
    model, why = gpu.find_roberta(None)
    assert model is None and "roberta-base is not in the Hugging Face cache" in why
