from __future__ import annotations

import pytest

from pullthrough.web.negotiation import Format, choose_format

UV = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (UV, Format.V1_JSON),
        (PIP, Format.V1_JSON),
        (None, Format.HTML),
        ("*/*", Format.HTML),
        ("text/html", Format.HTML),
        ("application/vnd.pypi.simple.v1+html", Format.V1_HTML),
        ("application/vnd.pypi.simple.latest+json", Format.V1_JSON),
        ("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.9", Format.V1_JSON),
        ("application/vnd.pypi.simple.v1+json;q=0, text/html", Format.HTML),
        ("application/xml", None),
        ("application/vnd.pypi.simple.v2+json", None),
        # Media-type parameters other than q are answered as if absent.
        ("application/vnd.pypi.simple.v1+json; charset=utf-8", Format.V1_JSON),
        (
            'application/vnd.pypi.simple.v1+json ; charset="utf-8";q=0.9, text/html;q=0.5',
            Format.V1_JSON,
        ),
        ("text/html; charset=utf-8", Format.HTML),
        ("application/vnd.pypi.simple.v2+json; charset=utf-8", None),
    ],
)
def test_accept_header(accept: str | None, expected: Format | None) -> None:
    assert choose_format(accept) is expected


def test_format_parameter_overrides_accept() -> None:
    assert choose_format("text/html", "application/vnd.pypi.simple.v1+json") is Format.V1_JSON
    assert choose_format(UV, "text/html") is Format.HTML
    assert choose_format(UV, "application/pdf") is None
