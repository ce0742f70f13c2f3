"""The SSRF guard. A webhook URL may only reach public addresses: loopback, private,
link-local, multicast and reserved ones are refused unless a network in
CLARION_WEBHOOK_ALLOWED_NETWORKS covers them. The check runs when a URL is saved and again at
every send, on the addresses the name resolves to then; the request is made to the address
that was checked (with the name kept for Host and TLS), so a DNS answer that changes between
the check and the connection cannot redirect it."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeDestination(ValueError):
    """A URL Clarion will not call; the message says why."""


def parse_networks(text: str) -> list[Network]:
    """``"127.0.0.0/8, 10.1.0.0/16"`` -> networks; raises ValueError naming a bad entry."""
    networks: list[Network] = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(
                    f"not a network (CIDR) in the allowed networks: {part!r}"
                ) from None
    return networks


def _forbidden(ip: Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None


@dataclass(frozen=True)
class Target:
    url: str  # with the checked address in place of the name
    host: str  # the Host header (the URL's name, and its port if it has one)
    hostname: str  # for TLS: SNI and the certificate check
    address: str


def check_url(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of a well-formed http(s) URL; raises UnsafeDestination."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination("the URL must start with https:// (or http://)")
    if not parts.hostname:
        raise UnsafeDestination("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeDestination("credentials in the URL are not allowed; use a header")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeDestination("the URL's port is not a number from 1 to 65535") from None
    return parts.scheme, parts.hostname, port


def resolve(url: str, allowed: Sequence[Network]) -> Target:
    """Resolve the URL's host and check every address it has; the request goes to the
    first. Raises UnsafeDestination."""
    _, host, port = check_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeDestination(f"{host} does not resolve ({exc.strerror})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        kind = _forbidden(ip)
        if kind and not any(ip in net for net in allowed):
            raise UnsafeDestination(
                f"{host} resolves to {ip}, a {kind} address; webhooks may only reach public "
                "addresses (allow a network with CLARION_WEBHOOK_ALLOWED_NETWORKS)"
            )
    address = addresses[0]
    literal = f"[{address}]" if ":" in address else address
    parts = urlsplit(url)
    pinned = parts._replace(netloc=f"{literal}:{port}").geturl()
    return Target(url=pinned, host=parts.netloc, hostname=host, address=address)
