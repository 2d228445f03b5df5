"""Each provider codec's stream decoder: normalized events per second, bytes in to events out.

The input is what the fake upstream sends, in each provider's exact format, one event
per chunk: a text reply of `--tokens` tokens (the common case), and a mixed reply with
reasoning and four tool calls. Each run decodes the whole stream with a fresh decoder
from the codec the service would build (`build_codec`), through `close_into()`.

OpenAI's text reply is decoded three ways: as sent, with OpenAI's `obfuscation` padding (a
string of random length) added to every chunk as the real API sends it, and with the repeated-
envelope path off (every chunk parsed), for what that path saves in each case.

Usage: python stress/bench_codecs.py [--tokens 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
from types import ModuleType

from _common import best_of, emit_json, print_table
from streamactors.models import StreamEvent
from streamactors.providers.kinds import build_codec
from streamactors.stress.run import fake_config
from streamactors.testing.formats import anthropic, bedrock, gemini, openai
from streamactors.testing.script import Scenario, build_steps
from streamactors.wire.base import ProviderCodec
from streamactors.wire.openai import OpenAIStreamDecoder

FORMATS: dict[str, ModuleType] = {"openai": openai, "anthropic": anthropic, "gemini": gemini, "bedrock": bedrock}


def codec(kind: str) -> ProviderCodec:
    cfg = fake_config("http://127.0.0.1:9", [kind], 1)
    return build_codec(kind, cfg.providers[kind])


def rendered(kind: str, scenario: Scenario) -> list[bytes]:
    body = {"stream_options": {"include_usage": True}}
    return [item for item in FORMATS[kind].render(build_steps(scenario), "fake-model", body) if isinstance(item, bytes)]


def obfuscated(chunks: list[bytes]) -> list[bytes]:
    """OpenAI's chunks as the real API sends them: each JSON chunk ends with an `obfuscation`
    string of random length (here 0-15 characters, in turn)."""
    out = []
    for i, chunk in enumerate(chunks):
        if chunk.startswith(b"data: {") and chunk.endswith(b"}\n\n"):
            chunk = chunk[:-3] + b',"obfuscation":"%s"}\n\n' % (b"aZ09" * 4)[: i % 16]
        out.append(chunk)
    return out


def decode_all(c: ProviderCodec, chunks: list[bytes], *, envelope: bool = True) -> int:
    decoder = c.new_decoder("fake-model")
    if isinstance(decoder, OpenAIStreamDecoder):
        decoder.learn_envelopes = envelope  # off: every chunk parsed
    n = 0
    for chunk in chunks:  # a fresh list per read, as the provider actor does
        events: list[StreamEvent] = []
        decoder.feed_into(chunk, events)
        n += len(events)
    events = []
    decoder.close_into(events)
    return n + len(events)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=20_000, help="tokens in the text reply (default 20,000)")
    p.add_argument("--repeat", type=int, default=5, help="runs per measurement; the fastest counts (default 5)")
    args = p.parse_args()

    workloads = {
        "text": Scenario(tokens=args.tokens),
        "reasoning+tools": Scenario(tokens=args.tokens // 4, reasoning=args.tokens // 4, tool_calls=4),
    }
    rows = []
    results: dict[str, dict[str, dict[str, float | int]]] = {}
    runs: list[tuple[str, str, list[bytes], bool]] = []
    for kind in FORMATS:
        for label, scenario in workloads.items():
            runs.append((kind, label, rendered(kind, scenario), True))
            if kind == "openai" and label == "text":
                plain = runs[-1][2]
                runs.append((kind, "text, every chunk parsed", plain, False))
                runs.append((kind, "text, obfuscation", obfuscated(plain), True))
                runs.append((kind, "text, obfuscation, every chunk parsed", obfuscated(plain), False))
    for kind, label, chunks, envelope in runs:
        c = codec(kind)
        size = sum(map(len, chunks))
        seconds, events = best_of(
            lambda c=c, chunks=chunks, envelope=envelope: decode_all(c, chunks, envelope=envelope), args.repeat
        )
        per_s = events / seconds
        rows.append(
            (
                kind,
                label,
                len(chunks),
                events,
                round(per_s / 1e3, 1),
                round(seconds * 1e6 / events, 2),
                round(size / seconds / 1e6, 2),
            )
        )
        results.setdefault(kind, {})[label] = {
            "chunks": len(chunks),
            "events": events,
            "events_per_s": round(per_s),
            "us_per_event": round(seconds * 1e6 / events, 3),
            "mb_per_s": round(size / seconds / 1e6, 2),
        }
    print_table(
        f"Provider stream decoders, one event per chunk, best of {args.repeat}",
        ["codec", "reply", "chunks", "events out", "k events/s", "us/event", "MB/s"],
        rows,
    )
    emit_json("codecs", tokens=args.tokens, results=results)


if __name__ == "__main__":
    main()
