"""Serving devices: which ONNX Runtime providers a device asks for, the fp16 export for GPUs, and the
fallback to the CPU provider with one warning when the CUDA provider is missing or does not open.

This machine's ONNX Runtime is the CPU build, so a GPU is faked where the code asks whether there is one
(``onnxruntime.get_available_providers``); the sessions themselves are real."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch
from contract import fit_tiny, synthetic_examples

from loopwise.classifiers import TransformerClassifier
from loopwise.classifiers._providers import CPU, CUDA, check_device, describe_device, plan_providers
from loopwise.classifiers.onnx import FP16, FP32, OnnxClassifier, export_onnx
from loopwise.errors import ClassifierError

TEXTS = ["I love this product!", "OK, but not great.", "x", "a very long review " * 40]
WITH_CUDA = ["TensorrtExecutionProvider", CUDA, CPU]


@pytest.fixture(scope="module")
def trained(tiny_bert_dir: Path) -> TransformerClassifier:
    return fit_tiny(tiny_bert_dir, 150, 2)


@pytest.fixture(scope="module")
def exported(trained: TransformerClassifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(trained, tmp_path_factory.mktemp("onnx"), fp16=True)


def fake_gpu(monkeypatch: pytest.MonkeyPatch, available: list[str] = WITH_CUDA) -> None:
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(available))


def fallbacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "loopwise.serving" and r.levelno == logging.WARNING
    ]


def test_each_device_asks_for_its_providers_in_order() -> None:
    assert plan_providers("cpu", WITH_CUDA).providers == [CPU]
    assert plan_providers("cuda", WITH_CUDA).providers == [(CUDA, {"device_id": 0}), CPU]
    assert plan_providers("cuda:3", WITH_CUDA).providers == [(CUDA, {"device_id": 3}), CPU]
    assert plan_providers("auto", WITH_CUDA).providers == [(CUDA, {"device_id": 0}), CPU]
    # without the CUDA provider: auto is the CPU by design, cuda is a fallback with its reason
    assert plan_providers("auto", [CPU]).providers == [CPU] and plan_providers("auto", [CPU]).fallback is None
    missing = plan_providers("cuda:1", ["AzureExecutionProvider", CPU])
    assert missing.providers == [CPU] and not missing.gpu
    assert missing.fallback is not None and "no CUDAExecutionProvider" in missing.fallback
    assert "AzureExecutionProvider" in missing.fallback


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "cuda:-1", "CUDA", "mps", "cuda:01", ""])
def test_a_bad_device_is_refused_with_the_choices(bad: str) -> None:
    with pytest.raises(ClassifierError, match=r"use cpu, cuda, cuda:N .* or auto"):
        check_device(bad)


def test_the_fp16_export_answers_as_fp32_does_within_half_precision(
    trained: TransformerClassifier, exported: Path
) -> None:
    assert {FP32, FP16} <= {p.name for p in exported.iterdir()}
    assert (exported / FP16).stat().st_size < 0.7 * (exported / FP32).stat().st_size
    assert next(trained.model.parameters()).dtype == torch.float32  # the classifier itself is untouched
    half = OnnxClassifier.load(exported, "fp16")  # the CPU provider runs it too: checkable here
    assert half.precision == "fp16" and half.provider == CPU and half.fallback is None
    texts = TEXTS + list(synthetic_examples(40, seed=1).texts)
    expected = trained.predict_proba(texts)
    np.testing.assert_allclose(half.predict_proba(texts, batch_size=7), expected, atol=1e-2)
    assert half.predict(texts) == trained.predict(texts)
    proba, embeddings = half.predict_with_embeddings(texts)
    np.testing.assert_allclose(proba, expected, atol=1e-2)
    assert embeddings is not None and embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-2)


def test_without_the_cuda_provider_a_cuda_device_falls_back_to_the_cpu_with_one_warning(
    exported: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="loopwise.serving"):
        classifier = OnnxClassifier.load(exported, "fp16", device="cuda")
    assert classifier.provider == CPU and classifier.device == "cuda"
    assert classifier.precision == "fp32"  # the fp16 model's fp32 twin serves on the CPU
    [warning] = fallbacks(caplog)
    assert classifier.fallback == warning
    assert "device cuda" in warning and "no CUDAExecutionProvider" in warning
    assert f"serving on the CPU ({CPU}, with the fp32 model {FP32})" in warning
    assert "loopwise[gpu]" in warning
    assert classifier.predict_proba(TEXTS).shape == (len(TEXTS), 3)  # and it serves


def test_a_cuda_provider_that_does_not_open_falls_back_with_one_warning(
    exported: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ONNX Runtime lists CUDA, but this build cannot run it: the session opens on the CPU alone
    fake_gpu(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="loopwise.serving"):
        classifier = OnnxClassifier.load(exported, "fp32", device="cuda:0")
    [warning] = fallbacks(caplog)
    assert classifier.provider == CPU and classifier.fallback == warning
    assert "opened the model on CPUExecutionProvider only" in warning
    assert classifier.predict_proba(TEXTS).shape == (len(TEXTS), 3)


def test_a_cuda_provider_that_raises_on_opening_falls_back_with_its_error(
    exported: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_gpu(monkeypatch)
    real = onnxruntime.InferenceSession

    def session(path: str, sess_options: Any = None, providers: Any = None, **kw: Any) -> Any:
        if any(p[0] == CUDA for p in providers if isinstance(p, tuple)):
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return real(path, sess_options=sess_options, providers=providers, **kw)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    with caplog.at_level(logging.WARNING, logger="loopwise.serving"):
        classifier = OnnxClassifier.load(exported, "fp16", device="cuda:1")
    [warning] = fallbacks(caplog)
    assert "failed to open (RuntimeError: CUDA failure 100" in warning
    assert classifier.provider == CPU and classifier.precision == "fp32"
    np.testing.assert_allclose(
        classifier.predict_proba(TEXTS), OnnxClassifier.load(exported).predict_proba(TEXTS), atol=1e-12
    )


def test_a_session_on_the_cuda_provider_is_kept_without_a_warning(
    exported: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a GPU machine does, ONNX Runtime's side faked: the session asked for GPU 1's CUDA provider
    first reports it as its first provider, and the fp16 model is the one opened."""
    fake_gpu(monkeypatch)
    real = onnxruntime.InferenceSession
    asked: list[tuple[str, Any]] = []

    class OnGpu:
        def __init__(self, path: str, sess_options: Any = None, providers: Any = None) -> None:
            asked.append((Path(path).name, providers))
            self.inner = real(path, sess_options=sess_options, providers=[CPU])
            self.providers = [p[0] if isinstance(p, tuple) else p for p in providers]

        def get_providers(self) -> list[str]:
            return self.providers

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    monkeypatch.setattr(onnxruntime, "InferenceSession", OnGpu)
    with caplog.at_level(logging.WARNING, logger="loopwise.serving"):
        classifier = OnnxClassifier.load(exported, "fp16", device="cuda:1")
    assert asked == [(FP16, [(CUDA, {"device_id": 1}), CPU])]
    assert classifier.provider == CUDA and classifier.precision == "fp16" and classifier.fallback is None
    assert fallbacks(caplog) == []


def test_auto_without_a_gpu_is_the_cpu_without_a_warning(
    exported: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="loopwise.serving"):
        classifier = OnnxClassifier.load(exported, "fp16", device="auto")
    assert classifier.provider == CPU and classifier.precision == "fp32" and classifier.fallback is None
    assert fallbacks(caplog) == []
    with pytest.raises(ClassifierError, match="device 'gpu'"):
        OnnxClassifier.load(exported, device="gpu")


def test_a_device_is_described_with_the_provider_it_would_get(monkeypatch: pytest.MonkeyPatch) -> None:
    assert describe_device("cpu") == "cpu"
    assert describe_device("auto") == f"auto ({CPU})"
    assert describe_device("cuda").startswith("cuda (CPU fallback: ONNX Runtime has no CUDAExecutionProvider")
    fake_gpu(monkeypatch)
    assert describe_device("cuda:2") == f"cuda:2 ({CUDA})"
