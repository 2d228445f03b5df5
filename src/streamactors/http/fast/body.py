"""Sans-IO response body decoders: chunked (in bulk), Content-Length and read-until-close.

Each decoder has the same shape: `feed(data) -> bytes` returns the body bytes carried by
`data`, joined into one object; `eof()` tells it the peer closed the connection (and raises
`FramingError` if the body was not complete); `done` turns true once the body has ended;
`unused` then holds any bytes the peer sent after the end of the body (a connection with
unused bytes must not be reused).

`ChunkedDecoder` handles every chunk already in the buffer in one pass: a read holding a
hundred small chunks costs one call and one join, not a hundred events (h11's
`ChunkedReader` returns one `Data` event per chunk). Chunk data is returned as soon as it
arrives, even before its chunk is complete, so it never buffers body bytes; what it does
hold (a partial chunk-size line, a partial CRLF, trailers) is bounded by `max_line_bytes`
and `max_trailer_bytes`. The syntax is RFC 9112 section 7.1 with h11's leniencies:
chunk extensions are ignored (but may not hold control characters), trailing whitespace
after the size is allowed, the size has at most 16 hex digits, and the CRLF after the
chunk data must be exactly CRLF.
"""

from __future__ import annotations

import re
from typing import Protocol

from .h1 import _CTL, BodyFraming, FramingError, _is_token

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "DEFAULT_MAX_TRAILER_BYTES",
    "BodyDecoder",
    "ChunkedDecoder",
    "ContentLengthDecoder",
    "UntilCloseDecoder",
    "decoder_for",
]

DEFAULT_MAX_LINE_BYTES = 4096
DEFAULT_MAX_TRAILER_BYTES = 16 * 1024

_HEX = b"0123456789abcdefABCDEF"
#: A chunk-size line of plain hex digits (the common case; the rest goes to `_chunk_size`).
_PLAIN_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}\r\n")

# ChunkedDecoder states.
_SIZE = 0  # expecting a chunk-size line
_DATA = 1  # inside chunk data; `_remaining` bytes to go
_DATA_END = 2  # expecting the CRLF that ends chunk data
_TRAILER = 3  # expecting a trailer line or the final blank line
_DONE = 4


class BodyDecoder(Protocol):
    """What the transport needs from a body decoder."""

    @property
    def done(self) -> bool: ...

    @property
    def unused(self) -> bytes: ...

    def feed(self, data: bytes) -> bytes: ...

    def eof(self) -> None: ...


