"""What the fake upstream says, independent of any wire format.

A `Scenario` (parsed from the requested model id) becomes a list of abstract `Step`s:
text and reasoning tokens, tool calls, usage, a finish, and the faults to inject.
Each provider format then renders those steps into its exact bytes
(`streamactors.testing.formats`). Tokens are deterministic, so a consumer can check
each one as it arrives without storing the stream: token i is `token_text(i)`.

Scenario syntax: options follow the model name, each after a `~`:
`gpt-4o~tokens=100~ttft_ms=5~delay_ms=1~fail=midstream@50`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Any

import attrs

from .frames import encode_frame

__all__ = [
    "UNICODE_WORDS",
    "CitationStep",
    "Delay",
    "Drop",
    "Finish",
    "MidStreamError",
    "Raw",
    "Reasoning",
    "Reset",
    "Scenario",
    "Step",
    "Text",
    "ToolCallStep",
    "TruncatedChunk",
    "UnknownEvent",
    "Usage",
    "WrongShape",
    "build_steps",
    "citation_for",
    "parse_scenario",
    "token_text",
]

UNICODE_WORDS = ("héllo", "wörld", "日本語", "🎉", "naïve", "Ωmega", "✓")


def token_text(i: int, unicode: bool = False) -> str:
    """The text of generated token `i`: "t0 ", "t1 ", ... (or words with multi-byte characters)."""
    if unicode:
        return f"{UNICODE_WORDS[i % len(UNICODE_WORDS)]}{i} "
    return f"t{i} "


@attrs.frozen
class Scenario:
    """How one fake response behaves. Every field can be set from the model id."""

    model: str = "fake-model"
    tokens: int = 20
    tokens_per_chunk: int = 1
    ttft_ms: float = 0.0
    delay_ms: float = 0.0
    reasoning: int = 0
    tool_calls: int = 0
    unicode: bool = False
    finish: str = "stop"  # "stop" | "length" | "content_filter"
    input_tokens: int = 10  # every input token, cached ones included
    # Of the input tokens, how many the provider's prompt cache served and how many it stored;
    # each format reports them in its own fields (only when asked: 0 means not reported).
    cache_read: int = 0
    cache_write: int = 0
    # Sources the reply cites, sent in each format's own way at the end of the reply (in its
    # last chunk where the provider does so): source i is `citation_for(i)`.
    citations: int = 0
    # Faults: "status:<code>" before the body; "midstream" (an in-band error event);
    # "drop" (connection closed mid-body); "truncate" (body ends without its terminator);
    # "garbage" (invalid JSON in an event); "hang" (stop sending, keep the socket open).
    # Adversarial ones: "endless" (one event that never ends: 1 GiB with no line break);
    # "drip" (one byte every `drip_ms`, never completing an event); "badchunk" (a chunk
    # promising more bytes than are sent, then close); "reset" (TCP RST: SO_LINGER 0);
    # "badcrc" / "hugeframe" (a Bedrock event-stream frame with a bad CRC / an absurd
    # declared length); "badshape" (a text delta whose text is a number); and, replacing
    # the response head, "html200" (an HTML page with status 200), "json200" (a JSON
    # error body with status 200), "ctype" (the stream sent as text/plain).
    fail: str | None = None
    fail_at: int = 0
    retry_after: float | None = None
    # With a status fault, quota headers in the provider's own names (OpenAI's
    # x-ratelimit-*-tokens, Anthropic's anthropic-ratelimit-tokens-*): this many tokens
    # remaining, full again after `quota_reset_ms`.
    quota_tokens: int | None = None
    quota_reset_ms: float = 0.0
    # After a body fault's bytes, keep the connection open and send nothing more (as an
    # upstream that stalls after a malformed event does): the client must not wait for more.
    hold: bool = False
    # Harmless injections before every token from `inject_at` on (`inject=unknown@3`):
    # "unknown" (an event type no decoder knows), "badutf8" (a text delta holding an
    # invalid UTF-8 byte; SSE formats only).
    inject: str | None = None
    inject_at: int = 0
    drip_ms: float = 1000.0
    gzip: bool = False  # send the body with Content-Encoding: gzip
    # With echo_auth, error messages repeat the request's credentials (as some real
    # upstreams do); the server fills `echo` from the request headers.
    echo_auth: bool = False
    echo: str = ""

    @property
    def fail_status(self) -> int | None:
        if self.fail and self.fail.startswith("status:"):
            return int(self.fail.split(":", 1)[1])
        return None


_FIELDS = {f.name: f for f in attrs.fields(Scenario)}
#: The fields that may be None, and how to read them when given.
_OPTIONAL_NUMBERS: dict[str, type[int] | type[float]] = {"retry_after": float, "quota_tokens": int}


def parse_scenario(model: str, defaults: Scenario | None = None) -> Scenario:
    """Parse `name~key=value~...`. Unknown keys are ignored; `fail=midstream@50` sets fail_at."""
    base = defaults or Scenario()
    name, *opts = model.split("~")
    changes: dict[str, Any] = {"model": name}
    for opt in opts:
        key, _, value = opt.partition("=")
        if key in ("fail", "inject") and "@" in value:
            value, _, at = value.partition("@")
            changes[f"{key}_at"] = int(at)
        field = _FIELDS.get(key)
        if field is None:
            continue
        if field.type in ("int", int):
            changes[key] = int(value)
        elif field.type in ("float", float):
            changes[key] = float(value)
        elif field.type in ("bool", bool):
            changes[key] = value.lower() in ("1", "true", "yes")
        elif key in _OPTIONAL_NUMBERS:
            changes[key] = _OPTIONAL_NUMBERS[key](value)
        else:
            changes[key] = value
    return attrs.evolve(base, **changes)


# --- steps ---------------------------------------------------------------------------


@attrs.frozen
class Text:
    text: str


@attrs.frozen
class Reasoning:
    text: str


@attrs.frozen
class ToolCallStep:
    """A whole tool call; formats that stream arguments split `arguments` into `pieces`."""

    index: int
    id: str
    name: str
    arguments: str
    pieces: tuple[str, ...]


@attrs.frozen
class Usage:
    input_tokens: int  # every input token, cached ones included
    output_tokens: int  # reasoning included
    reasoning_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@attrs.frozen
class CitationStep:
    """A source the reply cites."""

    url: str
    title: str
    cited_text: str


def citation_for(i: int) -> CitationStep:
    """The fake upstream's cited source number `i`."""
    return CitationStep(f"https://example.com/source/{i}", f"Source {i}", f"cited passage {i}")


