"""A sans-IO decoder for `text/event-stream` (the WHATWG server-sent events format).

Feed it bytes as they arrive, in pieces of any size (`feed_into(data, out)`); it appends
to `out` the events completed by those bytes. It follows the WHATWG parsing rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
`\\n`, `\\r\\n` and `\\r` end lines, one leading BOM is dropped, `:` lines are comments,
`event`/`data`/`id`/`retry` fields, multi-line data joined by `\\n`, unknown fields
ignored, an event whose data buffer is empty is not dispatched, and an event left
without its blank line at end of stream is discarded (there is no end-of-stream call:
what the decoder holds then is never dispatched, and goes with the decoder).

A CR ends its line at once (the event it completes is dispatched without waiting for
the next read); an LF that follows it, even in the next read, is then skipped, as
httpx's `LineDecoder` and openai-python's `_SSELineDecoder` do. Every feed costs time
linear in its own length: held bytes are never rescanned.

Unlike openai-python's `SSEDecoder` ("without imposing a line or event size limit"),
it bounds what a peer can make it hold, as h11 bounds its incomplete-event buffer:
when the raw lines of one event (including a line still being received) exceed
`max_event_bytes`, it raises `WireError(kind="protocol")` right after the events before
it (which stay in `out`), drops what it held, and refuses further input: every later
call raises `failed_earlier(error)`, as the stream decoders of `wire/base.py` do. The
check depends only on the byte stream, not on how it was split, so every split of the
same bytes fails at the same line.

Lines are decoded only once complete, so a multi-byte UTF-8 character split across
reads is never mangled; invalid UTF-8 becomes U+FFFD, as the standard says, and
`invalid_utf8` records that it happened.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import WireError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "SSEEvent", "SSEItem", "failed_earlier"]

DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"


class SSEEvent(NamedTuple):
    """One dispatched event. `event` is None when the stream gave no (or an empty) `event:` field."""

    event: str | None
    data: str
    id: str | None = None


def failed_earlier(error: WireError) -> WireError:
    """What every decoder raises when called again after `error` failed it (errors are
    sticky): a new error that says so, with the kind, status, retryability and type of
    the first. (Here, in the module every other one of `wire/` builds on.)"""
    return WireError(
        f"the stream failed earlier: {error.message}",
        kind=error.kind,
        status=error.status,
        retryable=error.retryable,
        error_type=error.error_type,
    )


#: What `SSEDecoder.feed_items_into` hands out: an event with no `event:` name as its data
#: string alone, any other as an `SSEEvent`.
SSEItem = str | SSEEvent


class SSEDecoder:
    """Incremental event-stream decoder: `feed_into(data, events)` appends the events that
    `data` completes, to a list the caller owns (so the events completed before a
    `WireError` in the same read are kept); `feed_items_into` is its faster twin.
    """

    __slots__ = (
        "_bare",
        "_data",
        "_event",
        "_event_bytes",
        "_failed",
        "_line",
        "_skip_lf",
        "_started",
        "comments",
        "invalid_utf8",
        "last_event_id",
        "max_event_bytes",
        "retry",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._line = bytearray()  # the line being received, without its terminator
        self._skip_lf = False  # the last read ended in CR: an LF next is the rest of that CRLF
        self._started = False  # a line was seen, so a BOM is no longer "leading"
        self._data: list[str] = []
        self._event: str | None = None
        self._event_bytes = 0  # raw bytes (with terminators) of the lines of the current event
        self._failed: WireError | None = None
        self._bare = False  # this feed hands nameless events out as bare strings
        #: True once any invalid UTF-8 was replaced by U+FFFD.
        self.invalid_utf8 = False
        #: The last `id:` value seen (the stream's reconnection id).
        self.last_event_id: str | None = None
        #: The last `retry:` value seen, in milliseconds.
        self.retry: int | None = None
        #: How many comment lines were seen (keep-alives such as `: OPENROUTER PROCESSING`).
        self.comments = 0

    def feed_into(self, data: bytes, events: list[SSEEvent]) -> None:
        """Take the next bytes of the stream; append to `events` the events they complete.
        On `WireError`, `events` holds those completed before it."""
        self._bare = False
        self._feed(data, events)  # type: ignore[arg-type]  # with _bare off, only SSEEvents

    def feed_items_into(self, data: bytes, items: list[SSEItem]) -> None:
        """Like `feed_into`, but an event with no `event:` name (the `data:`-only events that
        make up most streams) is appended as its data string alone, not wrapped in an
        `SSEEvent`; its id, if the stream uses ids, is `last_event_id` when it is handed out."""
        self._bare = True
        self._feed(data, items)

    def _feed(self, data: bytes, events: list[SSEItem]) -> None:
        if self._failed is not None:
            raise failed_earlier(self._failed) from self._failed
        if not data:
            return
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 0x0A:
                data = data[1:]
                if not data:
                    return
        if not self._started and not self._line:
            # The BOM can only lead the stream: settle it here, so the first read (often the
            # whole of a short reply) can take the fast path too.
            if data.startswith(_BOM):
                data = data[3:]
                self._event_bytes += 3  # the raw length is what the limit counts
                self._started = True
            elif len(data) >= 3 or not _BOM.startswith(data):
                self._started = True
        try:
            if not data:
                pass
            elif self._started and b"\r" not in data:
                if self._line or self._data:
                    # Finish the event a previous read left open, line by line; what follows
                    # starts on an event boundary and can take the fast path.
                    cut = self._open_event_end(data)
                    self._feed_lines(data[:cut], events)
                    data = data[cut:]
                if data:
                    self._feed_blocks(data, events)
            else:
                self._feed_lines(data, events)
            if self._event_bytes + len(self._line) > self.max_event_bytes:
                raise self._too_big(self._event_bytes + len(self._line))
        except WireError as exc:
            self._fail(exc)
            raise

    def _open_event_end(self, data: bytes) -> int:
        """Where, in `data`, the event left open by the previous read ends (len(data) if not here)."""
        if not self._line and data[0] == 0x0A:
            return 1  # the previous read ended its last line; this byte is the blank line
        end = data.find(b"\n\n")
        return len(data) if end < 0 else end + 2

    def _feed_blocks(self, data: bytes, events: list[SSEItem]) -> None:
        """The hot path, for LF-only input arriving on an event boundary: decode the complete
        events of the read at once, split them, and take each that is a single `data: ` line
        whole, without going line by line. (A character cut by the end of the read is in the
        unfinished last event, which goes line by line; so does a read with invalid UTF-8 in
        its complete events, each line getting its own U+FFFD replacements.)"""
        tail = b""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            end = data.rfind(b"\n\n")
            end = end + 2 if end >= 0 else 0
            try:
                text = data[:end].decode("utf-8")  # "\n\n" never falls inside a character
            except UnicodeDecodeError:  # invalid UTF-8 (rare): line by line, each line decoded on its own
                self._feed_lines(data, events)
                return
            tail = data[end:]
        blocks = text.split("\n\n")
        rest = blocks.pop()
        limit = self.max_event_bytes
        bare = self._bare
        append = events.append
        # Nothing held from an earlier line (the usual state between events): a bare feed
        # hands a lone `data: ` line out as it is, with no state to read or reset.
        clean = bare and not self._data and not self._event and not self._event_bytes
        for block in blocks:
            if clean and len(block) > 6 and block.startswith("data: ") and "\n" not in block:
                if 4 * len(block) + 1 > limit:  # it might be too big: count its bytes
                    size = len(block.encode("utf-8")) + 1
                    if size > limit:
                        raise self._too_big(size)
                append(block[6:])
                continue
            if len(block) > 6 and block.startswith("data: ") and "\n" not in block and not self._data:
                size = self._event_bytes + len(block) + 1  # as the line-by-line path counts it...
                if size + 3 * len(block) > limit:  # ... in bytes: a character is 1 to 4 of them
                    size = self._event_bytes + len(block.encode("utf-8")) + 1
                    if size > limit:
                        raise self._too_big(size)
                if bare and not self._event:
                    events.append(block[6:])
                else:
                    events.append(SSEEvent(self._event or None, block[6:], self.last_event_id))
                    self._event = None
                self._event_bytes = 0
            elif block.startswith("event: ") and not self._data and self._named_event(block, events):
                pass  # Anthropic's shape: "event: <name>" then one "data: " line
            else:
                self._feed_lines((block + "\n\n").encode("utf-8"), events)
            clean = bare and not self._data and not self._event and not self._event_bytes
        # The unfinished last event: `rest` and, when a character was cut by the end of the
        # read, `tail` too. Both can be there: in "\n\n\n" rfind's last "\n\n" is not split's.
        if rest or tail:
            self._feed_lines(rest.encode("utf-8") + tail, events)

    def _named_event(self, block: str, events: list[SSEItem]) -> bool:
        """Dispatch `block` if it is exactly an `event: ` line and a non-empty `data: ` line;
        else return False (and change nothing) for the line-by-line path to take it."""
        first, _, second = block.partition("\n")
        if not second.startswith("data: ") or len(second) == 6 or "\n" in second:
            return False
        limit, held = self.max_event_bytes, self._event_bytes
        for end in (len(first), len(block)):  # the limit is checked after each line, as line by line
            if held + 4 * end + 1 > limit:  # it might be exceeded: count the bytes
                size = held + len(block[:end].encode("utf-8")) + 1
                if size > limit:
                    raise self._too_big(size)
        name = first[7:]
        if self._bare and not name:
            events.append(second[6:])
        else:
            events.append(SSEEvent(name or None, second[6:], self.last_event_id))
        self._event = None
        self._event_bytes = 0
        return True

    def _feed_lines(self, data: bytes, events: list[SSEItem]) -> None:
        if b"\r" in data:
            # A CR at the very end is a whole line end already; remember to skip an LF after it.
            self._skip_lf = data[-1] == 0x0D
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in data:
            self._line += data
            return
        lines = data.split(b"\n")
        tail = lines.pop()
        if self._line:
            self._line += lines[0]
            lines[0] = bytes(self._line)
            self._line.clear()
        for line in lines:
            self._process(line, events)
        self._line += tail

    @property
    def pending_bytes(self) -> int:
        """Bytes held for an event that is not complete yet (raw line bytes, terminators included)."""
        return self._event_bytes + len(self._line)

    # --- internals ---------------------------------------------------------------

    def _reset(self) -> None:
        self._line = bytearray()
        self._skip_lf = False
        self._data = []
        self._event = None
        self._event_bytes = 0

    def _fail(self, exc: WireError) -> None:
        self._failed = exc
        self._reset()

    def _too_big(self, size: int) -> WireError:
        return WireError(
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

    def _process(self, line: bytes, events: list[SSEItem]) -> None:
        if not self._started:
            self._started = True
            if line.startswith(_BOM):
                self._event_bytes += 3  # the raw length is what the limit counts
                line = line[3:]
        if not line:
            data = self._data
            # WHATWG: dispatch only if the data buffer is non-empty (one empty `data:` line is empty).
            if data and (len(data) > 1 or data[0]):
                value = data[0] if len(data) == 1 else "\n".join(data)
                if self._bare and not self._event:
                    events.append(value)
                else:
                    events.append(SSEEvent(self._event or None, value, self.last_event_id))
            self._data = []
            self._event = None
            self._event_bytes = 0
            return
        self._event_bytes += len(line) + 1
        if self._event_bytes > self.max_event_bytes:
            raise self._too_big(self._event_bytes)
        if line.startswith(b"data:"):  # the hot path
            self._data.append(self._decode(line[6:] if line.startswith(b"data: ") else line[5:]))
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
        elif name == "event":
            self._event = value
        elif name == "id" and "\x00" not in value:  # an id with NUL is ignored
            self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():  # else ignored
            self.retry = int(value)
