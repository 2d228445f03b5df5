"""`RedisAddress`: where the shared Redis is, parsed from a `redis://` or `rediss://` URL (sans-IO).

    redis://[[username]:password@]host[:port][/db]
    rediss://...                  (the same over TLS)

Port 6379 and database 0 unless given. A malformed URL is a `ValueError` that says what is
wrong; the config turns it into a `ConfigError` naming `shared.redis_url`.
"""

from __future__ import annotations

import urllib.parse

import attrs

__all__ = ["RedisAddress"]


@attrs.frozen
class RedisAddress:
    """A parsed Redis URL. `password` and `username` are credentials: never log them."""

    host: str
    port: int = 6379
    db: int = 0
    tls: bool = False
    username: str | None = attrs.field(default=None, repr=False)
    password: str | None = attrs.field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> RedisAddress:
        """Parse `url`; raise `ValueError` naming what is wrong."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f'must start with "redis://" or "rediss://" (TLS), got {_shown(url)!r}')
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError(f"has an invalid port: {_shown(url)!r}") from None
        host = parts.hostname
        if not host:
            raise ValueError(f'names no host: {_shown(url)!r} (e.g. "redis://127.0.0.1:6379/0")')
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"database must be a number (redis://host:port/0), got {path!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"takes no query or fragment: {_shown(url)!r}")
        unquote = urllib.parse.unquote
        return cls(
            host=host,
            port=port,
            db=int(path) if path else 0,
            tls=parts.scheme == "rediss",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    def shown(self) -> str:
        """The address without credentials, for logs: `redis://127.0.0.1:6379/0`."""
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}/{self.db}"


def _shown(url: str) -> str:
    """`url` with any password masked (errors must not repeat it)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:****@{netloc}"))
