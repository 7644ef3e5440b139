"""Who may do what, without a server: scopes, principals, tokens, the failed-login limit."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from pullthrough.catalog.db import Catalog, make_engine, prepare
from pullthrough.catalog.models import ApiToken
from pullthrough.core.access import Principal, client_address, parse_scope, parse_scopes
from pullthrough.services.auth import (
    Authenticator,
    FailureLimit,
    TooManyFailures,
    Unauthorized,
    new_token,
)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ---- scopes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("admin", "admin"),
        ("read:corp", "read:corp"),
        ("read:/team/corp/", "read:team/corp"),
        ("upload:corp", "upload:corp"),
        ("upload:corp:acme-*", "upload:corp:acme-*"),
        ("upload:corp:Acme_Lib", "upload:corp:Acme_Lib"),
    ],
)
def test_scopes_parse_and_print_back(text: str, shown: str) -> None:
    assert str(parse_scope(text)) == shown


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "is not a scope"),
        ("write:corp", "is not a scope"),
        ("read", "is not a scope"),
        ("admin:corp", "is not a scope"),
        ("read:corp:acme-*", "only upload scopes name projects"),
        ("read:../etc", "expected a path"),
        ("upload:corp:lib>=1", "without versions"),
        ("upload:corp:bad name", "invalid requirement"),
    ],
)
def test_malformed_scopes_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_scope(text)


def test_the_scopes_field_is_a_non_empty_list_of_scopes() -> None:
    assert parse_scopes(["read:corp", "upload:corp"]) == ["read:corp", "upload:corp"]
    for bad in ([], "read:corp", [1], None):
        with pytest.raises(ValueError):
            parse_scopes(bad)


def principal(*scopes: str) -> Principal:
    return Principal("token:t", tuple(parse_scope(s) for s in scopes))


def test_read_is_per_base_path_and_upload_does_not_imply_it() -> None:
    reader = principal("read:corp", "upload:other")
    assert reader.may_read("corp")
    assert not reader.may_read("other")
    assert not reader.may_read("corp/sub")
    assert principal("admin").may_read("anything")


def test_uploads_follow_base_path_and_name_patterns() -> None:
    name = canonicalize_name
    acme = principal("upload:corp:acme-*", "upload:corp:tool")
    assert acme.upload_refusal("corp", name("Acme_Lib")) is None  # normalized: acme-lib
    assert acme.upload_refusal("corp", name("tool")) is None
    refusal = acme.upload_refusal("corp", name("requests"))
    assert refusal is not None and "acme-*, tool" in refusal and "'requests'" in refusal
    other = acme.upload_refusal("other", name("acme-lib"))
    assert other is not None and "no upload:other" in other
    assert principal("upload:corp").upload_refusal("corp", name("requests")) is None
    assert principal("read:corp").upload_refusal("corp", name("x")) is not None
    assert principal("admin").upload_refusal("corp", name("x")) is None


# ---- the failed-login limit -----------------------------------------------------------------


def test_failed_logins_are_limited_per_address_in_a_sliding_window() -> None:
    now = [1000.0]
    limit = FailureLimit(3, 60.0, clock=lambda: now[0])
    for _ in range(3):
        limit.check("10.0.0.1")
        limit.failed("10.0.0.1")
    with pytest.raises(TooManyFailures) as raised:
        limit.check("10.0.0.1")
    assert raised.value.retry_after == pytest.approx(60.0)
    limit.check("10.0.0.2")  # another address is not affected
    now[0] += 30
    with pytest.raises(TooManyFailures) as raised:
        limit.check("10.0.0.1")
    assert raised.value.retry_after == pytest.approx(30.0)
    now[0] += 30.5  # the first failures left the window
    limit.check("10.0.0.1")


# ---- tokens ---------------------------------------------------------------------------------


def test_new_tokens_are_distinct_and_only_their_digest_is_kept() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len({t for t, _, _ in tokens}) == 50
    for token, key, digest in tokens:
        assert token.startswith(key + ".") and key.startswith("pt_")
        assert len(token) > 50  # 256 random bits after the key
        assert token not in digest and len(digest) == 64


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    prepare(engine)
    return Catalog(engine)


def add_token(catalog: Catalog, name: str, scopes: list[str], **extra: object) -> str:
    token, key, digest = new_token()
    with catalog.session() as session:
        session.add(ApiToken(name=name, key=key, digest=digest, scopes=scopes, **extra))
    return token


def test_who_a_request_is(catalog: Catalog) -> None:
    auth = Authenticator(catalog, "admin", "s3cret", "admintoken", FailureLimit(1000, 60))
    live = add_token(catalog, "ci", ["read:corp", "upload:corp:acme-*"])
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = add_token(catalog, "old", ["read:corp"], expires_at=past)
    revoked = add_token(catalog, "gone", ["read:corp"], revoked_at=past)
    later = add_token(catalog, "later", ["admin"], expires_at=past + timedelta(days=1))

    assert auth.identify(None, "a") is None
    for header in (basic("admin", "s3cret"), "Token admintoken", "bearer admintoken"):
        found = auth.identify(header, "a")
        assert found is not None and found.is_admin and found.actor == "admin"
    for header in (basic("__token__", live), f"Bearer {live}"):
        found = auth.identify(header, "a")
        assert found is not None and found.actor == "token:ci" and not found.is_admin
        assert found.may_read("corp")
    found = auth.identify(f"Bearer {later}", "a")
    assert found is not None and found.is_admin
    wrong = [
        basic("admin", "wrong"),
        basic("someone", "s3cret"),
        basic("__token__", expired),
        basic("__token__", revoked),
        basic("__token__", live[:-1] + ("A" if live[-1] != "A" else "B")),  # same key
        basic("__token__", "s3cret"),
        basic("admin", ""),
        "Bearer " + live.partition(".")[0],
        "Basic !!notbase64!!",
        "Basic \xff\xfe",  # bytes past ASCII, as a header's latin-1 text holds them: not base64
        "Basic " + base64.b64encode(b"admin:\xff").decode(),  # not UTF-8 once decoded
        "Digest something",
        basic("ci", live),  # a token is the password of __token__, not of its name
    ]
    for header in wrong:
        with pytest.raises(Unauthorized):
            auth.identify(header, "a")


def test_an_empty_admin_password_never_opens_anything(catalog: Catalog) -> None:
    auth = Authenticator(catalog, "admin", "")
    for header in (basic("admin", ""), "Token ", "Bearer "):
        with pytest.raises(Unauthorized):
            auth.identify(header, "a")


def test_wrong_credentials_count_and_lock_the_address_out(catalog: Catalog) -> None:
    auth = Authenticator(catalog, "admin", "s3cret", limit=FailureLimit(2, 60))
    for _ in range(2):
        with pytest.raises(Unauthorized):
            auth.identify(basic("admin", "guess"), "10.1.1.1")
    with pytest.raises(TooManyFailures):  # even the right password, for the window
        auth.identify(basic("admin", "s3cret"), "10.1.1.1")
    assert auth.identify(basic("admin", "s3cret"), "10.1.1.2") is not None
    assert auth.identify(None, "10.1.1.1") is None  # anonymous reads are not locked out


def test_the_client_address_behind_a_trusted_proxy() -> None:
    trusted = frozenset({"127.0.0.1"})
    assert client_address("127.0.0.1", "203.0.113.9", trusted) == "203.0.113.9"
    # nginx appends the address it saw: earlier entries are whatever the client claimed
    assert client_address("127.0.0.1", "1.2.3.4, 203.0.113.9", trusted) == "203.0.113.9"
    assert client_address("198.51.100.7", "1.2.3.4", trusted) == "198.51.100.7"  # not a proxy
    assert client_address("127.0.0.1", None, trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", " ", trusted) == "127.0.0.1"
    assert client_address("10.0.0.5", "1.2.3.4", frozenset({"*"})) == "1.2.3.4"
