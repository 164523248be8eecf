"""The endpoints' control plane: create, describe, list, re-weight and delete endpoints.

Creating an endpoint resolves each variant's model reference to a model version (recorded in the
configuration, so that moving an alias later changes nothing that runs), records the endpoint
``Creating`` with configuration 1, then deploys (:mod:`loopwise.serving.deployment`): each transformers
model is exported to ONNX (cached per model version by :mod:`loopwise.registry.exports`; int8 too where
a variant asks for it) and every variant's model is loaded once to prove it serves. The endpoint ends
``InService``, or ``Failed`` with the reason, and its record stays for ``describe``. Changing weights
records a new configuration version and puts it in force.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from loopwise import registry
from loopwise.errors import EndpointConfigError
from loopwise.serving.config import (
    Autoscaling,
    EndpointConfig,
    Variant,
    check_endpoint_name,
    parse_endpoint_config,
)
from loopwise.serving.deployment import Progress, deploy, prepare, resolve_models
from loopwise.serving.endpoints import (
    ConfigVersion,
    Endpoint,
    load,
    load_all,
    load_history,
    record,
    record_config,
)
from loopwise.serving.metrics import Metrics
from loopwise.serving.records import Feedback, Rollout, RolloutStatus
from loopwise.serving.rollout import RolloutPlan, alarm, plan_of, step_weights

if TYPE_CHECKING:
    from loopwise.serving.known import Known
    from loopwise.storage import Store

log = logging.getLogger(__name__)


def create_endpoint(
    store: Store, name: str, config: EndpointConfig, *, progress: Progress | None = None
) -> Endpoint:
    """Record and deploy a new endpoint; returns it ``InService`` or ``Failed`` (with the reason). Nothing
    is recorded when the name is bad or taken, or a model reference does not resolve."""
    check_endpoint_name(name)
    resolved = resolve_models(store, config)
    with store.uow() as uow:
        record(uow, name, resolved)
    return deploy(store, name, resolved, progress)


def describe_endpoint(store: Store, name: str) -> tuple[Endpoint, list[ConfigVersion]]:
    """The endpoint and every configuration it had, oldest first."""
    with store.uow() as uow:
        return load(uow, name), load_history(uow, name)


def list_endpoints(store: Store) -> list[Endpoint]:
    with store.uow() as uow:
        return load_all(uow)


def update_weights(
    store: Store, name: str, weights: Mapping[str, float], *, note: str | None = None
) -> Endpoint:
    """Record a configuration with these production variants' weights (others unchanged) and put it in
    force. Raises :class:`EndpointConfigError` for an unknown variant or weights that leave no traffic."""
    with store.uow() as uow:
        endpoint = load(uow, name, for_update=True)
        for variant in weights:
            if endpoint.config.variant(variant).role != "production":
                raise EndpointConfigError(
                    f"{variant} is a shadow variant: it gets a copy of requests (shadow_share), not a weight",
                    [(f"variants.{variant}.weight", "shadow variants have no weight")],
                )
        config = endpoint.config.with_weights(weights)
        note = note or "weights: " + ", ".join(f"{v}={w:g}" for v, w in weights.items())
        return record_config(uow, name, config, note)


def set_autoscaling(store: Store, name: str, variant: str, policy: Autoscaling | None) -> Endpoint:
    """Attach a target-tracking policy to a variant (None: detach it); records a new configuration.
    A changed policy keeps the count the autoscaler set (within the new bounds); a detached one drops
    it, so the configuration's ``instances`` count again (on each server)."""
    with store.uow() as uow:
        endpoint = load(uow, name, for_update=True)
        config = endpoint.config.with_autoscaling(variant, policy)
        if policy is None:
            uow.scaling.forget(name, variant)
            note = f"autoscaling {variant}: off"
        else:
            note = (
                f"autoscaling {variant}: target {policy.target:g} invocations per instance, "
                f"{policy.min_instances}-{policy.max_instances} instances"
            )
        return record_config(uow, name, config, note)


