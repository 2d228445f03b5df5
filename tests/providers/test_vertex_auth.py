"""Vertex AI credentials end to end: a service-account file whose OAuth2 token endpoint is the
fake upstream's `/token`, token reuse and refresh, a fixed access token, relative paths.

google-auth refreshes in a worker thread. The fake upstream runs on the same trio loop
as the service, so a refresh that blocked the loop could never be answered: every test
here that completes at all shows the refresh left the loop free.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest
import trio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from conftest import LogCapture, user
from streamactors import Config, ProviderError, open_service
from streamactors.testing import FakeUpstream, token_text

CLIENT_EMAIL = "streamactors-test@test-project.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
COMMON: dict[str, Any] = {"max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}}
VERTEX_PATH = "/v1/projects/test-project/locations/us-central1/publishers/google/models/"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def write_service_account(path: Path, key: rsa.RSAPrivateKey, token_uri: str) -> Path:
    """A service-account JSON file as the Cloud console downloads it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": private_pem(key),
        "client_email": CLIENT_EMAIL,
        "client_id": "123456789012345678901",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }))
    return path


def vertex_config(fake: FakeUpstream, **keys: Any) -> Config:
    table = {"kind": "vertex", "project": "test-project", "location": "us-central1", "base_url": fake.base_url,
             **COMMON, **keys}
    return Config.from_dict({"providers": {"vertex": table}})


@pytest.fixture
def sa_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey, fake: FakeUpstream) -> Path:
    return write_service_account(tmp_path / "sa.json", rsa_key, f"{fake.base_url}/token")


@pytest.fixture
def logs(rsa_key: rsa.RSAPrivateKey) -> LogCapture:
    return LogCapture([private_pem(rsa_key)])


def token_requests(fake: FakeUpstream) -> list[Any]:
    return [r for r in fake.requests if r.path == "/token"]


