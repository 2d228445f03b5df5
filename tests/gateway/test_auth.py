"""The gateway's API-key check (issue 14): Bearer or x-api-key, any configured key, nothing else."""

from __future__ import annotations

import pytest

from streamactors.config.secret import Secret
from streamactors.gateway.auth import KeyCheck

KEYS = KeyCheck([Secret("sk-gw-one-0123"), Secret("sk-gw-two-4567")])


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "allowed"),
    [
        ("Bearer sk-gw-one-0123", None, True),
        ("bearer  sk-gw-two-4567 ", None, True),
        (None, "sk-gw-two-4567", True),
        ("Bearer wrong", "sk-gw-one-0123", True),  # either header may carry it
        ("Bearer sk-gw-one-012", None, False),  # a prefix is not the key
        ("Bearer sk-gw-one-01234", None, False),
        ("Basic sk-gw-one-0123", None, False),
        ("sk-gw-one-0123", None, False),
        (None, None, False),
        ("Bearer ", "", False),
        ("Bearer sk-gw-one-0123\u00e9", None, False),
    ],
)
def test_keys(authorization: str | None, x_api_key: str | None, allowed: bool) -> None:
    assert KEYS.allows(authorization, x_api_key) is allowed


def test_without_keys_everything_is_allowed_and_empty_keys_do_not_count() -> None:
    assert KeyCheck([]).allows(None, None) and not KeyCheck([]).enabled
    empty = KeyCheck([Secret("")])
    assert not empty.enabled and empty.allows(None, None)
    assert KEYS.enabled
