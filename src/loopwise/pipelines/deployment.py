"""The steps that put a candidate model in front of traffic: a guarded canary, an A/B test run until the
sequential test decides, and the endpoint's side of promoting or retiring it.

``canary`` adds the candidate to the endpoint as a new production variant (named after its model
version), then rolls it out to ``percent`` of the traffic for ``bake``, guarded by the rollout's alarms
(5XX rate, p99 latency), and on to ``share`` for the A/B test, where the rollout holds. A running
``loopwise server`` advances the rollout (it owns the live metrics); the step waits for it. An alarm
rolls the endpoint back and takes the variant out: the step fails with the alarm's reason.

``ab-test`` reads the endpoint's A/B report over the requests answered under the configuration that put
the split in force (``config``, the canary's output) and later ones, and waits until the always-valid
sequential test decides between the candidate and the control (``champion``: by default the endpoint's
other production variant with the most traffic): ``candidate`` (significantly more accurate),
``champion`` (significantly less accurate), ``tie`` (the confidence sequence lies within
``+-min_effect``), or ``inconclusive`` once each arm has ``max_labelled`` predictions with feedback and
neither happened (the experiment's planned size: no significant difference in that many). Reading it as
often as it does inflates nothing (:mod:`loopwise.experiments.sequential`).

Each waits with a ``timeout``: past it the step fails, the rollout or the test going on; resuming the run
waits again where it was (a variant already deployed and a rollout already running or completed are
taken up, not started twice).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from loopwise._durations import parse_duration
from loopwise.errors import PipelineError
from loopwise.serving.endpoints import load, load_history
from loopwise.serving.rollout import plan_of

if TYPE_CHECKING:
    from loopwise.pipelines.operations import Log
    from loopwise.serving.records import Rollout
    from loopwise.storage import Store


def variant_name(model_ref: str) -> str:
    """An endpoint variant's name for a model version: ``reviews-bert:3`` -> ``reviews-bert-v3``."""
    name, _, version = model_ref.partition(":")
    base = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:55] or "model"
    return f"{base}-v{version}" if version else base


def canary(store: Store, inputs: dict[str, Any], log: Log) -> dict[str, Any]:
    """Deploy the model on the endpoint as a new variant and roll it out to ``percent``, then ``share``
    of the traffic, guarded by the rollout's alarms (rolled back and taken out when one fires)."""
    from loopwise import registry
    from loopwise.serving.records import RolloutStatus
    from loopwise.serving.rollout import RolloutPlan
    from loopwise.serving.service import deploy_variant, remove_variant, start_rollout

    endpoint = str(inputs["endpoint"])
    with store.uow() as uow:
        version = registry.resolve(uow, str(inputs["model"]))
    variant = str(inputs.get("variant") or variant_name(version.ref))
    percent = _percent(inputs.get("percent", 10), "percent")
    share = _percent(inputs.get("share", 50), "share")
    shares = tuple(sorted({percent, share}))
    bake_s = parse_duration(str(inputs.get("bake", "5m")), "bake")
    timeout_s = parse_duration(str(inputs.get("timeout", "1h")), "timeout")
    alarms: dict[str, Any] = {
        key: float(inputs[key]) for key in ("max_error_rate", "max_p99_ms") if key in inputs
    }
    if "min_requests" in inputs:
        alarms["min_requests"] = int(inputs["min_requests"])
    try:  # checked before anything changes on the endpoint
        plan = RolloutPlan(shares=shares, bake_s=bake_s, hold=True, **alarms)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PipelineError(f"the canary's rollout plan: {problems}") from None
    deploy_variant(store, endpoint, variant, version.ref, progress=log)
    rollout = _current_rollout(store, endpoint, variant)
    if rollout is None:
        rollout = start_rollout(store, endpoint, variant, plan)
        log(
            f"rollout {rollout.id}: {variant} ({version.ref}) at "
            + " then ".join(f"{s:.0%}" for s in shares)
            + f", each step baking {bake_s:g} s, guarded by its alarms"
        )
    else:
        log(f"rollout {rollout.id} of {variant} taken up ({rollout.status.value})")
    shares = plan_of(rollout).shares  # a rollout taken up keeps its own plan
    deadline = time.monotonic() + timeout_s
    step = rollout.step
    while rollout.status is RolloutStatus.RUNNING:
        if time.monotonic() > deadline:
            raise PipelineError(
                f"rollout {rollout.id} of {variant} is still at step {rollout.step + 1}/{len(shares)} after "
                f"{timeout_s:g} s: a `loopwise server` serving {endpoint} advances it (is one running?); "
                "resume the run to wait again"
            )
        time.sleep(_poll(inputs))
        with store.uow() as uow:
            rollout = uow.rollouts.latest(endpoint)
        if rollout.step != step and rollout.status is RolloutStatus.RUNNING:
            step = rollout.step
            log(f"rollout {rollout.id}: step {step + 1}/{len(shares)}, {variant} at {shares[step]:.0%}")
    if rollout.status is RolloutStatus.ROLLED_BACK:
        remove_variant(store, endpoint, variant, note=f"rollout {rollout.id} rolled back: {variant} retired")
        raise PipelineError(
            f"the canary of {version.ref} on {endpoint} was rolled back ({rollout.reason}): {variant} is out"
        )
    config = _hold_config(store, rollout)
    log(f"{variant} holds {shares[-1]:.0%} of {endpoint}'s traffic from configuration {config} on")
    return {"variant": variant, "rollout": rollout.id, "share": shares[-1], "config": config}


