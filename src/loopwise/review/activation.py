"""Live activation: an endpoint's predictions checked against its flow's conditions, and the loops they
start made off the request path, durably.

For each text of a request the conditions are evaluated (microseconds); a text that fires gets a loop
whose name is derived from the endpoint, the inference id and the text's position, so a retried request
never starts a second loop; one request starts at most the flow's ``max_loops_per_invocation`` (its
most uncertain texts). The request path only appends the loop to a journal file (one ``write`` to a
file opened for appending: it survives the server process dying, like SQLite's WAL with
``synchronous=NORMAL``) and returns the loop's name with the prediction. :class:`LoopStarter` writes the
journal's loops to the database in batches a few milliseconds apart, then removes the journal segment; a
server that starts replays the segments of servers that died before writing theirs (a segment's owner
holds an exclusive lock on it while it lives). Inserting a loop is idempotent, so a segment replayed
after a partial write doubles nothing. The flow's budget (``review.budget``) is decided there, where the
loops are written, under the database's lock: a loop it refuses is recorded Stopped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import heapq
import logging
import os
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from loopwise._private import private_dir
from loopwise.review.conditions import Condition, flow_condition
from loopwise.review.loops import content_hash
from loopwise.review.records import Flow

if TYPE_CHECKING:
    from loopwise.storage import Store

log = logging.getLogger(__name__)

#: how long loops wait in memory (and the journal) before they are written together
BATCH_WAIT_S = 0.005


def loop_name(endpoint: str, inference_id: str, position: int) -> str:
    """The loop of one text of one inference: the same name for a retry, unique across endpoints."""
    digest = hashlib.blake2b(f"{endpoint}\0{inference_id}\0{position}".encode(), digest_size=12).hexdigest()
    return f"ep-{digest}"


def activate(
    flow: Flow,
    endpoint: str,
    variant: str,
    inference_id: str,
    texts: Sequence[str],
    labels: Sequence[str],
    proba: Any,
    rng: random.Random,
    *,
    condition: Condition | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """The loops this prediction starts: (text position, loop record) for each text whose prediction
    fires the flow's conditions, in text order; each record keeps the activation results and the
    prediction's confidence (its top probability). At most the flow's ``max_loops_per_invocation``:
    when more texts fire, the most uncertain ones (lowest confidence; the first on a tie) start.
    ``condition``: the flow's conditions parsed already (the data plane parses them once per flow)."""
    condition = condition or flow_condition(flow)
    fired_rows = []
    for position, row in enumerate(proba.tolist() if hasattr(proba, "tolist") else proba):
        fired, results = condition.evaluate(row, labels, rng)
        if fired:
            fired_rows.append((max(row), position, row, results))
    if len(fired_rows) > flow.max_loops_per_invocation:
        kept = heapq.nsmallest(flow.max_loops_per_invocation, fired_rows, key=lambda f: (f[0], f[1]))
        fired_rows = sorted(kept, key=lambda f: f[1])
    started = []
    for confidence, position, row, results in fired_rows:
        predicted = labels[max(range(len(row)), key=row.__getitem__)]
        content = {"taskObject": texts[position], "initialValue": predicted}
        started.append(
            (
                position,
                {
                    "name": loop_name(endpoint, inference_id, position),
                    "flow": flow.name,
                    "input": content,
                    "content_hash": content_hash(content),
                    "inference_id": inference_id,
                    "endpoint": endpoint,
                    "variant": variant,
                    "confidence": round(float(confidence), 6),
                    "activation": {
                        "conditions": results,
                        "probabilities": dict(zip(labels, (round(p, 6) for p in row), strict=True)),
                        "text_index": position,
                        "texts": len(texts),
                    },
                },
            )
        )
    return started


