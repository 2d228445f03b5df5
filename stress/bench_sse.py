"""SSE decoder throughput (MB/s) on recorded OpenAI, Anthropic and Gemini streams.

The recorded streams in fixtures/ are concatenated and repeated to `--mb` megabytes,
cut into chunks (one SSE event per chunk, as providers send them, or 64 KiB reads),
and decoded by:

- streamactors: `streamactors.wire.sse.SSEDecoder.feed_into(chunk, events)`;
- httpx-sse: what `EventSource.aiter_sse()` does: httpx's UTF-8 text decoder and
  `LineDecoder` (as `Response.aiter_lines()`), then `httpx_sse.SSEDecoder.decode(line)`;
- openai: the openai SDK's `openai._streaming.SSEDecoder.iter_bytes(chunks)`.

Usage: python stress/bench_sse.py [--mb 4] [--repeat 5]   (needs the `bench` extra)
"""

from __future__ import annotations

import argparse
import codecs
import re
from collections.abc import Callable

from _common import best_of, emit_json, fixture_bytes, print_table
from streamactors.wire.sse import SSEDecoder, SSEEvent

_EVENT_END = re.compile(rb"(?<=\r\n\r\n)|(?<=\n\n)")


def per_event_chunks(data: bytes) -> list[bytes]:
    """`data` cut after every blank line (CRLF or LF streams)."""
    return [c for c in _EVENT_END.split(data) if c]


def reads(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def ours(chunks: list[bytes]) -> int:
    decoder = SSEDecoder()
    n = 0
    for chunk in chunks:  # a fresh list per read
        events: list[SSEEvent] = []
        decoder.feed_into(chunk, events)
        n += len(events)
    return n


def httpx_sse(chunks: list[bytes]) -> int:
    from httpx._decoders import LineDecoder
    from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder

    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    lines = LineDecoder()
    decoder = HttpxSSEDecoder()
    n = 0
    for chunk in chunks:
        for line in lines.decode(text.decode(chunk)):
            if decoder.decode(line.rstrip("\n")) is not None:
                n += 1
    for line in lines.flush():
        if decoder.decode(line.rstrip("\n")) is not None:
            n += 1
    return n


def openai_sdk(chunks: list[bytes]) -> int:
    from openai._streaming import SSEDecoder as OpenAISSEDecoder

    return sum(1 for _ in OpenAISSEDecoder().iter_bytes(iter(chunks)))


DECODERS: dict[str, Callable[[list[bytes]], int]] = {
    "streamactors": ours,
    "httpx-sse": httpx_sse,
    "openai SDK": openai_sdk,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, default=4.0, help="megabytes of stream per vendor (default 4)")
    p.add_argument("--repeat", type=int, default=5, help="runs per measurement; the fastest counts (default 5)")
    args = p.parse_args()

    rows = []
    results: dict[str, dict[str, dict[str, float | int]]] = {}
    for vendor in ("openai", "anthropic", "gemini"):
        recorded = b"".join(fixture_bytes(vendor + "_"))
        data = recorded * max(1, round(args.mb * 1e6 / len(recorded)))
        for chunking, chunks in (("per event", per_event_chunks(data)), ("64 KiB", reads(data))):
            for name, decode in DECODERS.items():
                seconds, events = best_of(lambda decode=decode, chunks=chunks: decode(chunks), args.repeat)
                mb_s = len(data) / seconds / 1e6
                rows.append((vendor, chunking, name, events, round(mb_s, 2), round(events / seconds / 1e3, 1)))
                key = f"{vendor}/{chunking}"
                results.setdefault(key, {})[name] = {"mb_per_s": round(mb_s, 2), "events": events}
    for by_decoder in results.values():
        ours_rate = float(by_decoder["streamactors"]["mb_per_s"])
        for r in by_decoder.values():
            r["vs_streamactors"] = round(float(r["mb_per_s"]) / ours_rate, 3)
    print_table(
        f"SSE decoders on recorded streams, {args.mb:g} MB per vendor, best of {args.repeat}",
        ["stream", "chunks", "decoder", "events", "MB/s", "k events/s"],
        rows,
    )
    emit_json("sse", mb=args.mb, results=results)


if __name__ == "__main__":
    main()
