"""The Anthropic Messages dialect's requests: a `POST /v1/messages` body as a `ChatRequest`.

The reverse of `wire.anthropic`'s body building, sans-IO: a request parsed here and built
there again is the body the client sent. Errors are `GatewayError`s (400) naming the field.
"""

from __future__ import annotations

import base64
from typing import Any

import attrs
import orjson

from ..content import CacheControl, ContentPart, FilePart, ImagePart, TextPart
from ..models import ChatRequest, Message, Reasoning, ReasoningBlock, ResponseFormat, Tool, ToolCall
from .errors import GatewayError

__all__ = ["MessagesCall", "parse_request"]


@attrs.frozen(slots=True)
class MessagesCall:
    """A parsed `POST /v1/messages`: the request (its `model` as the client wrote it), whether
    the client asked for a stream, and the model string (to resolve, and to echo back)."""

    request: ChatRequest
    stream: bool
    model: str


_KEYS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "thinking",
        "metadata",
        "service_tier",
        "output_config",
    }
)
#: Anthropic's `service_tier` -> ours (OpenAI's names; `wire.anthropic.SERVICE_TIERS` maps back).
_SERVICE_TIERS = {"auto": "auto", "standard_only": "default"}
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def _bad(param: str, message: str) -> GatewayError:
    return GatewayError(f"{param}: {message}", status=400, type="invalid_request_error", param=param)


