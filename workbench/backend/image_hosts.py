"""Which hosts the backend fetches task images from: the guard against server-side
request forgery (a task whose image URL points at an address only the server can reach).

An ``http(s)`` image URL is fetched when its host is

- Label Studio's own: the origin (scheme, host, port) of the configured Label Studio
  URL (only where none is configured, of the ``hostname`` sent to ``/setup``); or
- allowed by the workspace: ``[serve] allowed_image_hosts`` in workbench.toml, a list
  of host names (``images.example.com``), ``host:port`` pairs, IP addresses or
  networks (``10.0.0.0/8``); or
- public: every address the name resolves to is a global one. Loopback, link-local
  (169.254.*, fe80::), private (10/8, 172.16/12, 192.168/16, fc00::/7), unspecified,
  multicast and reserved addresses are refused unless a network or address entry
  allows them.

A public name is resolved once and the connection goes to the address that was checked,
so a DNS answer that changes between the check and the connect (DNS rebinding) cannot
move it. Redirects are followed one hop at a time, each hop checked the same way.
"""

from __future__ import annotations

import copy
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import WorkbenchError

SETTING = "[serve] allowed_image_hosts"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class HostRefused(WorkbenchError):
    """The image URL's host is not one the backend may fetch from."""


def address_refusal(address: str | Address) -> str | None:
    """Why the backend may not connect to ``address`` by default (None: it may)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a reserved address"
    return None


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute http(s) URL; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class Target:
    """Where to connect for one URL: ``address`` is the checked IP to connect to, or
    None to connect by name (a trusted or allowed host)."""

    url: str
    host: str
    port: int
    address: str | None


class ImageHosts:
    """The rules above, for one service: ``check(url)`` returns the ``Target`` to connect
    to or raises ``HostRefused`` naming the host and the setting to change."""

    def __init__(
        self,
        trusted_urls: Iterable[str | None] = (),
        allowed: Iterable[str] = (),
        resolve: Callable[[str, int], list[str]] | None = None,
    ):
        self.trusted = frozenset(o for u in trusted_urls if u and (o := origin(u)))
        self.allowed = tuple(allowed)
        self._names: set[tuple[str, int | None]] = set()
        self._networks: list[Network] = []
        for entry in self.allowed:
            self._add(entry)
        self._resolve = resolve or _resolve

    def with_trusted(self, url: str | None) -> ImageHosts:
        """These rules with one more trusted origin (Label Studio's, from ``/setup``)."""
        extra = origin(url) if url else None
        if extra is None or extra in self.trusted:
            return self
        out = copy.copy(self)
        out.trusted = self.trusted | {extra}
        return out

    def is_trusted(self, url: str) -> bool:
        """The URL is on Label Studio's own origin (the token may go with it)."""
        return origin(url) in self.trusted

    def check(self, url: str) -> Target:
        o = origin(url)
        if o is None:
            raise HostRefused(f"not an http(s) URL with a host: {url[:200]!r}")
        scheme, host, port = o
        if o in self.trusted or (host, None) in self._names or (host, port) in self._names:
            return Target(url, host, port, None)
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        addresses = [literal] if literal is not None else self._addresses(host, port)
        for ip in addresses:
            why = address_refusal(ip)
            if why is not None and not any(ip in net for net in self._networks):
                shown = host if literal is not None else f"{host} ({ip})"
                raise HostRefused(
                    f"refused to fetch the image from {shown}: {why}, not Label Studio's host. "
                    f"To allow it, add {host!r} to {SETTING} "
                    "in workbench.toml"
                )
        return Target(url, host, port, str(addresses[0]))

    def _addresses(self, host: str, port: int) -> list[Address]:
        try:
            found = self._resolve(host, port)
        except OSError as exc:
            raise HostRefused(f"could not resolve the image host {host}: {exc}") from None
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in found]
        if not addresses:
            raise HostRefused(f"the image host {host} resolves to no address")
        return addresses

    def _add(self, entry: str) -> None:
        if not isinstance(entry, str) or not entry.strip():
            raise WorkbenchError(f"{SETTING} in workbench.toml: {entry!r} is not a host name")
        text = entry.strip().lower()
        try:
            if "/" in text:
                self._networks.append(ipaddress.ip_network(text, strict=False))
            else:
                self._networks.append(ipaddress.ip_network(ipaddress.ip_address(text.strip("[]"))))
            return
        except ValueError:
            pass
        host, sep, port = text.rpartition(":")
        if sep and port.isdigit() and host and ":" not in host.strip("[]"):
            self._names.add((host.strip("[]"), int(port)))
        elif ":" in text or "/" in text or " " in text:
            raise WorkbenchError(
                f"{SETTING} in workbench.toml: {entry!r} is not a host name, host:port, "
                "address or network "
                "(e.g. 'images.example.com', 'cdn.example.com:8443', '10.0.0.0/8')"
            )
        else:
            self._names.add((text, None))


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))
