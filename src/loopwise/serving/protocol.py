"""The loopback protocol between the router and a variant's worker processes.

One TCP connection per worker on 127.0.0.1 carries many requests at once: each frame is a 4-byte
big-endian length and a JSON object (orjson). The worker greets with ``{"hello": {...}}`` (its labels,
model and pid); then the router sends ``{"id": n, "texts": [...]}`` and the worker answers, in any order,
``{"id": n, "proba": [[...], ...], "model_ms": t}`` or ``{"id": n, "error": "..."}``. Plain frames over
one multiplexed connection cost tens of microseconds, where an HTTP hop per request would cost about a
millisecond, which is the router's whole latency budget.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import orjson

#: the largest frame either side accepts (a batch of long texts fits many times over)
MAX_FRAME = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")


class ProtocolError(Exception):
    """The other side sent something that is not a frame of this protocol."""


def encode(message: dict[str, Any]) -> bytes:
    payload = orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY)
    return _LENGTH.pack(len(payload)) + payload


async def read(reader: asyncio.StreamReader) -> dict[str, Any]:
    """The next frame; raises ``asyncio.IncompleteReadError`` when the connection closed."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > MAX_FRAME:
        raise ProtocolError(f"a frame of {length} bytes is over the limit of {MAX_FRAME}")
    message = orjson.loads(await reader.readexactly(length))
    if not isinstance(message, dict):
        raise ProtocolError("a frame must hold a JSON object")
    return message
