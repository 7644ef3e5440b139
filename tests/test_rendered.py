"""Answers built once: the gzip form of a page, made once and kept, and who gets it."""

from __future__ import annotations

import gzip
import math
import time

import pytest

from pullthrough.web.rendered import GZIP_MIN_BYTES, accepts_gzip, rendered


@pytest.mark.parametrize(
    ("header", "takes"),
    [
        ("gzip, deflate, br", True),  # pip (requests) and uv
        ("GZIP", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("*", True),
        ("identity", False),
        ("gzip;q=0", False),
        ("gzip;q=0.0, identity", False),
        ("gzip;q=nonsense", False),
        ("deflate", False),
        ("", False),
        (None, False),
    ],
)
def test_who_takes_gzip(header: str | None, takes: bool) -> None:
    assert accepts_gzip(header) is takes


def test_the_gzip_form_is_made_once_with_its_own_etag_and_length() -> None:
    body = b"<a href='x'>lib-1.0.tar.gz</a>\n" * 200
    page = rendered(body, "text/html; charset=utf-8", stale=False, max_age=600)
    assert page.encoded(False) is page
    packed = page.encoded(True)
    assert packed is page.encoded(True)  # kept, not compressed again
    assert gzip.decompress(packed.body) == body and len(packed.body) < len(body) // 10
    headers = dict(packed.headers)
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Length"] == str(len(packed.body))
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Vary"] == dict(page.headers)["Vary"] == "Accept, Accept-Encoding"
    assert packed.etag != page.etag and headers["ETag"] == packed.etag
    assert dict(packed.headers_304)["ETag"] == packed.etag
    assert "Content-Encoding" not in dict(page.headers)


def test_small_answers_go_as_they_are() -> None:
    small = rendered(b"x" * (GZIP_MIN_BYTES - 1), "application/json", stale=True, max_age=0)
    assert small.encoded(True) is small


def test_max_age_is_at_most_what_is_left_of_the_pages_time() -> None:
    done = rendered(b"x" * 2000, "text/html", stale=False, max_age=600)
    now = time.time()

    def max_age(expires_at: float, **how: bool) -> str:
        return dict(done.until(expires_at, **how))["Cache-Control"]

    assert max_age(now + 30.5) in ("max-age=30, public", "max-age=29, public")
    assert max_age(now + 30.5, not_modified=True).endswith(", public")
    assert max_age(now - 5) == "max-age=0, public"  # expired while it was being sent
    assert max_age(now + 3600) == "max-age=600, public"  # never longer than rendered
    assert max_age(math.inf) == "max-age=600, public"  # a repository's list: no end here
    assert done.encoded(gzip_ok=True).until(now + 30.5)[-1][0] == "Cache-Control"
