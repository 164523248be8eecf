"""Endpoint configurations and the control plane: create (deploy), describe, list, re-weight, delete."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from loopwise import registry
from loopwise.classifiers import TrainConfig
from loopwise.errors import EndpointConfigError, NotFoundError, StorageError
from loopwise.registry.exports import quantization_report, serving_dir
from loopwise.serving.config import load_endpoint_config, parse_endpoint_config, parse_variant_option
from loopwise.serving.records import EndpointStatus
from loopwise.serving.service import (
    create_endpoint,
    delete_endpoint,
    describe_endpoint,
    list_endpoints,
    update_weights,
)
from loopwise.storage import Store
from loopwise.storage.artifacts.local import local_path
from loopwise.training.service import TrainRequest, train


def _two(model_a: str = "small-tfidf:1", model_b: str = "small-tfidf:2") -> dict[str, object]:
    return {
        "variants": [
            {"name": "VariantA", "model": model_a, "weight": 50},
            {"name": "VariantB", "model": model_b, "weight": 50},
        ]
    }


def test_the_courses_variant_list_reads_as_written() -> None:
    config = parse_endpoint_config(
        {
            "production_variants": [
                {
                    "variant_name": "VariantA",
                    "model_name": "m:1",
                    "initial_weight": 50,
                    "initial_instance_count": 1,
                },
                {
                    "variant_name": "VariantB",
                    "model_name": "m:2",
                    "initial_weight": 50,
                    "initial_instance_count": 2,
                },
            ]
        }
    )
    assert [(v.name, v.model, v.weight, v.instances) for v in config.variants] == [
        ("VariantA", "m:1", 50, 1),
        ("VariantB", "m:2", 50, 2),
    ]
    assert config.traffic_shares() == {"VariantA": 0.5, "VariantB": 0.5}
    assert parse_variant_option("name=VariantA, model=m@champion,weight=3") == {
        "name": "VariantA",
        "model": "m@champion",
        "weight": "3",
    }


def test_a_bad_configuration_lists_every_problem_with_its_field(tmp_path: Path) -> None:
    raw = {
        "variants": [
            {"name": "VariantA", "model": "m:1", "weight": -1, "instances": 0},
            {"name": "bad name!", "model": "m:2", "colour": "red"},
            {"name": "Shadow", "model": "m:3", "role": "shadow", "shadow_share": 0},
        ]
    }
    with pytest.raises(EndpointConfigError) as caught:
        parse_endpoint_config(raw, source="my.yaml")
    fields = {field for field, _ in caught.value.problems}
    assert {"variants.VariantA.weight", "variants.VariantA.instances", "variants.bad name!.colour"} <= fields
    assert "variants.Shadow.shadow_share" in fields
    assert "my.yaml is not a valid endpoint configuration" in str(caught.value)
    assert "unknown field" in str(caught.value) and "single hyphens" in str(caught.value)

    cases = {
        "appear more than once": {"variants": [{"name": "A", "model": "m:1"}, {"name": "A", "model": "m:2"}]},
        "at least one production variant": {"variants": [{"name": "S", "model": "m:1", "role": "shadow"}]},
        "weights are all 0": {"variants": [{"name": "A", "model": "m:1", "weight": 0}]},
        "at least 1 item": {"variants": []},
        "expected a mapping|a mapping with a 'variants' list": ["not", "a", "mapping"],
    }
    for message, bad in cases.items():
        with pytest.raises(EndpointConfigError, match=message):
            parse_endpoint_config(bad)
    with pytest.raises(EndpointConfigError, match="key=value pairs"):
        parse_variant_option("VariantA")
    with pytest.raises(EndpointConfigError, match="no endpoint configuration file"):
        load_endpoint_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("variants: [", encoding="utf-8")
    with pytest.raises(EndpointConfigError, match="not valid YAML"):
        load_endpoint_config(tmp_path / "bad.yaml")


def test_an_endpoint_is_created_in_service_with_its_models_pinned(two_models: Store) -> None:
    store = two_models
    endpoint = create_endpoint(
        store, "reviews", parse_endpoint_config(_two("small-tfidf:1", "small-tfidf@champion"))
    )
    assert endpoint.status is EndpointStatus.IN_SERVICE and endpoint.failure_reason is None
    assert endpoint.current.version == 1 and endpoint.current.note == "created"
    with store.uow() as uow:
        ids = [registry.resolve(uow, ref).id for ref in ("small-tfidf:1", "small-tfidf:2")]
        # moving the alias later changes nothing that is deployed
        registry.set_alias(uow, "small-tfidf:1", "champion")
    assert [v.model_version_id for v in endpoint.config.variants] == ids
    again, history = describe_endpoint(store, "reviews")
    assert again.config == endpoint.config and [h.version for h in history] == [1]
    assert [e.name for e in list_endpoints(store)] == ["reviews"]

    with pytest.raises(StorageError, match="an endpoint named 'reviews' exists"):
        create_endpoint(store, "reviews", parse_endpoint_config(_two()))
    with pytest.raises(EndpointConfigError, match="endpoint name"):
        create_endpoint(store, "no_underscores", parse_endpoint_config(_two()))


def test_an_unknown_model_is_refused_before_anything_is_recorded(two_models: Store) -> None:
    with pytest.raises(EndpointConfigError) as caught:
        create_endpoint(two_models, "reviews", parse_endpoint_config(_two("small-tfidf:1", "nope:1")))
    assert [field for field, _ in caught.value.problems] == ["variants.VariantB.model"]
    assert list_endpoints(two_models) == []


def test_a_model_that_cannot_load_leaves_the_endpoint_failed_with_the_reason(two_models: Store) -> None:
    with two_models.uow() as uow:
        checkpoint = local_path(registry.resolve(uow, "small-tfidf:2").uri)
    shutil.rmtree(checkpoint)
    endpoint = create_endpoint(two_models, "reviews", parse_endpoint_config(_two()))
    assert endpoint.status is EndpointStatus.FAILED
    # the checkpoint's artifact is gone: the reason names it and says where it was looked for
    reason = endpoint.failure_reason or ""
    assert checkpoint.as_uri() in reason and "neither in the artifact store" in reason, reason
    assert describe_endpoint(two_models, "reviews")[0].status is EndpointStatus.FAILED


def test_weights_change_by_new_configuration_versions(two_models: Store) -> None:
    store = two_models
    config = parse_endpoint_config(
        {
            **_two(),
            "variants": [*_two()["variants"], {"name": "Shadow", "model": "small-tfidf:1", "role": "shadow"}],
        }  # type: ignore[list-item]
    )
    create_endpoint(store, "reviews", config)
    updated = update_weights(store, "reviews", {"VariantA": 0, "VariantB": 100})
    assert updated.current.version == 2 and updated.config.traffic_shares() == {
        "VariantA": 0.0,
        "VariantB": 1.0,
    }
    assert updated.current.note == "weights: VariantA=0, VariantB=100"
    _, history = describe_endpoint(store, "reviews")
    assert [h.version for h in history] == [1, 2]
    assert history[0].config.traffic_shares() == {"VariantA": 0.5, "VariantB": 0.5}  # the old one is kept

    refusals = {
        "no variant 'VariantC'": {"VariantC": 1},
        "weights are all 0": {"VariantB": 0},
        "shadow variant": {"Shadow": 5},
        "greater than or equal to 0": {"VariantA": -1},
    }
    for message, weights in refusals.items():
        with pytest.raises(EndpointConfigError, match=message):
            update_weights(store, "reviews", weights)
    assert describe_endpoint(store, "reviews")[0].current.version == 2  # nothing recorded by a refusal

    delete_endpoint(store, "reviews")
    assert list_endpoints(store) == []
    with pytest.raises(NotFoundError, match="endpoint 'reviews' not found"):
        describe_endpoint(store, "reviews")


def test_concurrent_weight_updates_each_get_their_own_version(two_models: Store) -> None:
    create_endpoint(two_models, "reviews", parse_endpoint_config(_two()))
    errors: list[BaseException] = []

    def shift(weight: int) -> None:
        try:
            for _ in range(5):
                update_weights(two_models, "reviews", {"VariantA": weight, "VariantB": 100 - weight})
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=shift, args=(w,)) for w in (10, 90)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    endpoint, history = describe_endpoint(two_models, "reviews")
    assert [h.version for h in history] == list(range(1, 12)) and endpoint.current.version == 11


def test_a_transformers_model_is_served_from_its_onnx_export_made_once(
    sqlite_store: Store, import_small: Callable[[Store], str], tiny_bert_dir: Path
) -> None:
    dataset = import_small(sqlite_store)
    config = TrainConfig(epochs=1, batch_size=8, max_seq_length=32)
    request = TrainRequest(dataset=dataset, base_model=str(tiny_bert_dir), model_name="tiny", config=config)
    model = train(sqlite_store, request, progress=False).model
    assert model is not None
    variants = {"variants": [{"name": "A", "model": "tiny:1", "precision": "int8"}]}
    said: list[str] = []
    endpoint = create_endpoint(sqlite_store, "tiny", parse_endpoint_config(variants), progress=said.append)
    assert endpoint.status is EndpointStatus.IN_SERVICE, endpoint.failure_reason
    exported = serving_dir(sqlite_store, model, "int8")
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json"} <= {p.name for p in exported.iterdir()}
    # int8's accuracy change against PyTorch, measured on the model's validation split and reported
    report = quantization_report(exported)
    assert report is not None and report["split"] == "validation" and report["n"] == 18
    accuracy = report["accuracy"]
    assert report["int8_change"] == pytest.approx(accuracy["onnx_int8"] - accuracy["pytorch"])
    assert accuracy["onnx_fp32"] == accuracy["pytorch"]  # fp32 ONNX answers what PyTorch answers
    assert any("int8 accuracy" in line and "points" in line for line in said), said
    made = (exported / "model.onnx").stat().st_mtime_ns
    create_endpoint(sqlite_store, "tiny-two", parse_endpoint_config(variants))
    assert (exported / "model.onnx").stat().st_mtime_ns == made  # the export is reused