class LoopStarter:
    """The journal and the batch writer of one server process (see the module's docstring)."""

    def __init__(self, store: Store, *, batch_wait_s: float = BATCH_WAIT_S) -> None:
        self.store = store
        self.batch_wait_s = batch_wait_s
        self.root = store.artifacts.host_dir("review/journal")
        self._flows: dict[str, Flow] = {}
        self._pending: list[dict[str, Any]] = []
        self._segment: Path | None = None
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._serial = 0
        #: segments of batches that failed to be written: removed once a later batch (holding them) is
        self._kept: list[Path] = []
        self.written = 0

    async def start(self) -> None:
        private_dir(self.root, repair=False)  # the texts people sent: the owner's only
        self._lock_fd = os.open(self.root / f"{self._owner}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        await asyncio.to_thread(self.recover)
        self._task = asyncio.create_task(self._run())

    def offer(self, flow: Flow, records: Sequence[dict[str, Any]]) -> None:
        """Journal ``records`` (one write) and queue them for the next batch."""
        if self._fd is None:
            self._open_segment()
        assert self._fd is not None
        self._flows[flow.name] = flow
        os.write(self._fd, b"".join(orjson.dumps(r) + b"\n" for r in records))
        self._pending.extend(records)
        self._wake.set()

    async def flush(self) -> None:
        """Write what is queued now (tests, shutdown)."""
        await self._write_batch()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._write_batch()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            with contextlib.suppress(FileNotFoundError):
                (self.root / f"{self._owner}.lock").unlink()
            self._lock_fd = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.batch_wait_s)  # let a burst gather into one transaction
            self._wake.clear()
            try:
                await self._write_batch()
            except Exception:  # the database is away: the journal keeps them; try again shortly
                log.exception("human loops not written yet; retrying")
                await asyncio.sleep(1.0)
                self._wake.set()

    async def _write_batch(self) -> None:
        if not self._pending:
            return
        batch, segment = self._pending, self._segment
        self._pending = []
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._segment = None, None  # the next offer opens a new segment
        try:
            await asyncio.to_thread(self._write, batch)
        except Exception:
            self._pending = batch + self._pending  # retried with the next batch
            if segment is not None:
                self._kept.append(segment)  # on disk until that batch is written
            raise
        for written in [*self._kept, *([segment] if segment is not None else [])]:
            written.unlink(missing_ok=True)
        self._kept.clear()
        self.written += len(batch)

    def _open_segment(self) -> None:
        self._serial += 1
        self._segment = self.root / f"{self._owner}.{self._serial:08d}.jsonl"
        self._fd = os.open(self._segment, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)

    def _write(self, records: list[dict[str, Any]]) -> None:
        from loopwise.errors import StorageError
        from loopwise.review.flows import find_flow
        from loopwise.review.starting import start_predicted

        by_flow: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            by_flow[record["flow"]].append(record)
        for name, loops in by_flow.items():
            flow = self._flows.get(name) or find_flow(self.store, name)
            try:
                start_predicted(self.store, flow, loops)
            except StorageError:
                # one record the database refuses (a text it cannot store) must not hold back the rest:
                # each is written alone and a refused one is set aside, logged (a database that is away
                # fails them all, and the batch is retried)
                refused = 0
                for loop in loops:
                    try:
                        start_predicted(self.store, flow, [loop])
                    except StorageError:
                        refused += 1
                        log.exception("human loop %s refused by the database; set aside", loop["name"])
                if refused == len(loops):
                    raise

    def recover(self) -> int:
        """Write the loops journaled by servers that died before writing them; returns how many."""
        recovered = 0
        for segment in sorted(self.root.glob("*.jsonl")):
            owner = segment.name.split(".", 1)[0]
            if owner == self._owner or not self._owner_dead(owner):
                continue
            try:
                lines = segment.read_bytes().splitlines()
            except FileNotFoundError:  # another starting server took it
                continue
            records = []
            for line in lines:
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError:  # a line cut short when its server died mid-write
                    log.warning("human loops: an unreadable line of %s skipped", segment.name)
            if records:
                self._write(records)
            segment.unlink(missing_ok=True)
            recovered += len(records)
            log.info("human loops: %d recovered from %s", len(records), segment.name)
        for lock in self.root.glob("*.lock"):
            owner = lock.name.removesuffix(".lock")
            if owner != self._owner and self._owner_dead(owner):
                lock.unlink(missing_ok=True)
        return recovered

    def _owner_dead(self, owner: str) -> bool:
        lock = self.root / f"{owner}.lock"
        if not lock.exists():
            return True
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True
