"""`MetricsActor`: counts and times every request; renders health and Prometheus text.

Provider actors report each finished request with a non-blocking send into the actor's
batched mailbox (see `mailbox`): a full mailbox drops the report and counts the drop
(metrics must never slow the data path), and reports are folded in batches, when the
mailbox is half full or every `FLUSH_INTERVAL` seconds, or at once by a read. Memory is
bounded: fixed histogram buckets, a ring of recent samples for percentiles, and at most
`MAX_MODELS` model labels per provider (the rest are counted as "other").
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Iterable
from typing import Any

import attrs

from .mailbox import BatchedActor

__all__ = ["HedgeCancelled", "MetricsActor", "RequestRecord", "TransformActions"]

MAX_MODELS = 100
#: At most this many (transform, action) label pairs; later ones are counted as "other".
MAX_TRANSFORM_LABELS = 100
_MAILBOX = 4096
RING = 1024
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


@attrs.frozen(slots=True)
class RequestRecord:
    """One finished request (or one attempt chain on one provider)."""

    provider: str
    model: str
    outcome: str  # "ok" | "error" | "cancelled"
    error_kind: str | None
    ttft_s: float | None
    duration_s: float
    overhead_s: float | None
    input_tokens: int | None
    output_tokens: int | None
    retries: int


@attrs.frozen(slots=True)
class HedgeCancelled:
    """A hedged request lost its race and was cancelled."""

    provider: str


@attrs.frozen(slots=True)
class TransformActions:
    """What one stream's transform did, `count` times (sent when the stream closes)."""

    transform: str
    action: str
    count: int


