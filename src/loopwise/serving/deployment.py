"""Deploying an endpoint's variants: model references resolved to model versions, each variant's model
exported (:mod:`loopwise.registry.exports`) and loaded once to prove it serves, and the worker pools'
specifications the data plane starts from a configuration.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from loopwise import registry
from loopwise.errors import EndpointConfigError, LoopwiseError, NotFoundError
from loopwise.registry.exports import quantization_report, serving_dir
from loopwise.serving.config import EndpointConfig, Variant, parse_endpoint_config
from loopwise.serving.endpoints import Endpoint, record_status
from loopwise.serving.records import EndpointStatus
from loopwise.serving.router import PoolSpec

if TYPE_CHECKING:
    from loopwise.storage import Store

#: called with a message for each step of a deployment
Progress = Callable[[str], None]


def resolve_models(store: Store, config: EndpointConfig) -> EndpointConfig:
    """The configuration with each variant's model version id filled in."""
    variants = []
    problems = []
    with store.uow() as uow:
        for variant in config.variants:
            try:
                version = registry.resolve(uow, variant.model)
                version.require_checkpoint()
            except NotFoundError as exc:
                problems.append((f"variants.{variant.name}.model", str(exc)))
                continue
            variants.append({**variant.model_dump(), "model_version_id": version.id})
    if problems:
        raise EndpointConfigError(
            "the endpoint configuration names models that cannot be served: "
            + "; ".join(f"{field}: {message}" for field, message in problems),
            problems,
        )
    return parse_endpoint_config({**config.to_dict(), "variants": variants})


def deploy(store: Store, name: str, config: EndpointConfig, progress: Progress | None) -> Endpoint:
    """Prepare every variant of the recorded endpoint ``name``; it ends ``InService``, or ``Failed``
    with the reason."""
    try:
        for variant in config.variants:
            prepare(store, variant, progress)
    except (LoopwiseError, OSError) as exc:
        with store.uow() as uow:
            return record_status(uow, name, EndpointStatus.FAILED, failure_reason=str(exc))
    with store.uow() as uow:
        return record_status(uow, name, EndpointStatus.IN_SERVICE)


def prepare(store: Store, variant: Variant, progress: Progress | None) -> None:
    """Export the variant's model if needed and load it once, as a worker will."""
    from loopwise.classifiers import load_classifier
    from loopwise.classifiers.onnx import OnnxClassifier

    with store.uow() as uow:
        version = uow.models.get_by_id(int(variant.model_version_id or -1))
    if progress is not None:
        progress(f"{variant.name}: preparing {version.ref} ({variant.precision} on {variant.device})")
    directory = serving_dir(store, version, variant.precision)
    if version.backend == "transformers":
        loaded = OnnxClassifier.load(directory, precision=variant.precision, threads=1, device=variant.device)
        if loaded.fallback is not None and progress is not None:
            progress(f"{variant.name}: warning: {loaded.fallback}")
        report = quantization_report(directory) if variant.precision == "int8" else None
        if report is not None and progress is not None:
            acc = report["accuracy"]
            progress(
                f"{variant.name}: int8 accuracy {acc['onnx_int8']:.4f} against PyTorch's "
                f"{acc['pytorch']:.4f} "
                f"({report['int8_change'] * 100:+.2f} points; {report['int8_agreement_with_pytorch']:.1%} "
                f"same answers) on {report['n']} {report['split']} texts of {report['dataset']}"
            )
    else:
        load_classifier(directory)


def pool_specs(store: Store, endpoint: Endpoint) -> dict[str, PoolSpec]:
    """What each variant's worker pool loads and how it batches; the machine's cores shared evenly
    among the endpoint's instances."""
    instances = sum(v.instances for v in endpoint.config.variants)
    threads = max(1, (os.cpu_count() or 1) // max(1, instances))
    specs = {}
    for variant in endpoint.config.variants:
        with store.uow() as uow:
            version = uow.models.get_by_id(int(variant.model_version_id or -1))
        specs[variant.name] = PoolSpec(
            directory=serving_dir(store, version, variant.precision),
            precision=variant.precision,
            max_batch_size=variant.max_batch_size,
            max_wait_ms=variant.max_wait_ms,
            model=version.ref,
            device=variant.device,
            threads=threads,
        )
    return specs
