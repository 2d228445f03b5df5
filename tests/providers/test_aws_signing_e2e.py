"""Bedrock's SigV4 signatures, checked on the receiving side.

For each request the fake upstream recorded, botocore recomputes the signature from
what arrived (method, path, the signed headers, the body) and the credentials, at the
time the request itself states (`X-Amz-Date`), as AWS does: they must agree.
"""

from __future__ import annotations

import datetime
import itertools
import random
import re
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import LogCapture, user
from streamactors import Config, open_service
from streamactors.testing import FakeUpstream, RecordedRequest, token_text

AKID = "AKIATESTSIGNING01234"
SECRET = "test/SIGNING/secret+0123456789abcdefghijk"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEtest//session+token=="
AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)


def recompute_signature(req: RecordedRequest, base_url: str, secret: str, token: str | None) -> str:
    """The SigV4 signature botocore computes for the request as received, at its own X-Amz-Date."""
    auth = AUTH.fullmatch(req.headers["authorization"])
    assert auth is not None, req.headers["authorization"]
    headers = {name: req.headers[name] for name in auth["signed"].split(";")}
    aws = AWSRequest(method=req.method, url=base_url + req.target, headers=headers, data=req.body)
    aws.context["timestamp"] = req.headers["x-amz-date"]
    signer = SigV4Auth(Credentials(auth["akid"], secret, token), auth["service"], auth["region"])
    string_to_sign = signer.string_to_sign(aws, signer.canonical_request(aws))
    return str(signer.signature(string_to_sign, aws))


def assert_valid_signature(req: RecordedRequest, base_url: str, *, token: str | None = None,
                           region: str = "us-east-1") -> re.Match[str]:
    auth = AUTH.fullmatch(req.headers["authorization"])
    assert auth is not None
    assert (auth["akid"], auth["region"], auth["service"]) == (AKID, region, "bedrock")
    assert auth["date"] == req.headers["x-amz-date"][:8]
    assert re.fullmatch(r"\d{8}T\d{6}Z", req.headers["x-amz-date"])
    signed = auth["signed"].split(";")
    assert {"host", "x-amz-date", "content-type"} <= set(signed)
    assert ("x-amz-security-token" in signed) == (token is not None)
    assert recompute_signature(req, base_url, SECRET, token) == auth["signature"]
    return auth


