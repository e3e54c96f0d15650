"""SSRF guard: which URLs the bot may download for a source.

Only http and https. When a source is public (its feed host resolves to public addresses),
its article pages, images and every redirect hop must resolve to public addresses too:
loopback, private, link-local (cloud metadata), CGNAT, multicast, unspecified and reserved
addresses are refused unless the host is in the source's `allow_hosts`. A source that is
itself on a private network (an intranet CMS, the demo on 127.0.0.1) is trusted for its
own feed host and port only (never for the rest of the private range, another port such as
PostgreSQL's, link-local, multicast or reserved addresses); more hosts go in `allow_hosts`.

The verdicts are pure functions; only `Guard` resolves names (the event loop's getaddrinfo,
or an injected resolver in tests). `dial_targets` makes the check stick: the socket is
opened to an address the guard judged, never to a fresh DNS answer (no rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: host -> the addresses it resolves to (raises OSError when it does not resolve).
Resolver = Callable[[str], Awaitable[list[str]]]

SCHEMES = frozenset({"http", "https"})


class BlockedURL(Exception):
    """The URL may not be fetched for this source; the message says why."""


class Unresolvable(Exception):
    """The URL's host does not resolve (not a refusal: the download would fail anyway)."""


@dataclass(frozen=True)
class Verdict:
    reason: str  # "loopback", "private (RFC 1918)", ...
    #: True for addresses of an organisation's own network (loopback, private, CGNAT,
    #: unique local), which a source on such a network may reach.
    network_local: bool


def _table(rows: Iterable[tuple[str, str, bool]]) -> list[tuple[ipaddress._BaseNetwork, Verdict]]:
    return [(ipaddress.ip_network(net), Verdict(reason, local)) for net, reason, local in rows]


