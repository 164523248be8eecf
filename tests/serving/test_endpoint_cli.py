"""``loopwise endpoint`` as users run it: a process with a private LOOPWISE_HOME."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from conftest import run_loopwise
from loopwise.config import Settings
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train


def test_create_describe_shift_list_and_delete_from_the_command_line(
    tmp_path: Path, import_small: Callable[[Store], str]
) -> None:
    home = tmp_path / "home"
    store = Store.open(Settings(home=home))
    try:
        dataset = import_small(store)
        for _ in range(2):
            train(store, TrainRequest(dataset=dataset, backend="tfidf", model_name="small"), progress=False)
    finally:
        store.close()
    config = tmp_path / "endpoint.yaml"
    config.write_text(
        "production_variants:\n"
        "  - {variant_name: VariantA, model_name: 'small:1', initial_weight: 50}\n"
        "  - {variant_name: VariantB, model_name: 'small:2', initial_weight: 50}\n",
        encoding="utf-8",
    )
    created = run_loopwise(home, "endpoint", "create", "reviews", "--config", str(config))
    assert created.returncode == 0, created.stderr
    assert "InService" in created.stdout and "VariantB" in created.stdout

    shifted = run_loopwise(home, "endpoint", "update-weights", "reviews", "VariantA=0", "VariantB=100")
    assert shifted.returncode == 0, shifted.stderr
    described = json.loads(run_loopwise(home, "endpoint", "describe", "reviews", "--json").stdout)
    assert described["traffic_shares"] == {"VariantA": 0.0, "VariantB": 1.0}
    assert [h["version"] for h in described["history"]] == [1, 2]

    second = run_loopwise(
        home, "endpoint", "create", "other", "--variant", "name=Only,model=small:1,weight=1", "--json"
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["status"] == "InService"
    listed = json.loads(run_loopwise(home, "endpoint", "list", "--json").stdout)
    assert [e["name"] for e in listed] == ["other", "reviews"]

    bad = run_loopwise(home, "endpoint", "update-weights", "reviews", "VariantB=lots")
    assert bad.returncode != 0 and "write Variant=weight" in bad.stderr
    both = run_loopwise(
        home, "endpoint", "create", "x", "--config", str(config), "--variant", "name=A,model=small:1"
    )
    assert both.returncode != 0 and "not both" in both.stderr

    deleted = run_loopwise(home, "endpoint", "delete", "reviews", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    missing = run_loopwise(home, "endpoint", "describe", "reviews")
    assert missing.returncode != 0 and "endpoint 'reviews' not found" in missing.stderr
