"""The harness behind `streamactors stress`: the run (`run`), its knobs (`options`), the bare
httpx baseline (`bare`), per-stream statistics (`stats`), their time series (`timeseries`) and the
report (`report`)."""

from .options import StressOptions as StressOptions
from .run import UpstreamProcess as UpstreamProcess
from .run import run_stress as run_stress

__all__ = ["StressOptions", "UpstreamProcess", "run_stress"]
