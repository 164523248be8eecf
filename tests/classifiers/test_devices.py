"""Devices and precision: resolving --device/--precision on faked machines, and what each precision does
to a fit and a prediction of a tiny random BERT on the CPU."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from test_loop import LABELS, encode, examples
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from loopwise.classifiers import TrainConfig
from loopwise.classifiers.devices import (
    Placement,
    check_device,
    check_precision,
    cpu_native_bf16,
    resolve_config,
    resolve_device,
    resolve_placement,
    resolve_precision,
)
from loopwise.classifiers.loop import train
from loopwise.classifiers.profiler import StepProfiler
from loopwise.classifiers.transformer import TransformerClassifier
from loopwise.errors import ConfigurationError

GIB = 2**30


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cuda(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A machine with three CUDA devices (free memory 2, 9 and 5 GiB, Ampere-class by default): torch's
    CUDA queries answer from this dict; set ``native_bf16`` False for an older GPU."""
    machine: dict[str, Any] = {"free": [2 * GIB, 9 * GIB, 5 * GIB], "native_bf16": True}

    def mem_get_info(index: int) -> tuple[int, int]:
        free = machine["free"][index]
        if free is None:
            raise RuntimeError("CUDA error: all CUDA-capable devices are busy or unavailable")
        return free, 16 * GIB

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        # an older GPU emulates bf16: torch says yes unless asked about native support
        return machine["native_bf16"] or including_emulation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(machine["free"]))
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "device", lambda device: nullcontext())
    return machine


@pytest.fixture
def no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


# -- spelling ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("auto", "auto"),
        ("CPU", "cpu"),
        (" cuda ", "cuda"),
        ("cuda:0", "cuda:0"),
        ("cuda:01", "cuda:1"),
        ("mps", "mps"),
    ],
)
def test_device_spellings_are_normalised(written: str, meant: str) -> None:
    assert check_device(written) == meant


