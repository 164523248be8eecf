"""Per-variant metrics of the data plane, by SageMaker's names, for Prometheus and for period tables.

Every answered or failed request is recorded against its endpoint and variant twice: in Prometheus
metrics (``/metrics``: counters and latency histograms a Prometheus server scrapes) and in one-second
buckets kept for an hour, from which :meth:`Metrics.table` builds SageMaker's CloudWatch-style table over
periods: Invocations, InvocationsPerInstance, ModelLatency (the request's time in its worker: waiting for
its batch and the model call, as SageMaker counts the time in the model's container) and OverheadLatency
(the rest of the server's time: what the router and the loopback hop add), each as mean, p50 and p99 in
milliseconds, Invocation4XXErrors, Invocation5XXErrors and CPUUtilization (percent of one core, summed over
the variant's workers, as CloudWatch reports it).
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: seconds of one-second buckets kept per variant
KEEP_S = 3600
#: latency histogram bins of the buckets: log-spaced from 10 us to 100 s
_EDGES_MS = np.logspace(-2, 5, 141)
_EDGES_LIST = _EDGES_MS.tolist()
_PROMETHEUS_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
#: what a request to no variant in particular (bad input before routing) is recorded under
NO_VARIANT = "-"
#: the charts of a table's rows, one line per variant, drawn alike by the CLI's plot and the web console:
#: the course's four (Invocations, InvocationsPerInstance, ModelLatency, CPUUtilization) and the rest
CHARTS = (
    ("Invocations", "requests per period"),
    ("InvocationsPerInstance", "requests per instance"),
    ("ModelLatency", "time in the worker (ms, mean)"),
    ("OverheadLatency", "added by the router (ms, mean)"),
    ("Invocation4XXErrors", "4XX errors per period"),
    ("Invocation5XXErrors", "5XX errors per period"),
    ("CPUUtilization", "CPU (% of one core)"),
    ("Instances", "live instances"),
)


@dataclass
class _Second:
    """One second of one variant."""

    at: int
    invocations: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    model_ms: float = 0.0
    overhead_ms: float = 0.0
    model_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(_EDGES_MS) + 1, dtype=np.int64))
    overhead_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(_EDGES_MS) + 1, dtype=np.int64))
    instances: int = 0
    cpu_percent: float = math.nan


class Metrics:
    """The data plane's metrics; thread-safe. ``registry``: where the Prometheus metrics live (one per
    server, so that several servers in one process, as in tests, do not collide)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ("endpoint", "variant")
        self.invocations = Counter(
            "loopwise_invocations", "Requests a variant answered", labels, registry=self.registry
        )
        self.errors = Counter(
            "loopwise_invocation_errors",
            "Requests that failed, by status class",
            (*labels, "status"),
            registry=self.registry,
        )
        self.model_latency = Histogram(
            "loopwise_model_latency_seconds",
            "Time in the variant's model call",
            labels,
            buckets=_PROMETHEUS_BUCKETS_S,
            registry=self.registry,
        )
        self.overhead_latency = Histogram(
            "loopwise_overhead_latency_seconds",
            "Time the router added to a request",
            labels,
            buckets=_PROMETHEUS_BUCKETS_S,
            registry=self.registry,
        )
        self.instances = Gauge(
            "loopwise_instances", "Live workers of a variant", labels, registry=self.registry
        )
        self.cpu = Gauge(
            "loopwise_cpu_utilization_percent",
            "CPU of a variant's workers (100 = one core)",
            labels,
            registry=self.registry,
        )
        self.captures_dropped = Counter(
            "loopwise_capture_dropped",
            "Capture records dropped because the writer was behind",
            ("endpoint",),
            registry=self.registry,
        )
        self._seconds: dict[tuple[str, str], deque[_Second]] = {}
        self._lock = threading.Lock()
        #: each variant's Prometheus children (invocations, model latency, overhead latency), looked up once
        self._children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    def answered(self, endpoint: str, variant: str, model_ms: float, overhead_ms: float) -> None:
        children = self._children.get((endpoint, variant))
        if children is None:
            children = self._children[(endpoint, variant)] = (
                self.invocations.labels(endpoint, variant),
                self.model_latency.labels(endpoint, variant),
                self.overhead_latency.labels(endpoint, variant),
            )
        invocations, model_latency, overhead_latency = children
        invocations.inc()
        model_latency.observe(model_ms / 1000)
        overhead_latency.observe(overhead_ms / 1000)
        with self._lock:
            second = self._second(endpoint, variant)
            second.invocations += 1
            second.model_ms += model_ms
            second.overhead_ms += overhead_ms
            # bisect on a list: on the request path, a tenth of numpy's cost for one value
            second.model_hist[bisect_left(_EDGES_LIST, model_ms)] += 1
            second.overhead_hist[bisect_left(_EDGES_LIST, overhead_ms)] += 1

    def failed(self, endpoint: str, variant: str | None, status: int) -> None:
        variant = variant or NO_VARIANT
        kind = "4xx" if status < 500 else "5xx"
        self.errors.labels(endpoint, variant, kind).inc()
        with self._lock:
            second = self._second(endpoint, variant)
            if kind == "4xx":
                second.errors_4xx += 1
            else:
                second.errors_5xx += 1

    def capture_dropped(self, endpoint: str) -> None:
        self.captures_dropped.labels(endpoint).inc()

    def resources(self, endpoint: str, variant: str, instances: int, cpu_percent: float) -> None:
        """A sample of the variant's live workers and their CPU (taken about once a second)."""
        self.instances.labels(endpoint, variant).set(instances)
        self.cpu.labels(endpoint, variant).set(cpu_percent)
        with self._lock:
            second = self._second(endpoint, variant)
            second.instances = instances
            second.cpu_percent = cpu_percent

    def invocations_since(self, endpoint: str, variant: str, since: float) -> int:
        """Requests the variant answered from ``since`` (a ``time.time()``) on, to the second."""
        with self._lock:
            series = self._seconds.get((endpoint, variant), ())
            return sum(s.invocations for s in series if s.at >= int(since))

    def table(
        self, endpoint: str, period_s: int = 60, window_s: int = KEEP_S, now: float | None = None
    ) -> list[dict[str, Any]]:
        """One row per period (oldest first) and variant over the last ``window_s`` seconds: SageMaker's
        per-variant figures. Periods without a request of a variant are left out for it."""
        now = time.time() if now is None else now
        start = int(now) - window_s
        rows = []
        with self._lock:
            series = {v: list(s) for (e, v), s in self._seconds.items() if e == endpoint}
        for variant, seconds in sorted(series.items()):
            periods: dict[int, list[_Second]] = {}
            for second in seconds:
                if second.at >= start:
                    periods.setdefault(second.at - second.at % period_s, []).append(second)
            for begin, group in sorted(periods.items()):
                rows.append(_row(variant, begin, period_s, group))
        rows.sort(key=lambda row: (row["period_start"], row["variant"]))
        return rows

    def summary(
        self, endpoint: str, window_s: int = 300, now: float | None = None
    ) -> dict[str, dict[str, Any]]:
        """Each variant's figures over the last ``window_s`` seconds as one period (a row of
        :meth:`table`), for the variants that had a request in it."""
        now = time.time() if now is None else now
        start = int(now) - window_s
        with self._lock:
            series = {v: list(s) for (e, v), s in self._seconds.items() if e == endpoint}
        found = {}
        for variant, seconds in sorted(series.items()):
            group = [second for second in seconds if second.at >= start]
            if any(s.invocations or s.errors_4xx or s.errors_5xx for s in group):
                found[variant] = _row(variant, start, window_s, group)
        return found

    def _second(self, endpoint: str, variant: str) -> _Second:
        now = int(time.time())
        series = self._seconds.setdefault((endpoint, variant), deque(maxlen=KEEP_S))
        if not series or series[-1].at != now:
            last = series[-1] if series else None
            series.append(_Second(now, instances=last.instances if last else 0))
        return series[-1]


