"""Sans-IO wire formats: classes fed bytes that return events. No sockets, no trio, no httpx."""
