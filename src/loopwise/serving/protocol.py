"""The loopback protocol between the router and a variant's worker processes.

One TCP connection per worker on 127.0.0.1 carries many requests at once: each frame is a 4-byte
big-endian length and a JSON object (orjson). The worker greets with ``{"hello": {...}}`` (its labels,
model and pid); then the router sends ``{"id": n, "texts": [...]}`` and the worker answers, in any order,
``{"id": n, "proba": [[...], ...], "model_ms": t}`` or ``{"id": n, "error": "..."}``, where ``t`` is the
milliseconds the request spent in the worker (waiting for its batch, then in the model call): SageMaker's
ModelLatency, the time in the model's container.

Both sides are :class:`FrameProtocol`: an ``asyncio.Protocol`` that cuts frames out of what the socket
gives and hands each to a callback at once, without a reader task or futures between the socket and the
code that answers. On this kind of machine a hop costs its two process wake-ups and little else: an HTTP
hop per request would cost about a millisecond, the router's whole latency budget.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any, cast

import orjson

#: the largest frame either side accepts (a batch of long texts fits many times over)
MAX_FRAME = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")


class ProtocolError(Exception):
    """The other side sent something that is not a frame of this protocol."""


def encode(message: dict[str, Any]) -> bytes:
    payload = orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY)
    return _LENGTH.pack(len(payload)) + payload


class FrameProtocol(asyncio.Protocol):
    """Frames over one connection: ``greeting`` sent first (when given), ``on_frame(message)`` for each
    whole frame received (in order), and ``on_closed(reason)`` once when the connection ends, whoever ends
    it. A frame that breaks the protocol closes the connection (``reason`` is then the
    :class:`ProtocolError`)."""

    def __init__(
        self,
        on_frame: Callable[[dict[str, Any]], None],
        on_closed: Callable[[Exception | None], None] | None = None,
        greeting: dict[str, Any] | None = None,
    ) -> None:
        self.on_frame = on_frame
        self.on_closed = on_closed
        self.greeting = greeting
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closing = False  # close() was called: nothing more is sent
        self.closed = False  # the connection is gone
        self.error: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        if self.greeting is not None:
            self.send(self.greeting)

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is None or self.closing or self.closed:
            raise ConnectionError("the connection is closed")
        self.transport.write(encode(message))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= _LENGTH.size and not self.closed:
            (length,) = _LENGTH.unpack_from(self.buffer)
            if length > MAX_FRAME:
                self._fail(ProtocolError(f"a frame of {length} bytes is over the limit of {MAX_FRAME}"))
                return
            end = _LENGTH.size + length
            if len(self.buffer) < end:
                return
            payload = bytes(self.buffer[_LENGTH.size : end])
            del self.buffer[:end]
            try:
                message = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                self._fail(ProtocolError(f"a frame is not JSON: {exc}"))
                return
            if not isinstance(message, dict):
                self._fail(ProtocolError("a frame must hold a JSON object"))
                return
            self.on_frame(message)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: ProtocolError) -> None:
        self.error = error
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        if self.on_closed is not None:
            self.on_closed(self.error or exc)