def _hold_config(store: Store, rollout: Rollout) -> int:
    """The configuration version that put the rollout's last step in force (by the note the rollout
    gives each step's configuration)."""
    from loopwise.serving.service import rollout_step_note

    with store.uow() as uow:
        history = load_history(uow, rollout.endpoint)
    note = rollout_step_note(rollout, len(plan_of(rollout).shares) - 1)
    return next(h.version for h in reversed(history) if h.note == note)


def _current_rollout(store: Store, endpoint: str, variant: str) -> Any:
    """The rollout of ``variant`` to take up (running, or completed since it was deployed), else None."""
    from loopwise.errors import NotFoundError
    from loopwise.serving.records import RolloutStatus

    with store.uow() as uow:
        running = uow.rollouts.running(endpoint)
        try:
            latest = uow.rollouts.latest(endpoint)
        except NotFoundError:
            latest = None
    if running is not None and running.variant != variant:
        raise PipelineError(
            f"endpoint {endpoint} has a rollout of {running.variant} in progress (rollout {running.id}): "
            "one rollout at a time"
        )
    if running is not None:
        return running
    if latest is not None and latest.variant == variant and latest.status is RolloutStatus.COMPLETED:
        return latest
    return None


def ab_test(store: Store, inputs: dict[str, Any], log: Log) -> dict[str, Any]:
    """Wait until the sequential test on the split's traffic and feedback decides between the candidate
    variant and the champion (or the planned size is reached)."""
    from loopwise.serving.ab_report import ab_report

    endpoint = str(inputs["endpoint"])
    candidate = str(inputs["candidate"])
    champion = str(inputs.get("champion") or _champion_variant(store, endpoint, candidate))
    alpha = float(inputs.get("alpha", 0.05))
    min_effect = float(inputs.get("min_effect", 0.01))
    since = int(inputs["config"]) if inputs.get("config") is not None else None
    timeout_s = parse_duration(str(inputs.get("timeout", "1h")), "timeout")
    horizon = int(inputs["max_labelled"]) if inputs.get("max_labelled") is not None else None
    if horizon is not None and horizon < 1:
        raise PipelineError(f"max_labelled: a number of predictions with feedback, at least 1, got {horizon}")
    deadline = time.monotonic() + timeout_s
    labelled = -1
    while True:
        report = ab_report(
            store, endpoint, alpha=alpha, min_effect=min_effect, since_config=since,
            only=(champion, candidate),
        )  # fmt: skip
        comparison = next((c for c in report["comparisons"] if c["challenger"] == candidate), None)
        if comparison is None:
            raise PipelineError(
                f"{candidate} is not a challenger of {endpoint} (its production variants: "
                f"{', '.join(report['variants'])}): deploy it first (the canary step)"
            )
        if report["sample_ratio_mismatch"]["broken"]:
            srm = report["sample_ratio_mismatch"]["p_value"]
            raise PipelineError(
                f"the traffic of {endpoint} does not match its weights (sample-ratio mismatch, p "
                f"{srm:.2g}): the split is broken, no decision is valid"
            )
        decision = _decision(comparison, min_effect)
        figures = report["variants"]
        arms = (figures[candidate]["labelled"], figures[comparison["control"]]["labelled"])
        if decision is None and horizon is not None and min(arms) >= horizon:
            decision = "inconclusive"  # the planned sample size, and no significant difference
        seen = sum(arms)
        if seen != labelled:
            labelled = seen
            control = comparison["control"]
            log(
                f"{control} {_accuracy(figures[control])} against {candidate} "
                f"{_accuracy(figures[candidate])}; p {comparison['p_value']:.3g} "
                f"(alpha {comparison['alpha']:g}) -> {decision or 'keep running'}"
            )
        if decision is not None:
            break
        if time.monotonic() > deadline:
            raise PipelineError(
                f"the A/B test of {candidate} on {endpoint} has not decided after {timeout_s:g} s "
                f"({labelled} predictions with feedback so far): resume the run to wait for more feedback"
            )
        time.sleep(_poll(inputs))
    return {
        "decision": decision,
        "winner": candidate if decision == "candidate" else comparison["control"],
        "champion": comparison["control"],
        "p_value": round(float(comparison["p_value"]), 6),
        "difference": round(float(comparison["difference"]), 6),
        "accuracy_champion": figures[comparison["control"]]["accuracy"],
        "accuracy_candidate": figures[candidate]["accuracy"],
        "labelled": labelled,
    }


