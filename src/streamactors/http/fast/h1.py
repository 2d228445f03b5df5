"""Sans-IO HTTP/1.1, client side: encode a request head, read a response head, choose the body framing.

Nothing here touches a socket, trio or httpx. `ResponseHeadReader.feed(bytes)` returns the
final response head once its blank line has arrived (interim 1xx heads are skipped) and
keeps the bytes after it in `unused`; `body_framing()` then says how the body is delimited
(RFC 9112 section 6.3) and whether the connection may be reused afterwards.

The grammar accepted is h11's (python-hyper/h11:`h11/_abnf.py`): `HTTP/d.d SP 3DIGIT [SP reason]`,
`token ":" OWS value OWS`, lines ending in CRLF or a bare LF, obsolete line folding joined with a
space. Header values may not hold control characters other than HTAB. Like h11, only
`Transfer-Encoding: chunked` is supported, and differing `Content-Length` values are rejected.
Every violation raises `FramingError`, which the transport maps to `httpx.RemoteProtocolError`.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "DEFAULT_MAX_HEAD_BYTES",
    "BodyFraming",
    "FramingError",
    "ResponseHead",
    "ResponseHeadReader",
    "body_framing",
    "encode_request_head",
    "parse_response_head",
]

#: The largest response head accepted (httpcore passes h11 the same 100 KiB).
DEFAULT_MAX_HEAD_BYTES = 100 * 1024

_TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Control characters forbidden in a field value, a reason phrase or a chunk extension (HTAB is allowed).
_CTL = bytes(c for c in range(32) if c != 9) + b"\x7f"
_DIGITS = b"0123456789"


class FramingError(Exception):
    """The peer's bytes break HTTP/1.1 message syntax or framing (a remote protocol error)."""


class ResponseHead(NamedTuple):
    """A parsed response head. `headers` keep the peer's name casing, in order."""

    http_version: bytes  # b"HTTP/1.1" or b"HTTP/1.0"
    status_code: int
    reason_phrase: bytes
    headers: list[tuple[bytes, bytes]]


class BodyFraming(NamedTuple):
    """How a response body is delimited: kind is "none", "length", "chunked" or "close"."""

    kind: str
    length: int = 0
    #: May the connection carry another request once this body is fully read?
    keep_alive: bool = True


def _is_token(name: bytes) -> bool:
    return bool(name) and not name.translate(None, _TCHAR)


