"""The built-in fake upstream and what it says: for tests, the stress harness and demos."""

from .script import Scenario as Scenario
from .script import parse_scenario as parse_scenario
from .script import token_text as token_text
from .server import FakeUpstream as FakeUpstream
from .server import RecordedRequest as RecordedRequest
from .server import serve_fake_upstream as serve_fake_upstream

__all__ = ["FakeUpstream", "RecordedRequest", "Scenario", "parse_scenario", "serve_fake_upstream", "token_text"]
