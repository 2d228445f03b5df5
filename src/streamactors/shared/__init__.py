"""Shared state through Redis: several services (processes, machines) as one fleet.

With `[shared]` in the config, the services of one namespace share each provider's budgets
(`requests_per_minute`, `tokens_per_minute`), its circuit and its quota news (a 429's
Retry-After, quota headers that say nothing is left). Without it nothing here is used.

- `address`: `RedisAddress.parse(url)`, the `redis://` / `rediss://` URL (sans-IO).
- `resp`: RESP request encoding (sans-IO; replies are parsed by hiredis).
- `scripts`: the Lua scripts the Redis server runs, on its own clock, atomically.
- `connection`: one connection over trio sockets (TLS for `rediss://`), pipelined.
- `link`: `RedisLink`, the actor that owns the connection: batches every queued command
  into one pipelined round trip, answers `None` when Redis is unreachable or slow (the
  caller falls back to local state), reconnects with backoff, logs one warning per outage.
- `fleet`: `Fleet`, typed calls over the link (admit, pause, poll, trip, probe) and the keys.

Importing this package does nothing (no module here is imported by it).
"""
