from __future__ import annotations

import pytest

from loopwise import registry
from loopwise.errors import NotFoundError
from loopwise.registry.records import ModelRef
from loopwise.registry.versions import parse_model_ref
from loopwise.storage import Store


def _register(store: Store, name: str = "sentiment", parent: str | None = None, **metrics: float):
    with store.uow() as uow:
        return registry.register(
            uow,
            name,
            backend="tfidf",
            uri="file:///tmp/m",
            labels=["-1", "0", "1"],
            parent=parent,
            params={"learning_rate": 5e-5},
            metrics=dict(metrics),
        )


def test_versions_count_up_and_keep_lineage(store: Store) -> None:
    first = _register(store, val_acc=0.7)
    second = _register(store, parent="sentiment:1", val_acc=0.75)
    assert (first.version, second.version) == (1, 2)
    assert second.parent_id == first.id
    assert second.code_version.startswith("0.")
    with store.uow() as uow:
        assert [v.version for v in registry.lineage(uow, "sentiment")] == [2, 1]
        assert registry.resolve(uow, "sentiment").version == 2
        assert registry.resolve(uow, "sentiment:1").metrics == {"val_acc": 0.7}
        assert registry.resolve(uow, "sentiment:1").labels == ["-1", "0", "1"]


def test_aliases_move_between_versions(store: Store) -> None:
    _register(store)
    _register(store)
    with store.uow() as uow:
        assert registry.set_alias(uow, "sentiment:1", "champion").aliases == ("champion",)
        registry.set_alias(uow, "sentiment:2", "challenger")
    with store.uow() as uow:
        assert registry.resolve(uow, "sentiment@champion").version == 1
        registry.set_alias(uow, "sentiment:2", "champion")
    with store.uow() as uow:
        assert registry.resolve(uow, "sentiment@champion").version == 2
        assert uow.models.get_by_id(registry.resolve(uow, "sentiment:2").id).aliases == (
            "challenger",
            "champion",
        )
        assert registry.resolve(uow, "sentiment:1").aliases == ()


def test_unknown_references_say_how_to_find_models(store: Store) -> None:
    _register(store)
    with store.uow() as uow:
        with pytest.raises(NotFoundError, match="models list"):
            registry.resolve(uow, "sentiment:9")
        with pytest.raises(NotFoundError, match="no alias 'champion'"):
            registry.resolve(uow, "sentiment@champion")
        with pytest.raises(NotFoundError, match="must be a number"):
            registry.resolve(uow, "sentiment:latest")


def test_parse_model_ref() -> None:
    assert parse_model_ref("m") == ModelRef("m")
    assert parse_model_ref("m:3") == ModelRef("m", version=3)
    assert parse_model_ref("m@champion") == ModelRef("m", alias="champion")
    with pytest.raises(NotFoundError, match="invalid model name"):
        parse_model_ref("bad name")


def test_store_level_helpers_describe_alias_and_list(store: Store) -> None:
    from loopwise.registry.service import (
        describe_version,
        get_version,
        list_versions,
        point_alias,
        remove_alias,
    )

    _register(store)
    _register(store, parent="sentiment:1")
    _register(store, name="other")
    assert [v.ref for v in list_versions(store, "sentiment")] == ["sentiment:1", "sentiment:2"]
    assert [v.ref for v in list_versions(store)] == ["other:1", "sentiment:1", "sentiment:2"]

    details = describe_version(store, "sentiment")
    assert details.version.ref == "sentiment:2"
    assert [a.ref for a in details.ancestors] == ["sentiment:1"]
    assert details.dataset is None and details.evaluations == []

    moved = point_alias(store, "sentiment:1", "champion")
    assert moved.ref == "sentiment:1" and moved.aliases == ("champion",)
    assert get_version(store, moved.id).aliases == ("champion",)
    remove_alias(store, "sentiment:2", "champion")  # the version part is ignored
    assert get_version(store, moved.id).aliases == ()
