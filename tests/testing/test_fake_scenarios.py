"""The fake upstream's scenario language and its steps, without a server: what a model id asks
for is what `build_steps` yields (the server and formats are exercised by every end-to-end test)."""

from __future__ import annotations

import pytest

from streamactors.testing import Scenario, parse_scenario, token_text
from streamactors.testing.formats import bedrock, openai
from streamactors.testing.frames import encode_frame
from streamactors.testing.script import Delay, Finish, MidStreamError, Raw, Text, Usage, build_steps


def test_options_after_the_model_name() -> None:
    sc = parse_scenario("gpt-4o~tokens=5~ttft_ms=2.5~fail=midstream@3~retry_after=1~quota_tokens=130~hold=1~x=y")
    assert (sc.model, sc.tokens, sc.ttft_ms, sc.fail, sc.fail_at) == ("gpt-4o", 5, 2.5, "midstream", 3)
    assert (sc.retry_after, sc.quota_tokens, sc.hold) == (1.0, 130, True)  # unknown keys are ignored


def test_defaults_come_from_the_server() -> None:
    sc = parse_scenario("m~tokens=2", Scenario(delay_ms=7.0))
    assert (sc.tokens, sc.delay_ms) == (2, 7.0)


def test_steps_of_a_plain_reply() -> None:
    steps = list(build_steps(Scenario(tokens=3, input_tokens=4)))
    assert steps == [Text(token_text(0)), Text(token_text(1)), Text(token_text(2)), Usage(4, 3, 0), Finish("stop")]


@pytest.mark.parametrize(("fail", "last"), [("midstream", MidStreamError), ("garbage", Raw)])
def test_a_body_fault_replaces_the_end_and_hold_keeps_the_connection(fail: str, last: type) -> None:
    steps = list(build_steps(parse_scenario(f"m~tokens=4~fail={fail}@2")))
    assert steps[:2] == [Text("t0 "), Text("t1 ")] and isinstance(steps[-1], last)
    held = list(build_steps(parse_scenario(f"m~tokens=4~fail={fail}@2~hold=1")))
    assert held[:-1] == steps and held[-1] == Delay(3600.0)


def test_quota_headers_in_each_providers_names() -> None:
    assert openai.quota_headers(130, 0.054, 0.0) == [
        (b"x-ratelimit-remaining-tokens", b"130"),
        (b"x-ratelimit-reset-tokens", b"54ms"),
    ]
    assert openai.quota_headers(0, 6.0, 0.0)[1] == (b"x-ratelimit-reset-tokens", b"6s")


def test_event_stream_frames_carry_their_lengths_and_checksums() -> None:
    frame = encode_frame({":event-type": "messageStop"}, b"{}")
    total = int.from_bytes(frame[:4], "big")
    assert total == len(frame) and frame.endswith(frame[-4:])
    assert bedrock.encode_frame is encode_frame  # the format renders with the same encoder
