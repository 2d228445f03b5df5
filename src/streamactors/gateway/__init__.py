"""The HTTP gateway: OpenAI and Anthropic dialects in front of every provider."""