@attrs.frozen
class Finish:
    reason: str  # "stop" | "length" | "tool_calls" | "content_filter"


@attrs.frozen
class MidStreamError:
    message: str
    error_type: str = "overloaded_error"
    status: int = 529


@attrs.frozen
class Delay:
    seconds: float


@attrs.frozen
class Drop:
    """Close the connection abruptly, mid-body."""


@attrs.frozen
class Raw:
    """Bytes to send as they are (malformed-input injection)."""

    data: bytes


# The steps below subclass Drop and Delay, which every format passes through to the
# server untouched; the server then acts on the subclass.


@attrs.frozen
class TruncatedChunk(Drop):
    """Send a chunk header promising `declared` bytes, then only `data`, then close."""

    data: bytes
    declared: int


@attrs.frozen
class Reset(Drop):
    """Abort the connection with a TCP reset (SO_LINGER 0, then close)."""


@attrs.frozen
class UnknownEvent(Delay):
    """An event of a type no decoder knows (with no delay); the server renders it in the
    response's format."""

    name: str = "x_future_event"


@attrs.frozen
class WrongShape(Delay):
    """A text delta whose text is a JSON number (with no delay); the server renders it in
    the response's format."""


Step = Text | Reasoning | ToolCallStep | CitationStep | Usage | Finish | MidStreamError | Delay | Drop | Raw

#: `inject=badutf8` text carries this character; the server swaps its UTF-8 bytes for 0xFF.
BAD_UTF8_MARK = "\uffff"
BAD_UTF8_TEXT = f"bad{BAD_UTF8_MARK}byte "
#: How many 64 KiB blocks `fail=endless` sends: 1 GiB, far more than any event limit.
ENDLESS_BLOCKS = 16384


def _tool_args(i: int) -> str:
    return f'{{"city": "Paris {i}", "units": "celsius", "days": {i + 1}}}'


