"""Fetching a URL an app's user gave (a source tarball) without letting it reach the
platform's own network: no loopback, link-local (cloud metadata), private, unspecified
or multicast addresses, unless the operator allows private ones
(PAAS_SOURCE_URL_ALLOW_PRIVATE=1, for an artifact server on the premises).

The rule is checked on the address actually connected to: the host is resolved once,
that address is checked and connected to (the Host header and TLS SNI still name the
host), so a DNS answer that changes between the check and the connection (rebinding)
changes nothing. Each redirect is a new hop, resolved and checked the same way.
`refusal` is the rule as a plain function; the rest is the thin part that does I/O.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from urllib.parse import unquote, urljoin, urlsplit

import requests.certs
import urllib3
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from paas.errors import InvalidInput

SETTING = "PAAS_SOURCE_URL_ALLOW_PRIVATE"
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_BROADCAST = ipaddress.ip_address("255.255.255.255")

Resolver = Callable[[str, int], list[str]]


class UrlRefused(InvalidInput):
    """A URL the rule refuses (the API answers 422; a build fails with the message)."""


def refusal(address: str, allow_private: bool) -> str | None:
    """What kind of address refused `address` is (`a loopback address`), or None when a
    source URL may reach it."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv6 address that carries an IPv4 one is judged by the IPv4 one.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    if ip.is_unspecified or (ip.version == 4 and ip in _THIS_NETWORK):
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_loopback:
        return None if allow_private else "a loopback address"
    if ip == _BROADCAST or ip.is_reserved:
        return "a reserved address"
    site_local = isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local
    if ip.is_private or site_local or not ip.is_global:
        return None if allow_private else "a private address"
    return None


def refusal_message(url: str, host: str, address: str, kind: str) -> str:
    shown = display_url(url)
    where = host if host == address else f"{host} ({address})"
    if kind in ("a loopback address", "a private address"):
        return (f"{shown} is refused: {where} is {kind}, and the URLs a build fetches reach "
                "only public addresses; an operator can allow private ones with "
                f"{SETTING}=1")
    return f"{shown} is refused: {where} is {kind}, which the URLs a build fetches never reach"


def display_url(url: str) -> str:
    """The URL without credentials or query (a signed URL's signature is a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass(frozen=True)
class Target:
    """One hop: where to connect and what to ask for."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    authorization: str | None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def target(url: str) -> Target:
    """The hop `url` names; refused unless it is http(s) with a host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused(f"{url!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused(f"{display_url(url) if parts.hostname else repr(url)} is not an "
                         "http(s) URL; source URLs must be http:// or https://")
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = urllib3.util.make_headers(basic_auth=credentials)["authorization"]
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, parts.scheme, parts.hostname,
                  port or (443 if parts.scheme == "https" else 80), path, authorization)


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` has now, in the order to try them."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in found))


def _judge(hop: Target, addresses: list[str], allow_private: bool) -> list[str]:
    """`addresses` if each is allowed; refused if any is not (a name that also points
    inward is not trusted for its other answers)."""
    for address in addresses:
        kind = refusal(address, allow_private)
        if kind is not None:
            raise UrlRefused(refusal_message(hop.url, hop.host, address, kind))
    return addresses


def checked_addresses(hop: Target, allow_private: bool, resolver: Resolver) -> list[str]:
    """The hop's addresses, resolved once, each allowed."""
    try:
        addresses = resolver(hop.host, hop.port)
    except (OSError, UnicodeError) as exc:
        raise UrlRefused(f"{display_url(hop.url)}: cannot resolve {hop.host}: {exc}") from None
    if not addresses:
        raise UrlRefused(f"{display_url(hop.url)}: {hop.host} has no address")
    return _judge(hop, addresses, allow_private)


def check(url: str, allow_private: bool, resolver: Resolver = resolve) -> str:
    """`url`, if the rule lets a build fetch it as things stand now (the fetch checks
    again, hop by hop). A name that does not resolve here is left to the fetch."""
    hop = target(url)
    try:
        addresses = resolver(hop.host, hop.port)
    except (OSError, UnicodeError):
        return url
    _judge(hop, addresses, allow_private)
    return url


def _ca_bundle() -> str:
    # As requests finds it, so a deployment that set one for requests keeps it.
    return (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            or requests.certs.where())


def _pool(hop: Target, address: str, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    common = {"timeout": timeout, "retries": False, "maxsize": 1}
    if hop.scheme == "https":
        # Connect to the checked address; SNI and the certificate check use the name.
        return urllib3.HTTPSConnectionPool(
            address, hop.port, server_hostname=hop.host, assert_hostname=hop.host,
            cert_reqs="CERT_REQUIRED", ca_certs=_ca_bundle(), **common)
    return urllib3.HTTPConnectionPool(address, hop.port, **common)


def _send(hop: Target, addresses: list[str],
          timeout: urllib3.Timeout) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
    headers = {"Host": hop.host_header, "User-Agent": "paas-source-fetch",
               "Accept-Encoding": "identity"}
    if hop.authorization:
        headers["Authorization"] = hop.authorization
    for n, address in enumerate(addresses):
        pool = _pool(hop, address, timeout)
        try:
            response = pool.urlopen("GET", hop.path, headers=headers, redirect=False,
                                    retries=False, preload_content=False,
                                    assert_same_host=False)
        except (NewConnectionError, ConnectTimeoutError):
            pool.close()
            if n == len(addresses) - 1:
                raise
            continue
        except BaseException:
            pool.close()
            raise
        return pool, response
    raise AssertionError("no address to connect to")  # checked_addresses never answers []


@contextmanager
def open_url(url: str, *, allow_private: bool, timeout: tuple[float, float],
             resolver: Resolver = resolve) -> Iterator[urllib3.BaseHTTPResponse]:
    """The response to GET `url` after redirects, each hop checked; not yet read.
    Raises UrlRefused for a URL the rule refuses, urllib3's errors for the network's."""
    hop = target(url)
    limits = urllib3.Timeout(connect=timeout[0], read=timeout[1])
    for _ in range(MAX_REDIRECTS + 1):
        pool, response = _send(hop, checked_addresses(hop, allow_private, resolver), limits)
        location = response.headers.get("Location")
        if response.status not in _REDIRECTS or not location:
            try:
                yield response
            finally:
                response.release_conn()
                pool.close()
            return
        response.drain_conn()
        pool.close()
        following = target(urljoin(hop.url, location))
        same_origin = (following.scheme, following.host, following.port) == (
            hop.scheme, hop.host, hop.port)
        if following.authorization is None and same_origin:
            # As requests does: credentials follow a redirect only to the same origin.
            following = replace(following, authorization=hop.authorization)
        hop = following
    raise UrlRefused(f"{display_url(url)} redirects more than {MAX_REDIRECTS} times")