def attach_review(
    store: Store, name: str, flow: str | None, variants: tuple[str, ...] | None = None
) -> Endpoint:
    """Attach a flow definition to the endpoint (its predictions on ``variants``, all production ones
    when not named, start human loops by the flow's conditions); None detaches. A new configuration."""
    from loopwise.review.flows import find_flow
    from loopwise.serving.config import ReviewAttachment

    if flow is not None and find_flow(store, flow).status != "Active":
        raise EndpointConfigError(
            f"flow definition {flow} was deleted: attach an active one", [("flow", flow)]
        )
    with store.uow() as uow:
        endpoint = load(uow, name, for_update=True)
        attachment = None if flow is None else ReviewAttachment(flow=flow, variants=variants)
        config = endpoint.config.with_review(attachment)
        shown = ", ".join(variants) if variants else "production variants"
        note = f"review: flow {flow} on {shown}" if flow else "review: detached"
        return record_config(uow, name, config, note)


def deploy_variant(
    store: Store,
    name: str,
    variant: str,
    model: str,
    *,
    weight: float = 0.0,
    progress: Progress | None = None,
) -> Endpoint:
    """Add a production variant serving ``model`` (at ``weight``: 0 takes no traffic until a rollout
    or new weights give it some), its other settings those of the endpoint's first production variant.
    The model is exported and loaded once before the configuration is recorded, so a model that cannot
    serve changes nothing. Deploying the same model under the same name again changes nothing."""
    with store.uow() as uow:
        endpoint = load(uow, name)
        version = registry.resolve(uow, model)
        version.require_checkpoint()
    config = endpoint.config
    existing = next((v for v in config.variants if v.name == variant), None)
    if existing is not None:
        if existing.model_version_id == version.id and existing.role == "production":
            return endpoint
        raise EndpointConfigError(
            f"{name} already has a variant {variant} (serving another model): name the new one otherwise",
            [("variant", f"{variant} exists")],
        )
    template = config.production[0]
    added = Variant.model_validate(
        {
            **template.model_dump(),
            "name": variant,
            "model": version.ref,
            "model_version_id": version.id,
            "weight": weight,
            "instances": 1,
            "autoscaling": None,
        }
    )
    prepare(store, added, progress)
    with store.uow() as uow:
        current = load(uow, name, for_update=True).config
        document = current.to_dict()
        document["variants"] = [*document["variants"], added.model_dump(mode="json")]
        updated = parse_endpoint_config(document, source=f"variant {variant}")
        return record_config(uow, name, updated, f"variant {variant}: {version.ref}, weight {weight:g}")


def remove_variant(store: Store, name: str, variant: str, *, note: str | None = None) -> Endpoint:
    """Take a variant out of the endpoint (its model stays in the registry). The others keep their
    weights; a human review attached to it by name moves with nothing (it is dropped from the list)."""
    with store.uow() as uow:
        current = load(uow, name, for_update=True).config
        current.variant(variant)
        document = current.to_dict()
        document["variants"] = [v for v in document["variants"] if v["name"] != variant]
        review = document.get("review")
        if review and review.get("variants"):
            review["variants"] = [v for v in review["variants"] if v != variant]
        updated = parse_endpoint_config(document, source=f"the endpoint without {variant}")
        uow.scaling.forget(name, variant)  # a variant added later under this name starts afresh
        return record_config(uow, name, updated, note or f"variant {variant}: removed")


def record_feedback(
    store: Store,
    name: str,
    items: list[Feedback],
    *,
    allow_unknown: bool = False,
    known: Known | None = None,
    unanswered: Sequence[str] | None = None,
) -> int:
    """Store ground truth or rewards for the endpoint's inferences (an inference's earlier feedback is
    replaced); returns how many inferences got feedback for the first time. Feedback naming an inference
    id the endpoint does not know or a label none of its models has is refused, nothing recorded, unless
    ``allow_unknown``: :meth:`loopwise.serving.known.Known.check` (with the server's ``known`` and
    ``unanswered``; a command line's own otherwise)."""
    from loopwise.serving.known import Known

    with store.uow() as uow:
        endpoint = load(uow, name)  # the endpoint must exist
        if not allow_unknown:
            (known or Known(store.artifacts.host_dir("capture"))).check(uow, endpoint, items, unanswered)
        return uow.feedback.put(name, items)


