"""Stream transforms: sans-IO stages between a provider's events and the consumer.

`Transform` is the contract (`feed(events) -> events`, `close() -> events`); the built-ins are
`StopSequences`, `Redact` and `BlockList` (and `Coalesce`, which uses the clock and so lives
in the actor layer, `streamactors.actors.coalesce`). Nothing here does I/O or reads the clock.
"""

from .base import Chain as Chain
from .base import TextTransform as TextTransform
from .base import Transform as Transform
from .blocklist import BlockList as BlockList
from .blocklist import ContentBlocked as ContentBlocked
from .redact import Redact as Redact
from .stop import StopSequences as StopSequences

__all__ = ["BlockList", "Chain", "ContentBlocked", "Redact", "StopSequences", "TextTransform", "Transform"]
