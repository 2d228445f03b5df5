"""A sans-IO decoder for `text/event-stream` (the WHATWG server-sent events format).

Feed it bytes as they arrive, in pieces of any size; it returns the events completed by
those bytes. It follows the WHATWG parsing rules: `\\n`, `\\r\\n` and `\\r` end lines,
a leading BOM is dropped, `:` lines are comments, `event`/`data`/`id`/`retry` fields,
multi-line data joined by `\\n`, unknown fields ignored, an event with no data is not
dispatched.

Unlike openai-python's `SSEDecoder` ("without imposing a line or event size limit"),
it bounds what a peer can make it hold: an event (or a line still being received)
larger than `max_event_bytes` raises `WireError(kind="protocol")`, as h11 bounds its
incomplete-event buffer. Lines are decoded only once complete, so a multi-byte UTF-8
character split across reads is never mangled; invalid UTF-8 becomes U+FFFD, as the
standard says, and `invalid_utf8` records that it happened.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import WireError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "SSEEvent"]

DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024


class SSEEvent(NamedTuple):
    """One dispatched event. `event` is None when the stream gave no `event:` field."""

    event: str | None
    data: str
    id: str | None = None


class SSEDecoder:
    """Incremental event-stream decoder: `feed(bytes) -> list[SSEEvent]`, then `close()`."""

    __slots__ = (
        "_buf",
        "_data",
        "_data_bytes",
        "_event",
        "_started",
        "invalid_utf8",
        "last_event_id",
        "max_event_bytes",
        "retry",
        "comments",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._buf = b""
        self._data: list[str] = []
        self._data_bytes = 0
        self._event: str | None = None
        self._started = False
        #: True once any invalid UTF-8 was replaced by U+FFFD.
        self.invalid_utf8 = False
        #: The last `id:` value seen (the stream's reconnection id).
        self.last_event_id: str | None = None
        #: The last `retry:` value seen, in milliseconds.
        self.retry: int | None = None
        #: How many comment lines were seen (keep-alives such as `: OPENROUTER PROCESSING`).
        self.comments = 0

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Take the next bytes of the stream; return the events they complete."""
        buf = self._buf + data if self._buf else data
        events: list[SSEEvent] = []
        if not buf:
            return events
        if b"\r" in buf:
            # A trailing CR may be the first half of CRLF: keep it for the next read.
            hold = buf.endswith(b"\r")
            if hold:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if hold:
                buf += b"\r"
        end = buf.rfind(b"\n")
        if end < 0:
            self._buf = buf
            self._check_pending()
            return events
        self._buf = buf[end + 1 :]
        lines = buf[:end].split(b"\n")
        for line in lines:
            self._line(line, events)
        self._check_pending()
        return events

    def close(self) -> list[SSEEvent]:
        """Signal end of stream. An unterminated last line counts as a line; a last event
        without its blank line is dropped, as the standard requires."""
        events: list[SSEEvent] = []
        buf, self._buf = self._buf, b""
        if buf:
            if buf.endswith(b"\r"):
                buf = buf[:-1]
            for line in buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
                self._line(line, events)
        self._data = []
        self._data_bytes = 0
        self._event = None
        return events

    @property
    def pending_bytes(self) -> int:
        """Bytes held for an event that is not complete yet."""
        return len(self._buf) + self._data_bytes

    # --- internals ---------------------------------------------------------------

    def _check_pending(self) -> None:
        if len(self._buf) + self._data_bytes > self.max_event_bytes:
            size = len(self._buf) + self._data_bytes
            self._buf = b""
            self._data = []
            self._data_bytes = 0
            raise WireError(
                f"server-sent event larger than max_event_bytes={self.max_event_bytes} "
                f"({size} bytes received without an event boundary)",
                kind="protocol",
            )

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.invalid_utf8 = True
            return raw.decode("utf-8", errors="replace")

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not self._started:
            self._started = True
            if line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
        if not line:
            if self._data:
                data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
                events.append(SSEEvent(self._event, data, self.last_event_id))
                self._data = []
                self._data_bytes = 0
            self._event = None
            return
        if line.startswith(b"data:"):
            raw = line[6:] if line.startswith(b"data: ") else line[5:]
            self._data.append(self._decode(raw))
            self._data_bytes += len(raw) + 1
            if self._data_bytes > self.max_event_bytes:
                self._check_pending()
            return
        if line[0] == 0x3A:  # ":" starts a comment
            self.comments += 1
            return
        name_raw, colon, value_raw = line.partition(b":")
        if colon and value_raw.startswith(b" "):
            value_raw = value_raw[1:]
        name = self._decode(name_raw)
        value = self._decode(value_raw)
        if name == "data":  # "data" with no colon: an empty data line
            self._data.append(value)
            self._data_bytes += 1
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isdigit() and value.isascii():
                self.retry = int(value)
