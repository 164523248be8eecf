"""Endpoint configurations: the variants behind an endpoint, read from YAML, the command line or Python.

A configuration is immutable; changing an endpoint (new weights, a new variant) records a new version of
it. Each variant names a model version or alias (resolved to a version when the configuration is
recorded, so moving an alias later does not change a running endpoint), its traffic weight, how many
instances (worker processes) serve it on each server and how they batch. SageMaker's names are accepted
as aliases (``variant_name``, ``model_name``, ``initial_weight``, ``initial_instance_count``), so a
production variant list from the course reads as written.

A variant runs on a ``device``: ``cpu`` (the default), ``cuda``, ``cuda:N`` or ``auto``. A GPU variant's
workers ask ONNX Runtime for its CUDA provider and fall back to the CPU with one warning when it cannot be
opened; its precision defaults to ``fp16`` and its ``max_batch_size`` to :data:`GPU_MAX_BATCH_SIZE`.

Production variants share the traffic in proportion to their weights. A shadow variant gets a copy of a
sampled share (``shadow_share``) of the production requests; its answers are captured, never returned.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from loopwise.classifiers._providers import DEVICE, DEVICE_HELP, wants_gpu
from loopwise.errors import EndpointConfigError

Role = Literal["production", "shadow"]
Precision = Literal["fp32", "fp16", "int8"]
#: a variant's default batch limits: a GPU's throughput keeps growing with the batch well past a CPU's
CPU_MAX_BATCH_SIZE = 32
GPU_MAX_BATCH_SIZE = 128
#: what an endpoint or variant name may look like (SageMaker's rule: letters, digits and hyphens, up to 63)
VARIANT_NAME = re.compile(r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$")


def check_endpoint_name(name: str) -> str:
    """``name`` when it is a valid endpoint name (variant names' rule), else :class:`EndpointConfigError`."""
    if not VARIANT_NAME.match(name):
        raise EndpointConfigError(
            f"endpoint name {name!r}: use letters, digits and single hyphens, up to 63 characters",
            [("name", "invalid endpoint name")],
        )
    return name


class Autoscaling(BaseModel):
    """Target tracking on InvocationsPerInstance (the course's policy: target 2.0 per minute, 1 to 2
    instances, 60 s scale-out and 300 s scale-in cooldowns). Twice a second the autoscaler compares the
    variant's invocations per instance over the last ``period_s`` (every server's, over all their
    instances) with ``target`` and sets the instance count to ``ceil(instances * metric / target)`` within
    the bounds; a scale-out waits ``scale_out_cooldown_s`` after the last scale-out, a scale-in
    ``scale_in_cooldown_s`` after any change. Counts and bounds are per server
    (:mod:`loopwise.serving.autoscaler`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: float = Field(gt=0)
    min_instances: int = Field(default=1, ge=1, le=64)
    max_instances: int = Field(default=2, ge=1, le=64)
    scale_out_cooldown_s: float = Field(default=60.0, ge=0)
    scale_in_cooldown_s: float = Field(default=300.0, ge=0)
    #: the metric's period (CloudWatch's one minute)
    period_s: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.max_instances < self.min_instances:
            raise ValueError(
                f"max_instances ({self.max_instances}) is below min_instances ({self.min_instances})"
            )
        return self

    def desired(self, instances: int, per_instance: float) -> int:
        """Target tracking: the instance count that brings the metric to the target, within bounds."""
        wanted = math.ceil(instances * per_instance / self.target - 1e-9) if per_instance > 0 else 0
        return max(self.min_instances, min(self.max_instances, wanted))


class Variant(BaseModel):
    """One variant of an endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(validation_alias=AliasChoices("name", "variant_name"))
    #: a model reference as given: ``name:version`` or ``name@alias``
    model: str = Field(validation_alias=AliasChoices("model", "model_name", "model_ref"))
    #: the model version the reference resolved to when the configuration was recorded
    model_version_id: int | None = None
    weight: float = Field(default=1.0, ge=0, validation_alias=AliasChoices("weight", "initial_weight"))
    instances: int = Field(
        default=1, ge=1, le=64, validation_alias=AliasChoices("instances", "initial_instance_count")
    )
    role: Role = "production"
    #: shadow variants: the share of production requests copied to it
    shadow_share: float = Field(default=1.0, gt=0, le=1)
    #: where its workers run the model: cpu, cuda, cuda:N or auto
    device: str = "cpu"
    #: fp32; int8 (the CPU's dynamic quantization); fp16 (GPUs; the default on a cuda device)
    precision: Precision = "fp32"
    #: dynamic batching: the most requests one model call answers, and the longest a request waits for
    #: others to join its batch (default 32, 128 on a cuda device)
    max_batch_size: int = Field(default=CPU_MAX_BATCH_SIZE, ge=1, le=1024)
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    autoscaling: Autoscaling | None = None

    @model_validator(mode="before")
    @classmethod
    def _gpu_defaults(cls, raw: Any) -> Any:
        """A cuda variant's unset precision and batch limit take the GPU's defaults."""
        if isinstance(raw, Mapping) and isinstance(raw.get("device"), str) and wants_gpu(raw["device"]):
            raw = {"precision": "fp16", "max_batch_size": GPU_MAX_BATCH_SIZE, **raw}
        return raw

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if not DEVICE.match(device):
            raise ValueError(f"device {device!r}: {DEVICE_HELP}")
        return device

    @field_validator("precision")
    @classmethod
    def _precision_fits_device(cls, precision: str, info: ValidationInfo) -> str:
        device = info.data.get("device")
        if not isinstance(device, str):  # the device's own error says what is wrong
            return precision
        if precision == "fp16" and device == "cpu":
            raise ValueError(
                "fp16 is for GPUs: set device cuda (or auto), or use precision fp32 or int8 on the CPU"
            )
        if precision == "int8" and wants_gpu(device):
            raise ValueError(f"int8 runs on the CPU only: use fp16 or fp32 on device {device}, or device cpu")
        return precision

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not VARIANT_NAME.match(name):
            raise ValueError(
                f"variant name {name!r}: use letters, digits and single hyphens, up to 63 characters"
            )
        return name

    @field_validator("model")
    @classmethod
    def _model(cls, model: str) -> str:
        if not model.strip():
            raise ValueError("model is empty: give a model version (name:version) or alias (name@alias)")
        return model.strip()


class Capture(BaseModel):
    """Data capture (SageMaker's DataCaptureConfig): the share of requests whose inputs, outputs and
    sentence embeddings are written to the artifact store, off the request path."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    share: float = Field(
        default=1.0, gt=0, le=1, validation_alias=AliasChoices("share", "sampling_percentage")
    )
    embeddings: bool = True
    #: records waiting to be written; past this, records are dropped (and counted), never requests slowed
    max_queue: int = Field(default=10_000, ge=1, le=1_000_000)

    @field_validator("share", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        """SageMaker's sampling_percentage is 0-100; a share above 1 is read as a percentage."""
        return value / 100 if isinstance(value, int | float) and 1 < value <= 100 else value


class ReviewAttachment(BaseModel):
    """Human review of live predictions: every prediction of ``variants`` (all production variants when
    not named) is checked against the flow definition's activation conditions, and those that fire
    start a human loop (``loopwise.review``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: str = Field(min_length=1, max_length=63)
    variants: tuple[str, ...] | None = None


class EndpointConfig(BaseModel):
    """The variants of one endpoint, its data capture and its human review."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    variants: tuple[Variant, ...] = Field(
        min_length=1, validation_alias=AliasChoices("variants", "production_variants")
    )
    capture: Capture | None = Field(default=None, validation_alias=AliasChoices("capture", "data_capture"))
    #: how production traffic is split: by the weights, or by a multi-armed bandit (Thompson sampling on
    #: the rewards from feedback; a weight of 0 still takes a variant out)
    routing: Literal["weighted", "bandit"] = "weighted"
    review: ReviewAttachment | None = None

    @model_validator(mode="after")
    def _check(self) -> EndpointConfig:
        names = [v.name for v in self.variants]
        unknown = [v for v in (self.review.variants or ()) if v not in names] if self.review else []
        if unknown:
            raise ValueError(f"review.variants: {', '.join(unknown)} not variants of this endpoint")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"variant names must differ: {', '.join(repeated)} appear more than once")
        production = [v for v in self.variants if v.role == "production"]
        if not production:
            raise ValueError("an endpoint needs at least one production variant (role: production)")
        if sum(v.weight for v in production) <= 0:
            raise ValueError("the production variants' weights are all 0: give at least one a weight above 0")
        return self

    @property
    def production(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if v.role == "production")

    @property
    def shadows(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if v.role == "shadow")

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise EndpointConfigError(
            f"no variant {name!r}: this endpoint has {', '.join(v.name for v in self.variants)}",
            [("variants", f"unknown variant {name!r}")],
        )

    def traffic_shares(self) -> dict[str, float]:
        """Each production variant's share of the traffic (weights normalised to sum to 1)."""
        total = sum(v.weight for v in self.production)
        return {v.name: v.weight / total for v in self.production}

    def with_autoscaling(self, variant: str, policy: Autoscaling | None) -> EndpointConfig:
        """A copy with ``variant``'s autoscaling policy set (None: removed)."""
        self.variant(variant)
        variants = [
            {**v.model_dump(), "autoscaling": policy.model_dump() if policy else None}
            if v.name == variant
            else v.model_dump()
            for v in self.variants
        ]
        return parse_endpoint_config(
            {**self.to_dict(), "variants": variants}, source="the autoscaling policy"
        )

    def with_review(self, review: ReviewAttachment | None) -> EndpointConfig:
        """A copy with its human review attached (None: detached)."""
        document = {**self.to_dict(), "review": review.model_dump() if review else None}
        return parse_endpoint_config(document, source="the review attachment")

    def reviewed(self, variant: str) -> bool:
        """Whether ``variant``'s predictions go through the attached flow's conditions."""
        if self.review is None:
            return False
        if self.review.variants is None:
            return self.variant(variant).role == "production"
        return variant in self.review.variants

    def with_weights(self, weights: Mapping[str, float]) -> EndpointConfig:
        """A copy with these variants' weights changed (checked like a new configuration)."""
        for name in weights:
            self.variant(name)
        variants = [{**v.model_dump(), "weight": weights.get(v.name, v.weight)} for v in self.variants]
        return parse_endpoint_config({**self.to_dict(), "variants": variants}, source="the new weights")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_endpoint_config(raw: Any, *, source: str = "<config>") -> EndpointConfig:
    """Check a configuration mapping; raises :class:`EndpointConfigError` listing every problem as
    (dotted field, message)."""
    if not isinstance(raw, Mapping):
        raise EndpointConfigError(
            f"{source}: an endpoint configuration is a mapping with a 'variants' list, got "
            f"{type(raw).__name__}",
            [("", "expected a mapping")],
        )
    try:
        return EndpointConfig.model_validate(dict(raw))
    except ValidationError as exc:
        errors = exc.errors()
        if any(len(e["loc"]) > 2 for e in errors):  # the list's own length check only echoes its items'
            errors = [e for e in errors if e["type"] != "too_short"]
        problems = [(_field(error["loc"], raw), _message(error)) for error in errors]
        listed = "; ".join(f"{field}: {message}" if field else message for field, message in problems)
        raise EndpointConfigError(
            f"{source} is not a valid endpoint configuration: {listed}", problems
        ) from None