# Order matters: the first matching row names the address.
_V4 = _table(
    [
        ("0.0.0.0/8", "unspecified", False),
        ("10.0.0.0/8", "private (RFC 1918)", True),
        ("100.64.0.0/10", "shared CGNAT (RFC 6598)", True),
        ("127.0.0.0/8", "loopback", True),
        ("169.254.169.254/32", "link-local cloud metadata", False),
        ("169.254.0.0/16", "link-local", False),
        ("172.16.0.0/12", "private (RFC 1918)", True),
        ("192.0.0.0/24", "reserved (IETF protocol assignments)", False),
        ("192.0.2.0/24", "reserved (documentation)", False),
        ("192.88.99.0/24", "reserved (6to4 relay)", False),
        ("192.168.0.0/16", "private (RFC 1918)", True),
        ("198.18.0.0/15", "reserved (benchmarking)", False),
        ("198.51.100.0/24", "reserved (documentation)", False),
        ("203.0.113.0/24", "reserved (documentation)", False),
        ("224.0.0.0/4", "multicast", False),
        ("240.0.0.0/4", "reserved", False),  # with 255.255.255.255, the broadcast address
    ]
)
_V6 = _table(
    [
        ("::/128", "unspecified", False),
        ("::1/128", "loopback", True),
        ("fd00:ec2::254/128", "cloud metadata", False),
        ("64:ff9b:1::/48", "reserved (local NAT64)", False),
        ("100::/64", "reserved (discard)", False),
        ("2001:db8::/32", "reserved (documentation)", False),
        ("2001::/23", "reserved (IETF protocol assignments, Teredo)", False),
        ("3fff::/20", "reserved (documentation)", False),
        ("fc00::/7", "unique local (fc00::/7)", True),
        ("fe80::/10", "link-local", False),
        ("fec0::/10", "site-local", True),
        ("ff00::/8", "multicast", False),
    ]
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_RESERVED = Verdict("reserved", False)


def classify(address: IPAddress) -> Verdict | None:
    """Why `address` is not a public Internet address, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address are judged by that address.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return classify(embedded)
        for network, verdict in _V6:
            if address in network:
                return verdict
        return None if address in _GLOBAL_UNICAST else _RESERVED
    for network, verdict in _V4:
        if address in network:
            return verdict
    return None


_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, also in the decimal, octal and hex forms that
    getaddrinfo accepts (2130706433, 0177.0.0.1, 0x7f.1, 127.1 all mean 127.0.0.1)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def host_allowed(host: str, patterns: Sequence[str]) -> bool:
    """Whether `host` is listed: exactly, or under a `*.suffix` pattern (any depth of
    subdomain; `*.example.com` does not cover `example.com` itself)."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = _ascii_host(pattern.lower().rstrip("."))
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern.strip("[]"):
            return True
    return False


def _ascii_host(host: str) -> str:
    # URLs carry IDNA (xn--) hosts; a pattern may be written in Unicode.
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


@dataclass(frozen=True)
class Policy:
    """What one source's downloads may reach."""

    source: str  # its name, for messages ("" for a URL that matches no source)
    trusted_network: bool  # the source is itself on a private network
    allow_hosts: tuple[str, ...] = ()
    #: The hosts the trust in a private network covers: the feed's own host, never the
    #: whole private range (an intranet source on 127.0.0.1 does not open 10.255.0.1 or
    #: 127.0.0.1:5432 under another name).
    own_hosts: tuple[str, ...] = ()  # "host" (any port) or "host:port"

    def trusts(self, host: str, port: int | None = None) -> bool:
        if not self.trusted_network:
            return False
        host = host.lower().rstrip(".").strip("[]")
        return host in self.own_hosts or (port is not None and f"{host}:{port}" in self.own_hosts)


PUBLIC = Policy("", trusted_network=False)  # a URL that matches no source


@functools.lru_cache(maxsize=1024)
def parsed_url(url: str) -> httpx.URL:
    """httpx's parse of `url`. A poll asks about its URL several times (the source's policy,
    the check of each hop, the request itself); parsing was a tenth of a 304 poll's CPU.
    Recent URLs only: thousands of feeds must not grow it."""
    return httpx.URL(url)


def url_host(url: str) -> tuple[str, str]:
    """(scheme, host) as httpx will connect to them; BlockedURL for unusable URLs."""
    try:
        parsed = parsed_url(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise BlockedURL(f"not a valid URL ({exc})") from None
    scheme = parsed.scheme.lower()
    if scheme not in SCHEMES:
        raise BlockedURL(f"the {scheme or 'missing'} scheme is not allowed (only http and https)")
    host = parsed.raw_host.decode("ascii", "replace")
    if not host:
        raise BlockedURL("the URL has no host")
    return scheme, host


def judge(
    host: str, addresses: Sequence[IPAddress], policy: Policy, port: int | None = None
) -> str | None:
    """Why `host` (resolving to `addresses`) is refused under `policy`, or None. Pure."""
    if host_allowed(host, policy.allow_hosts):
        return None
    for address in addresses:
        verdict = classify(address)
        if verdict is None or (verdict.network_local and policy.trusts(host, port)):
            continue
        if host.strip("[]") == str(address) or (":" in host and literal_address(host) == address):
            what = f"{host} is a {verdict.reason} address"
        else:
            what = f"{host} resolves to {address}, a {verdict.reason} address"
        if not verdict.network_local:
            why = "which no source may reach"
        elif policy.source and policy.trusted_network:
            own = ", ".join(policy.own_hosts) or "none"
            why = f"not a host of source {policy.source}, which may reach only its own ({own})"
        elif policy.source:
            why = f"and source {policy.source} is public"
        else:
            why = "and no source on a private network matches the URL"
        return f"{what}, {why} (list the host in the source's allow_hosts to permit it)"
    return None


async def system_resolver(host: str) -> list[str]:
    """The event loop's getaddrinfo (runs in a thread: never blocks the loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def static_resolver(mapping: dict[str, list[str]], fallback: Resolver | None = None) -> Resolver:
    """A resolver answering from `mapping` (tests: a loopback name that looks public)."""

    async def resolve(host: str) -> list[str]:
        key = host.lower().rstrip(".")
        if key in mapping:
            return list(mapping[key])
        if fallback is None:
            raise OSError(f"{host} is not in the resolver's table")
        return await fallback(host)

    return resolve


class Guard:
    """Resolves hosts (with a short cache) and checks URLs against a source's policy."""

    CACHE_SECONDS = 30.0
    CACHE_SIZE = 10_000

    def __init__(
        self, resolver: Resolver | None = None, dial: dict[str, str] | None = None
    ) -> None:
        self.resolver = resolver or system_resolver
        #: Tests only: an address judged as-is but dialled elsewhere (a public-looking address
        #: served on loopback). Empty in production: the judged address is the one dialled.
        self.dial = dict(dial or {})
        self._cache: dict[str, tuple[float, list[IPAddress]]] = {}

    async def addresses(self, host: str) -> list[IPAddress]:
        literal = literal_address(host)
        if literal is not None:
            return [literal]
        now = time.monotonic()
        cached = self._cache.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            found = [ipaddress.ip_address(a.split("%")[0]) for a in await self.resolver(host)]
        except (OSError, ValueError) as exc:
            raise Unresolvable(f"cannot resolve {host}: {exc}") from None
        if not found:
            raise Unresolvable(f"{host} resolves to no address")
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[host] = (now + self.CACHE_SECONDS, found)
        return found

    async def policy(
        self, name: str, source_url: str | None, allow_hosts: Sequence[str] = ()
    ) -> Policy:
        """The policy of a source: trusted for its own network when its feed host is on one.
        An unresolvable or invalid feed host counts as public (the strict choice)."""
        trusted, own = False, ()
        if source_url:
            try:
                _, host = url_host(source_url)
                found = await self.addresses(host)
                verdicts = [classify(a) for a in found]
                trusted = all(v is not None and v.network_local for v in verdicts)
                default_port = 443 if source_url.startswith("https") else 80
                port = parsed_url(source_url).port or default_port
                own = (f"{host.lower().rstrip('.').strip('[]')}:{port}",)
            except (BlockedURL, Unresolvable):
                trusted = False
        return Policy(name, trusted, tuple(allow_hosts), own if trusted else ())

    async def check(self, url: str, policy: Policy) -> None:
        """BlockedURL when `url` may not be fetched under `policy`; Unresolvable when its
        host does not resolve."""
        scheme, host = url_host(url)
        if host_allowed(host, policy.allow_hosts):
            return
        port = parsed_url(url).port or (443 if scheme == "https" else 80)
        problem = judge(host, await self.addresses(host), policy, port)
        if problem is not None:
            raise BlockedURL(problem)

    def checker(self, policy: Policy) -> Checker:
        return Checker(self, policy)


class Checker:
    """A source's check for fetch(): vets each URL, and pins connections to vetted addresses."""

    def __init__(self, guard: Guard, policy: Policy) -> None:
        self.guard = guard
        self.policy = policy

    async def __call__(self, url: str) -> None:
        await self.guard.check(url, self.policy)

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """Within this block, connections go only where this policy allows (`dial_targets`)."""
        token = _PINNED.set(self)
        try:
            yield
        finally:
            _PINNED.reset(token)


#: What fetch() takes as its `check`.
URLCheck = Checker
_PINNED: ContextVar[Checker | None] = ContextVar("newsbot_pinned_checker", default=None)


async def dial_targets(host: str, port: int, request: httpx.Request | None = None) -> list[str]:
    """Where a connection to host:port may go. Inside `Checker.pinned()`: the addresses the
    guard resolved and judged (never a fresh DNS answer, so no rebinding), or an
    httpx.ConnectError naming why they are refused. Outside it: the host name itself."""
    checker = _PINNED.get()
    if checker is None:
        return [host]
    try:
        addresses = await checker.guard.addresses(host)
    except Unresolvable as exc:
        raise httpx.ConnectError(str(exc), request=request) from None
    if not host_allowed(host, checker.policy.allow_hosts):
        problem = judge(host, addresses, checker.policy, port)
        if problem is not None:
            raise httpx.ConnectError(f"refused at connect: {problem}", request=request)
    # guard.dial: tests only (a judged public-looking address served on loopback).
    return [checker.guard.dial.get(str(address), str(address)) for address in addresses]
