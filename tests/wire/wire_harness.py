"""Shared helpers of the wire tests: fixture loading, splitting bytes, decoding to plain dicts,
and `feed`/`close`, which call a decoder's `feed_into`/`close_into` on a fresh list and
return it (the decoders' one contract; see `StreamDecoder` in `streamactors.wire.base`).

A decode result is a list of dicts, one per event, `{"type": ..., **fields}` as in the
fixtures' `*.json` files; a `WireError` ends the list as
`{"type": "error", "kind", "status", "retryable", "error_type", "message"}`.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
import pytest

from streamactors.errors import WireError
from streamactors.models import (
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallEvent,
    UsageEvent,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


class Feeds(Protocol):
    def feed_into(self, data: bytes, out: list[Any]) -> None: ...


class IntoDecoder(Feeds, Protocol):
    def close_into(self, out: list[Any]) -> None: ...


def feed(dec: Feeds, data: bytes) -> list[Any]:
    """`dec.feed_into(data, out)` on a fresh list: the events `data` completes."""
    out: list[Any] = []
    dec.feed_into(data, out)
    return out


def close(dec: IntoDecoder) -> list[Any]:
    """`dec.close_into(out)` on a fresh list: the last events."""
    out: list[Any] = []
    dec.close_into(out)
    return out


def transcripts(prefix: str) -> list[Path]:
    return sorted(FIXTURES.glob(f"{prefix}_*.sse"))


def load(path: Path) -> tuple[bytes, list[dict[str, Any]]]:
    """(transcript bytes, expected events) of one fixture."""
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    return path.read_bytes(), expected


def event_dicts(events: Iterable[StreamEvent]) -> list[dict[str, Any]]:
    return [{"type": ev.type, **attrs.asdict(ev)} for ev in events]


def error_dict(exc: WireError, *, message: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": "error",
        "kind": exc.kind,
        "status": exc.status,
        "retryable": exc.retryable,
        "error_type": exc.error_type,
    }
    if message:
        d["message"] = exc.message
    return d


def decode(
    factory: Callable[[], IntoDecoder], pieces: Iterable[bytes], *, message: bool = True
) -> list[dict[str, Any]]:
    """Feed `pieces` then close; the events, ended by the error if one was raised.

    Uses `feed_into`/`close_into`, so events decoded before an error in the same read count.
    """
    dec = factory()
    out: list[StreamEvent] = []
    try:
        for piece in pieces:
            dec.feed_into(piece, out)
        dec.close_into(out)
    except WireError as exc:
        return [*event_dicts(out), error_dict(exc, message=message)]
    return event_dicts(out)


def split_at(data: bytes, offsets: Sequence[int]) -> list[bytes]:
    bounds = [0, *offsets, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def every_split(data: bytes) -> Iterator[list[bytes]]:
    """`data` cut in two at every offset, empty halves included."""
    for k in range(len(data) + 1):
        yield [data[:k], data[k:]]


def three_way_splits(data: bytes, count: int, seed: int = 0) -> Iterator[list[bytes]]:
    """`data` cut in three: at each pair of neighbouring line-end bytes (one cut just
    before, one just after), then at `count` random offset pairs."""
    n = len(data)
    rng = random.Random(seed)
    ends = [i for i, b in enumerate(data) if b in (0x0A, 0x0D)]
    pairs = {(a, b + 1) for a, b in itertools.pairwise(ends)}
    pairs |= {(a + 1, b) for a, b in itertools.pairwise(ends)}
    for _ in range(count):
        a = rng.randint(0, n)
        pairs.add((a, rng.randint(a, n)))
    for a, b in sorted(pairs):
        yield [data[:a], data[a:b], data[b:]]


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


_EVENT_TYPES: dict[str, type[Any]] = {
    cls.type: cls for cls in (TextEvent, ReasoningEvent, ToolCallEvent, UsageEvent, FinishEvent)
}


def as_objects(expected: list[dict[str, Any]]) -> list[Any]:
    """Fixture dicts as event objects (an error dict stays a dict): cheaper to compare."""
    return [d if d["type"] == "error" else _EVENT_TYPES[d["type"]](**{k: v for k, v in d.items() if k != "type"})
            for d in expected]


def decode_objects(factory: Callable[[], IntoDecoder], pieces: Iterable[bytes]) -> list[Any]:
    """Like `decode`, but events stay objects (only the error becomes a dict)."""
    dec = factory()
    out: list[Any] = []
    try:
        for piece in pieces:
            dec.feed_into(piece, out)
        dec.close_into(out)
    except WireError as exc:
        out.append(error_dict(exc))
    return out


def mismatches(
    factory: Callable[[], IntoDecoder], splits: Iterable[list[bytes]], expected: list[dict[str, Any]]
) -> list[tuple[list[int], list[dict[str, Any]]]]:
    """The splits (as piece lengths) whose decode differs from `expected`, with what they gave."""
    want = as_objects(expected)
    bad = []
    for pieces in splits:
        if decode_objects(factory, pieces) != want:
            bad.append(([len(p) for p in pieces], decode(factory, pieces)))
    return bad


def assert_every_split(factory: Callable[[], IntoDecoder], path: Path) -> None:
    """The transcript at `path` decodes to its expected events whole and cut at every offset."""
    data, expected = load(path)
    assert decode(factory, [data]) == expected
    assert mismatches(factory, every_split(data), expected) == []


def assert_three_way_and_bytes(factory: Callable[[], IntoDecoder], path: Path) -> None:
    """... cut in three (around line ends and at random), and fed byte by byte."""
    data, expected = load(path)
    assert mismatches(factory, three_way_splits(data, 150, seed=len(data)), expected) == []
    assert decode(factory, byte_by_byte(data)) == expected


def assert_feed_and_close(factory: Callable[[], IntoDecoder], path: Path) -> None:
    """A fresh list per call (`feed`/`close`) gives the same events when nothing fails."""
    data, expected = load(path)
    dec = factory()
    if expected[-1]["type"] == "error":
        with pytest.raises(WireError):
            feed(dec, data)
        return
    events = [ev for piece in byte_by_byte(data) for ev in feed(dec, piece)] + close(dec)
    assert event_dicts(events) == expected