def _pieces(s: str, n: int = 4) -> tuple[str, ...]:
    step = max(1, len(s) // n)
    return tuple(s[k : k + step] for k in range(0, len(s), step))


def build_steps(sc: Scenario) -> Iterator[Step]:
    """The abstract reply for `sc`, faults included (HTTP-status faults are the server's)."""
    if sc.ttft_ms:
        yield Delay(sc.ttft_ms / 1000)
    delay = Delay(sc.delay_ms / 1000) if sc.delay_ms else None
    for i in range(sc.reasoning):
        yield Reasoning(token_text(i, sc.unicode))
        if delay:
            yield delay
    per = max(1, sc.tokens_per_chunk)
    i = 0
    while i < sc.tokens:
        if sc.fail is not None and i >= sc.fail_at and sc.fail_status is None:
            yield from _fault(sc)
            return
        if sc.inject is not None and i >= sc.inject_at:
            yield from _injection(sc)
        n = min(per, sc.tokens - i)
        if sc.fail is not None and sc.fail_status is None and i + n > sc.fail_at:
            n = max(1, sc.fail_at - i)
        yield Text("".join(token_text(k, sc.unicode) for k in range(i, i + n)))
        i += n
        if delay and i < sc.tokens:
            yield delay
    faulty = sc.fail is not None and sc.fail_status is None
    if faulty and not (sc.tool_calls and sc.fail_at >= sc.tokens):
        yield from _fault(sc)
        return
    for t in range(sc.tool_calls):
        args = _tool_args(t)
        yield ToolCallStep(t, f"call_{t:04d}", "get_weather", args, _pieces(args))
    if faulty:  # fail_at at or past the text: the fault comes after the tool calls
        yield from _fault(sc)
        return
    finish = "tool_calls" if sc.tool_calls and sc.finish == "stop" else sc.finish
    for c in range(sc.citations):
        yield citation_for(c)
    yield Usage(sc.input_tokens, sc.tokens + sc.reasoning, sc.reasoning, sc.cache_read, sc.cache_write)
    yield Finish(finish)


def _injection(sc: Scenario) -> Iterator[Step]:
    if sc.inject == "unknown":
        yield UnknownEvent(0.0)
    elif sc.inject == "badutf8":
        yield Text(BAD_UTF8_TEXT)


def _fault(sc: Scenario) -> Iterator[Step]:
    yield from _fault_steps(sc)
    if sc.hold:
        yield Delay(3600.0)


def _fault_steps(sc: Scenario) -> Iterator[Step]:
    if sc.fail == "midstream":
        yield MidStreamError("Overloaded (injected mid-stream fault)" + (f": {sc.echo}" if sc.echo else ""))
    elif sc.fail == "drop":
        yield Drop()
    elif sc.fail == "truncate":
        return
    elif sc.fail == "garbage":
        yield Raw(b"data: {not json\n\n")
    elif sc.fail == "hang":
        yield Delay(3600.0)
    else:
        yield from _adversarial_fault(sc)


def _adversarial_fault(sc: Scenario) -> Iterator[Step]:
    if sc.fail == "endless":
        yield Raw(b'data: {"never": "')
        block = b"x" * 65536
        for _ in range(ENDLESS_BLOCKS):
            yield Raw(block)
    elif sc.fail == "drip":
        for _ in range(1_000_000):
            yield Raw(b"x")
            yield Delay(sc.drip_ms / 1000)
    elif sc.fail == "badchunk":
        yield TruncatedChunk(b"data: {", 4096)  # under 12 bytes: not even a Bedrock prelude
    elif sc.fail == "reset":
        yield Reset()
    elif sc.fail == "badshape":
        yield WrongShape(0.0)
    elif sc.fail in ("badcrc", "hugeframe"):
        if sc.fail == "badcrc":
            frame = bytearray(encode_frame({":event-type": "contentBlockDelta", ":message-type": "event"}, b"{}"))
            frame[-1] ^= 0xFF
            yield Raw(bytes(frame))
        else:
            head = struct.pack("!II", 0xFFFF_FFF0, 0)
            yield Raw(head + struct.pack("!I", zlib.crc32(head)) + b"\0" * 64)