def load_endpoint_config(path: Path) -> EndpointConfig:
    """Read and check a YAML configuration file."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EndpointConfigError(
            f"no endpoint configuration file at {path}", [("", "file not found")]
        ) from None
    except yaml.YAMLError as exc:
        raise EndpointConfigError(f"{path} is not valid YAML: {exc}", [("", "invalid YAML")]) from None
    return parse_endpoint_config(raw, source=str(path))


def parse_variant_option(text: str) -> dict[str, Any]:
    """One ``--variant`` option: ``name=VariantA,model=reviews-sentiment@champion,weight=50,instances=1``."""
    fields: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise EndpointConfigError(
                f"--variant {text!r}: write key=value pairs separated by commas, such as "
                "name=VariantA,model=reviews-sentiment@champion,weight=50",
                [("variants", f"bad --variant {text!r}")],
            )
        fields[key.strip()] = value.strip()
    return fields


def _field(loc: tuple[Any, ...], raw: Mapping[str, Any]) -> str:
    """A dotted field name for an error location; list items by their variant name when they have one."""
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and item < len(node):
            node = node[item]
            name = node.get("name") or node.get("variant_name") if isinstance(node, Mapping) else None
            parts.append(str(name) if name else str(item))
            continue
        if isinstance(item, str) and item.startswith("function-after"):
            continue
        parts.append(str(item))
        node = node.get(item) if isinstance(node, Mapping) else None
    return ".".join(parts)


def _message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if error["type"] == "extra_forbidden":
        message = "unknown field (check its spelling)"
    return message