def _row(variant: str, begin: int, period_s: int, group: list[_Second]) -> dict[str, Any]:
    invocations = sum(s.invocations for s in group)
    instances = max((s.instances for s in group), default=0)
    cpu = [s.cpu_percent for s in group if not math.isnan(s.cpu_percent)]
    model_hist = np.sum([s.model_hist for s in group], axis=0)
    overhead_hist = np.sum([s.overhead_hist for s in group], axis=0)
    return {
        "period_start": begin,
        "period_s": period_s,
        "variant": variant,
        "Invocations": invocations,
        "InvocationsPerInstance": invocations / instances if instances else float(invocations),
        "ModelLatency": sum(s.model_ms for s in group) / invocations if invocations else None,
        "ModelLatencyP50": _percentile(model_hist, 0.5),
        "ModelLatencyP99": _percentile(model_hist, 0.99),
        "OverheadLatency": sum(s.overhead_ms for s in group) / invocations if invocations else None,
        "OverheadLatencyP50": _percentile(overhead_hist, 0.5),
        "OverheadLatencyP99": _percentile(overhead_hist, 0.99),
        "Invocation4XXErrors": sum(s.errors_4xx for s in group),
        "Invocation5XXErrors": sum(s.errors_5xx for s in group),
        "CPUUtilization": float(np.mean(cpu)) if cpu else None,
        "Instances": instances,
    }


def _percentile(hist: np.ndarray, q: float) -> float | None:
    """The upper edge of the histogram bin holding the q-quantile (ms), or None without samples."""
    total = int(hist.sum())
    if total == 0:
        return None
    index = int(np.searchsorted(np.cumsum(hist), math.ceil(q * total)))
    return float(_EDGES_MS[min(index, len(_EDGES_MS) - 1)])
