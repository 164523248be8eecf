"""Data capture: a sampled share of requests and responses, written off the request path as JSON lines.

Records go to ``capture/<endpoint>/<variant>/<YYYY>/<MM>/<DD>/<HH>/<host>-<pid>.jsonl`` in the artifact
store (hour partitions by the request's UTC time; one file per server process, so several servers never
interleave lines). Each record holds the inference id, endpoint, variant, model version, time, latency,
the input texts, each text's probabilities and predicted label, and, where the model has one, each
text's sentence embedding (for drift monitoring), packed as float16 in base64
(``{"dtype": "float16", "shape": [texts, dimension], "base64": "..."}``, see :func:`pack_embeddings`):
a quarter of the size of the numbers written out, and read back without parsing 384 numbers a text.

A request only offers its record to a bounded queue and goes on; one writer thread drains the queue.
When the queue is full the record is dropped and counted: capture never slows or fails a request.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from loopwise._private import open_private, private_dir

log = logging.getLogger(__name__)

_STOP = object()


class CaptureWriter:
    """Writes offered records under ``root``; :meth:`offer` never blocks."""

    def __init__(self, root: Path, *, max_queue: int = 10_000, flush_s: float = 0.5) -> None:
        self.root = Path(root)
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self.flush_s = flush_s
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._name = f"{socket.gethostname()}-{os.getpid()}.jsonl"
        self._files: dict[Path, IO[bytes]] = {}
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()

    def offer(self, record: dict[str, Any]) -> bool:
        """Queue a record; False (and counted as dropped) when the queue is full."""
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every record offered so far is written (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self.flush()
        self.queue.put(_STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                record = self.queue.get(timeout=self.flush_s)
            except queue.Empty:
                record = None
            if record is _STOP:
                self.queue.task_done()
                break
            if record is not None:
                try:
                    self._write(record)
                    self.written += 1
                except Exception:  # a full disk must not take the server down: count and go on
                    self.failed += 1
                    log.exception("a capture record could not be written")
                finally:
                    self.queue.task_done()
            if time.monotonic() - last_flush >= self.flush_s or self.queue.empty():
                self._flush_files()
                last_flush = time.monotonic()
        self._close_files()

    def _write(self, record: dict[str, Any]) -> None:
        at = datetime.fromtimestamp(record["time"], UTC)
        folder = self.root / record["endpoint"] / record["variant"] / at.strftime("%Y/%m/%d/%H")
        path = folder / self._name
        handle = self._files.get(path)
        if handle is None:
            if len(self._files) > 64:  # hours past: close what is no longer written
                self._close_files()
            private_dir(folder, repair=False)  # requests' texts: the owner's only
            handle = self._files[path] = open_private(path, "ab")
        line = {**record, "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
        if line.get("embedding") is not None:
            line["embedding"] = pack_embeddings(line["embedding"])
        if isinstance(line.get("probabilities"), np.ndarray):  # orjson writes C-ordered arrays only
            line["probabilities"] = np.ascontiguousarray(line["probabilities"])
        handle.write(orjson.dumps(line, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")

    def _flush_files(self) -> None:
        for handle in self._files.values():
            with contextlib.suppress(OSError):
                handle.flush()

    def _close_files(self) -> None:
        for handle in self._files.values():
            with contextlib.suppress(OSError):
                handle.close()
        self._files.clear()


def pack_embeddings(embeddings: Any) -> dict[str, Any]:
    """A (texts x dimension) array as a capture record holds it: float16 (three significant digits,
    plenty for unit-length embeddings), base64."""
    packed = np.ascontiguousarray(embeddings, dtype="<f2")
    if packed.ndim != 2:
        raise ValueError(f"embeddings must be texts x dimension, got shape {packed.shape}")
    text = base64.b64encode(packed.tobytes()).decode()
    return {"dtype": "float16", "shape": list(packed.shape), "base64": text}


def unpack_embeddings(value: Any) -> np.ndarray | None:
    """The embeddings of a capture record as float32 (texts x dimension): packed by :func:`pack_embeddings`
    or, as older records hold them, lists of numbers. None for None; ValueError when ``value`` is neither."""
    if value is None:
        return None
    if isinstance(value, dict):
        try:
            if value["dtype"] != "float16":
                raise ValueError(f"unknown embedding dtype {value['dtype']!r}")
            rows, dimension = (int(n) for n in value["shape"])
            raw = base64.b64decode(value["base64"], validate=True)
            return np.frombuffer(raw, dtype="<f2").reshape(rows, dimension).astype(np.float32)
        except (KeyError, TypeError, binascii.Error) as exc:
            raise ValueError(f"a packed embedding is not valid: {exc}") from None
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"embeddings must be texts x dimension, got shape {array.shape}")
    return array


def read_captures(root: Path, endpoint: str, variant: str | None = None) -> Iterator[dict[str, Any]]:
    """Every captured record of ``endpoint`` (one variant's when given), partition by partition, as
    written (embeddings packed: :func:`unpack_embeddings` reads them)."""
    base = Path(root) / endpoint
    pattern = f"{variant}/*/*/*/*/*.jsonl" if variant else "*/*/*/*/*/*.jsonl"
    for path in sorted(base.glob(pattern)):
        with path.open("rb") as lines:
            for line in lines:
                if line.strip():
                    yield orjson.loads(line)


#: a captured record's inference id (the first key the writer writes); a JSON string, escapes included
_INFERENCE_ID = re.compile(rb'^\{"inference_id":("(?:[^"\\]|\\.)*")', re.MULTILINE)


class CapturedIds:
    """The inference ids of an endpoint's captured records, read once: capture files only grow, so each
    file is read from where the last look stopped. Safe to use from several threads."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._offsets: dict[Path, int] = {}
        self._ids: dict[str, set[str]] = {}

    def find(self, endpoint: str, ids: Iterable[str]) -> set[str]:
        """Those of ``ids`` that are in the endpoint's capture (every variant, shadows included)."""
        wanted = set(ids)
        with self._lock:
            known = self._ids.setdefault(endpoint, set())
            if wanted - known:
                self._read_new(endpoint, known)
            return wanted & known

    def _read_new(self, endpoint: str, known: set[str]) -> None:
        for path in sorted((self.root / endpoint).glob("*/*/*/*/*/*.jsonl")):
            start = self._offsets.get(path, 0)
            try:
                with path.open("rb") as lines:
                    lines.seek(start)
                    chunk = lines.read()
            except OSError:
                continue
            complete = chunk.rfind(b"\n") + 1  # a line still being written is read next time
            for match in _INFERENCE_ID.finditer(chunk, 0, complete):
                known.add(orjson.loads(match.group(1)))
            self._offsets[path] = start + complete