def bedrock_config(fake: FakeUpstream, **keys: Any) -> Config:
    table = {"kind": "bedrock", "region": "us-east-1", "endpoint_url": fake.base_url,
             "aws_access_key_id": AKID, "aws_secret_access_key": SECRET, "max_retries": 0,
             "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}, **keys}
    return Config.from_dict({"providers": {"bedrock": table}})


@pytest.fixture
def logs() -> LogCapture:
    return LogCapture([SECRET, SESSION_TOKEN])


def expected_text(n: int) -> str:
    return "".join(token_text(i) for i in range(n))


@pytest.mark.parametrize(
    "model_id",
    [
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "amazon.nova-pro-v1:0",
    ],
)
async def test_signature_verifies(model_id: str, fake: FakeUpstream, logs: LogCapture) -> None:
    """Signed now, for exactly the path (':' and '/' percent-encoded), headers and body that arrived."""
    async with open_service(bedrock_config(fake), logger=logs.logger) as service:
        reply = await service.complete({"model": f"bedrock/{model_id}~tokens=4", "messages": user()})
    assert reply.text == expected_text(4)
    (req,) = fake.requests
    assert_valid_signature(req, fake.base_url)
    assert "x-amz-security-token" not in req.headers
    signed_at = datetime.datetime.strptime(req.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    assert abs((datetime.datetime.now(datetime.UTC) - signed_at).total_seconds()) < 60


async def test_tampered_request_does_not_verify(fake: FakeUpstream, logs: LogCapture) -> None:
    """The check above has teeth: another body, path, date or secret gives another signature."""
    async with open_service(bedrock_config(fake), logger=logs.logger) as service:
        await service.complete({"model": "bedrock/amazon.nova-lite-v1:0~tokens=1", "messages": user()})
    req = fake.requests[-1]
    good = AUTH.fullmatch(req.headers["authorization"])["signature"]  # type: ignore[index]
    assert recompute_signature(req, fake.base_url, SECRET, None) == good
    variants = [
        RecordedRequest(req.method, req.target, req.headers, req.body.replace(b"user", b"USER")),
        RecordedRequest(req.method, req.target.replace("nova-lite", "nova-pro"), req.headers, req.body),
        RecordedRequest(req.method, req.target, {**req.headers, "x-amz-date": "20200101T000000Z"}, req.body),
    ]
    for variant in variants:
        assert recompute_signature(variant, fake.base_url, SECRET, None) != good
    assert recompute_signature(req, fake.base_url, SECRET + "x", None) != good


async def test_session_token_is_sent_and_signed(fake: FakeUpstream, logs: LogCapture) -> None:
    cfg = bedrock_config(fake, aws_session_token=SESSION_TOKEN)
    async with open_service(cfg, logger=logs.logger) as service:
        reply = await service.complete({"model": "bedrock/amazon.nova-pro-v1:0~tokens=3", "messages": user()})
    assert reply.text == expected_text(3)
    req = fake.requests[-1]
    assert req.headers["x-amz-security-token"] == SESSION_TOKEN
    assert_valid_signature(req, fake.base_url, token=SESSION_TOKEN)
    assert SESSION_TOKEN not in logs.text and SECRET not in logs.text


async def test_default_credential_chain_from_the_environment(fake: FakeUpstream, logs: LogCapture,
                                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No keys in the config: botocore's default chain finds them (here in AWS_* variables)."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    table = {"kind": "bedrock", "region": "eu-central-1", "endpoint_url": fake.base_url, "max_retries": 0}
    cfg = Config.from_dict({"providers": {"bedrock": table}})
    async with open_service(cfg, logger=logs.logger) as service:
        reply = await service.complete({"model": "bedrock/amazon.nova-pro-v1:0~tokens=2", "messages": user()})
    assert reply.text == expected_text(2)
    assert_valid_signature(fake.requests[-1], fake.base_url, token=SESSION_TOKEN, region="eu-central-1")


def _first_fails_then_succeeds(fail_rate: float) -> int:
    """A seed for which the fake upstream's fault injection fails the first request only."""
    for seed in itertools.count():
        rng = random.Random(seed)
        if rng.random() < fail_rate <= rng.random():
            return seed
    raise AssertionError("unreachable")


async def test_retry_after_503_is_signed_again(nursery: Any, logs: LogCapture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A 503, then a retry: the retry carries its own X-Amz-Date and a signature computed for it
    over the same content, and both attempts verify."""
    fake: FakeUpstream = await nursery.start(FakeUpstream(fail_rate=0.5, seed=_first_fails_then_succeeds(0.5)).serve)
    clock = (datetime.datetime(2025, 6, 1, 12, 0, 0) + datetime.timedelta(seconds=7 * n) for n in itertools.count())
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: next(clock))
    request = {"model": "bedrock/amazon.nova-pro-v1:0~tokens=5", "messages": user()}
    cfg = bedrock_config(fake, max_retries=2)
    async with open_service(cfg, logger=logs.logger) as service, service.stream(request) as events:
        async for _ in events:
            pass
        assert events.retries == 1
        reply = events.reply()
    assert reply.text == expected_text(5)
    first, second = fake.requests
    assert (first.headers["x-amz-date"], second.headers["x-amz-date"]) == ("20250601T120000Z", "20250601T120007Z")
    a = assert_valid_signature(first, fake.base_url)
    b = assert_valid_signature(second, fake.base_url)
    assert a["signature"] != b["signature"]
    assert (first.method, first.target, first.body) == (second.method, second.target, second.body)
    assert [r["event"] for r in logs.records()].count("retry") == 1
