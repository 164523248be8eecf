"""The loop as it stands, a read model across the capabilities for the console's page
(``/console/loop``, :mod:`loopwise.web.overview`): the champion and challenger of each model, the
endpoints' traffic by variant with each variant's live figures (requests, server errors and latency
over the last five minutes) and the flow each sends to people, open alerts, the labeling and review
queues, the pipelines' latest runs with their steps, and the data set versions with where their labels
came from. The stored parts are read in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopwise.serving.metrics import Metrics
    from loopwise.storage import Store
    from loopwise.workforce.records import Worker


@dataclass(frozen=True)
class Overview:
    models: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]
    alerts: list[Any]
    open_alerts: int
    labeling: list[Any]
    flows: list[dict[str, Any]]
    runs: list[Any]
    datasets: list[dict[str, Any]]


#: the window of the per-variant live figures
LIVE_S = 300


def overview(store: Store, metrics: Metrics | None = None, worker: Worker | None = None) -> Overview:
    """The page's figures; ``metrics``: the server's live per-variant figures (none outside a server);
    the queues for people only of the teams ``worker`` may see (an admin's: all)."""
    from loopwise.labeling.service import progress
    from loopwise.review.service import sees
    from loopwise.serving.service import list_endpoints

    with store.uow() as uow:  # one transaction: no service (each opens its own) is called inside it
        versions = uow.models.list()
        alerts = uow.monitoring.alerts(status="open", limit=1000)
        jobs = uow.labeling.jobs()
        flows = uow.review.flows()
        counts = {f.name: uow.review.count(f.id) for f in flows}
        runs = uow.pipelines.runs(limit=10)
        datasets = uow.datasets.list()
    flow_jobs = {f.job_id for f in flows}
    refs = {v.id: v.ref for v in versions}
    models: dict[str, dict[str, Any]] = {}
    for version in versions:
        entry = models.setdefault(version.name, {"name": version.name, "versions": 0})
        entry["versions"] += 1
        for alias in ("champion", "challenger"):
            if alias in version.aliases:
                entry[alias] = {"ref": version.ref, "accuracy": version.metrics.get("test_accuracy")}
    endpoints = [
        {
            "name": e.name,
            "status": e.status.value if hasattr(e.status, "value") else str(e.status),
            "variants": [
                {
                    "name": v.name,
                    # the version the variant is pinned to (an alias it was given may have moved since)
                    "model": refs.get(v.model_version_id or -1, v.model),
                    "share": e.config.traffic_shares().get(v.name),
                    "role": v.role,
                    "live": live.get(v.name),
                }
                for v in e.config.variants
            ],
            "flow": e.config.review.flow if e.config.review else None,
        }
        for e in list_endpoints(store)
        for live in [_live(metrics, e.name)]
    ]
    return Overview(
        models=sorted(models.values(), key=lambda m: m["name"]),
        endpoints=endpoints,
        alerts=alerts[:5],
        open_alerts=len(alerts),
        labeling=[
            progress(store, j)
            for j in jobs
            if j.id not in flow_jobs and j.status == "InProgress" and sees(worker, j.team)
        ],
        flows=[
            {"flow": f, "loops": counts[f.name]}
            for f in flows
            if f.status == "Active" and sees(worker, f.team)
        ],
        runs=runs,
        datasets=[
            {"ref": d.ref, "labels": d.labels, "origin": _origin(d.source), "created_at": d.created_at}
            for d in sorted(datasets, key=lambda d: d.created_at, reverse=True)[:10]
        ],
    )


def _live(metrics: Metrics | None, endpoint: str) -> dict[str, dict[str, Any]]:
    if metrics is None:
        return {}
    figures = {}
    for variant, row in metrics.summary(endpoint, LIVE_S).items():
        p99 = [row[k] for k in ("ModelLatencyP99", "OverheadLatencyP99") if row[k] is not None]
        figures[variant] = {
            "requests": row["Invocations"],
            "errors": row["Invocation5XXErrors"],
            "mean_ms": row["ModelLatency"],
            "p99_ms": sum(p99) if p99 else None,
        }
    return figures


def _origin(source: dict[str, Any]) -> str:
    """Where a data set version's labels came from, in a few words."""
    origin = source.get("origin")
    if isinstance(origin, dict):
        kind = origin.get("kind", "")
        if kind == "human review":
            return f"human review: {origin.get('loops')} loops of flow {origin.get('flow')}"
        if kind == "pipeline gather-labels":
            parts = [f"{origin.get('new_labels')} labels from people"]
            parts += [f"flows {', '.join(origin['review_flows'])}"] if origin.get("review_flows") else []
            parts += [f"jobs {', '.join(origin['labeling_jobs'])}"] if origin.get("labeling_jobs") else []
            parts += [f"base {origin['base']}"] if origin.get("base") else []
            return "pipeline: " + "; ".join(parts)
        return str(kind)
    recipe = source.get("recipe")
    if recipe == "reviews":
        return "the course's reviews recipe (ratings)"
    if recipe == "import":
        return f"imported from {source.get('path', 'a file').rsplit('/', 1)[-1]}"
    return str(recipe or "-")
