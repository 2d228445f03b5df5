"""`StressOptions`: the knobs of one `streamactors stress` run."""

from __future__ import annotations

import attrs

__all__ = ["StressOptions"]


@attrs.frozen
class StressOptions:
    """Knobs of one stress run (see `streamactors stress --help`).

    `idle_streams` None means min(concurrency, 1000); 0 skips that phase. `sample_interval`:
    seconds between two readings of the charted time series (at least 0.05).
    `requests_per_minute` / `tokens_per_minute`: each provider's budgets; `redis`: share them
    (and circuits, quota news) through this Redis (`[shared]`); `workers`: run the workload
    as that many processes, each the whole of it (see `stress.fleet`).
    """

    tokens: int = 1_000_000
    concurrency: int = 1000
    requests: int | None = None
    providers: tuple[str, ...] = ("all",)
    upstream: str | None = None
    ttft_ms: float = 0.0
    delay_ms: float = 0.0
    tokens_per_chunk: int = 1
    events_per_chunk: int = 1
    fail_rate: float = 0.0
    midstream_rate: float = 0.0
    log_file: str | None = None
    json: bool = False
    progress: bool = True
    duration: float | None = None
    baseline: bool = False
    idle_streams: int | None = None
    fallback: bool = False
    sample_interval: float = 0.5
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    redis: str | None = None
    namespace: str = "stress"
    workers: int | None = None
