"""Each provider kind's endpoint, headers and auth: from a provider's config to its codec
(`kinds`) and its per-request credential step (`auth`)."""

from .auth import Authorizer as Authorizer
from .kinds import USER_AGENT as USER_AGENT
from .kinds import build_authorizer as build_authorizer
from .kinds import build_codec as build_codec

__all__ = ["USER_AGENT", "Authorizer", "build_authorizer", "build_codec"]
