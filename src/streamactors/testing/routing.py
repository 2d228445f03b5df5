"""Which provider format a request path asks for, and which model it names."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import unquote

from .formats import anthropic, bedrock, gemini, openai

__all__ = ["Route", "route_request"]

Route = tuple[ModuleType, str, Callable[..., Iterator[Any]]]


def _render_with(module: ModuleType, **kwargs: Any) -> Callable[..., Iterator[Any]]:
    def render(steps: Iterable[Any], model: str, body: dict[str, Any]) -> Iterator[Any]:
        return module.render(steps, model, body, **kwargs)  # type: ignore[no-any-return]

    return render


_AZURE = re.compile(r"/openai/deployments/([^/]+)/chat/completions$")
# Model names may hold ':' (a scenario such as `m~fail=status:429`): the last colon starts the method.
_VERTEX_CLAUDE = re.compile(r"/publishers/anthropic/models/([^/]+):streamRawPredict$")
# Bedrock model ids may be ARNs, which hold '/' once unquoted.
_BEDROCK = re.compile(r"/model/(.+)/converse-stream$")
_GEMINI = re.compile(r"/models/([^/]+):streamGenerateContent$")  # Gemini API and Vertex


def route_request(path: str, body: dict[str, Any]) -> Route | None:
    """(format module, model, render) for a request, or None for an unknown path.

    `path` excludes the query string. The model comes from the path where the
    provider puts it there (Azure, Vertex, Gemini, Bedrock), else from the body.
    """
    path = unquote(path)
    if m := _AZURE.search(path):
        return openai, m.group(1), _render_with(openai, azure=True)
    if path.endswith("/api/v1/chat/completions"):  # OpenRouter: keep-alive comments, `reasoning` deltas
        return (
            openai,
            str(body.get("model", "")),
            _render_with(openai, reasoning_field="reasoning", keepalive=True, error_in_chunk=True),
        )
    if path == "/chat/completions":  # Perplexity, at api.perplexity.ai's root: its own citation fields
        return openai, str(body.get("model", "")), _render_with(openai, perplexity=True)
    if path.endswith("/chat/completions"):
        return openai, str(body.get("model", "")), _render_with(openai)
    if m := _VERTEX_CLAUDE.search(path):
        return anthropic, m.group(1), _render_with(anthropic)
    if path.endswith("/v1/messages"):
        return anthropic, str(body.get("model", "")), _render_with(anthropic)
    if m := _BEDROCK.search(path):
        return bedrock, m.group(1), _render_with(bedrock)
    if m := _GEMINI.search(path):
        return gemini, m.group(1), _render_with(gemini)
    return None
