"""Turn an OpenAI chat-completions style dict into a `ChatRequest`, with clear errors."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import orjson

from .content import AudioPart, CacheControl, ContentPart, FilePart, ImagePart, TextPart
from .errors import UsageError
from .models import ChatRequest, Message, Reasoning, ReasoningBlock, ResponseFormat, Tool, ToolCall
from .wire.media import is_data_url

__all__ = ["request_from_dict"]

_KEYS = {
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "tools",
    "tool_choice",
    "reasoning",
    "reasoning_effort",
    "request_id",
    "stream",
    "stream_options",
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
    "n",
    "response_format",
    "extra_body",
    "extra_headers",
}
# The optional parameters taken as they are, each with the JSON types it may have.
_SCALARS: dict[str, tuple[type, ...]] = {
    "seed": (int,),
    "presence_penalty": (int, float),
    "frequency_penalty": (int, float),
    "top_k": (int,),
    "user": (str,),
    "parallel_tool_calls": (bool,),
    "logprobs": (bool,),
    "top_logprobs": (int,),
    "service_tier": (str,),
}
_ROLES = {"system", "developer", "user", "assistant", "tool"}
# A request with only these keys has no optional parameter to check (the common case, kept cheap).
_CORE_KEYS = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "tools"}
    | {"tool_choice", "reasoning", "reasoning_effort", "request_id", "stream", "stream_options"}
)


def _fail(message: str) -> UsageError:
    return UsageError(f"invalid request: {message}")


def _cache_control(value: Any, where: str) -> CacheControl | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or value.get("type") != "ephemeral":
        raise _fail(f'{where}.cache_control must be {{"type": "ephemeral"}} (and an optional "ttl"), got {value!r:.60}')
    ttl = value.get("ttl")
    if ttl is not None and ttl not in ("5m", "1h"):
        raise _fail(f'{where}.cache_control.ttl must be "5m" or "1h", got {ttl!r}')
    return CacheControl("ephemeral", ttl)


def _object(part: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = part.get(key)
    if not isinstance(value, Mapping):
        raise _fail(f"{where}.{key} must be an object, got {value!r:.80}")
    return value


def _string(obj: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> Any:
    value = obj.get(key)
    if (value is None and required) or (value is not None and not isinstance(value, str)):
        raise _fail(f"{where}.{key} must be a string, got {value!r:.80}")
    return value


def _part(part: Any, where: str) -> ContentPart:
    if isinstance(part, str):
        return TextPart(part)
    if not isinstance(part, Mapping):
        raise _fail(f"{where} must be a content part object, got {part!r:.80}")
    kind = part.get("type")
    cache = _cache_control(part.get("cache_control"), where)
    if kind == "text":
        return TextPart(_string(part, "text", where), cache)
    if kind == "image_url":
        image = part.get("image_url")
        if isinstance(image, str):  # LiteLLM also takes the URL alone
            return ImagePart(image, None, cache)
        image = _object(part, "image_url", where)
        detail = image.get("detail")
        if detail is not None and detail not in ("auto", "low", "high"):
            raise _fail(f'{where}.image_url.detail must be "auto", "low" or "high", got {detail!r}')
        url = _string(image, "url", f"{where}.image_url")
        # gs:// is a Cloud Storage object, which Vertex AI's Gemini models take as they are.
        if not (is_data_url(url) or url.startswith(("https://", "http://", "gs://"))):
            raise _fail(f"{where}.image_url.url must be an https URL, a gs:// URL or a data URL, got {url[:60]!r}")
        return ImagePart(url, detail, cache)
    if kind == "file":
        file = _object(part, "file", where)
        data = _string(file, "file_data", f"{where}.file", required=False)
        file_id = _string(file, "file_id", f"{where}.file", required=False)
        if data is None and file_id is None:
            raise _fail(f"{where}.file needs file_data (a data URL) or file_id")
        return FilePart(data, _string(file, "filename", f"{where}.file", required=False), file_id, cache)
    if kind == "input_audio":
        audio = _object(part, "input_audio", where)
        return AudioPart(
            _string(audio, "data", f"{where}.input_audio"), _string(audio, "format", f"{where}.input_audio"), cache
        )
    raise _fail(f'{where}.type must be "text", "image_url", "file" or "input_audio", got {kind!r}')


def _content(value: Any, where: str) -> str | tuple[ContentPart, ...] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return tuple([_part(p, f"{where}[{k}]") for k, p in enumerate(value)])
    raise _fail(f"{where} must be a string or a list of content parts, got {type(value).__name__}")


def _tool_call(tc: Any, where: str) -> ToolCall:
    if not isinstance(tc, Mapping):
        raise _fail(f"{where} must be an object")
    fn = tc.get("function")
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise _fail(f"{where}.function.name is required")
    args = fn.get("arguments", "")
    if not isinstance(args, str):
        args = orjson.dumps(args).decode()
    # Gemini's OpenAI-compatible API carries a call's thought signature here.
    extra = tc.get("extra_content")
    google = extra.get("google") if isinstance(extra, Mapping) else None
    signature = google.get("thought_signature") if isinstance(google, Mapping) else None
    if signature is not None and not isinstance(signature, str):
        raise _fail(f"{where}.extra_content.google.thought_signature must be a string")
    return ToolCall(id=str(tc.get("id") or ""), name=fn["name"], arguments=args, signature=signature)


def _thinking_block(b: Any, where: str) -> ReasoningBlock:
    # LiteLLM's shape, which is Anthropic's own content block.
    btype = b.get("type") if isinstance(b, Mapping) else None
    if btype == "thinking" and isinstance(b.get("thinking"), str) and isinstance(b.get("signature"), str):
        return ReasoningBlock(b["thinking"], b["signature"])
    if btype == "redacted_thinking" and isinstance(b.get("data"), str):
        return ReasoningBlock("", None, b["data"])
    raise _fail(
        f'{where} must be {{"type": "thinking", "thinking": ..., "signature": ...}} '
        f'or {{"type": "redacted_thinking", "data": ...}}, got {b!r:.80}'
    )


def _message(m: Any, i: int) -> Message:
    # Runs for every message of every request: the `where` of an error is built only on error.
    if type(m) is not dict and not isinstance(m, Mapping):
        raise _fail(f"messages[{i}] must be an object")
    role = m.get("role")
    if role not in _ROLES:
        raise _fail(f"messages[{i}].role must be one of {sorted(_ROLES)}, got {role!r}")
    content = m.get("content")
    if content is not None and type(content) is not str:
        content = _content(content, f"messages[{i}].content")
    tool_calls = m.get("tool_calls")
    if tool_calls:
        if role != "assistant":
            raise _fail(f"messages[{i}]: only assistant messages carry tool_calls")
        tool_calls = tuple(_tool_call(tc, f"messages[{i}].tool_calls[{k}]") for k, tc in enumerate(tool_calls))
    tool_call_id = m.get("tool_call_id")
    if role == "tool" and not isinstance(tool_call_id, str):
        raise _fail(f"messages[{i}]: a tool message needs tool_call_id")
    thinking = m.get("thinking_blocks")
    blocks: tuple[ReasoningBlock, ...] = ()
    if thinking:
        if role != "assistant" or not isinstance(thinking, list):
            raise _fail(f"messages[{i}].thinking_blocks: a list, on assistant messages only")
        blocks = tuple(_thinking_block(b, f"messages[{i}].thinking_blocks[{k}]") for k, b in enumerate(thinking))
    return Message(role, content, tool_calls or (), tool_call_id, m.get("name"), blocks)


def _tool(t: Any, i: int) -> Tool:
    where = f"tools[{i}]"
    fn = t.get("function") if isinstance(t, Mapping) else None
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise _fail(f'{where} must be {{"type": "function", "function": {{"name": ..., "parameters": ...}}}}')
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    cache = _cache_control(t.get("cache_control"), where) if "cache_control" in t else None
    return Tool(name=fn["name"], description=fn.get("description"), parameters=params, cache_control=cache)


def _reasoning(data: Mapping[str, Any]) -> Reasoning | None:
    value = data.get("reasoning")
    if value is None and data.get("reasoning_effort") is not None:
        value = {"effort": data["reasoning_effort"]}
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail('reasoning must be {"effort": "low"|"medium"|"high"} or {"budget_tokens": N}')
    effort, budget = value.get("effort"), value.get("budget_tokens")
    if effort is not None and effort not in ("low", "medium", "high"):
        raise _fail(f'reasoning.effort must be "low", "medium" or "high", got {effort!r}')
    if budget is not None and (not isinstance(budget, int) or budget <= 0):
        raise _fail(f"reasoning.budget_tokens must be a positive integer, got {budget!r}")
    if effort is None and budget is None:
        raise _fail("reasoning needs effort or budget_tokens")
    return Reasoning(effort=effort, budget_tokens=budget)


def _response_format(value: Any) -> ResponseFormat | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail(f"response_format must be an object, got {type(value).__name__}")
    kind = value.get("type")
    if kind == "text":
        return None  # OpenAI's default: plain text
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind != "json_schema":
        raise _fail(f'response_format.type must be "text", "json_object" or "json_schema", got {kind!r}')
    spec = value.get("json_schema")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
        raise _fail('response_format.json_schema must be an object with a "schema" object (and a "name")')
    name, strict = spec.get("name"), spec.get("strict")
    if name is not None and not isinstance(name, str):
        raise _fail(f"response_format.json_schema.name must be a string, got {name!r}")
    if strict is not None and not isinstance(strict, bool):
        raise _fail(f"response_format.json_schema.strict must be true or false, got {strict!r}")
    return ResponseFormat("json_schema", spec["schema"], name, strict)


def _string_map(value: Any, name: str) -> Mapping[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _fail(f"{name} must be an object of strings")
    return dict(value)


def _parameters(data: Mapping[str, Any]) -> dict[str, Any]:
    """The optional parameters present in `data`, checked, as `ChatRequest` keyword arguments."""
    out: dict[str, Any] = {}
    for name, types in _SCALARS.items():
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise _fail(f"{name} must be {' or '.join(t.__name__ for t in types)}, got {value!r}")
        out[name] = value
    n = data.get("n")
    if n is not None and n != 1:
        raise _fail(f"n must be 1 (a reply has one choice), got {n!r}")
    if "metadata" in data:
        out["metadata"] = _string_map(data["metadata"], "metadata")
    if "response_format" in data:
        out["response_format"] = _response_format(data["response_format"])
    extra_body = data.get("extra_body")
    if extra_body is not None:
        if not isinstance(extra_body, Mapping):
            raise _fail(f"extra_body must be an object, got {type(extra_body).__name__}")
        out["extra_body"] = dict(extra_body)
    if "extra_headers" in data:
        out["extra_headers"] = _string_map(data["extra_headers"], "extra_headers")
    return out


def request_from_dict(data: Mapping[str, Any]) -> ChatRequest:
    """Validate and convert; raises `UsageError` naming the offending field."""
    if type(data) is not dict and not isinstance(data, Mapping):  # (an ABC check costs a microsecond)
        raise _fail(f"expected a dict, got {type(data).__name__}")
    if not data.keys() <= _KEYS:
        for key in data:
            if key not in _KEYS:
                near = difflib.get_close_matches(str(key), sorted(_KEYS), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise _fail(f"unknown field {key!r}{hint}")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise _fail('"model" must be "<provider>/<model-id>" or a route alias')
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail('"messages" must be a non-empty list')
    max_tokens = data.get("max_tokens", data.get("max_completion_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens <= 0):
        raise _fail(f"max_tokens must be a positive integer, got {max_tokens!r}")
    stop = data.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    temperature, top_p = data.get("temperature"), data.get("top_p")
    for name, value in (("temperature", temperature), ("top_p", top_p)):
        if value is not None and not isinstance(value, int | float):
            raise _fail(f"{name} must be a number, got {value!r}")
    tools = data.get("tools")
    return ChatRequest(
        model=model,
        messages=tuple([_message(m, i) for i, m in enumerate(messages)]),
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        stop=tuple(stop) if stop else (),
        tools=tuple([_tool(t, i) for i, t in enumerate(tools)]) if tools else (),
        tool_choice=data.get("tool_choice"),
        reasoning=_reasoning(data) if "reasoning" in data or "reasoning_effort" in data else None,
        request_id=data.get("request_id"),
        **(_parameters(data) if not data.keys() <= _CORE_KEYS else {}),
    )
