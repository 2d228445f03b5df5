"""streamactors: stream chat completions from many LLM providers through supervised trio actors.

import streamactors
cfg = streamactors.Config.load("streamactors.toml")
async with streamactors.open_service(cfg) as service:
    reply = await service.complete({"model": "openai/gpt-4o-mini", "messages": [...]})
    async with service.stream(request) as events:
        async for ev in events: ...
"""

from ._version import __version__ as __version__
from .actors.coalesce import Coalesce as Coalesce
from .config.schema import Config as Config
from .content import AudioPart as AudioPart
from .content import CacheControl as CacheControl
from .content import ContentPart as ContentPart
from .content import FilePart as FilePart
from .content import ImagePart as ImagePart
from .content import TextPart as TextPart
from .errors import ConfigError as ConfigError
from .errors import ProviderError as ProviderError
from .errors import StreamActorsError as StreamActorsError
from .errors import UsageError as UsageError
from .models import ChatRequest as ChatRequest
from .models import Citation as Citation
from .models import CitationEvent as CitationEvent
from .models import ErrorEvent as ErrorEvent
from .models import FinishEvent as FinishEvent
from .models import LogprobsEvent as LogprobsEvent
from .models import Message as Message
from .models import Reasoning as Reasoning
from .models import ReasoningBlock as ReasoningBlock
from .models import ReasoningEvent as ReasoningEvent
from .models import Reply as Reply
from .models import ResponseFormat as ResponseFormat
from .models import StreamEvent as StreamEvent
from .models import TextEvent as TextEvent
from .models import TokenLogprob as TokenLogprob
from .models import Tool as Tool
from .models import ToolCall as ToolCall
from .models import ToolCallEvent as ToolCallEvent
from .models import TopLogprob as TopLogprob
from .models import Usage as Usage
from .models import UsageEvent as UsageEvent
from .request_dict import request_from_dict as request_from_dict
from .service import Service as Service
from .service import open_service as open_service
from .stream import EventStream as EventStream
from .transforms import BlockList as BlockList
from .transforms import Redact as Redact
from .transforms import StopSequences as StopSequences
from .transforms import Transform as Transform
from .worker import Worker as Worker

__all__ = [
    "AudioPart",
    "BlockList",
    "CacheControl",
    "ChatRequest",
    "Citation",
    "CitationEvent",
    "Coalesce",
    "Config",
    "ConfigError",
    "ContentPart",
    "ErrorEvent",
    "EventStream",
    "FilePart",
    "FinishEvent",
    "ImagePart",
    "LogprobsEvent",
    "Message",
    "ProviderError",
    "Reasoning",
    "ReasoningBlock",
    "ReasoningEvent",
    "Redact",
    "Reply",
    "ResponseFormat",
    "Service",
    "StopSequences",
    "StreamActorsError",
    "StreamEvent",
    "TextEvent",
    "TextPart",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "ToolCallEvent",
    "TopLogprob",
    "Transform",
    "Usage",
    "UsageError",
    "UsageEvent",
    "Worker",
    "__version__",
    "open_service",
    "request_from_dict",
]
