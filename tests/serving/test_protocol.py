"""The router-worker frame protocol: frames cut out of whatever chunks the socket gives, and a frame that
breaks the protocol closes the connection with the reason."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from loopwise.serving.protocol import MAX_FRAME, FrameProtocol, ProtocolError, encode


class Transport:
    """What the protocol needs of a transport: writes recorded, close() ending the connection."""

    def __init__(self, protocol: FrameProtocol) -> None:
        self.protocol = protocol
        self.written: list[bytes] = []
        self.is_closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        if not self.is_closed:
            self.is_closed = True
            self.protocol.connection_lost(None)


def _connected(greeting: dict[str, Any] | None = None) -> tuple[FrameProtocol, list[Any], list[Any]]:
    frames: list[Any] = []
    reasons: list[Any] = []
    protocol = FrameProtocol(frames.append, reasons.append, greeting=greeting)
    protocol.connection_made(Transport(protocol))  # type: ignore[arg-type]
    return protocol, frames, reasons


def test_frames_are_cut_from_any_chunks() -> None:
    protocol, frames, reasons = _connected()
    stream = b"".join(encode({"id": i, "texts": ["é" * i]}) for i in range(5))
    for chunk in (stream[:3], stream[3:20], stream[20:21], stream[21:]):  # split anywhere, even the length
        protocol.data_received(chunk)
    assert frames == [{"id": i, "texts": ["é" * i]} for i in range(5)]
    assert reasons == [] and not protocol.closed


def test_the_greeting_goes_first_and_numpy_arrays_travel_as_lists() -> None:
    protocol, _, _ = _connected(greeting={"hello": {"pid": 1}})
    protocol.send({"id": 7, "proba": np.array([[0.25, 0.75]])})
    transport = protocol.transport
    written = b"".join(transport.written)  # type: ignore[union-attr]
    messages = []
    while written:
        (length,) = struct.unpack(">I", written[:4])
        messages.append(orjson.loads(written[4 : 4 + length]))
        written = written[4 + length :]
    assert messages == [{"hello": {"pid": 1}}, {"id": 7, "proba": [[0.25, 0.75]]}]


def test_a_frame_that_breaks_the_protocol_closes_the_connection_with_the_reason() -> None:
    cases = [
        (struct.pack(">I", MAX_FRAME + 1), "over the limit"),
        (struct.pack(">I", 5) + b"{nope", "not JSON"),
        (struct.pack(">I", 2) + b"[]", "must hold a JSON object"),
    ]
    for data, says in cases:
        protocol, frames, reasons = _connected()
        protocol.data_received(encode({"id": 1}) + data + encode({"id": 2}))
        assert frames == [{"id": 1}]  # nothing after the bad frame is read
        assert protocol.closed and len(reasons) == 1
        assert isinstance(reasons[0], ProtocolError) and says in str(reasons[0])
        with pytest.raises(ConnectionError, match="closed"):
            protocol.send({"id": 3})
