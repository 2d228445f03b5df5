"""AWS event-stream frames, as the fake upstream builds them (and as its fault injections
break them): a prelude (total length, headers length, CRC32 of those 8 bytes), string
headers, a payload and a CRC32 of everything before it."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

__all__ = ["encode_frame"]

_STRING = 7  # header value type: utf-8 string with a uint16 length


def encode_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message with string-valued `headers` (in their order) and `payload`."""
    parts = []
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        if len(raw_name) > 255 or len(raw_value) > 32767:
            raise ValueError(f"event-stream header too long: {name!r}")
        parts.append(struct.pack("!B", len(raw_name)) + raw_name)
        parts.append(struct.pack("!BH", _STRING, len(raw_value)) + raw_value)
    raw_headers = b"".join(parts)
    head = struct.pack("!II", 12 + len(raw_headers) + len(payload) + 4, len(raw_headers))
    message = head + struct.pack("!I", zlib.crc32(head)) + raw_headers + payload
    return message + struct.pack("!I", zlib.crc32(message))
