"""Each variant's live workers and the CPU they used, sampled for the per-variant metrics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopwise.serving.metrics import Metrics
    from loopwise.serving.router import EndpointRuntime


class ResourceSampler:
    """Keeps a ``psutil.Process`` per worker between samples: CPU percent is a delta since the last call."""

    def __init__(self) -> None:
        self._processes: dict[int, Any] = {}  # psutil.Process by pid, for CPU deltas

    def sample(self, runtimes: Iterable[EndpointRuntime], metrics: Metrics) -> None:
        """Record each variant's live workers and their CPU since the last sample."""
        import psutil

        seen = set()
        for runtime in runtimes:
            for name, pool in runtime.pools.items():
                cpu = 0.0
                live = pool.live
                for instance in live:
                    if instance.process is None:
                        continue
                    pid = instance.process.pid
                    seen.add(pid)
                    try:
                        process = self._processes.get(pid)
                        if process is None:
                            process = self._processes[pid] = psutil.Process(pid)
                            process.cpu_percent()  # the first call only starts the measurement
                        cpu += process.cpu_percent()
                    except psutil.Error:
                        continue
                metrics.resources(runtime.name, name, len(live), cpu)
        for pid in set(self._processes) - seen:
            del self._processes[pid]
