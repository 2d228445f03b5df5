"""Claude's thinking rule (`wire/claude.py`), as both codecs that speak to Claude apply it."""

from __future__ import annotations

from typing import Any

import pytest

from streamactors.models import ChatRequest, Message, Reasoning
from streamactors.wire.anthropic import anthropic_body
from streamactors.wire.bedrock import converse_body
from streamactors.wire.claude import DEFAULT_MAX_TOKENS, EFFORT_BUDGET, ClaudeSampling, claude_sampling


def request(**kw: Any) -> ChatRequest:
    return ChatRequest("p/claude", [Message("user", "hi")], **kw)


@pytest.mark.parametrize(
    ("kw", "anthropic", "converse"),
    [
        ({}, ClaudeSampling(DEFAULT_MAX_TOKENS, None, None, None), ClaudeSampling(None, None, None, None)),
        ({"max_tokens": 10, "temperature": 0.5, "top_p": 0.9}, ClaudeSampling(10, None, 0.5, 0.9), None),
        ({"reasoning": Reasoning()}, ClaudeSampling(DEFAULT_MAX_TOKENS, None, None, None),
         ClaudeSampling(None, None, None, None)),
        ({"reasoning": Reasoning(effort="high"), "temperature": 0.5, "top_p": 0.9},
         ClaudeSampling(16384 + DEFAULT_MAX_TOKENS, 16384, None, None), None),
        ({"reasoning": Reasoning(budget_tokens=10), "max_tokens": 2000}, ClaudeSampling(2000, 1024, None, None), None),
        ({"reasoning": Reasoning(budget_tokens=3000), "max_tokens": 3000}, ClaudeSampling(6000, 3000, None, None),
         None),
    ],
)
def test_the_rule(kw: dict[str, Any], anthropic: ClaudeSampling, converse: ClaudeSampling | None) -> None:
    """With thinking on: temperature and top_p dropped, a budget of at least 1024, and
    max_tokens above it. Only the Messages API needs a max_tokens without thinking."""
    assert claude_sampling(request(**kw), require_max_tokens=True) == anthropic
    assert claude_sampling(request(**kw), require_max_tokens=False) == (converse or anthropic)


@pytest.mark.parametrize("effort", sorted(EFFORT_BUDGET))
@pytest.mark.parametrize("max_tokens", [None, 1000, 50_000])
def test_both_codecs_send_the_same_thinking(effort: Any, max_tokens: int | None) -> None:
    req = request(reasoning=Reasoning(effort=effort), max_tokens=max_tokens, temperature=0.2, top_p=0.5)
    messages, converse = anthropic_body(req, "m"), converse_body(req)
    assert messages["thinking"] == converse["additionalModelRequestFields"]["thinking"]
    assert messages["thinking"]["budget_tokens"] == EFFORT_BUDGET[effort]
    assert converse["inferenceConfig"] == {"maxTokens": messages["max_tokens"]}
    assert "temperature" not in messages and "top_p" not in messages
    assert messages["max_tokens"] > messages["thinking"]["budget_tokens"]
