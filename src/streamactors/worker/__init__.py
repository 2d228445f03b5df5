"""`Worker`: the service in a background thread, for asyncio programs and threads."""

from .streams import AsyncWorkerStream as AsyncWorkerStream
from .streams import WorkerStream as WorkerStream
from .worker import Worker as Worker

__all__ = ["AsyncWorkerStream", "Worker", "WorkerStream"]
