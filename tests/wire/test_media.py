import base64

import pytest

from streamactors.content import ImagePart, TextPart, content_text
from streamactors.errors import UsageError
from streamactors.models import Message
from streamactors.wire.media import parse_data_url, remote_images


def test_parse_data_url_base64_and_percent_encoded() -> None:
    d = parse_data_url("data:Image/PNG;base64,iVBORw0KGgo=")
    assert (d.mime, d.base64) == ("image/png", "iVBORw0KGgo=")
    assert d.bytes() == base64.b64decode("iVBORw0KGgo=")
    t = parse_data_url("data:text/plain;charset=utf-8,h%C3%A9llo")
    assert t.mime == "text/plain" and t.bytes() == "héllo".encode()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://x/y.png", "expected a data URL"),
        ("data:image/png;base64", "needs a comma"),
        ("data:image/png;base64,@@@", "base64 data is invalid"),
    ],
)
def test_parse_data_url_errors_name_the_place(url: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_data_url(url, "messages[1].content[0].image_url.url")
    assert "messages[1].content[0].image_url.url" in str(info.value) and fragment in str(info.value)


def test_content_text_and_remote_media() -> None:
    parts = (TextPart("a"), ImagePart("data:image/png;base64,AAAA"), TextPart("b"))
    assert content_text(parts) == "ab" and content_text("x") == "x" and content_text(None) == ""
    assert remote_images([Message("user", parts)]) == []
    twice = Message("user", [ImagePart("https://e.com/a.png"), ImagePart("https://e.com/b.png")])
    assert remote_images([Message("user", "x"), twice, Message("user", [ImagePart("https://e.com/a.png")])]) == [
        "https://e.com/a.png",
        "https://e.com/b.png",
    ]