def vertex_requests(fake: FakeUpstream) -> list[Any]:
    return [r for r in fake.requests if r.path.startswith(VERTEX_PATH)]


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def check_jwt_grant(body: bytes, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """The token request is a JWT-bearer grant, signed RS256 by the service account's key.
    (google-auth always names Google's token endpoint as the audience, whatever `token_uri` is.)"""
    form = parse_qs(body.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    header_b64, claims_b64, signature_b64 = form["assertion"][0].split(".")
    header = json.loads(_b64(header_b64))
    assert header["alg"] == "RS256"
    assert header["kid"] == "0123456789abcdef0123456789abcdef01234567"
    key.public_key().verify(  # raises InvalidSignature if it was not signed with this key
        _b64(signature_b64), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    claims: dict[str, Any] = json.loads(_b64(claims_b64))
    assert claims["iss"] == CLIENT_EMAIL
    assert claims["aud"] == "https://oauth2.googleapis.com/token"
    assert claims["scope"] == SCOPE
    assert claims["exp"] - claims["iat"] == 3600
    return claims


async def complete(service: Any, tokens: int = 3) -> None:
    reply = await service.complete({"model": f"vertex/gemini-2.5-pro~tokens={tokens}", "messages": user()})
    assert reply.text == "".join(token_text(i) for i in range(tokens))


async def test_service_account_token_comes_from_the_token_endpoint_and_is_reused(
    fake: FakeUpstream, sa_file: Path, rsa_key: rsa.RSAPrivateKey, logs: LogCapture
) -> None:
    async with open_service(vertex_config(fake, credentials_file=str(sa_file)), logger=logs.logger) as service:
        await complete(service)
        await complete(service)
    assert fake.tokens_issued == 1
    (grant,) = token_requests(fake)
    assert grant.method == "POST"
    assert grant.headers["content-type"] == "application/x-www-form-urlencoded"
    check_jwt_grant(grant.body, rsa_key)
    calls = vertex_requests(fake)
    assert [r.headers["authorization"] for r in calls] == ["Bearer ya29.fake-token-1"] * 2
    assert list(fake.requests).index(grant) == 0  # the token came before the first call
    assert private_pem(rsa_key) not in logs.text


async def test_concurrent_first_requests_share_one_token(fake: FakeUpstream, sa_file: Path,
                                                         logs: LogCapture) -> None:
    """Twenty requests racing on a cold start: one token request, one token for all."""
    cfg = vertex_config(fake, credentials_file=str(sa_file))
    async with open_service(cfg, logger=logs.logger) as service, trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(complete, service)
    assert fake.tokens_issued == 1
    assert {r.headers["authorization"] for r in vertex_requests(fake)} == {"Bearer ya29.fake-token-1"}
    assert len(vertex_requests(fake)) == 20


async def test_expiring_token_is_refreshed(fake: FakeUpstream, sa_file: Path, rsa_key: rsa.RSAPrivateKey,
                                           logs: LogCapture) -> None:
    """A token within google-auth's refresh margin (3m45s) of its expiry is replaced before use;
    a fresh one is then reused."""
    fake.token_expires_in = 60  # valid for a minute: already inside the refresh margin
    async with open_service(vertex_config(fake, credentials_file=str(sa_file)), logger=logs.logger) as service:
        await complete(service)
        await complete(service)
        fake.token_expires_in = 3600
        await complete(service)
        await complete(service)
    assert fake.tokens_issued == 3
    assert [r.headers["authorization"] for r in vertex_requests(fake)] == [
        "Bearer ya29.fake-token-1", "Bearer ya29.fake-token-2", "Bearer ya29.fake-token-3", "Bearer ya29.fake-token-3"
    ]
    for grant in token_requests(fake):
        check_jwt_grant(grant.body, rsa_key)


async def test_fixed_access_token(fake: FakeUpstream, logs: LogCapture) -> None:
    """`access_token` is sent as it is; no token endpoint is ever asked."""
    cfg = vertex_config(fake, access_token="ya29.fixed-test-token")
    async with open_service(cfg, logger=logs.logger) as service:
        await complete(service)
        reply = await service.complete({"model": "vertex/claude-sonnet-4@20250514~tokens=2", "messages": user()})
    assert reply.text == token_text(0) + token_text(1)
    assert fake.tokens_issued == 0
    assert [r.headers["authorization"] for r in fake.requests] == ["Bearer ya29.fixed-test-token"] * 2
    assert unquote(fake.requests[-1].path).endswith(
        "/publishers/anthropic/models/claude-sonnet-4@20250514~tokens=2:streamRawPredict"
    )


async def test_relative_credentials_file_resolves_against_the_config_folder(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, fake: FakeUpstream, logs: LogCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf_dir = tmp_path / "conf"
    sa = write_service_account(conf_dir / "keys" / "sa.json", rsa_key, f"{fake.base_url}/token")
    (conf_dir / "streamactors.toml").write_text(
        "[providers.vertex]\n"
        'kind = "vertex"\n'
        'project = "test-project"\n'
        'location = "us-central1"\n'
        f'base_url = "{fake.base_url}"\n'
        'credentials_file = "keys/sa.json"\n'
        "max_retries = 0\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the process's folder must not matter
    cfg = Config.load(conf_dir / "streamactors.toml")
    assert Path(cfg.providers["vertex"].credentials_file) == sa  # type: ignore[attr-defined]
    async with open_service(cfg, logger=logs.logger) as service:
        await complete(service)
    assert fake.tokens_issued == 1
    assert vertex_requests(fake)[0].headers["authorization"] == "Bearer ya29.fake-token-1"


async def test_token_endpoint_failure_is_a_provider_error(tmp_path: Path, rsa_key: rsa.RSAPrivateKey,
                                                          fake: FakeUpstream, logs: LogCapture) -> None:
    """A token endpoint that says no: a retryable ProviderError naming the cause; no call is made
    without a token; the private key appears neither in the error nor in the logs."""
    sa = write_service_account(tmp_path / "sa.json", rsa_key, f"{fake.base_url}/oauth2/v4/tokens")  # a 404
    async with open_service(vertex_config(fake, credentials_file=str(sa)), logger=logs.logger) as service:
        with pytest.raises(ProviderError) as info:
            await complete(service)
    err = info.value
    assert (err.provider, err.kind, err.retryable) == ("vertex", "connection", True)
    assert err.message.startswith("could not obtain Google credentials: RefreshError")
    assert err.partial is not None and err.partial.text == ""
    assert vertex_requests(fake) == []
    assert private_pem(rsa_key) not in err.message
    assert "BEGIN PRIVATE KEY" not in logs.text


async def test_missing_credentials_file_is_a_provider_error(tmp_path: Path, fake: FakeUpstream,
                                                            logs: LogCapture) -> None:
    cfg = vertex_config(fake, credentials_file=str(tmp_path / "no-such-file.json"))
    async with open_service(cfg, logger=logs.logger) as service:
        with pytest.raises(ProviderError) as info:
            await complete(service)
    assert info.value.kind == "connection"
    assert "could not obtain Google credentials" in info.value.message
    assert "no-such-file.json" in info.value.message
    assert len(fake.requests) == 0