class _Histogram:
    __slots__ = ("bounds", "counts", "recent", "sum", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.total = 0
        self.recent: collections.deque[float] = collections.deque(maxlen=RING)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # the first bucket with value <= bound
        self.sum += value
        self.total += 1
        self.recent.append(value)

    def percentiles(self) -> dict[str, float | None]:
        ordered = sorted(self.recent)
        out: dict[str, float | None] = {}
        for q in (50, 95, 99):
            out[f"p{q}_ms"] = (
                round(ordered[min(len(ordered) - 1, q * len(ordered) // 100)] * 1000, 3) if ordered else None
            )
        return out


@attrs.define
class _ProviderStats:
    requests: collections.Counter[tuple[str, str]] = attrs.field(factory=collections.Counter)  # (model, outcome)
    errors: collections.Counter[str] = attrs.field(factory=collections.Counter)
    retries: int = 0
    hedges_cancelled: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    models: set[str] = attrs.field(factory=set)
    ttft: _Histogram = attrs.field(factory=lambda: _Histogram(LATENCY_BUCKETS))
    duration: _Histogram = attrs.field(factory=lambda: _Histogram(LATENCY_BUCKETS))
    overhead: _Histogram = attrs.field(factory=lambda: _Histogram(OVERHEAD_BUCKETS))


class MetricsActor(BatchedActor[RequestRecord | HedgeCancelled | TransformActions]):
    """Aggregates request records. Reads (`health`, `prometheus`) are synchronous snapshots
    (what is queued is folded in first)."""

    def __init__(self, providers: Iterable[str]) -> None:
        super().__init__(_MAILBOX)
        self._stats = {p: _ProviderStats() for p in providers}
        self._transform_actions: collections.Counter[tuple[str, str]] = collections.Counter()

    #: `report(record)`: non-blocking; a full mailbox drops the record (counted in `dropped`).
    #: Routine news: folded in at the next batch or read, without waking the actor now.
    report = BatchedActor._post

    @property
    def dropped(self) -> int:
        """Reports dropped because the actor was behind."""
        return self.dropped_reports

    def _handle(self, msg: RequestRecord | HedgeCancelled | TransformActions) -> None:
        if isinstance(msg, TransformActions):
            key = (msg.transform, msg.action)
            if key not in self._transform_actions and len(self._transform_actions) >= MAX_TRANSFORM_LABELS:
                key = ("other", "other")
            self._transform_actions[key] += msg.count
            return
        stats = self._stats.get(msg.provider) or self._stats.setdefault(msg.provider, _ProviderStats())
        if isinstance(msg, HedgeCancelled):
            stats.hedges_cancelled += 1
            return
        model = msg.model
        if model not in stats.models:
            if len(stats.models) >= MAX_MODELS:
                model = "other"
            else:
                stats.models.add(model)
        stats.requests[(model, msg.outcome)] += 1
        if msg.error_kind is not None:
            stats.errors[msg.error_kind] += 1
        stats.retries += msg.retries
        stats.input_tokens += msg.input_tokens or 0
        stats.output_tokens += msg.output_tokens or 0
        if msg.ttft_s is not None:
            stats.ttft.observe(msg.ttft_s)
        if msg.outcome != "cancelled":
            stats.duration.observe(msg.duration_s)
        if msg.overhead_s is not None:
            stats.overhead.observe(msg.overhead_s)

    def provider_health(self, provider: str) -> dict[str, Any]:
        """Counters and percentiles for one provider."""
        self.drain()
        s = self._stats.setdefault(provider, _ProviderStats())
        outcomes: collections.Counter[str] = collections.Counter()
        for (_, outcome), n in s.requests.items():
            outcomes[outcome] += n
        return {
            "requests": sum(outcomes.values()),
            "outcomes": dict(outcomes),
            "errors": dict(s.errors),
            "retries": s.retries,
            "hedges_cancelled": s.hedges_cancelled,
            "input_tokens": s.input_tokens,
            "output_tokens": s.output_tokens,
            "ttft": s.ttft.percentiles(),
            "duration": s.duration.percentiles(),
            "overhead": s.overhead.percentiles(),
        }

    def prometheus(self, circuit: dict[str, int], in_flight: dict[str, int]) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        self.drain()
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        family("streamactors_requests_total", "counter", "Requests by provider, model and outcome.")
        for p, s in self._stats.items():
            for (model, outcome), n in sorted(s.requests.items()):
                lines.append(f"streamactors_requests_total{_labels(provider=p, model=model, outcome=outcome)} {n}")
        family("streamactors_errors_total", "counter", "Failed requests by provider and error kind.")
        for p, s in self._stats.items():
            for kind, n in sorted(s.errors.items()):
                lines.append(f"streamactors_errors_total{_labels(provider=p, kind=kind)} {n}")
        family("streamactors_tokens_total", "counter", "Tokens by provider and direction.")
        for p, s in self._stats.items():
            lines.append(f"streamactors_tokens_total{_labels(provider=p, direction='input')} {s.input_tokens}")
            lines.append(f"streamactors_tokens_total{_labels(provider=p, direction='output')} {s.output_tokens}")
        family("streamactors_retries_total", "counter", "Retries by provider.")
        for p, s in self._stats.items():
            lines.append(f"streamactors_retries_total{_labels(provider=p)} {s.retries}")
        family("streamactors_hedges_cancelled_total", "counter", "Hedged requests that lost their race.")
        for p, s in self._stats.items():
            lines.append(f"streamactors_hedges_cancelled_total{_labels(provider=p)} {s.hedges_cancelled}")
        for name, attr, help_text in (
            ("streamactors_ttft_seconds", "ttft", "Time from request to first event."),
            ("streamactors_request_duration_seconds", "duration", "Time from request to the end of the stream."),
            ("streamactors_overhead_seconds", "overhead", "Gateway time: total time minus upstream time."),
        ):
            family(name, "histogram", help_text)
            for p, s in self._stats.items():
                _histogram_lines(lines, name, p, getattr(s, attr))
        family("streamactors_circuit_state", "gauge", "Circuit breaker state: 0 closed, 1 open, 2 half-open.")
        for p, value in circuit.items():
            lines.append(f"streamactors_circuit_state{_labels(provider=p)} {value}")
        family("streamactors_in_flight", "gauge", "Requests being streamed now.")
        for p, value in in_flight.items():
            lines.append(f"streamactors_in_flight{_labels(provider=p)} {value}")
        family("streamactors_transform_actions_total", "counter", "What stream transforms removed or ended, by action.")
        for (transform, action), n in sorted(self._transform_actions.items()):
            lines.append(f"streamactors_transform_actions_total{_labels(transform=transform, action=action)} {n}")
        family("streamactors_metrics_dropped_total", "counter", "Reports dropped because the metrics actor was behind.")
        lines.append(f"streamactors_metrics_dropped_total {self.dropped}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _histogram_lines(lines: list[str], name: str, provider: str, h: _Histogram) -> None:
    cumulative = 0
    for bound, count in zip(h.bounds, h.counts, strict=False):
        cumulative += count
        lines.append(f"{name}_bucket{_labels(provider=provider, le=repr(bound))} {cumulative}")
    lines.append(f"{name}_bucket{_labels(provider=provider, le='+Inf')} {h.total}")
    lines.append(f"{name}_sum{_labels(provider=provider)} {h.sum}")
    lines.append(f"{name}_count{_labels(provider=provider)} {h.total}")
