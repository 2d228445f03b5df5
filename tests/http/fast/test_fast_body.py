"""The sans-IO halves of `streamactors.http.fast`: the bulk chunked decoder, the other body
decoders, the response head reader and the request head encoder. No sockets here.

Every valid transcript is re-split at every byte offset (and into three pieces, and byte by
byte): each split must give the same body, trailers and leftover bytes. Invalid input may
only ever raise `FramingError`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamactors.http.fast import ChunkedDecoder, ContentLengthDecoder, FramingError, ResponseHeadReader
from streamactors.http.fast.body import decoder_for
from streamactors.http.fast.h1 import (
    BodyFraming,
    ResponseHead,
    _split_lines,
    body_framing,
    encode_request_head,
    parse_response_head,
)


def every_split(data: bytes) -> Iterator[list[bytes]]:
    """`data` whole, then cut in two at every offset, then byte by byte."""
    yield [data]
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]
    yield [data[i : i + 1] for i in range(len(data))]


def three_way(data: bytes) -> Iterator[list[bytes]]:
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            yield [data[:i], data[i:j], data[j:]]


def run_chunked(pieces: list[bytes], **limits: int) -> tuple[bytes, ChunkedDecoder]:
    dec = ChunkedDecoder(**limits)
    out = b"".join(dec.feed(p) for p in pieces)
    return out, dec


def encode_chunked(payloads: list[bytes], trailers: bytes = b"", ext: bytes = b"") -> bytes:
    return b"".join(b"%x%b\r\n%b\r\n" % (len(p), ext, p) for p in payloads) + b"0\r\n" + trailers + b"\r\n"


TRANSCRIPT = b"5\r\nhello\r\n1;name=value\r\n,\r\nB\r\n 0123456789\r\n0\r\nX-Checksum: abc\r\n\r\nLEFT"


class TestChunkedDecoder:
    def test_every_split_gives_the_same_body_trailers_and_leftover(self) -> None:
        """A transcript with an extension, a multi-digit size and a trailer, at every offset."""
        for pieces in every_split(TRANSCRIPT):
            body, dec = run_chunked(pieces)
            assert body == b"hello, 0123456789", [len(p) for p in pieces]
            assert dec.done
            assert dec.trailers == [(b"X-Checksum", b"abc")]
            assert dec.unused == b"LEFT"

    def test_three_way_splits(self) -> None:
        data = encode_chunked([b"ab", b"c", b"defgh"])
        for pieces in three_way(data):
            body, dec = run_chunked(pieces)
            assert (body, dec.done, dec.unused) == (b"abcdefgh", True, b"")

    def test_one_read_of_many_chunks_is_one_call_and_one_bytes_object(self) -> None:
        """The point of the bulk decoder: everything in the buffer, decoded in one pass."""
        events = [b'data: {"i": %d}\n\n' % i for i in range(500)]
        dec = ChunkedDecoder()
        body = dec.feed(encode_chunked(events))
        assert type(body) is bytes
        assert body == b"".join(events)
        assert dec.done

    def test_data_is_returned_before_its_chunk_is_complete(self) -> None:
        """A large chunk is not buffered: its first bytes come out of the first feed."""
        dec = ChunkedDecoder()
        assert dec.feed(b"100000\r\n" + b"x" * 1000) == b"x" * 1000
        assert dec.pending_bytes == 0
        assert dec.feed(b"y" * (0x100000 - 1000)) == b"y" * (0x100000 - 1000)
        assert dec.feed(b"\r\n0\r\n\r\n") == b""
        assert dec.done

    def test_data_after_the_end_is_kept_as_unused(self) -> None:
        dec = ChunkedDecoder()
        dec.feed(b"0\r\n\r\nHTTP")
        dec.feed(b"/1.1")
        assert dec.unused == b"HTTP/1.1"

    @pytest.mark.parametrize(
        "line",
        [b"5 ", b"5\t", b"5;ext", b"5 ;ext", b'5;a=b;c="d e"', b"0005", b"F5"],
    )
    def test_lenient_size_lines_as_h11(self, line: bytes) -> None:
        """Trailing whitespace and chunk extensions (which are ignored) are accepted."""
        size = int(line.split(b";")[0].strip(), 16)
        dec = ChunkedDecoder()
        body = dec.feed(line + b"\r\n" + b"z" * size + b"\r\n0\r\n\r\n")
        assert body == b"z" * size
        assert dec.done

    @pytest.mark.parametrize(
        "bad",
        [
            b"0x5\r\nhello\r\n",  # int(x, 16) would take these five
            b"+5\r\nhello\r\n",
            b" 5\r\nhello\r\n",
            b"5_0\r\n",
            b"-1\r\n",
            b"\r\n",  # empty size
            b"g\r\n",
            b"5\nhello\r\n",  # bare LF ends no chunk-size line: the LF is part of an illegal size
            b"5\r\nhelloXY",  # data not followed by CRLF
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\rX",
            b"5;a\x00b\r\nhello\r\n",  # control character in an extension
            b"1" * 17 + b"\r\n",  # more than 16 hex digits
            b"0\r\nbad trailer\r\n\r\n",
            b"0\r\n: no-name\r\n\r\n",
            b"0\r\n folded: x\r\n\r\n",
            b"0\r\nX: a\x01b\r\n\r\n",
        ],
    )
    def test_strict_syntax(self, bad: bytes) -> None:
        """Each malformed transcript fails with FramingError however it is split."""
        for pieces in every_split(bad):
            dec = ChunkedDecoder()
            with pytest.raises(FramingError):
                for p in pieces:
                    dec.feed(p)
                dec.eof()

    def test_a_failed_decoder_stays_failed(self) -> None:
        dec = ChunkedDecoder()
        with pytest.raises(FramingError):
            dec.feed(b"zz\r\n")
        with pytest.raises(FramingError, match="failed earlier"):
            dec.feed(b"5\r\nhello\r\n")

    @pytest.mark.parametrize("cut", [0, 1, 3, 8, 10, 13, 14])
    def test_eof_before_the_end_is_an_error(self, cut: int) -> None:
        data = encode_chunked([b"hello"])  # 5\r\nhello\r\n0\r\n\r\n
        dec = ChunkedDecoder()
        dec.feed(data[:cut])
        with pytest.raises(FramingError, match="incomplete chunked read"):
            dec.eof()

    def test_eof_after_the_end_is_fine(self) -> None:
        dec = ChunkedDecoder()
        dec.feed(encode_chunked([b"hello"]))
        dec.eof()

    def test_size_line_limit_holds_at_every_split(self) -> None:
        """A size line at the limit passes; one byte more fails, however it arrives."""
        ok = b"5;" + b"e" * 98 + b"\r\nhello\r\n0\r\n\r\n"  # the line is 100 bytes
        for pieces in every_split(ok):
            assert run_chunked(pieces, max_line_bytes=100)[0] == b"hello"
        bad = b"5;" + b"e" * 99 + b"\r\nhello\r\n0\r\n\r\n"
        for pieces in every_split(bad):
            with pytest.raises(FramingError, match="chunk-size line longer"):
                run_chunked(pieces, max_line_bytes=100)

    def test_an_endless_size_line_is_refused_without_waiting_for_its_end(self) -> None:
        dec = ChunkedDecoder(max_line_bytes=100)
        with pytest.raises(FramingError):
            dec.feed(b"5" + b" " * 200)

    def test_trailer_limit(self) -> None:
        """The limit counts the trailer lines with their CRLFs."""
        trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 50) for i in range(10))
        data = encode_chunked([b"ok"], trailers)
        for pieces in every_split(data):
            _, dec = run_chunked(pieces, max_trailer_bytes=len(trailers))
            assert len(dec.trailers) == 10
        for pieces in every_split(data):
            with pytest.raises(FramingError, match="trailers longer"):
                run_chunked(pieces, max_trailer_bytes=len(trailers) - 1)

    @settings(max_examples=300, deadline=None)
    @given(
        payloads=st.lists(st.binary(min_size=1, max_size=300), max_size=12),
        trailers=st.lists(
            st.tuples(st.from_regex(rb"\A[A-Za-z0-9-]{1,10}\Z"), st.from_regex(rb"\A[!-~]{0,20}\Z")), max_size=3
        ),
        ext=st.sampled_from([b"", b";x", b";x=y", b' ;q="1"']),
        leftover=st.binary(max_size=10),
        cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=8),
    )
    def test_any_split_gives_the_same_body(
        self,
        payloads: list[bytes],
        trailers: list[tuple[bytes, bytes]],
        ext: bytes,
        leftover: bytes,
        cuts: list[int],
    ) -> None:
        data = encode_chunked(payloads, b"".join(n + b": " + v + b"\r\n" for n, v in trailers), ext) + leftover
        points = sorted({min(c, len(data)) for c in cuts})
        pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
        dec = ChunkedDecoder(max_line_bytes=64, max_trailer_bytes=256)
        body = b""
        for p in pieces:
            body += dec.feed(p)
            assert dec.pending_bytes <= 256 + 1  # only a partial line or the trailers are ever held
        assert body == b"".join(payloads)
        assert dec.done
        assert dec.trailers == [(n, v.strip(b" \t")) for n, v in trailers]
        assert dec.unused == leftover

    @settings(max_examples=500, deadline=None)
    @given(data=st.binary(max_size=200), cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6))
    def test_garbage_raises_only_framing_error(self, data: bytes, cuts: list[int]) -> None:
        points = sorted({min(c, len(data)) for c in cuts})
        dec = ChunkedDecoder(max_line_bytes=32, max_trailer_bytes=64)
        try:
            for a, b in zip([0, *points], [*points, len(data)], strict=True):
                dec.feed(data[a:b])
            dec.eof()
        except FramingError:
            pass
        assert dec.pending_bytes <= 64 + 1

    @settings(max_examples=300, deadline=None)
    @given(
        payloads=st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=5),
        position=st.integers(min_value=0),
        byte=st.integers(min_value=0, max_value=255),
        mode=st.sampled_from(["replace", "insert", "delete"]),
    )
    def test_mutated_transcripts_decode_or_raise_framing_error(
        self, payloads: list[bytes], position: int, byte: int, mode: str
    ) -> None:
        """One byte changed, added or removed: a different body or FramingError, nothing else,
        and the same outcome for the whole transcript and byte by byte."""
        data = encode_chunked(payloads)
        i = position % len(data)
        if mode == "replace":
            data = data[:i] + bytes([byte]) + data[i + 1 :]
        elif mode == "insert":
            data = data[:i] + bytes([byte]) + data[i:]
        else:
            data = data[:i] + data[i + 1 :]

        def outcome(pieces: list[bytes]) -> tuple[bytes, bool] | str:
            try:
                body, dec = run_chunked(pieces)
                dec.eof()
            except FramingError:
                return "error"
            return body, dec.done

        assert outcome([data]) == outcome([data[k : k + 1] for k in range(len(data))])


class TestOtherBodies:
    def test_content_length_at_every_split(self) -> None:
        for pieces in every_split(b"0123456789EXTRA"):
            dec = ContentLengthDecoder(10)
            body = b"".join(dec.feed(p) for p in pieces)
            assert (body, dec.done, dec.unused) == (b"0123456789", True, b"EXTRA")

    def test_content_length_short_is_an_error_at_eof(self) -> None:
        dec = ContentLengthDecoder(10)
        dec.feed(b"01234")
        with pytest.raises(FramingError, match="5 bytes missing"):
            dec.eof()

    def test_until_close(self) -> None:
        dec = decoder_for(BodyFraming("close", 0, False))
        assert dec.feed(b"abc") == b"abc"
        assert not dec.done
        dec.eof()
        assert dec.done

    def test_no_body_is_done_at_once(self) -> None:
        assert decoder_for(BodyFraming("none", 0, True)).done


def head(status: int = 200, *headers: tuple[bytes, bytes], version: bytes = b"HTTP/1.1") -> ResponseHead:
    return ResponseHead(version, status, b"OK", list(headers))


class TestResponseHead:
    RAW = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Folded: a\r\n  b\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello"
    )

    def test_every_split(self) -> None:
        expected = ResponseHead(
            b"HTTP/1.1",
            200,
            b"OK",
            [(b"Content-Type", b"text/event-stream"), (b"X-Folded", b"a b"), (b"Transfer-Encoding", b"chunked")],
        )
        for pieces in every_split(self.RAW):
            reader = ResponseHeadReader()
            rest = list(pieces)
            got = None
            while got is None:
                got = reader.feed(rest.pop(0))
            assert got == expected
            # The bytes after the head are kept for the body decoder, whichever piece held them.
            assert reader.unused + b"".join(rest) == b"5\r\nhello"

    def test_bare_lf_lines_as_h11(self) -> None:
        reader = ResponseHeadReader()
        got = reader.feed(b"HTTP/1.0 404 Not Found\nA: b\n\nrest")
        assert got == ResponseHead(b"HTTP/1.0", 404, b"Not Found", [(b"A", b"b")])
        assert reader.unused == b"rest"

    def test_interim_responses_are_skipped(self) -> None:
        raw = (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            b"HTTP/1.1 204 No Content\r\n\r\n"
        )
        for pieces in every_split(raw):
            reader = ResponseHeadReader()
            found = [h for h in (reader.feed(p) for p in pieces) if h is not None]
            assert [h.status_code for h in found] == [204]
            assert [h.status_code for h in reader.informational] == [100, 103]

    def test_switching_protocols_is_refused(self) -> None:
        with pytest.raises(FramingError, match="101"):
            ResponseHeadReader().feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")

    @pytest.mark.parametrize(
        "status_line",
        [b"HTTP/1.1 200", b"HTTP/1.1 200 ", b"HTTP/1.1 599 Whatever it is", b"HTTP/1.0 200 OK"],
    )
    def test_status_lines_accepted(self, status_line: bytes) -> None:
        assert parse_response_head(status_line).status_code == int(status_line[9:12])

    @pytest.mark.parametrize(
        "raw",
        [
            b"HTTP/2 200 OK",
            b"HTTP/1.1 20 OK",
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1 200OK",
            b"http/1.1 200 OK",
            b"HTTP/1.1 2x0 OK",
            b"HTTP/1.1 200 O\x00K",
            b"HTTP/1.1 200 OK\r\nno colon",
            b"HTTP/1.1 200 OK\r\nbad name: x",
            b"HTTP/1.1 200 OK\r\nname : x",
            b"HTTP/1.1 200 OK\r\n: x",
            b"HTTP/1.1 200 OK\r\nX: a\x01b",
            b"HTTP/1.1 200 OK\r\n continuation-first",
            b"",
        ],
    )
    def test_malformed_heads(self, raw: bytes) -> None:
        with pytest.raises(FramingError):
            parse_response_head(raw)

    def test_head_size_limit(self) -> None:
        big = b"HTTP/1.1 200 OK\r\n" + b"X: " + b"v" * 200 + b"\r\n\r\n"
        assert ResponseHeadReader(max_head_bytes=len(big)).feed(big) is not None
        for pieces in every_split(big):
            reader = ResponseHeadReader(max_head_bytes=100)
            with pytest.raises(FramingError, match="larger than"):
                for p in pieces:
                    reader.feed(p)

    @settings(max_examples=300, deadline=None)
    @given(data=st.binary(max_size=300), cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=5))
    def test_garbage_raises_only_framing_error(self, data: bytes, cuts: list[int]) -> None:
        reader = ResponseHeadReader(max_head_bytes=128)
        points = sorted({min(c, len(data)) for c in cuts})
        try:
            for a, b in zip([0, *points], [*points, len(data)], strict=True):
                if reader.feed(data[a:b]) is not None:
                    break
        except FramingError:
            pass
        assert reader.pending_bytes <= 128


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"a", b":", b" ", b"\r", b"\n", b"\r\n"]), max_size=30).map(b"".join))
def test_head_lines_split_as_line_by_line(head: bytes) -> None:
    """Lines end at LF, a CR before it dropped; the CRLF-only shortcut splits alike."""
    assert _split_lines(head) == [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]


class TestBodyFraming:
    @pytest.mark.parametrize(
        ("status", "headers", "method", "expected"),
        [
            (200, [(b"Transfer-Encoding", b"chunked")], b"GET", BodyFraming("chunked", 0, True)),
            (200, [(b"transfer-encoding", b"Chunked")], b"POST", BodyFraming("chunked", 0, True)),
            (200, [(b"Content-Length", b"42")], b"GET", BodyFraming("length", 42, True)),
            (200, [(b"Content-Length", b"42"), (b"content-length", b"42")], b"GET", BodyFraming("length", 42, True)),
            (200, [(b"Content-Length", b"42, 42")], b"GET", BodyFraming("length", 42, True)),
            (200, [(b"Content-Length", b"0")], b"GET", BodyFraming("none", 0, True)),
            (200, [], b"GET", BodyFraming("close", 0, False)),
            (200, [(b"Content-Length", b"42")], b"HEAD", BodyFraming("none", 0, True)),
            (204, [], b"GET", BodyFraming("none", 0, True)),
            (304, [(b"Content-Length", b"42")], b"GET", BodyFraming("none", 0, True)),
            (200, [(b"Connection", b"keep-alive, Close")], b"GET", BodyFraming("close", 0, False)),
            (200, [(b"Content-Length", b"1"), (b"Connection", b"close")], b"GET", BodyFraming("length", 1, False)),
            # Both framings: chunked wins, and the connection is not reused (a smuggling attempt?).
            (
                200,
                [(b"Content-Length", b"1"), (b"Transfer-Encoding", b"chunked")],
                b"GET",
                BodyFraming("chunked", 0, False),
            ),
        ],
    )
    def test_framing(
        self, status: int, headers: list[tuple[bytes, bytes]], method: bytes, expected: BodyFraming
    ) -> None:
        assert body_framing(head(status, *headers), method) == expected

    def test_http_1_0_is_never_kept_alive(self) -> None:
        framing = body_framing(head(200, (b"Content-Length", b"1"), version=b"HTTP/1.0"), b"GET")
        assert framing == BodyFraming("length", 1, False)

    @pytest.mark.parametrize(
        "headers",
        [
            [(b"Transfer-Encoding", b"gzip, chunked")],
            [(b"Transfer-Encoding", b"identity")],
            [(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")],
            [(b"Content-Length", b"1"), (b"Content-Length", b"2")],
            [(b"Content-Length", b"-1")],
            [(b"Content-Length", b"0x10")],
            [(b"Content-Length", b"")],
            [(b"Content-Length", b"1" * 19)],
        ],
    )
    def test_refused_framings(self, headers: list[tuple[bytes, bytes]]) -> None:
        with pytest.raises(FramingError):
            body_framing(head(200, *headers), b"GET")


class TestRequestHead:
    def test_encoding(self) -> None:
        got = encode_request_head(b"POST", b"/v1/x?a=1", [(b"Host", b"h"), (b"Content-Length", b"2")])
        assert got == b"POST /v1/x?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n"

    @pytest.mark.parametrize(
        ("method", "target", "headers"),
        [
            (b"GET", b"/", [(b"X", b"a\r\nInjected: 1")]),
            (b"GET", b"/", [(b"X", b"a\nb")]),
            (b"GET", b"/", [(b"X", b"a\x00b")]),
            (b"GET", b"/", [(b"X Y", b"a")]),
            (b"GET", b"/", [(b"", b"a")]),
            (b"GET", b"/ HTTP/1.1\r\nX: y", []),
            (b"GET", b"", []),
            (b"G T", b"/", []),
        ],
    )
    def test_no_line_injection(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        with pytest.raises(ValueError, match="illegal"):
            encode_request_head(method, target, headers)
