"""Domain types: the request users submit, the events they read, the reply they get.

Everything here is a frozen attrs class with slots: cheap to build, safe to share
between actors, and printable without leaking anything (requests hold no secrets).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import attrs

from .content import CacheControl, ContentPart, content_parts

__all__ = [
    "ChatRequest",
    "ErrorEvent",
    "FinishEvent",
    "FinishReason",
    "LogprobsEvent",
    "Message",
    "Reasoning",
    "ReasoningBlock",
    "ReasoningEvent",
    "Reply",
    "StreamEvent",
    "TextEvent",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "ToolCallEvent",
    "TopLogprob",
    "Usage",
    "UsageEvent",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]
FINISH_REASONS: frozenset[str] = frozenset({"stop", "length", "tool_calls", "content_filter", "error"})


def _tuple(value: Sequence[Any] | None) -> tuple[Any, ...]:
    return tuple(value) if value else ()


@attrs.frozen(slots=True)
class ToolCall:
    """A complete tool call: `arguments` is the JSON text exactly as the model streamed it.

    `signature` is the provider's opaque token for the call, to be sent back with it when
    the conversation continues (Gemini's `thoughtSignature`; Gemini 3 refuses a replayed
    function call without it). Keep the `ToolCall` of a reply as it is to keep it.
    """

    id: str
    name: str
    arguments: str = ""
    signature: str | None = None


@attrs.frozen(slots=True)
class ReasoningBlock:
    """One block of a reply's reasoning, as the provider signed it, to be sent back unchanged.

    Claude (Anthropic's API and Bedrock) checks the signature of every thinking block replayed
    in an assistant turn, and with thinking enabled refuses a tool-use turn sent back without
    its thinking. `redacted` holds the opaque data of a block the provider encrypted (then
    `text` is empty). Other providers' reasoning is never replayed, so it has no blocks.
    """

    text: str = ""
    signature: str | None = None
    redacted: str | None = None


@attrs.frozen(slots=True)
class Tool:
    """A function the model may call; `parameters` is a JSON Schema object.

    `cache_control` marks a prompt-caching breakpoint after this tool (see `CacheControl`).
    """

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] = attrs.field(factory=lambda: {"type": "object", "properties": {}})
    cache_control: CacheControl | None = None


@attrs.frozen(slots=True)
class Message:
    """One chat message in OpenAI's shape.

    `role` is "system", "developer", "user", "assistant" or "tool". `content` is a string,
    or a tuple of content parts (`TextPart`, `ImagePart`, `FilePart`, `AudioPart`; a list
    given is made a tuple, and bare strings in it `TextPart`s). Assistant messages may
    carry `tool_calls`, and the `reasoning_blocks` of the reply they repeat
    (`Reply.as_message()` keeps both); tool messages carry the `tool_call_id` they answer.
    """

    role: str
    content: str | tuple[ContentPart, ...] | None = attrs.field(default=None, converter=content_parts)
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=_tuple)
    tool_call_id: str | None = None
    name: str | None = None
    reasoning_blocks: tuple[ReasoningBlock, ...] = attrs.field(default=(), converter=_tuple)


@attrs.frozen(slots=True)
class Reasoning:
    """Requested reasoning: an `effort` level or a token `budget_tokens` (one of the two)."""

    effort: Literal["low", "medium", "high"] | None = None
    budget_tokens: int | None = None


@attrs.frozen(slots=True)
class ResponseFormat:
    """Structured output, as OpenAI's `response_format`: `type` "json_object" (any JSON object)
    or "json_schema" (`schema`, a JSON Schema, with its `name` and `strict`)."""

    type: Literal["json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@attrs.frozen(slots=True)
class ChatRequest:
    """A chat completion request. `model` is "<provider-name>/<model-id>" or a route alias."""

    model: str
    messages: tuple[Message, ...] = attrs.field(converter=_tuple)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    tools: tuple[Tool, ...] = attrs.field(default=(), converter=_tuple)
    tool_choice: str | Mapping[str, Any] | None = None
    reasoning: Reasoning | None = None
    request_id: str | None = None
    # The common parameters, under OpenAI's names; each codec sends them under its provider's
    # native names, or refuses one its provider cannot honour (`UsageError`, before anything is
    # sent) unless the provider's config says `drop_params = true`.
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    top_k: int | None = None
    user: str | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    service_tier: str | None = None
    metadata: Mapping[str, str] | None = None
    response_format: ResponseFormat | None = None
    # Passthrough, as in the openai SDK: merged last into the native JSON body (top-level keys),
    # and sent as headers.
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = None

    def has_parameters(self) -> bool:
        """Whether any of the optional parameters (`PARAMETERS`) is given: one C-level read of
        them all, so a codec can skip their mapping for the common request that has none."""
        return _parameters_of(self) != _NO_PARAMETERS

    def split_model(self) -> tuple[str, str]:
        """Return (provider name, model id): the model id is everything after the first "/"."""
        provider, sep, model_id = self.model.partition("/")
        return (provider, model_id) if sep else (self.model, "")


# --- stream events -------------------------------------------------------------------
#: The optional request parameters, each None unless given (see `ChatRequest.has_parameters`).
PARAMETERS = (
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "top_k",
    "user",
    "parallel_tool_calls",
    "logprobs",
    "top_logprobs",
    "service_tier",
    "metadata",
    "response_format",
)
_parameters_of = operator.attrgetter(*PARAMETERS)
_NO_PARAMETERS = (None,) * len(PARAMETERS)


# `type` is a class attribute so that `ev.type` costs nothing per event.


@attrs.frozen(slots=True)
class TextEvent:
    """A fragment of the reply's visible text."""

    type: ClassVar[str] = "text"
    text: str


@attrs.frozen(slots=True)
class ReasoningEvent:
    """A fragment of the model's reasoning (thinking) text.

    Anthropic (and Claude on Bedrock) sign each thinking block: the event that ends a block
    carries its `signature` (with no text of its own); a block the provider encrypted comes
    as one event with its opaque `redacted` data and no text. Both must go back with the
    assistant turn when a conversation with thinking continues (see `ReasoningBlock`).
    """

    type: ClassVar[str] = "reasoning"
    text: str
    signature: str | None = None
    redacted: str | None = None


@attrs.frozen(slots=True)
class ToolCallEvent:
    """A fragment of a tool call. `index` is the call's position in the reply (0, 1, ...).

    The first fragment of a call carries its `id` and `name`; later ones may carry only
    `arguments`, which are pieces of the JSON text to be concatenated.
    """

    type: ClassVar[str] = "tool_call"
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    signature: str | None = None  # see ToolCall.signature; on the fragment that brought it


@attrs.frozen(slots=True)
class UsageEvent:
    """Token counts, each None where the provider did not say.

    `input_tokens` counts every input token, cached ones included (OpenAI's `prompt_tokens`;
    for Anthropic and Bedrock input + cache writes + cache reads, as LiteLLM reports it), and
    `output_tokens` includes reasoning tokens. `cache_read_tokens` and `cache_write_tokens` are
    the input tokens read from and written to the provider's prompt cache; `reasoning_tokens`
    the output tokens spent on reasoning.
    """

    type: ClassVar[str] = "usage"
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


@attrs.frozen(slots=True)
class Citation:
    """A source the reply cites: where (`url`), its `title`, and the text cited, each if given."""

    url: str | None = None
    title: str | None = None
    cited_text: str | None = None


@attrs.frozen(slots=True)
class CitationEvent:
    """The reply cites a source (OpenAI's url_citation annotations, Anthropic's citations,
    Gemini's grounding chunks, Perplexity's search results, Bedrock's citations)."""

    type: ClassVar[str] = "citation"
    citation: Citation


@attrs.frozen(slots=True)
class TopLogprob:
    """One of the likeliest tokens at a position, in OpenAI's shape (`bytes`: its UTF-8 bytes)."""

    token: str
    logprob: float
    bytes: tuple[int, ...] | None = None


@attrs.frozen(slots=True)
class TokenLogprob:
    """The log probability of one output token, and the `top_logprobs` alternatives, in
    OpenAI's shape (`choices[0].logprobs.content[i]`)."""

    token: str
    logprob: float
    bytes: tuple[int, ...] | None = None
    top_logprobs: tuple[TopLogprob, ...] = ()


@attrs.frozen(slots=True)
class LogprobsEvent:
    """Log probabilities of the output tokens that came with the text so far (when the
    request asked for `logprobs`; OpenAI's `choices[].logprobs.content`, Gemini's
    `logprobsResult`)."""

    type: ClassVar[str] = "logprobs"
    content: tuple[TokenLogprob, ...]


@attrs.frozen(slots=True)
class FinishEvent:
    """The reply ended normally for `reason`."""

    type: ClassVar[str] = "finish"
    reason: str


@attrs.frozen(slots=True)
class ErrorEvent:
    """The reply failed; `error` is a `ProviderError` (with `.partial`)."""

    type: ClassVar[str] = "error"
    error: Exception


StreamEvent = (
    TextEvent | ReasoningEvent | ToolCallEvent | CitationEvent | LogprobsEvent | UsageEvent | FinishEvent | ErrorEvent
)


@attrs.frozen(slots=True)
class Usage:
    """Token usage of a reply; None where the provider did not say (see `UsageEvent`)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


@attrs.frozen(slots=True)
class Reply:
    """An aggregated reply, as returned by `Service.complete()` or carried by `ProviderError.partial`."""

    text: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: Usage = Usage()
    provider: str = ""
    model: str = ""
    #: The signed (or redacted) reasoning blocks, in order, for replay; see `ReasoningBlock`.
    reasoning_blocks: tuple[ReasoningBlock, ...] = ()
    #: The sources the reply cites, in the order they arrived.
    citations: tuple[Citation, ...] = ()
    #: The output tokens' log probabilities when the request asked for them, else None.
    logprobs: tuple[TokenLogprob, ...] | None = None

    def as_message(self) -> Message:
        """This reply as the assistant turn of a conversation that goes on: its text, tool
        calls (with their signatures) and signed reasoning blocks."""
        return Message(
            "assistant", self.text or None, tool_calls=self.tool_calls, reasoning_blocks=self.reasoning_blocks
        )