def _champion_variant(store: Store, endpoint: str, candidate: str) -> str:
    """The production variant other than the candidate with the most traffic (the first of equals)."""
    with store.uow() as uow:
        config = load(uow, endpoint).config
    others = [v for v in config.production if v.name != candidate]
    if not others:
        raise PipelineError(f"{endpoint} has no production variant besides {candidate} to test it against")
    return max(others, key=lambda v: v.weight).name


def _decision(comparison: dict[str, Any], min_effect: float) -> str | None:
    if comparison["p_value"] < comparison["alpha"]:
        return "candidate" if comparison["difference"] > 0 else "champion"
    if -min_effect <= comparison["low"] and comparison["high"] <= min_effect:
        return "tie"
    return None


def settle_endpoint(store: Store, endpoint: str, variant: str, promoted: bool, log: Log) -> None:
    """Promoted: ``variant`` takes all the traffic and the other production variants leave the endpoint.
    Retired: ``variant`` leaves it."""
    from loopwise.serving.service import promote, remove_variant

    with store.uow() as uow:
        config = load(uow, endpoint).config
    if not promoted:
        if variant in {v.name for v in config.variants}:
            remove_variant(store, endpoint, variant, note=f"{variant} retired")
        log(f"{variant} retired from {endpoint}")
        return
    promote(store, endpoint, variant)
    for other in config.production:
        if other.name != variant:
            remove_variant(store, endpoint, other.name, note=f"{other.name} replaced by {variant}")
    log(f"{variant} serves all of {endpoint}'s traffic")


def _accuracy(figures: dict[str, Any]) -> str:
    accuracy = figures["accuracy"]
    return "no feedback yet" if accuracy is None else f"{accuracy:.4f} on {figures['labelled']}"


def _percent(value: Any, name: str) -> float:
    share = float(value) / 100
    if not 0 < share <= 1:
        raise PipelineError(f"{name}: a percentage of the traffic above 0 and at most 100, got {value!r}")
    return share


def _poll(inputs: dict[str, Any]) -> float:
    return parse_duration(str(inputs.get("poll", "2s")), "poll")
