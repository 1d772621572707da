"""Trusted-proxy sign-in, for sites with single sign-on in front of the workbench.

Off unless a header is configured (``MDM_WORKBENCH_TRUSTED_PROXY_HEADER``, e.g.
``X-Forwarded-User``). When it is, a request whose direct peer is one of the trusted proxies
(``MDM_WORKBENCH_TRUSTED_PROXIES``, addresses or networks; default loopback only) and that
carries the header is signed in as the local user the header names: that user must exist and be
enabled (its role comes from the user table, never from the proxy); any other name is refused
(403). The same header from any other address is ignored, so a client that reaches the
workbench directly cannot claim a name; without the header, the sign-in page works as usual.

The peer address is the socket's: ``mdm serve`` runs uvicorn without proxy headers, so no
``X-Forwarded-For`` can stand in for it. The proxy must strip the header from what clients send.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from fastapi import Request

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ("127.0.0.1", "::1")
#: The longest user name (``workbench_users.name``); a longer asserted name is refused whole.
MAX_USER_NAME = 64
#: What a too-long asserted name becomes: no user can have it (a NUL), so the sign-in is 403.
INVALID_USER = "\x00(name too long)"


@dataclass(frozen=True)
class TrustedProxy:
    """Which header names the user, and which peers may send it (no header: off)."""

    header: str | None = None
    networks: tuple[IPNetwork, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.header)

    def trusts(self, address: str | None) -> bool:
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in self.networks)

    def asserted_user(self, request: Request) -> str | None:
        """The user name a trusted proxy asserts for this request (None: no assertion)."""
        if not self.header:
            return None
        if not self.trusts(request.client.host if request.client else None):
            return None
        value = (request.headers.get(self.header) or "").strip()
        if len(value) > MAX_USER_NAME:
            # Never cut to size: a long name would sign in as whoever its first characters name.
            return INVALID_USER
        return value or None


def parse_networks(text: str | tuple[str, ...] | list[str] | None) -> tuple[IPNetwork, ...]:
    """``"10.0.0.5, 192.168.1.0/24, ::1"`` -> networks (strict: a typo raises ValueError)."""
    if text is None:
        items: list[str] = list(LOOPBACK)
    elif isinstance(text, str):
        items = [t.strip() for t in text.split(",") if t.strip()]
    else:
        items = [t.strip() for t in text if t.strip()]
    return tuple(ipaddress.ip_network(t, strict=False) for t in items)


def trusted_proxy(
    header: str | None = None, proxies: str | tuple[str, ...] | list[str] | None = None
) -> TrustedProxy:
    """The configuration given, else the environment's (off when no header is set)."""
    if header is None:
        from mdm_orchestration.settings import settings

        env = settings()
        header = env.mdm_workbench_trusted_proxy_header
        proxies = env.mdm_workbench_trusted_proxies if proxies is None else proxies
    header = (header or "").strip() or None
    return TrustedProxy(header, parse_networks(proxies) if header else ())