def promote(store: Store, name: str, winner: str) -> Endpoint:
    """Shift all production traffic to ``winner``."""
    with store.uow() as uow:
        endpoint = load(uow, name)
    weights = {v.name: (100.0 if v.name == winner else 0.0) for v in endpoint.config.production}
    if winner not in weights:
        raise EndpointConfigError(f"{winner!r} is not a production variant of {name}", [("winner", winner)])
    return update_weights(store, name, weights)


def start_rollout(store: Store, name: str, variant: str, plan: RolloutPlan) -> Rollout:
    """Start shifting production traffic to ``variant`` by ``plan``: its first step is in force at once;
    a running ``loopwise server`` bakes, advances and guards it (see :mod:`loopwise.serving.rollout`)."""
    with store.uow() as uow:
        endpoint = load(uow, name)
        if endpoint.config.variant(variant).role != "production":
            raise EndpointConfigError(
                f"{variant} is a shadow variant: make it a production variant (weight 0) to roll it out",
                [("variant", "not a production variant")],
            )
        baseline = {v.name: v.weight for v in endpoint.config.production}
        rollout = uow.rollouts.start(name, variant, plan.model_dump(mode="json"), baseline)
    update_weights(
        store, name, step_weights(baseline, variant, plan.shares[0]), note=rollout_step_note(rollout, 0)
    )
    return rollout


def latest_rollout(store: Store, name: str) -> Rollout:
    """The endpoint's newest rollout, whatever its status; :class:`NotFoundError` when it had none."""
    with store.uow() as uow:
        return uow.rollouts.latest(name)


def guard_rollouts(
    store: Store, metrics: Metrics, in_service: set[str], now: float | None = None
) -> list[Rollout]:
    """Advance, complete or roll back the running rollouts of the endpoints in service here; returns the
    rollouts that changed."""
    now = time.time() if now is None else now
    with store.uow() as uow:
        running = [r for r in uow.rollouts.all_running() if r.endpoint in in_service]
    changed = []
    for rollout in running:
        elapsed = now - rollout.step_started_at.timestamp()
        rows = [
            r
            for r in metrics.table(
                rollout.endpoint, period_s=1, window_s=max(1, min(3600, int(elapsed) + 1)), now=now
            )
            if r["variant"] == rollout.variant
            and r["period_start"] >= int(rollout.step_started_at.timestamp())
        ]
        reason = alarm(rows, plan_of(rollout))
        if reason is not None:
            update_weights(
                store, rollout.endpoint, rollout.baseline, note=f"rollout {rollout.id}: rolled back"
            )
            with store.uow() as uow:
                changed.append(uow.rollouts.finish(rollout.id, RolloutStatus.ROLLED_BACK, reason))
            log.warning(
                "endpoint %s: rollout of %s rolled back: %s", rollout.endpoint, rollout.variant, reason
            )
        elif elapsed >= plan_of(rollout).bake_s:
            following = rollout.step + 1
            if following < len(plan_of(rollout).shares):
                weights = step_weights(rollout.baseline, rollout.variant, plan_of(rollout).shares[following])
                update_weights(store, rollout.endpoint, weights, note=rollout_step_note(rollout, following))
                with store.uow() as uow:
                    changed.append(uow.rollouts.advance(rollout.id, following))
            else:
                with store.uow() as uow:
                    changed.append(uow.rollouts.finish(rollout.id, RolloutStatus.COMPLETED))
    return changed


def rollout_step_note(rollout: Rollout, step: int) -> str:
    """The note of the configuration that puts the rollout's step ``step`` (from 0) in force."""
    share = plan_of(rollout).shares[step]
    return (
        f"rollout {rollout.id} step {step + 1}/{len(plan_of(rollout).shares)}: {rollout.variant} {share:.0%}"
    )


def delete_endpoint(store: Store, name: str) -> None:
    """Remove the endpoint and its configurations (models and their exports stay in the registry)."""
    with store.uow() as uow:
        uow.endpoints.delete(name)