@pytest.mark.parametrize("written", ["tpu", "cuda:", "cuda:-1", "cuda:x", "gpu", "", "cuda:N"])
def test_an_unknown_device_names_the_valid_ones(written: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        check_device(written)
    assert "auto, cpu, cuda, cuda:N" in str(refused.value) and "mps" in str(refused.value)


def test_an_unknown_precision_names_the_valid_ones() -> None:
    assert check_precision("BF16") == "bf16"
    with pytest.raises(ConfigurationError, match="auto, fp32, bf16, fp16"):
        check_precision("fp8")


# -- devices --------------------------------------------------------------------------------------------


def test_auto_and_cuda_take_the_cuda_device_with_the_most_free_memory(cuda: dict[str, Any]) -> None:
    assert resolve_device("auto") == "cuda:1"
    assert resolve_device("cuda") == "cuda:1"
    cuda["free"][1] = None  # busy in exclusive mode: skipped
    assert resolve_device("auto") == "cuda:2"
    assert resolve_device("cuda:0") == "cuda:0"  # an explicit index is taken as asked
    assert resolve_device("cpu") == "cpu"


def test_a_cuda_index_beyond_the_machine_is_refused(cuda: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=r"has 3 CUDA device\(s\): use cuda:0 to cuda:2"):
        resolve_device("cuda:3")


def test_every_busy_cuda_device_is_a_clear_error(cuda: dict[str, Any]) -> None:
    cuda["free"] = [None, None]
    with pytest.raises(ConfigurationError, match="every CUDA device is busy"):
        resolve_device("auto")


def test_auto_falls_back_to_mps_then_the_cpu(no_accelerator: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == "mps"
    assert resolve_device("mps") == "mps"


@pytest.mark.parametrize("asked", ["cuda", "cuda:0", "mps"])
def test_an_accelerator_the_machine_lacks_is_a_clear_error(no_accelerator: None, asked: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        resolve_device(asked)
    assert f"device {asked} was asked for" in str(refused.value)
    assert "use --device cpu or auto" in str(refused.value)


# -- precision --------------------------------------------------------------------------------------------


def test_the_precision_matrix_on_the_cpu() -> None:
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # CPU autocast runs bf16
    with pytest.raises(ConfigurationError, match=r"fp16 is not supported on the CPU.*bf16 or fp32"):
        resolve_precision("fp16", "cpu")
    assert resolve_precision("auto", "mps") == "fp32"


def test_auto_precision_on_cuda_is_bf16_where_native_else_fp16(cuda: dict[str, Any]) -> None:
    assert resolve_placement("auto", "auto") == Placement("cuda:1", "bf16")
    cuda["native_bf16"] = False  # a V100 or T4: bf16 only emulated
    assert resolve_placement("auto", "auto") == Placement("cuda:1", "fp16")
    assert resolve_placement("cuda:0", "fp32") == Placement("cuda:0", "fp32")
    with pytest.raises(ConfigurationError, match=r"cuda:1 has no native bf16.*fp16"):
        resolve_placement("auto", "bf16")


def test_a_cpu_computes_bf16_natively_with_avx512_bf16_or_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    for avx512_bf16, amx, native in [(True, False, True), (False, True, True), (False, False, False)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert cpu_native_bf16() is native
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")  # a torch without the probes
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert cpu_native_bf16() is False


def test_auto_on_the_cpu_is_bf16_for_a_fit_where_the_cpu_has_it_natively(
    cpu_bf16: Callable[[bool], None],
) -> None:
    cpu_bf16(True)
    assert resolve_precision("auto", "cpu", training=True) == "bf16"
    assert resolve_precision("auto", "cpu") == "fp32"  # predictions, evaluation: fp32 unless asked
    assert resolve_precision("fp32", "cpu", training=True) == "fp32"  # asked for: kept
    assert resolve_precision("auto", "mps", training=True) == "fp32"
    cpu_bf16(False)
    assert resolve_precision("auto", "cpu", training=True) == "fp32"  # emulated bf16 would gain nothing


@pytest.mark.parametrize(("native", "precision"), [(False, "fp32"), (True, "bf16")])
def test_resolve_config_records_what_runs(
    no_accelerator: None, cpu_bf16: Callable[[bool], None], native: bool, precision: str
) -> None:
    cpu_bf16(native)
    resolved = resolve_config(TrainConfig(batch_size=4))
    assert (resolved.device, resolved.precision, resolved.batch_size) == ("cpu", precision, 4)


def test_a_placement_says_how_to_run() -> None:
    fp32, bf16, fp16 = Placement("cpu", "fp32"), Placement("cpu", "bf16"), Placement("cuda:1", "fp16")
    assert (fp32.dtype, bf16.dtype, fp16.dtype) == (None, torch.bfloat16, torch.float16)
    assert (fp32.pin_memory, fp16.pin_memory) == (False, True)
    assert fp16.kind == "cuda" and fp16.torch_device == torch.device("cuda", 1)
    assert fp32.grad_scaler() is None and bf16.grad_scaler() is None
    with bf16.autocast():
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with fp32.autocast():
        assert not torch.is_autocast_enabled("cpu")


# -- fitting and predicting -------------------------------------------------------------------------------


def _model(tiny_bert_dir: Path) -> Any:
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=len(LABELS))


class _HeadDtype:
    """Records the dtype of the classification head's output at each training forward pass."""

    def __init__(self, model: Any) -> None:
        self.seen: list[torch.dtype] = []
        model.classifier.register_forward_hook(self._hook)

    def _hook(self, module: Any, inputs: Any, output: torch.Tensor) -> None:
        if module.training:
            self.seen.append(output.dtype)


class _CountingScaler(torch.amp.GradScaler):
    made: ClassVar[list[_CountingScaler]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scaled = 0
        _CountingScaler.made.append(self)

    def scale(self, outputs: Any) -> Any:
        self.scaled += 1
        return super().scale(outputs)


@pytest.mark.parametrize(
    ("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_each_precision_trains_under_its_autocast_and_only_fp16_scales_the_loss(
    tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch, precision: str, dtype: torch.dtype
) -> None:
    monkeypatch.setattr(torch.amp, "GradScaler", _CountingScaler)
    _CountingScaler.made = []
    model = _model(tiny_bert_dir)
    heads = _HeadDtype(model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    config = TrainConfig(batch_size=8, epochs=1, steps_per_epoch=3, learning_rate=1e-3)
    # fp16 stands for an older GPU here: a placement built directly skips the machine's checks (the CPU
    # would refuse fp16), so the loop's loss-scaling path runs on this CPU
    placement = Placement("cpu", precision)
    result = train(model, tokenizer, examples(24, 1), encode, len(LABELS), config=config, placement=placement)
    assert heads.seen == [dtype] * 3
    assert math.isfinite(result.metrics["loss"])
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast leaves the weights fp32
    assert result.profile["device"] == "cpu" and result.profile["precision"] == precision
    if precision == "fp16":
        assert len(_CountingScaler.made) == 1 and _CountingScaler.made[0].scaled == 3
        assert result.profile["loss_scale"] == _CountingScaler.made[0].get_scale() > 0
    else:
        assert _CountingScaler.made == [] and "loss_scale" not in result.profile


def test_a_fit_resolves_its_configured_device_and_validates_there(
    tiny_bert_dir: Path, no_accelerator: None
) -> None:
    model = _model(tiny_bert_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    config = TrainConfig(batch_size=8, epochs=1, steps_per_epoch=2, precision="bf16")
    result = train(
        model, tokenizer, examples(16, 1), encode, len(LABELS), validation=examples(9, 2), config=config
    )
    assert result.profile["precision"] == "bf16" and result.profile["device"] == "cpu"
    assert math.isfinite(result.metrics["val_loss"])
    with pytest.raises(ConfigurationError, match="fp16 is not supported on the CPU"):
        train(model, tokenizer, examples(8, 1), encode, len(LABELS), config=TrainConfig(precision="fp16"))
    with pytest.raises(ConfigurationError, match="device cuda was asked for"):
        train(model, tokenizer, examples(8, 1), encode, len(LABELS), config=TrainConfig(device="cuda"))


@pytest.mark.parametrize(("native", "dtype"), [(False, torch.float32), (True, torch.bfloat16)])
def test_a_fit_left_on_auto_trains_in_bf16_only_on_a_cpu_that_has_it_natively(
    tiny_bert_dir: Path,
    no_accelerator: None,
    cpu_bf16: Callable[[bool], None],
    native: bool,
    dtype: torch.dtype,
) -> None:
    cpu_bf16(native)
    classifier = TransformerClassifier(LABELS, base_model=tiny_bert_dir, max_seq_length=32)
    heads = _HeadDtype(classifier.model)
    config = TrainConfig(batch_size=8, epochs=1, steps_per_epoch=2, learning_rate=1e-3)
    result = classifier.fit(examples(16, 1), examples(9, 2), config)
    assert heads.seen == [dtype] * 2
    assert result.profile["precision"] == ("bf16" if native else "fp32")
    assert math.isfinite(result.metrics["val_loss"])
    assert all(p.dtype == torch.float32 for p in classifier.model.parameters())
    assert classifier.placement == Placement("cpu", "fp32")  # auto predicts in fp32 on the CPU
    texts = ["great dress", "awful fit", "it was okay", "the dress was fine"]
    np.testing.assert_allclose(
        classifier.predict_proba(texts), classifier.predict_proba(texts, batch_size=1), atol=1e-5
    )


def test_the_classifier_predicts_on_its_device_and_saves_device_independent_weights(
    tiny_bert_dir: Path, tmp_path: Path, no_accelerator: None
) -> None:
    classifier = TransformerClassifier(LABELS, base_model=tiny_bert_dir, max_seq_length=32)
    texts = ["great dress", "awful fit", "it was okay"]
    fp32 = classifier.predict_proba(texts)
    classifier.fit(examples(16, 1), config=TrainConfig(batch_size=8, steps_per_epoch=1, precision="bf16"))
    assert classifier.placement == Placement("cpu", "bf16")
    bf16 = classifier.predict_proba(texts)
    assert isinstance(bf16, np.ndarray) and bf16.dtype == np.float64 and bf16.shape == fp32.shape
    np.testing.assert_allclose(bf16.sum(axis=1), 1.0)
    classifier.save(tmp_path / "saved")
    loaded = TransformerClassifier.load(tmp_path / "saved")
    assert loaded.placement == Placement("cpu", "fp32")
    assert {p.device.type for p in loaded.model.parameters()} == {"cpu"}
    loaded.use_device("cpu", "bf16")
    np.testing.assert_allclose(loaded.predict_proba(texts), bf16, atol=1e-6)
    with pytest.raises(ConfigurationError, match="fp16 is not supported on the CPU"):
        loaded.use_device("cpu", "fp16")


# -- the profiler ---------------------------------------------------------------------------------------


def test_on_the_cpu_the_profiler_names_the_device_and_leaves_the_gpu_fields_empty() -> None:
    profiler = StepProfiler()
    profiler.start()
    with profiler.phase("forward"):
        pass
    profiler.step(4, 10, 12)
    summary = profiler.summary()
    assert summary["device"] == "cpu"
    for field in ("device_s", "device_busy_share", "gpu_utilization", "peak_gpu_memory_mb"):
        assert summary[field] is None


class _FakeEvent:
    """A CUDA event on a fake clock that advances 5 ms per recorded event."""

    clock = 0.0

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.at: float | None = None

    def record(self) -> None:
        _FakeEvent.clock += 5.0
        self.at = _FakeEvent.clock

    def elapsed_time(self, end: _FakeEvent) -> float:
        assert self.at is not None and end.at is not None
        return end.at - self.at


def test_on_cuda_the_profiler_reports_device_time_utilisation_and_peak_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    synchronized: list[str] = []
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synchronized.append(str(device)))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 3 * 2**20)
    monkeypatch.setattr(torch.cuda, "utilization", lambda device=None: 40)
    profiler = StepProfiler(device="cuda:1")
    profiler.start()
    for _ in range(2):
        for phase in ("data", "forward", "backward", "optimizer"):
            with profiler.phase(phase):
                pass
        profiler.step(8, 80, 100)
    summary = profiler.summary()
    assert synchronized == ["cuda:1"] * 8  # each phase waits for its kernels
    assert summary["device"] == "cuda:1"
    assert summary["device_s"]["forward"] == pytest.approx(0.010)  # 5 ms a phase, twice
    assert summary["device_s"]["validation"] == 0.0
    assert summary["gpu_utilization"] == pytest.approx(0.4)
    assert summary["peak_gpu_memory_mb"] == 3.0
    assert 0.0 <= summary["device_busy_share"] <= 1.0


def test_without_nvml_utilisation_is_unknown_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_nvml(device: Any = None) -> int:
        raise ModuleNotFoundError("pynvml does not seem to be installed")

    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 0)
    monkeypatch.setattr(torch.cuda, "utilization", no_nvml)
    profiler = StepProfiler(synchronize=lambda: None, device="cuda:0")
    profiler.start()
    assert profiler.summary()["gpu_utilization"] is None
