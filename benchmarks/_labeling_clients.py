"""The load generator of ``labeling_load.py``, in a process of its own: ``python _labeling_clients.py SPEC``.

SPEC is a JSON file: ``kind`` (``loopwise`` or ``label-studio``), ``url``, ``job`` (the job or project id),
``authorizations`` (one Authorization header per simulated worker, each worker on its own keep-alive
connection), ``think_s`` (a worker's mean pause before answering; 0: none) and ``cap`` (the most rounds a
Label Studio worker makes). Prints JSON: ``timings`` (ms of each next-item and submit request), ``acks``
(per submit: loopwise's assignment id and status; Label Studio's task id, status and annotation id) and
``wall_s``.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

LABELS = ["1", "0", "-1"]


async def _think(rng: random.Random, think_s: float) -> None:
    """A worker reading the item before answering: uniform in [0.5, 1.5] x ``think_s`` (0: none)."""
    if think_s > 0:
        await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))


async def _loopwise_worker(
    client: Any, job: int, timings: dict[str, list[float]], acks: list[Any], think_s: float
) -> None:
    rng = random.Random()
    await _think(rng, think_s)  # the workers do not all start in the same millisecond
    while True:
        started = time.perf_counter()
        status, answer = await client.post(f"/api/v1/labeling/jobs/{job}/next", json={})
        timings["next"].append((time.perf_counter() - started) * 1000)
        tasks = answer["tasks"] if status == 200 else []
        if not tasks:
            return
        task = tasks[0]
        label = rng.choice(LABELS)
        await _think(rng, think_s)
        started = time.perf_counter()
        sent, _ = await client.post(
            f"/api/v1/labeling/assignments/{task['assignment_id']}/submit", json={"label": label}
        )
        timings["submit"].append((time.perf_counter() - started) * 1000)
        acks.append((task["assignment_id"], sent))


async def _label_studio_worker(
    client: Any, project: int, timings: dict[str, list[float]], acks: list[Any], think_s: float, cap: int
) -> None:
    rng = random.Random()
    await _think(rng, think_s)
    for _ in range(cap):  # bounded: a user shared by all clients may be handed the same locked task again
        started = time.perf_counter()
        status, answer = await client.get(f"/api/projects/{project}/next/")
        timings["next"].append((time.perf_counter() - started) * 1000)
        if status != 200:
            return
        task = answer["id"]
        await _think(rng, think_s)
        result = [
            {
                "from_name": "sentiment",
                "to_name": "text",
                "type": "choices",
                "value": {"choices": [rng.choice(LABELS)]},
            }
        ]
        started = time.perf_counter()
        sent, stored = await client.post(f"/api/tasks/{task}/annotations/", json={"result": result})
        timings["submit"].append((time.perf_counter() - started) * 1000)
        acks.append((task, sent, stored.get("id") if isinstance(stored, dict) else None))


class _Connection:
    """One keep-alive HTTP/1.1 connection of one simulated worker: a few lines of asyncio instead of an
    HTTP client library, so that the load generator spends little of the two cores the server needs."""

    def __init__(self, url: str, authorization: str) -> None:
        host_port = url.removeprefix("http://")
        self.host, _, port = host_port.partition(":")
        self.port = int(port)
        self.authorization = authorization
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: {self.authorization}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: keep-alive\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, closing = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                closing = True
        if chunked:
            data = b""
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                data += await self.reader.readexactly(size + 2)
            await self.reader.readuntil(b"\r\n")
        else:
            data = await self.reader.readexactly(length)
        if closing:
            await self.close()
        try:
            return status, json.loads(data) if data else None
        except json.JSONDecodeError:
            return status, None

    async def post(self, path: str, json: Any = None) -> tuple[int, Any]:
        return await self.request("POST", path, json)

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.request("GET", path)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    timings: dict[str, list[float]] = {"next": [], "submit": []}
    acks: list[Any] = []
    clients = [_Connection(spec["url"], auth) for auth in spec["authorizations"]]
    started = time.perf_counter()
    try:
        if spec["kind"] == "loopwise":
            await asyncio.gather(
                *(_loopwise_worker(c, spec["job"], timings, acks, spec["think_s"]) for c in clients)
            )
        else:
            cap = spec["cap"]
            await asyncio.gather(
                *(_label_studio_worker(c, spec["job"], timings, acks, spec["think_s"], cap) for c in clients)
            )
    finally:
        for client in clients:
            await client.close()
    return {"timings": timings, "acks": acks, "wall_s": time.perf_counter() - started}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        import uvloop

        result = uvloop.run(_load(spec))
    except ImportError:
        result = asyncio.run(_load(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
