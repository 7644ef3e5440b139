"""Links: an upstream's, resolved against its page's URL; and our file names, quoted."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import quote, urldefrag, urljoin, urlsplit

from pullthrough.core.lines import as_lines, every_line, lines_pattern

# URLs urljoin leaves as they are: a host, a path without dot segments, empty segments,
# queries or characters it would remove.
_CHARS = r"[A-Za-z0-9._~%!$&'()*+,=:@-]+"
_ORIGIN = r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?"
_PATH = rf"{_CHARS}(?:/{_CHARS})*/?"
_ABSOLUTE = re.compile(rf"({_ORIGIN})(/(?:{_PATH})?)")
# A link `resolve` returns as it is, without a fragment: the absolute one nearly every file has
# (one match instead of `resolve`'s four steps).
_SEGMENT = rf"(?!\.\.?(?:/|$)){_CHARS}"  # neither `.` nor `..`
PLAIN_ABSOLUTE = re.compile(rf"{_ORIGIN}/(?:{_SEGMENT}(?:/{_SEGMENT})*/?)?")
# And the relative one of the indexes that write those (`../../packages/...`), in one match: a
# path without dot segments, after `../`s; without a `../`, no `:` in its first segment (`a:`
# would be a scheme).
_FIRST_SEGMENT = r"(?!\.\.?(?:/|$))[A-Za-z0-9._~%!$&'()*+,=@-]+"  # of a link without `../`
_PLAIN_RELATIVE = re.compile(
    rf"((?:\.\./)*)((?:(?<=/){_SEGMENT}|{_FIRST_SEGMENT})(?:/{_SEGMENT})*/?)"
)
# The same two kinds, a page's links at once (`resolve_all`); a relative link with as many `../`
# as the page's first.
_PLAIN_ABSOLUTE_LINES = lines_pattern(PLAIN_ABSOLUTE.pattern)
_UNSAFE = re.compile("[\t\r\n]")  # urlsplit drops these wherever they are
_UNRESERVED = re.compile("[A-Za-z0-9_.~-]+")  # what `quote` leaves as it is (RFC 3986)


def resolve(base: str, link: str) -> tuple[str, str]:
    """`urldefrag(urljoin(base, link))`: the absolute URL and the fragment, without urljoin
    for the plain links nearly every index writes (half of a 4,000-file page's parse time)."""
    url, _, fragment = link.partition("#")
    if _UNSAFE.search(fragment) is None:
        if (found := _PLAIN_RELATIVE.fullmatch(url)) is not None and (
            prefix := _prefix(base, len(found[1]) // 3)
        ) is not None:
            return prefix + found[2], fragment
        if _ABSOLUTE.fullmatch(url) is not None and _plain(url):
            return url, fragment
    joined, fragment = urldefrag(urljoin(base, link))
    return joined, fragment


def shown_link(base: str, link: str | None) -> str | None:
    """An upstream's link our pages show as it is (a PEP 740 provenance URL), resolved against
    `base`; None for no link, one urljoin refuses (no reason to refuse its page), one that is
    no web address, or one that may carry a secret for every reader to see: a user and
    password, or a query (an index's `?token=`, a presigned URL's signature)."""
    if not link:
        return None
    try:
        url = urljoin(base, link)
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or "?" in url:
        return None
    return url


def all_plain_absolute(links: Sequence[str]) -> bool:
    """Whether every link is a plain absolute one, which `resolve` keeps as it is (one match)."""
    return every_line(_PLAIN_ABSOLUTE_LINES, links)


def resolve_all(base: str, links: Sequence[str]) -> list[str] | None:
    """`[resolve(base, link)[0] for link in links]` where every link is a plain absolute one
    (kept as it is) or every one a plain relative one with as many `../`; None for any other
    page, whose links are resolved one by one. Two matches over the whole page instead of
    several calls per link."""
    if not links:
        return []
    if (lines := as_lines(links)) is None:
        return None
    if _PLAIN_ABSOLUTE_LINES.fullmatch(lines) is not None:
        return list(links)
    ups = 0
    while links[0].startswith("../", 3 * ups):
        ups += 1
    if (
        _plain_relative_lines(ups).fullmatch(lines) is None
        or (prefix := _prefix(base, ups)) is None
    ):
        return None
    return [prefix + link[3 * ups :] for link in links]


@lru_cache(maxsize=8)
def _plain_relative_lines(ups: int) -> re.Pattern[str]:
    """Lines of `_PLAIN_RELATIVE` links with `ups` `../` each."""
    first = _SEGMENT if ups else _FIRST_SEGMENT
    return lines_pattern(rf"(?:\.\./){{{ups}}}{first}(?:/{_SEGMENT})*/?")


def _plain(path: str) -> bool:
    """No `.` or `..` segment for urljoin to remove."""
    bounded = f"/{path}/"
    return "/./" not in bounded and "/../" not in bounded


@lru_cache(maxsize=256)
def _prefix(base: str, ups: int) -> str | None:
    """What a plain relative link `ups` directories up from a plain page URL starts with: the
    origin and the directories kept (one dropped per `../`, none above the root); None for
    another page URL."""
    url, _, _ = base.partition("#")
    found = _ABSOLUTE.fullmatch(url)
    if found is None or not _plain(found[2]):
        return None
    segments = found[2].split("/")[1:-1]
    return found[1] + "/" + "".join(s + "/" for s in segments[: max(0, len(segments) - ups)])


def quoted(filename: str) -> str:
    """`quote(filename)`, without its work for the names nearly every file has (a third of a
    big page's rendering)."""
    return filename if _UNRESERVED.fullmatch(filename) else quote(filename)


def without_userinfo(url: str) -> str:
    """A URL, or text meant as one, fit for a message: what stands before its last `@` (a user
    and password, in whatever form it was mistyped: a `/` or `?` in a password included) and
    every query parameter's value (an index's `?token=`) as ********."""
    start = url.find("//") + 2 if "//" in url else 0
    if (at := url.rfind("@", start)) >= 0:
        url = f"{url[:start]}********{url[at:]}"
    head, sep, query = url.partition("?")
    if not sep:
        return url
    query, hash_sep, fragment = query.partition("#")
    hidden = "&".join(
        f"{key}=********" if eq and value else f"{key}{eq}{value}"
        for key, eq, value in (item.partition("=") for item in query.split("&"))
    )
    return f"{head}?{hidden}{hash_sep}{fragment}"
