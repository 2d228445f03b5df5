"""Per-request credentials for the cloud providers: Google access tokens (google-auth, for
Vertex AI) and AWS SigV4 signatures (botocore, for Bedrock).

Credentials come from the official libraries: google-auth for Vertex (a service-account
file, application default credentials, or a fixed token) and botocore for Bedrock (keys
from the config, or botocore's default chain). Anything that may do I/O (loading or
refreshing credentials) runs in a worker thread, never on the trio loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..config.schema import BedrockConfig, VertexConfig
from ..errors import ConfigError, ProviderError
from ..wire.base import HttpRequestSpec

__all__ = ["GOOGLE_SCOPES", "Authorizer", "AwsSigner", "GoogleTokenSource"]

#: Signs or adds fresh credentials to a request just before it is sent (may do I/O).
Authorizer = Callable[[HttpRequestSpec], Awaitable[HttpRequestSpec]]

GOOGLE_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


class GoogleTokenSource:
    """Adds `Authorization: Bearer <token>` from google-auth, refreshing before expiry.

    Credentials: a fixed `access_token`, else a service-account `credentials_file`, else
    application default credentials. Loading and refreshing run in a worker thread; a
    lock makes concurrent requests share one refresh.
    """

    def __init__(self, name: str, pc: VertexConfig) -> None:
        self.name = name
        self._pc = pc
        self._creds: Any = None
        self._lock = trio.Lock()
        self.refreshes = 0

    def _load(self) -> Any:
        if self._pc.credentials_file:
            from google.oauth2 import service_account

            return service_account.Credentials.from_service_account_file(
                self._pc.credentials_file, scopes=list(GOOGLE_SCOPES)
            )
        import google.auth

        creds, _ = google.auth.default(scopes=list(GOOGLE_SCOPES))
        return creds

    def _refresh(self) -> None:
        import urllib3
        from google.auth.transport.urllib3 import Request

        self._creds.refresh(Request(urllib3.PoolManager()))
        self.refreshes += 1

    async def token(self) -> str:
        """A valid access token (refreshed in a thread when missing or about to expire)."""
        if self._pc.access_token is not None:
            return self._pc.access_token.reveal()
        async with self._lock:
            try:
                if self._creds is None:
                    self._creds = await trio.to_thread.run_sync(self._load)
                if not self._creds.valid:  # google-auth counts "expires within minutes" as not valid
                    await trio.to_thread.run_sync(self._refresh)
            except Exception as exc:
                raise ProviderError(
                    f"could not obtain Google credentials: {type(exc).__name__}: {exc}",
                    provider=self.name,
                    kind="connection",
                    retryable=True,
                ) from exc
            token: str = self._creds.token
            return token

    async def __call__(self, spec: HttpRequestSpec) -> HttpRequestSpec:
        return spec.with_headers({"authorization": f"Bearer {await self.token()}"})


class AwsSigner:
    """Signs each attempt with SigV4 (botocore), so a retry carries a fresh date.

    Keys from the config when given, else botocore's default credential chain (env,
    profile, SSO, container or instance metadata), resolved once in a worker thread.
    """

    def __init__(self, name: str, pc: BedrockConfig) -> None:
        from botocore.credentials import RefreshableCredentials  # botocore loads only when Bedrock is used

        from ..wire.bedrock import sign_request

        self._sign = sign_request
        self._refreshable_type = RefreshableCredentials
        self.name = name
        self._region = pc.region
        self._creds: Any = None
        if pc.aws_access_key_id is not None or pc.aws_secret_access_key is not None:
            if pc.aws_access_key_id is None or pc.aws_secret_access_key is None:
                raise ConfigError(
                    f"invalid config: providers.{name}: give both aws_access_key_id and aws_secret_access_key "
                    "(or neither, to use botocore's default credential chain)",
                    key=f"providers.{name}.aws_secret_access_key",
                )
            from botocore.credentials import Credentials

            token = pc.aws_session_token.reveal() if pc.aws_session_token else None
            self._creds = Credentials(pc.aws_access_key_id.reveal(), pc.aws_secret_access_key.reveal(), token)
        self._lock = trio.Lock()

    def _resolve(self) -> Any:
        import botocore.session

        creds = botocore.session.get_session().get_credentials()
        if creds is None:
            raise RuntimeError("no AWS credentials found (set aws_access_key_id/aws_secret_access_key, or AWS_* env)")
        return creds

    async def __call__(self, spec: HttpRequestSpec) -> HttpRequestSpec:
        try:
            if self._creds is None:
                async with self._lock:
                    if self._creds is None:
                        self._creds = await trio.to_thread.run_sync(self._resolve)
            creds = self._creds
            if isinstance(creds, self._refreshable_type):
                frozen = await trio.to_thread.run_sync(creds.get_frozen_credentials)
            else:
                frozen = creds.get_frozen_credentials()
        except Exception as exc:
            raise ProviderError(
                f"could not obtain AWS credentials: {type(exc).__name__}: {exc}",
                provider=self.name,
                kind="connection",
                retryable=False,
            ) from exc
        return self._sign(spec, frozen, self._region)
