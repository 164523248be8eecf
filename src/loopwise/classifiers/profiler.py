"""Where a training run spends its time: a step profiler with a JSON-able summary.

Each optimizer step is split into four phases timed with ``perf_counter``: ``data`` (reading, tokenizing
and collating the next batch), ``forward``, ``backward`` and ``optimizer`` (clipping, step, schedule).
Validation passes are timed as their own bucket. On an accelerator pass ``synchronize`` (for example
``torch.cuda.synchronize``) so that asynchronous kernels are charged to the phase that launched them.

With ``device="cuda:N"`` the profiler also times each phase on the GPU with CUDA events (``device_s``:
the time the GPU spent on the phase's work), samples the GPU's utilisation (``torch.cuda.utilization``,
which needs NVML; None where it cannot be read) and reports the peak memory torch allocated on the device
(``torch.cuda.max_memory_allocated``). On the CPU these GPU fields are None and ``device`` is ``cpu``.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psutil

PHASES = ("data", "forward", "backward", "optimizer")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _peak_rss_mb() -> float:
    # VmHWM is this process's own high-water mark; Linux carries ru_maxrss across exec, so a child
    # started from a big parent would report the parent's peak.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # kilobytes on Linux, bytes on macOS
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class StepProfiler:
    """Accumulates phase times, examples and tokens over the steps of one fit. Not thread-safe."""

    def __init__(self, synchronize: Callable[[], None] | None = None, device: str = "cpu") -> None:
        self.device = device
        self._cuda: Any = None
        if device.startswith("cuda"):
            import torch

            self._cuda = torch.cuda
            synchronize = synchronize or (lambda: torch.cuda.synchronize(device))
            torch.cuda.reset_peak_memory_stats(device)
        self._synchronize = synchronize
        self.device_seconds: dict[str, float] = dict.fromkeys((*PHASES, "validation"), 0.0)
        self._utilization: list[float] = []
        self._process = psutil.Process()
        self.seconds: dict[str, float] = dict.fromkeys((*PHASES, "validation"), 0.0)
        self.steps = 0
        self.examples = 0
        self.tokens = 0
        self.padded_tokens = 0
        self._started_wall: float | None = None
        self._started_cpu = 0.0
        self._rss_start = 0
        self._rss_max = 0

    def start(self) -> None:
        """Start the wall and CPU clocks (called once, just before the first step)."""
        self._started_wall = time.perf_counter()
        self._started_cpu = time.process_time()
        self._rss_start = self._rss_max = self._process.memory_info().rss

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Charge the time spent inside the block to ``name`` (one of :data:`PHASES` or ``validation``)."""
        started = time.perf_counter()
        events = None
        if self._cuda is not None:
            events = self._cuda.Event(enable_timing=True), self._cuda.Event(enable_timing=True)
            events[0].record()
        try:
            yield
        finally:
            if events is not None:
                events[1].record()
            if self._synchronize is not None:
                self._synchronize()
            self.seconds[name] += time.perf_counter() - started
            if events is not None:  # milliseconds, readable once both events completed (synchronized)
                self.device_seconds[name] += events[0].elapsed_time(events[1]) / 1000

    def step(self, examples: int, tokens: int = 0, padded_tokens: int = 0) -> None:
        """Count one finished optimizer step over ``examples`` examples.

        ``tokens`` are the real tokens of the batch and ``padded_tokens`` the size of the padded tensor,
        so that ``padding_ratio`` shows how much compute went to padding.
        """
        self.steps += 1
        self.examples += examples
        self.tokens += tokens
        self.padded_tokens += padded_tokens
        if self.steps % 10 == 1:
            self.sample_memory()

    def sample_memory(self) -> None:
        """Sample the process's memory and, on CUDA, the GPU's utilisation (when NVML can read it)."""
        self._rss_max = max(self._rss_max, self._process.memory_info().rss)
        if self._cuda is not None:
            # without NVML (pynvml) or the permission to read it, utilisation stays unknown
            with contextlib.suppress(Exception):
                self._utilization.append(float(self._cuda.utilization(self.device)))

    @property
    def train_seconds(self) -> float:
        return sum(self.seconds[name] for name in PHASES)

    def examples_per_s(self) -> float:
        seconds = self.train_seconds
        return self.examples / seconds if seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """A plain dict (JSON-able): throughput, the time split, memory and CPU use."""
        self.sample_memory()
        wall = time.perf_counter() - self._started_wall if self._started_wall is not None else 0.0
        cpu = time.process_time() - self._started_cpu if self._started_wall is not None else 0.0
        cores = _cores()
        train = self.train_seconds
        result: dict[str, Any] = {
            "steps": self.steps,
            "examples": self.examples,
            "examples_per_s": round(self.examples_per_s(), 3),
            "wall_s": round(wall, 4),
            "train_s": round(train, 4),
            **{f"{name}_s": round(seconds, 4) for name, seconds in self.seconds.items()},
            "time_share": {name: round(self.seconds[name] / train, 4) if train else 0.0 for name in PHASES},
            "tokens": self.tokens,
            "padded_tokens": self.padded_tokens,
            "padding_ratio": round(1 - self.tokens / self.padded_tokens, 4) if self.padded_tokens else 0.0,
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "rss_growth_mb": round((self._rss_max - self._rss_start) / 2**20, 1),
            "cpu_utilization": round(cpu / wall / cores, 4) if wall > 0 else 0.0,
            "cores": cores,
        }
        torch = sys.modules.get("torch")
        if torch is not None:
            result["torch_threads"] = torch.get_num_threads()
        return result | self._device_summary(train)

    def _device_summary(self, train: float) -> dict[str, Any]:
        """The device and, on CUDA, GPU time per phase, busy share, utilisation and peak memory."""
        if self._cuda is None:
            return {
                "device": self.device,
                "device_s": None,
                "device_busy_share": None,
                "gpu_utilization": None,
                "peak_gpu_memory_mb": None,
            }
        device_train = sum(self.device_seconds[name] for name in PHASES)
        samples = self._utilization
        return {
            "device": self.device,
            "device_s": {name: round(seconds, 4) for name, seconds in self.device_seconds.items()},
            # GPU time (from each phase's first to its last queued work) over the phases' wall time
            "device_busy_share": round(min(1.0, device_train / train), 4) if train else 0.0,
            "gpu_utilization": round(sum(samples) / len(samples) / 100, 4) if samples else None,
            "peak_gpu_memory_mb": round(self._cuda.max_memory_allocated(self.device) / 2**20, 1),
        }