class ChunkedDecoder:
    """Decodes a `Transfer-Encoding: chunked` body, every complete chunk of a read at once."""

    __slots__ = (
        "_buf",
        "_failed",
        "_remaining",
        "_state",
        "_trailer_bytes",
        "max_line_bytes",
        "max_trailer_bytes",
        "trailers",
        "unused",
    )

    def __init__(
        self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, max_trailer_bytes: int = DEFAULT_MAX_TRAILER_BYTES
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.max_trailer_bytes = max_trailer_bytes
        self._buf = b""  # an incomplete line (or CRLF) carried to the next feed
        self._state = _SIZE
        self._remaining = 0
        self._trailer_bytes = 0
        self._failed = False
        #: Trailer fields received after the last chunk.
        self.trailers: list[tuple[bytes, bytes]] = []
        #: Bytes received after the end of the body.
        self.unused = b""

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def pending_bytes(self) -> int:
        """Bytes held that are not body: a partial line or CRLF."""
        return len(self._buf)

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes of the body; return the body bytes they carry (possibly b"")."""
        if self._failed:
            raise FramingError("the chunked body failed earlier")
        state = self._state
        if state == _DONE:
            self.unused += data
            return b""
        buf = self._buf + data if self._buf else data
        self._buf = b""
        n = len(buf)
        pos = 0
        out: list[bytes] = []
        plain_size = _PLAIN_SIZE.match
        try:
            while pos < n:
                if state == _SIZE:
                    m = plain_size(buf, pos)
                    if m is not None:  # the common case: a plain size, and the whole chunk here
                        start = m.end()
                        end = start + int(buf[pos : start - 2], 16)
                        if start < end and end + 2 <= n:
                            if buf[end] != 13 or buf[end + 1] != 10:
                                raise FramingError(f"missing CRLF after chunk data: {buf[end : end + 2]!r}")
                            out.append(buf[start:end])
                            pos = end + 2
                            continue
                    eol = buf.find(b"\r\n", pos, pos + self.max_line_bytes + 2)
                    if eol < 0:
                        if n - pos > self.max_line_bytes + 1:  # + 1: the CR of a line of the largest size
                            raise FramingError(f"chunk-size line longer than {self.max_line_bytes} bytes")
                        break
                    line = buf[pos:eol]
                    if 0 < len(line) <= 16 and not line.translate(None, _HEX):  # plain hex digits
                        size = int(line, 16)
                    else:  # extensions, whitespace, or an illegal size
                        size = self._chunk_size(line)
                    pos = eol + 2
                    if size == 0:
                        state = _TRAILER
                        continue
                    end = pos + size
                    if end + 2 <= n:  # the common case: the whole chunk and its CRLF are here
                        if buf[end] != 13 or buf[end + 1] != 10:
                            raise FramingError(f"missing CRLF after chunk data: {buf[end : end + 2]!r}")
                        out.append(buf[pos:end])
                        pos = end + 2
                    else:
                        self._remaining = size
                        state = _DATA
                elif state == _DATA:
                    take = min(self._remaining, n - pos)
                    out.append(buf[pos : pos + take] if take != n else buf)
                    pos += take
                    self._remaining -= take
                    if self._remaining == 0:
                        state = _DATA_END
                elif state == _DATA_END:
                    if n - pos < 2:
                        if buf[pos] != 13:
                            raise FramingError(f"missing CRLF after chunk data: {buf[pos:]!r}")
                        break
                    if buf[pos] != 13 or buf[pos + 1] != 10:
                        raise FramingError(f"missing CRLF after chunk data: {buf[pos : pos + 2]!r}")
                    pos += 2
                    state = _SIZE
                else:  # _TRAILER
                    eol = buf.find(b"\r\n", pos)
                    limit = self.max_trailer_bytes - self._trailer_bytes
                    if eol < 0:
                        if n - pos > limit + 1:  # + 1: the CR of the final blank line
                            raise FramingError(f"trailers longer than {self.max_trailer_bytes} bytes")
                        break
                    if eol == pos:
                        pos += 2
                        state = _DONE
                        self.unused = buf[pos:]
                        pos = n
                        break
                    if eol - pos + 2 > limit:
                        raise FramingError(f"trailers longer than {self.max_trailer_bytes} bytes")
                    self._trailer_bytes += eol - pos + 2
                    self._trailer(buf[pos:eol])
                    pos = eol + 2
        except FramingError:
            self._failed = True
            raise
        self._state = state
        if pos < n:
            self._buf = buf[pos:]
        if not out:
            return b""
        return out[0] if len(out) == 1 else b"".join(out)

    def eof(self) -> None:
        """The peer closed the connection: fine only after the last chunk and its trailers."""
        if self._state != _DONE:
            self._failed = True
            raise FramingError("peer closed connection without sending complete message body (incomplete chunked read)")

    def _chunk_size(self, line: bytes) -> int:
        semi = line.find(b";")
        if semi >= 0:
            ext = line[semi:]
            if ext.translate(None, _CTL) != ext:
                raise FramingError(f"illegal chunk extension: {ext[:100]!r}")
            line = line[:semi]
        digits = line.rstrip(b" \t")
        # int(x, 16) alone would accept "0x1f", "1_0", "+5" and surrounding whitespace.
        if not digits or len(digits) > 16 or digits.translate(None, _HEX):
            raise FramingError(f"illegal chunk size: {line[:100]!r}")
        return int(digits, 16)

    def _trailer(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        value = value.strip(b" \t")
        if not colon or not _is_token(name) or value.translate(None, _CTL) != value:
            raise FramingError(f"illegal trailer line: {line[:100]!r}")
        self.trailers.append((name, value))


class ContentLengthDecoder:
    """A body of exactly `length` bytes."""

    __slots__ = ("_remaining", "unused")

    def __init__(self, length: int) -> None:
        self._remaining = length
        self.unused = b""

    @property
    def done(self) -> bool:
        return self._remaining == 0

    def feed(self, data: bytes) -> bytes:
        remaining = self._remaining
        if len(data) <= remaining:
            self._remaining = remaining - len(data)
            return data
        self._remaining = 0
        self.unused += data[remaining:]
        return data[:remaining]

    def eof(self) -> None:
        if self._remaining:
            raise FramingError(
                f"peer closed connection without sending complete message body ({self._remaining} bytes missing)"
            )


class UntilCloseDecoder:
    """A body delimited by the peer closing the connection (no length, not chunked)."""

    __slots__ = ("_done",)

    unused = b""

    def __init__(self) -> None:
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, data: bytes) -> bytes:
        return data

    def eof(self) -> None:
        self._done = True


def decoder_for(framing: BodyFraming) -> BodyDecoder:
    """A fresh decoder for a body framed as `framing` says."""
    if framing.kind == "chunked":
        return ChunkedDecoder()
    if framing.kind == "close":
        return UntilCloseDecoder()
    return ContentLengthDecoder(framing.length)  # "length", or "none" as length 0
