"""Guarded traffic shifts: canary and linear rollouts of a variant, rolled back when an alarm fires.

A rollout moves production traffic to one variant in steps (canary: ``x%`` then all of it; linear: ``n``
equal steps), each held for a baking time. The other production variants keep their relative weights
within what is left. While a step bakes, the server's data plane watches the variant's alarms over that
step: its 5XX error rate and its p99 latency (model plus router); either over its threshold rolls the
endpoint back to the weights it had before the rollout, and the rollout ends ``rolled_back`` with the
reason. A rollout is recorded in the database, so it goes on after a server restart. A plan that ``hold``s
completes at its last share without giving the variant everything: a canary that stays at its share for
an A/B test (what a retraining pipeline's ``canary`` step does).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from loopwise.serving.records import Rollout


class RolloutPlan(BaseModel):
    """The steps (the variant's share of production traffic, ending at 1.0) and the guardrails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shares: tuple[float, ...] = Field(min_length=1)
    bake_s: float = Field(gt=0, le=86_400)
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    max_p99_ms: float | None = Field(default=None, gt=0)
    #: a step's alarms need at least this many requests to the variant to judge it
    min_requests: int = Field(default=10, ge=1)
    #: the rollout completes at its last share, which may be below 1.0 (a canary that holds its share for
    #: an A/B test, say); without it the last step gives the variant all the traffic
    hold: bool = False

    @model_validator(mode="after")
    def _steps(self) -> RolloutPlan:
        if any(not 0 < s <= 1 for s in self.shares) or list(self.shares) != sorted(self.shares):
            raise ValueError("shares rise from above 0 to at most 1")
        if self.shares[-1] != 1.0 and not self.hold:
            raise ValueError(
                "the last step gives the variant all the traffic (share 1.0), unless the plan holds (hold)"
            )
        return self

    @classmethod
    def canary(cls, percent: float, bake_s: float, **alarms: Any) -> RolloutPlan:
        return cls(shares=(percent / 100, 1.0), bake_s=bake_s, **alarms)

    @classmethod
    def linear(cls, steps: int, bake_s: float, **alarms: Any) -> RolloutPlan:
        return cls(shares=tuple((i + 1) / steps for i in range(steps)), bake_s=bake_s, **alarms)


def step_weights(baseline: dict[str, float], variant: str, share: float) -> dict[str, float]:
    """Production weights that give ``variant`` ``share`` of the traffic and the others the rest in
    their baseline proportions (the weights sum to 100)."""
    others = {name: w for name, w in baseline.items() if name != variant}
    total = sum(others.values())
    weights = {variant: 100.0 * share}
    for name, weight in others.items():
        if total > 0:
            weights[name] = 100.0 * (1 - share) * weight / total
        else:  # the others had no traffic either: share the rest evenly
            weights[name] = 100.0 * (1 - share) / len(others)
    return weights


def alarm(rows: list[dict[str, Any]], plan: RolloutPlan) -> str | None:
    """Why the variant's figures over a step (rows of :meth:`Metrics.table` for it) break a guardrail,
    or None. Too few requests judge nothing."""
    answered = sum(r["Invocations"] for r in rows)
    errors = sum(r["Invocation5XXErrors"] for r in rows)
    total = answered + errors
    if total < plan.min_requests:
        return None
    rate = errors / total
    if rate > plan.max_error_rate:
        return f"5XX error rate {rate:.1%} over {total} requests is above {plan.max_error_rate:.1%}"
    if plan.max_p99_ms is not None:
        p99 = max(
            (
                (r["ModelLatencyP99"] or 0.0) + (r["OverheadLatencyP99"] or 0.0)
                for r in rows
                if r["Invocations"]
            ),
            default=0.0,
        )
        if p99 > plan.max_p99_ms:
            return f"p99 latency {p99:.1f} ms is above {plan.max_p99_ms:g} ms"
    return None


def plan_of(rollout: Rollout) -> RolloutPlan:
    """The rollout's plan, read back from its stored mapping."""
    return RolloutPlan.model_validate(rollout.plan)
