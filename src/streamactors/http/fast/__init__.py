"""A fast httpx transport for long-lived streaming responses (HTTP/1.1 on trio sockets).

`FastTransport` plugs into `httpx.AsyncClient(transport=...)`; the sans-IO pieces it is
built from (the response head reader and the bulk body decoders) are exported for tests
and for raw-socket benchmarks. See `fasthttp.transport` for what falls back to httpx's
default transport.
"""

from .body import ChunkedDecoder as ChunkedDecoder
from .body import ContentLengthDecoder as ContentLengthDecoder
from .body import UntilCloseDecoder as UntilCloseDecoder
from .h1 import FramingError as FramingError
from .h1 import ResponseHead as ResponseHead
from .h1 import ResponseHeadReader as ResponseHeadReader
from .h1 import encode_request_head as encode_request_head
from .pool import ConnectionPool as ConnectionPool
from .transport import FastTransport as FastTransport

__all__ = [
    "ChunkedDecoder",
    "ConnectionPool",
    "ContentLengthDecoder",
    "FastTransport",
    "FramingError",
    "ResponseHead",
    "ResponseHeadReader",
    "UntilCloseDecoder",
    "encode_request_head",
]
