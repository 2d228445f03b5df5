"""Claude's extended-thinking rule, shared by the two codecs that speak to Claude: Anthropic's
Messages API (`wire/anthropic.py`, also behind Vertex AI) and Bedrock's Converse
(`wire/bedrock.py`), which passes Anthropic's `thinking` through (sans-IO).

With thinking enabled, Anthropic rejects `temperature` and `top_p` (they are dropped) and
requires `budget_tokens` of at least 1024 and below `max_tokens` (raised above the budget
when it is not).
"""

from __future__ import annotations

from typing import NamedTuple

from ..models import ChatRequest

__all__ = ["DEFAULT_MAX_TOKENS", "EFFORT_BUDGET", "MIN_BUDGET", "ClaudeSampling", "claude_sampling"]

#: What we send as max_tokens when the request gives none (and one is needed).
DEFAULT_MAX_TOKENS = 4096
#: The thinking budget of each effort level.
EFFORT_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}
#: Anthropic's smallest accepted `budget_tokens`.
MIN_BUDGET = 1024


class ClaudeSampling(NamedTuple):
    """What to send: `thinking_budget` is None when thinking is off; `temperature` and
    `top_p` are None when the request gave none or thinking is on."""

    max_tokens: int | None
    thinking_budget: int | None
    temperature: float | None
    top_p: float | None


def claude_sampling(request: ChatRequest, *, require_max_tokens: bool) -> ClaudeSampling:
    """The request's sampling parameters under Claude's thinking rule.

    `max_tokens` defaults to `DEFAULT_MAX_TOKENS` when the API requires it
    (`require_max_tokens`: the Messages API does, Converse does not) or thinking is on.
    """
    budget = None
    if request.reasoning is not None:
        budget = request.reasoning.budget_tokens
        if budget is None and request.reasoning.effort is not None:
            budget = EFFORT_BUDGET[request.reasoning.effort]
    if budget is None:
        max_tokens = request.max_tokens
        if max_tokens is None and require_max_tokens:
            max_tokens = DEFAULT_MAX_TOKENS
        return ClaudeSampling(max_tokens, None, request.temperature, request.top_p)
    budget = max(budget, MIN_BUDGET)
    max_tokens = request.max_tokens if request.max_tokens is not None else DEFAULT_MAX_TOKENS
    if max_tokens <= budget:
        max_tokens += budget  # the API requires budget_tokens < max_tokens
    return ClaudeSampling(max_tokens, budget, None, None)
