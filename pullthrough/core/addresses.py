"""Which addresses a remote's files may come from (against SSRF): an upstream page names the
file URLs, so an index must not be able to make this server fetch from, and hand anonymous
clients, what sits on its own host or network (127.0.0.1, 169.254.169.254's cloud metadata, a
10.x service). A file at such an address is fetched only when the remote's index is itself at an
address of that kind (a local devpi, a LAN mirror), or the remote allows it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

PUBLIC = "public"
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def kind_of(address: str) -> str:
    """`loopback`, `link-local`, `private`, `reserved` (multicast, unspecified, ...) or
    `public`."""
    ip: Address = ipaddress.ip_address(address.split("%", 1)[0])  # a zone id: fe80::1%eth0
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_unspecified:  # 0.0.0.0 reaches this host too
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast or ip.is_reserved:
        return "reserved"
    if ip.is_private or not ip.is_global:  # not global: 100.64.0.0/10 (carrier NAT, Tailscale,
        return "private"  # a cloud's metadata service at 100.100.100.200), documentation ranges
    return PUBLIC


def may_fetch(file_addresses: Iterable[str], index_addresses: Iterable[str]) -> bool:
    """True when every address a file's host resolves to is public, or of a kind the index's
    own addresses are."""
    allowed = {PUBLIC} | {kind_of(a) for a in index_addresses}
    kinds = [kind_of(a) for a in file_addresses]
    return bool(kinds) and all(kind in allowed for kind in kinds)
