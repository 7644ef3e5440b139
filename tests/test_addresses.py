"""Which file addresses a remote may send this server to (SSRF guard)."""

from __future__ import annotations

import pytest

from pullthrough.core.addresses import kind_of, may_fetch


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("151.101.0.223", "public"),
        ("2a04:4e42::223", "public"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("172.16.0.1", "private"),
        ("fd00::1", "private"),
        ("100.100.100.200", "private"),  # carrier-grade NAT: a cloud's metadata service here
        ("100.64.0.1", "private"),
        ("192.0.2.1", "private"),  # documentation, never routed
        ("224.0.0.1", "reserved"),
    ],
)
def test_kinds(address: str, kind: str) -> None:
    assert kind_of(address) == kind


@pytest.mark.parametrize(
    ("files", "index", "allowed"),
    [
        (["151.101.0.223"], ["151.101.64.223"], True),  # PyPI's files from PyPI's index
        (["127.0.0.1"], ["151.101.64.223"], False),  # a public index naming this host
        (["169.254.169.254"], ["151.101.64.223"], False),  # ... or the cloud's metadata
        (["10.0.0.5"], ["151.101.64.223"], False),  # ... or the LAN
        (["100.100.100.200"], ["151.101.64.223"], False),  # ... or a 100.64/10 service
        (["10.0.0.5"], ["10.0.0.4"], True),  # a LAN mirror's files on the LAN
        (["127.0.0.1"], ["127.0.0.1"], True),  # a local index's files on this host
        (["169.254.169.254"], ["127.0.0.1"], False),  # but not the metadata service
        (["151.101.0.223", "127.0.0.1"], ["151.101.64.223"], False),  # any address counts
        ([], ["151.101.64.223"], False),  # nothing resolved: nothing to allow
    ],
)
def test_may_fetch(files: list[str], index: list[str], allowed: bool) -> None:
    assert may_fetch(files, index) is allowed