def encode_request_head(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """`METHOD target HTTP/1.1` and the header lines, validated so that no value can inject a line.

    Raises `ValueError` for a method or header name that is not a token, or a target or value
    holding a control character (as h11's `LocalProtocolError`)."""
    if not _is_token(method):
        raise ValueError(f"illegal request method {method!r}")
    if not target or target.translate(None, _CTL + b" ") != target:
        raise ValueError(f"illegal request target {target!r}")
    # Validate all names, then all values, in one scan each (the common case is clean).
    names = b"".join([name for name, _ in headers])
    values = b"".join([value for _, value in headers])
    if names.translate(None, _TCHAR) or not all(name for name, _ in headers):
        bad = next(name for name, _ in headers if not _is_token(name))
        raise ValueError(f"illegal header name {bad!r}")
    if b"\r" in values or b"\n" in values or b"\x00" in values:
        bad = next(v for _, v in headers if b"\r" in v or b"\n" in v or b"\x00" in v)
        raise ValueError(f"illegal header value {bad!r}")
    lines = b"".join([name + b": " + value + b"\r\n" for name, value in headers])
    return method + b" " + target + b" HTTP/1.1\r\n" + lines + b"\r\n"


def _split_lines(head: bytes) -> list[bytes]:
    """The lines of `head`, each ended by LF or CRLF (a CR before the LF is dropped)."""
    if head.count(b"\n") == head.count(b"\r\n"):  # CRLF throughout, as servers send it
        return (head[:-1] if head.endswith(b"\r") else head).split(b"\r\n")
    return [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse a response head (status line and header lines, without the blank line)."""
    status_line, *lines = _split_lines(head)
    version = status_line[:8]
    if (
        len(status_line) < 12
        or version[:7] != b"HTTP/1."
        or version[7:8] not in (b"0", b"1")
        or status_line[8:9] != b" "
        or status_line[9:12].translate(None, _DIGITS)
    ):
        raise FramingError(f"illegal status line: {status_line[:200]!r}")
    reason = b""
    if len(status_line) > 12:
        if status_line[12:13] != b" ":
            raise FramingError(f"illegal status line: {status_line[:200]!r}")
        reason = status_line[13:]
        if reason.translate(None, _CTL) != reason:
            raise FramingError(f"illegal reason phrase: {reason[:200]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            # Obsolete line folding: RFC 9112 section 5.2 says to replace it with a space.
            if not headers:
                raise FramingError("continuation line before the first header")
            name, value = headers[-1]
            headers[-1] = (name, (value + b" " + line.strip(b" \t")).strip(b" \t"))
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name:
            raise FramingError(f"illegal header line: {line[:200]!r}")
        headers.append((name, value.strip(b" \t")))
    # Validate all names, then all values, in one scan each (the common case is clean).
    if b"".join([name for name, _ in headers]).translate(None, _TCHAR):
        bad = next(name for name, _ in headers if not _is_token(name))
        raise FramingError(f"illegal header name: {bad[:200]!r}")
    values = b"".join([value for _, value in headers])
    if values.translate(None, _CTL) != values:
        bad = next(name for name, value in headers if value.translate(None, _CTL) != value)
        raise FramingError(f"illegal header value for {bad!r}")
    return ResponseHead(version, int(status_line[9:12]), reason, headers)


#: The headers that frame a body, each to its place in `_framing_tokens`'s lists.
_FRAMING_HEADERS = {b"connection": 0, b"transfer-encoding": 1, b"content-length": 2}


def _framing_tokens(headers: list[tuple[bytes, bytes]]) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The comma-separated values of every Connection, Transfer-Encoding and Content-Length
    header, lower-cased and stripped, in one pass over the headers."""
    found: tuple[list[bytes], list[bytes], list[bytes]] = ([], [], [])
    where = _FRAMING_HEADERS.get
    for name, value in headers:
        i = where(name.lower())
        if i is not None:
            found[i].extend(v.strip(b" \t").lower() for v in value.split(b","))
    return found


def body_framing(head: ResponseHead, request_method: bytes) -> BodyFraming:
    """The framing of the body that follows `head`, per RFC 9112 section 6.3."""
    connection, transfer, lengths = _framing_tokens(head.headers)
    keep_alive = head.http_version == b"HTTP/1.1" and b"close" not in connection
    status = head.status_code
    if request_method == b"HEAD" or status in (204, 304) or 100 <= status < 200:
        return BodyFraming("none", 0, keep_alive)
    if transfer:
        if transfer != [b"chunked"]:
            raise FramingError(f"unsupported transfer-encoding: {b', '.join(transfer)!r}")
        # Transfer-Encoding overrides Content-Length, but such a message may be smuggling:
        # read it, then close the connection (RFC 9112 section 6.3, item 3).
        return BodyFraming("chunked", 0, keep_alive and not lengths)
    if lengths:
        first = lengths[0]
        if not first or first.translate(None, _DIGITS) or len(first) > 18 or any(v != first for v in lengths):
            raise FramingError(f"illegal content-length: {b', '.join(lengths)!r}")
        length = int(first)
        return BodyFraming("length" if length else "none", length, keep_alive)
    return BodyFraming("close", 0, False)


class ResponseHeadReader:
    """Buffers bytes until a final (non-1xx) response head is complete.

    `feed(data)` returns the `ResponseHead`, or None while more bytes are needed; after a
    head is returned, `unused` holds the bytes that followed it (the start of the body).
    Interim 1xx heads (100 Continue, 103 Early Hints) are skipped and kept in `informational`;
    101 Switching Protocols is refused, since nothing here can speak the new protocol.
    """

    __slots__ = ("_buf", "_scanned", "informational", "max_head_bytes", "unused")

    def __init__(self, max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES) -> None:
        self.max_head_bytes = max_head_bytes
        self._buf = b""
        self._scanned = 0  # where the search for the blank line resumes
        self.unused = b""
        self.informational: list[ResponseHead] = []

    @property
    def pending_bytes(self) -> int:
        """Bytes held for a head that is not complete yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> ResponseHead | None:
        buf = self._buf + data if self._buf else data
        while True:
            end, body_start = self._find_blank_line(buf)
            if end < 0:
                if len(buf) > self.max_head_bytes:
                    raise FramingError(f"response head larger than {self.max_head_bytes} bytes")
                self._buf = buf
                self._scanned = max(0, len(buf) - 3)
                return None
            if end > self.max_head_bytes:
                raise FramingError(f"response head larger than {self.max_head_bytes} bytes")
            head = parse_response_head(buf[:end])
            buf = buf[body_start:]
            self._scanned = 0
            if head.status_code >= 200:
                self._buf = b""
                self.unused = buf
                return head
            if head.status_code == 101:
                raise FramingError("101 Switching Protocols is not supported by this transport")
            self.informational.append(head)

    def _find_blank_line(self, buf: bytes) -> tuple[int, int]:
        """(end of the head, start of what follows) or (-1, -1); accepts CRLF and bare LF (as h11)."""
        start = self._scanned
        crlf = buf.find(b"\n\r\n", start)
        lf = buf.find(b"\n\n", start)
        if crlf < 0 and lf < 0:
            return -1, -1
        if lf < 0 or 0 <= crlf < lf:
            return crlf, crlf + 3
        return lf, lf + 2
