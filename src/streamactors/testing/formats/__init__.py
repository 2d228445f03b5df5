"""Each provider's streaming format, rendered from abstract steps for the fake upstream.

A format module offers `render(steps, model, request_body) -> Iterator[bytes | Delay | Drop]`
(each bytes item goes out as its own HTTP chunk), `error_body(status, message) -> bytes`
and `CONTENT_TYPE`.
"""