def _keys(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    """Refuse a key the gateway does not know at `where` (an unknown field is never dropped)."""
    if not obj.keys() <= allowed:
        key = next(k for k in obj if k not in allowed)
        raise _bad(f"{where}.{key}" if where else str(key), "unknown or unsupported field")


def _object(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise _bad(where, f"must be an object, got {_shown(value)}")
    return value


def _str(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> Any:
    value = obj.get(key)
    if (value is None and required) or (value is not None and type(value) is not str):
        raise _bad(f"{where}.{key}", f"must be a string, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    return f"{value!r:.60}" if value is None or isinstance(value, str | int | float) else type(value).__name__


def _cache_control(block: dict[str, Any], where: str) -> CacheControl | None:
    value = block.get("cache_control")
    if value is None:
        return None
    if type(value) is not dict or value.get("type") != "ephemeral" or not value.keys() <= {"type", "ttl"}:
        raise _bad(f"{where}.cache_control", f'must be {{"type": "ephemeral"}} (and a "ttl"), got {_shown(value)}')
    ttl = value.get("ttl")
    if ttl is not None and ttl not in ("5m", "1h"):
        raise _bad(f"{where}.cache_control.ttl", f'must be "5m" or "1h", got {_shown(ttl)}')
    return CacheControl("ephemeral", ttl)


_TEXT_KEYS = frozenset({"type", "text", "cache_control", "citations"})
_IMAGE_KEYS = frozenset({"type", "source", "cache_control"})
_DOCUMENT_KEYS = frozenset({"type", "source", "title", "cache_control", "citations"})


def _text(block: dict[str, Any], where: str) -> TextPart:
    # `citations` on a text block are an earlier reply's sources, replayed by SDKs with the
    # turn (`Message.to_param()`): they are not content the model reads, and are left out.
    _keys(block, _TEXT_KEYS, where)
    return TextPart(_str(block, "text", where), _cache_control(block, where))


def _image(block: dict[str, Any], where: str) -> ImagePart:
    _keys(block, _IMAGE_KEYS, where)
    source = _object(block.get("source"), f"{where}.source")
    kind = source.get("type")
    at = f"{where}.source"
    if kind == "base64":
        _keys(source, frozenset({"type", "media_type", "data"}), at)
        mime = source.get("media_type")
        if mime not in _IMAGE_TYPES:
            raise _bad(f"{at}.media_type", f"must be one of {', '.join(_IMAGE_TYPES)}, got {_shown(mime)}")
        url = f"data:{mime};base64,{_str(source, 'data', at)}"
    elif kind == "url":
        _keys(source, frozenset({"type", "url"}), at)
        url = _str(source, "url", at)
    else:
        raise _bad(f"{at}.type", f'must be "base64" or "url" (uploaded files are not supported), got {_shown(kind)}')
    return ImagePart(url, None, _cache_control(block, where))


def _document(block: dict[str, Any], where: str) -> FilePart:
    _keys(block, _DOCUMENT_KEYS, where)
    citations = block.get("citations")
    if citations is not None and (type(citations) is not dict or citations.get("enabled")):
        raise _bad(f"{where}.citations", "document citations are not supported by the gateway; leave them off")
    source = _object(block.get("source"), f"{where}.source")
    kind = source.get("type")
    at = f"{where}.source"
    if kind == "base64":
        _keys(source, frozenset({"type", "media_type", "data"}), at)
        if source.get("media_type") != "application/pdf":
            raise _bad(f"{at}.media_type", f'must be "application/pdf", got {_shown(source.get("media_type"))}')
        data = f"data:application/pdf;base64,{_str(source, 'data', at)}"
    elif kind == "text":
        _keys(source, frozenset({"type", "media_type", "data"}), at)
        if source.get("media_type") != "text/plain":
            raise _bad(f"{at}.media_type", f'must be "text/plain", got {_shown(source.get("media_type"))}')
        text: str = _str(source, "data", at)
        data = "data:text/plain;base64," + base64.b64encode(text.encode()).decode("ascii")
    else:
        raise _bad(
            f"{at}.type",
            f'must be "base64" (a PDF) or "text" (URL, content and file sources are not supported), got {_shown(kind)}',
        )
    return FilePart(data, _str(block, "title", where, required=False), None, _cache_control(block, where))


def _part(block: Any, where: str) -> ContentPart:
    """A user content block as a content part (text, image, document)."""
    kind = _object(block, where).get("type")
    if kind == "text":
        return _text(block, where)
    if kind == "image":
        return _image(block, where)
    if kind == "document":
        return _document(block, where)
    raise _bad(f"{where}.type", f'must be "text", "image", "document" or "tool_result", got {_shown(kind)}')


_TOOL_RESULT_KEYS = frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"})


def _tool_result(block: dict[str, Any], where: str) -> Message:
    """A `tool_result` as a tool message answering `tool_use_id`.

    `is_error` has no place in our `Message` and is left out (the result's content says what
    failed). A `cache_control` on the block goes on its last content block: the cached prefix
    ends at the same place.
    """
    _keys(block, _TOOL_RESULT_KEYS, where)
    tool_use_id = _str(block, "tool_use_id", where)
    is_error = block.get("is_error")
    if is_error is not None and type(is_error) is not bool:
        raise _bad(f"{where}.is_error", f"must be true or false, got {_shown(is_error)}")
    content = block.get("content")
    cache = _cache_control(block, where)
    if content is None or type(content) is str:
        if cache is None:
            return Message("tool", content or "", tool_call_id=tool_use_id)
        if not content:
            raise _bad(f"{where}.cache_control", "an empty tool_result has no content to mark; remove the marker")
        return Message("tool", (TextPart(content, cache),), tool_call_id=tool_use_id)
    if type(content) is not list:
        raise _bad(f"{where}.content", f"must be a string or a list of blocks, got {_shown(content)}")
    parts = [_part(b, f"{where}.content[{k}]") for k, b in enumerate(content)]
    if cache is not None:
        if not parts:
            raise _bad(f"{where}.cache_control", "an empty tool_result has no content to mark; remove the marker")
        if parts[-1].cache_control is None:
            parts[-1] = attrs.evolve(parts[-1], cache_control=cache)
    return Message("tool", tuple(parts), tool_call_id=tool_use_id)


def _user(content: list[Any], where: str, out: list[Message]) -> None:
    """A user turn: its tool results as tool messages, the blocks around them as user messages,
    in order (`wire.anthropic` merges them back into one turn)."""
    parts: list[ContentPart] = []
    for k, block in enumerate(content):
        at = f"{where}.content[{k}]"
        if type(block) is dict and block.get("type") == "tool_result":
            if parts:
                out.append(Message("user", tuple(parts)))
                parts = []
            out.append(_tool_result(block, at))
        else:
            parts.append(_part(block, at))
    if parts:
        out.append(Message("user", tuple(parts)))


_THINKING_KEYS = frozenset({"type", "thinking", "signature"})
_REDACTED_KEYS = frozenset({"type", "data"})
_TOOL_USE_KEYS = frozenset({"type", "id", "name", "input"})


def _assistant(content: list[Any], where: str, out: list[Message]) -> None:
    """An assistant turn. Our `Message` holds reasoning, then text, then tool calls: blocks in
    another order (text after a tool call, say) start a new assistant message, which
    `wire.anthropic` merges back into one turn in the same order."""
    blocks: list[ReasoningBlock] = []
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    rank = 0  # 0 reasoning, 1 text, 2 tool calls: the order within one Message

    def flush() -> None:
        if blocks or parts or calls:
            out.append(Message("assistant", tuple(parts) or None, tuple(calls), reasoning_blocks=tuple(blocks)))
            blocks.clear()
            parts.clear()
            calls.clear()

    for k, block in enumerate(content):
        at = f"{where}.content[{k}]"
        kind = _object(block, at).get("type")
        if kind == "text":
            new_rank = 1
        elif kind in ("thinking", "redacted_thinking"):
            new_rank = 0
        elif kind == "tool_use":
            new_rank = 2
        else:
            raise _bad(
                f"{at}.type",
                f'an assistant turn takes "text", "thinking", "redacted_thinking" or "tool_use", got {_shown(kind)}',
            )
        if new_rank < rank:
            flush()
        rank = new_rank
        if kind == "text":
            parts.append(_text(block, at))
        elif kind == "thinking":
            _keys(block, _THINKING_KEYS, at)
            # A block with no signature (another provider's reasoning) cannot be verified:
            # it is kept as text only, and `wire.anthropic` does not send it back.
            blocks.append(ReasoningBlock(_str(block, "thinking", at), _str(block, "signature", at) or None))
        elif kind == "redacted_thinking":
            _keys(block, _REDACTED_KEYS, at)
            blocks.append(ReasoningBlock("", None, _str(block, "data", at)))
        else:
            _keys(block, _TOOL_USE_KEYS, at)
            tool_input = _object(block.get("input"), f"{at}.input")
            calls.append(ToolCall(_str(block, "id", at), _str(block, "name", at), orjson.dumps(tool_input).decode()))
    flush()


def _messages(value: Any) -> list[Message]:
    if type(value) is not list or not value:
        raise _bad("messages", 'must be a non-empty list of {"role", "content"} objects')
    out: list[Message] = []
    for i, m in enumerate(value):
        if type(m) is not dict:
            raise _bad(f"messages[{i}]", f"must be an object, got {_shown(m)}")
        role = m.get("role")
        content = m.get("content")
        if role != "user" and role != "assistant":
            raise _bad(f"messages[{i}].role", f'must be "user" or "assistant", got {_shown(role)}')
        if not m.keys() <= {"role", "content"}:
            _keys(m, frozenset({"role", "content"}), f"messages[{i}]")
        if type(content) is str:
            out.append(Message(role, content))
        elif type(content) is list and content:
            (_user if role == "user" else _assistant)(content, f"messages[{i}]", out)
        else:
            raise _bad(
                f"messages[{i}].content", f"must be a string or a non-empty list of blocks, got {_shown(content)}"
            )
    return out


def _system(value: Any) -> Message | None:
    if type(value) is str:
        return Message("system", value) if value else None
    if type(value) is not list:
        raise _bad("system", f"must be a string or a list of text blocks, got {_shown(value)}")
    parts: list[ContentPart] = []
    for k, block in enumerate(value):
        where = f"system[{k}]"
        if _object(block, where).get("type") != "text":
            raise _bad(f"{where}.type", f'must be "text", got {_shown(block.get("type"))}')
        parts.append(_text(block, where))
    return Message("system", tuple(parts)) if parts else None


_TOOL_KEYS = frozenset({"type", "name", "description", "input_schema", "cache_control"})


def _tools(value: Any) -> tuple[Tool, ...]:
    if type(value) is not list:
        raise _bad("tools", f"must be a list, got {_shown(value)}")
    tools = []
    for i, t in enumerate(value):
        where = f"tools[{i}]"
        kind = _object(t, where).get("type")
        if kind is not None and kind != "custom":
            raise _bad(
                f"{where}.type",
                f"server tool {_shown(kind)} is not supported by the gateway; define a client tool "
                "(name, description, input_schema)",
            )
        _keys(t, _TOOL_KEYS, where)
        schema = _object(t.get("input_schema"), f"{where}.input_schema")
        description = _str(t, "description", where, required=False)
        tools.append(Tool(_str(t, "name", where), description, schema, _cache_control(t, where)))
    return tuple(tools)


def _tool_choice(value: Any) -> tuple[str | dict[str, Any], bool | None]:
    """(our tool_choice, parallel_tool_calls) from Anthropic's tool_choice."""
    choice = _object(value, "tool_choice")
    kind = choice.get("type")
    allowed = {"type", "disable_parallel_tool_use"} if kind != "tool" else {"type", "name", "disable_parallel_tool_use"}
    if kind not in _TOOL_CHOICES and kind != "tool":
        raise _bad("tool_choice.type", f'must be "auto", "any", "tool" or "none", got {_shown(kind)}')
    if kind == "none":
        allowed = {"type"}
    _keys(choice, frozenset(allowed), "tool_choice")
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None and type(disable) is not bool:
        raise _bad("tool_choice.disable_parallel_tool_use", f"must be true or false, got {_shown(disable)}")
    parallel = False if disable else None
    if kind == "tool":
        return {"type": "function", "function": {"name": _str(choice, "name", "tool_choice")}}, parallel
    return _TOOL_CHOICES[kind], parallel


def _thinking(value: Any) -> Reasoning | None:
    thinking = _object(value, "thinking")
    kind = thinking.get("type")
    if kind == "disabled":
        _keys(thinking, frozenset({"type"}), "thinking")
        return None
    if kind != "enabled":
        raise _bad(
            "thinking.type",
            f'must be "enabled" (with budget_tokens) or "disabled" (adaptive thinking is not supported by the '
            f"gateway), got {_shown(kind)}",
        )
    _keys(thinking, frozenset({"type", "budget_tokens"}), "thinking")
    budget = thinking.get("budget_tokens")
    if type(budget) is not int or budget <= 0:
        raise _bad("thinking.budget_tokens", f"must be a positive integer, got {_shown(budget)}")
    return Reasoning(budget_tokens=budget)


def _output_format(value: Any) -> ResponseFormat | None:
    config = _object(value, "output_config")
    _keys(config, frozenset({"format"}), "output_config")
    fmt = config.get("format")
    if fmt is None:
        return None
    fmt = _object(fmt, "output_config.format")
    if fmt.get("type") != "json_schema":
        raise _bad("output_config.format.type", f'must be "json_schema", got {_shown(fmt.get("type"))}')
    _keys(fmt, frozenset({"type", "schema"}), "output_config.format")
    return ResponseFormat("json_schema", _object(fmt.get("schema"), "output_config.format.schema"))


def _number(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is not None and (type(value) is not float and type(value) is not int):
        raise _bad(key, f"must be a number, got {_shown(value)}")
    return value


def _parameters(data: dict[str, Any]) -> dict[str, Any]:
    """The request's optional parameters, as `ChatRequest` keyword arguments."""
    out: dict[str, Any] = {}
    top_k = data.get("top_k")
    if top_k is not None:
        if type(top_k) is not int or top_k < 0:
            raise _bad("top_k", f"must be a non-negative integer, got {_shown(top_k)}")
        out["top_k"] = top_k
    stops = data.get("stop_sequences")
    if stops is not None:
        if type(stops) is not list or not all(type(s) is str for s in stops):
            raise _bad("stop_sequences", "must be a list of strings")
        out["stop"] = tuple(stops)
    if data.get("tools") is not None:
        out["tools"] = _tools(data["tools"])
    if data.get("tool_choice") is not None:
        out["tool_choice"], out["parallel_tool_calls"] = _tool_choice(data["tool_choice"])
    if data.get("thinking") is not None:
        out["reasoning"] = _thinking(data["thinking"])
    metadata = data.get("metadata")
    if metadata is not None:
        _keys(_object(metadata, "metadata"), frozenset({"user_id"}), "metadata")
        out["user"] = _str(metadata, "user_id", "metadata", required=False)
    tier = data.get("service_tier")
    if tier is not None:
        if tier not in _SERVICE_TIERS:
            raise _bad("service_tier", f'must be "auto" or "standard_only", got {_shown(tier)}')
        out["service_tier"] = _SERVICE_TIERS[tier]
    if data.get("output_config") is not None:
        out["response_format"] = _output_format(data["output_config"])
    return out


_CORE_KEYS = frozenset({"model", "messages", "max_tokens", "system", "stream", "temperature", "top_p"})


def parse_request(body: bytes) -> MessagesCall:
    """A Messages API request body (`POST /v1/messages`) as a `MessagesCall`.

    `system` (a string, or text blocks with their `cache_control`) becomes a system message;
    each turn's blocks become messages: text, images (a base64 source as a data URL, a url
    source as it is) and documents (a PDF or plain text as a data URL, `title` as the
    filename) as content parts; each `tool_result` a tool message; an assistant turn's
    `thinking` / `redacted_thinking` blocks its reasoning blocks (signatures kept, for the
    replay Anthropic checks) and its `tool_use` blocks tool calls (`input` as JSON text).
    The parameters map to ours: `stop_sequences` as stop, `tool_choice` (auto, any as
    "required", tool, none; `disable_parallel_tool_use` as parallel_tool_calls=False),
    `thinking` enabled as `Reasoning(budget_tokens=...)`, `metadata.user_id` as user,
    `service_tier` (standard_only as "default"), `output_config.format` as a json_schema
    `ResponseFormat`.

    Raises `GatewayError` (400, invalid_request_error) naming the field for a malformed
    body, a missing `max_tokens` (the API requires it), and any field or block kind the
    gateway does not carry (server tools, adaptive thinking, uploaded files...): nothing
    the client sent is dropped unseen, but replayed citations on text blocks and a tool
    result's `is_error` flag, which our model has no place for.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(f"the request body is not valid JSON: {exc}", status=400) from None
    if type(data) is not dict:
        raise GatewayError("the request body must be a JSON object", status=400)
    if not data.keys() <= _KEYS:
        _keys(data, _KEYS, "")
    model = data.get("model")
    if type(model) is not str or not model:
        raise _bad("model", f"must be a non-empty string, got {_shown(model)}")
    max_tokens = data.get("max_tokens")
    if type(max_tokens) is not int or max_tokens < 0:
        raise _bad("max_tokens", f"is required: a non-negative integer, got {_shown(max_tokens)}")
    stream = data.get("stream", False)
    if type(stream) is not bool:
        raise _bad("stream", f"must be true or false, got {_shown(stream)}")
    messages = _messages(data.get("messages"))
    system = data.get("system")
    if system is not None:
        first = _system(system)
        if first is not None:
            messages.insert(0, first)
    request = ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=_number(data, "temperature"),
        top_p=_number(data, "top_p"),
        **(_parameters(data) if not data.keys() <= _CORE_KEYS else {}),
    )
    return MessagesCall(request, stream, model)
