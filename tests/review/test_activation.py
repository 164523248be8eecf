"""The journal of live activation: loops journaled by a server that died are written by the next one,
once; a batch that fails stays journaled and is written later."""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson
import pytest

from loopwise.labeling.jobs import COURSE_CATEGORIES
from loopwise.review import service, starting
from loopwise.review.activation import LoopStarter, activate, loop_name
from loopwise.storage import Store
from loopwise.workforce import service as workforce

LABELS = ["-1", "0", "1"]


def _in_own_loop(coroutine: Any) -> Any:
    """A coroutine run in a thread of its own (the browser tests keep a loop running in the main one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=60)


def _flow(store: Store) -> Any:
    workforce.create_team(store, "reviewers")
    return service.create_flow(
        store,
        "live",
        team="reviewers",
        categories=list(COURSE_CATEGORIES),
        conditions={"confidence_below": 0.9},
    )


def test_only_uncertain_texts_start_loops_named_by_their_inference(store: Store) -> None:
    flow = _flow(store)
    proba = np.array([[0.05, 0.05, 0.9], [0.3, 0.3, 0.4]])
    started = activate(
        flow, "reviews", "VariantA", "abc", ["sure", "unsure"], LABELS, proba, random.Random(0)
    )
    assert [position for position, _ in started] == [1]
    record = started[0][1]
    assert record["name"] == loop_name("reviews", "abc", 1) != loop_name("other", "abc", 1)
    assert record["input"] == {"taskObject": "unsure", "initialValue": "1"}
    assert record["activation"]["texts"] == 2 and record["activation"]["conditions"][0]["value"] == 0.4


def test_loops_journaled_by_a_dead_server_are_written_by_the_next_once(store: Store) -> None:
    flow = _flow(store)
    journal = store.artifacts.host_dir("review/journal")
    journal.mkdir(parents=True, exist_ok=True)
    records = [
        activate(flow, "reviews", "VariantA", f"id-{i}", [f"text {i}"], LABELS, np.array([[0.3, 0.3, 0.4]]),
                 random.Random(0))[0][1]
        for i in range(5)
    ]  # fmt: skip
    # a server that died: its segment is there, its lock file is not held by anyone
    (journal / "4242-deadbeef.00000001.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    (journal / "4242-deadbeef.lock").touch()
    # half of them had reached the database before it died: replaying doubles nothing
    service.start_predicted(store, flow, records[:2])

    async def serve() -> int:
        starter = LoopStarter(store)
        await starter.start()
        more = activate(flow, "reviews", "VariantA", "live-1", ["new"], LABELS, np.array([[0.2, 0.5, 0.3]]),
                        random.Random(0))  # fmt: skip
        starter.offer(flow, [more[0][1]])
        await starter.flush()
        await starter.close()
        return starter.written

    assert _in_own_loop(serve()) == 1
    with store.uow() as uow:
        assert uow.review.count() == {"InProgress": 6}
    assert list(journal.glob("*.jsonl")) == [] and list(journal.glob("*.lock")) == []


def test_a_batch_that_fails_stays_journaled_and_is_written_later(store: Store, monkeypatch: Any) -> None:
    flow = _flow(store)
    calls = {"n": 0}
    real = starting.start_predicted

    def failing_once(*args: Any) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the database is away")
        return real(*args)

    monkeypatch.setattr(starting, "start_predicted", failing_once)

    async def serve() -> list[str]:
        starter = LoopStarter(store)
        await starter.start()
        record = activate(flow, "e", "V", "x", ["t"], LABELS, np.array([[0.2, 0.5, 0.3]]), random.Random(0))
        starter.offer(flow, [record[0][1]])
        with pytest.raises(RuntimeError, match="away"):
            await starter.flush()
        kept = sorted(p.name for p in starter.root.glob("*.jsonl"))
        await starter.flush()
        await starter.close()
        return kept

    kept = _in_own_loop(serve())
    assert len(kept) == 1  # on disk while the database was away
    with store.uow() as uow:
        assert uow.review.count() == {"InProgress": 1}
    assert list(store.artifacts.host_dir("review/journal").glob("*.jsonl")) == []
