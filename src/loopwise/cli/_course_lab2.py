"""The course's Lab 2 as a step of the main job: two variants at 50/50, traffic, per-variant metrics and
plots, all traffic shifted to VariantB without a restart, traffic and plots again, the autoscaling policy
attached. Runs a real loopwise server on 127.0.0.1 for the length of the step."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopwise.cli._common import console

if TYPE_CHECKING:
    from loopwise.storage import Store

#: the course's test inputs
COURSE_INPUTS = ["I love this product!", "OK, but not great.", "This is not the right product."]
#: the course's loops over them per phase
LOOPS = 100
ENDPOINT = "reviews-endpoint"


def course_lab2(store: Store, variant_a: str, variant_b: str, *, loops: int = LOOPS) -> list[Path]:
    """Deploy ``variant_a`` and ``variant_b`` (model references) as VariantA and VariantB, run the lab's
    flow, and return the plots written."""
    from loopwise.app import background_server
    from loopwise.client import Client
    from loopwise.serving.config import Autoscaling, parse_endpoint_config
    from loopwise.serving.plots import variant_metrics_png
    from loopwise.serving.service import (
        create_endpoint,
        delete_endpoint,
        list_endpoints,
        set_autoscaling,
        update_weights,
    )
    from loopwise.workforce.service import program_token

    if any(e.name == ENDPOINT for e in list_endpoints(store)):
        delete_endpoint(store, ENDPOINT)  # a new run of the main job deploys afresh
    config = {
        "variants": [
            {"name": "VariantA", "model": variant_a, "weight": 50, "instances": 1},
            {"name": "VariantB", "model": variant_b, "weight": 50, "instances": 1},
        ],
        "capture": {"share": 1.0},
    }
    endpoint = create_endpoint(
        store, ENDPOINT, parse_endpoint_config(config), progress=lambda m: console.print(m, highlight=False)
    )
    if endpoint.failure_reason:
        raise RuntimeError(f"the endpoint failed: {endpoint.failure_reason}")
    console.print(f"endpoint {ENDPOINT}: VariantA {variant_a}, VariantB {variant_b}, 50/50, InService")
    plots = []
    with (
        background_server(store) as (url, _),
        Client(url, token=program_token(store, "course-main-job")) as client,
    ):
        for phase in ("50/50", "all to VariantB"):
            if phase != "50/50":
                update_weights(store, ENDPOINT, {"VariantA": 0, "VariantB": 100})
                time.sleep(1.5)  # in force within a second, no restart
                console.print("weights updated: VariantA 0, VariantB 100 (no restart)")
            started = time.time()
            served: dict[str, int] = {}
            for _ in range(loops):
                for text in COURSE_INPUTS:
                    answer = client.predict(ENDPOINT, [text])
                    served[answer["variant"]] = served.get(answer["variant"], 0) + 1
            answers = client.invoke(ENDPOINT, COURSE_INPUTS)
            shown = ", ".join(f"{a['predicted_label']} ({a['probability']:.4f})" for a in answers)
            console.print(
                f"{phase}: {len(COURSE_INPUTS) * loops} requests served by {served}; answers: {shown}"
            )
            window = max(1, int(time.time() - started) + 1)
            rows = client.metrics(ENDPOINT, period=1, window=window)
            name = f"course-lab2-{'ab' if phase == '50/50' else 'shifted'}"
            title = f"{ENDPOINT}: {phase} (1 s periods)"

            def draw(folder: Path, rows: Any = rows, name: str = name, title: str = title) -> Path:
                return variant_metrics_png(rows, folder / f"{name}.png", title=title)

            plots.append(store.artifacts.write_with(f"serving/{ENDPOINT}/{name}", draw))
            _print_totals(rows)
    policy = Autoscaling(
        target=2.0, min_instances=1, max_instances=2, scale_out_cooldown_s=60, scale_in_cooldown_s=300
    )
    set_autoscaling(store, ENDPOINT, "VariantB", policy)
    console.print(
        "autoscaling attached to VariantB: InvocationsPerInstance target 2.0, 1-2 instances, "
        "scale-out cooldown 60 s, scale-in cooldown 300 s"
    )
    return plots


def _print_totals(rows: list[dict[str, object]]) -> None:
    totals: dict[str, list[float]] = {}
    for row in rows:
        if row["variant"] == "-" or not row["Invocations"]:
            continue
        entry = totals.setdefault(str(row["variant"]), [0.0, 0.0])
        entry[0] += float(row["Invocations"])  # type: ignore[arg-type]
        entry[1] += float(row["ModelLatency"] or 0.0) * float(row["Invocations"])  # type: ignore[arg-type]
    for variant, (invocations, latency) in sorted(totals.items()):
        console.print(
            f"  {variant}: {invocations:.0f} invocations, model latency {latency / invocations:.2f} ms mean"
        )
