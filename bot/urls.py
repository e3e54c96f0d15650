"""URL identity and small URL helpers. Pure functions, no I/O.

The same article is linked many ways: with tracking parameters, over http or https, with a
trailing slash, a fragment, an upper-case host or escaped letters. `normalize_url` maps all of
them to one identity string, used as a de-duplication key and by the attribution guard.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, unquote_plus, urlencode, urljoin, urlsplit, urlunsplit

from publicsuffixlist import PublicSuffixList

# The Public Suffix List as shipped inside the publicsuffixlist wheel (ICANN and private
# sections: co.uk, com.au, github.io ...); never downloaded at run time.
_PSL = PublicSuffixList()

# Query parameters that only say where a reader came from, never which article it is.
# Exact names, compared lower-cased. Families with a common prefix are in _TRACKING_PREFIXES.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        # ad-click identifiers
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "gad_source",
        "srsltid",
        "yclid",
        "ysclid",
        "msclkid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "epik",
        "rb_clickid",
        "s_kwcid",
        "ef_id",
        # social shares
        "igshid",
        "igsh",
        "fb_action_ids",
        "fb_action_types",
        "fb_source",
        "fb_ref",
        "action_object_map",
        "action_type_map",
        "action_ref_map",
        "smid",
        "__twitter_impression",
        # newsletters and marketing automation
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "vero_id",
        "oly_enc_id",
        "oly_anon_id",
        "sc_cid",
        "s_cid",
        # analytics and campaign tags
        "_ga",
        "_gl",
        "_openstat",
        "cmpid",
        "ocid",
        "icid",
        "wt.mc_id",
        "wt_mc",
        "soc_src",
        "soc_trk",
        "spm",
        "sr_share",
        # the utm_* family (any utm_ name is caught by prefix; these are the usual ones)
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "utm_id",
        # referrer markers newsrooms and aggregators append (e.g. ?from=rss, ?ref=tg)
        "ref",
        "ref_src",
        "ref_url",
        "from",
        "rss",
        "share",
    }
)
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "at_", "oly_")

_SLASHES = re.compile(r"/{2,}")
# Session ids some CMSs put in the path (";jsessionid=..."): per visitor, never per article.
_SESSION_PARAM = re.compile(r";jsessionid=[^/?#]*", re.IGNORECASE)
_ESCAPE_OR_TEXT = re.compile(r"(%[0-9A-Fa-f]{2})")
# RFC 3986 unreserved characters: escaping them changes nothing, so %41 and A are the same URL.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = "/:@!$'()*+,;=?-._~"  # not & or =: they separate pairs and key from value
_DEFAULT_PORTS = (80, 443)
# What a host may be after IDNA encoding: LDH labels (underscores occur in the wild).
_HOST = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?)*")
_IPV6 = re.compile(r"[0-9a-f:.]+(?:%[\w.\-]+)?", re.IGNORECASE)


def is_tracking_param(name: str) -> bool:
    """True for a query parameter that only tracks the reader (utm_source, fbclid, ...)."""
    lowered = name.strip().lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(_TRACKING_PREFIXES)


def _split_http(url: str) -> tuple[str, str, str, str, int | None, str]:
    """(scheme, ASCII host, path, query, port, fragment) of an http(s) URL; else ValueError."""
    if not isinstance(url, str):
        raise ValueError(f"not a URL: {url!r}")
    # White space before the fragment ends the URL as surely as at its end ("/a #top").
    head, hash_mark, fragment = url.strip().partition("#")
    parts = urlsplit(head.rstrip() + hash_mark + fragment)
    scheme = parts.scheme.lower()
    host = parts.hostname  # lower-cased, without user info and port
    if scheme not in ("http", "https") or not host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port  # raises ValueError on a malformed port
    # Raw white space closing the path or query ("/a ?b", "/a #top") is no part of the URL.
    path, query = parts.path.rstrip(), parts.query.rstrip()
    return scheme, _ascii_host(host, url), path, query, port, parts.fragment


def _ascii_host(host: str, url: str) -> str:
    if ":" in host:  # an IPv6 literal: urlsplit drops the brackets, the URL needs them
        if not _IPV6.fullmatch(host):
            raise ValueError(f"bad IPv6 host in {url!r}")
        return f"[{host}]"
    try:
        # IDNA: xəbər.az and xn--xbr-dtbb.az are the same host.
        ascii_host = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"bad host in {url!r}") from None
    if not _HOST.fullmatch(ascii_host):
        raise ValueError(f"bad host in {url!r}")
    return ascii_host


def _normalize_escapes(text: str, safe: str) -> str:
    """Decode escaped unreserved characters, upper-case other escapes, escape the rest.

    Reserved escapes such as %2F stay escaped: decoding them would change the meaning.
    Idempotent: its output contains only safe characters and upper-case escapes.
    """
    pieces = []
    for piece in _ESCAPE_OR_TEXT.split(text):
        if not piece:
            continue
        if piece[0] == "%" and len(piece) == 3 and _ESCAPE_OR_TEXT.fullmatch(piece):
            char = chr(int(piece[1:], 16))
            pieces.append(char if char in _UNRESERVED else piece.upper())
        else:
            # A stray "%" becomes %25; letters of any script become UTF-8 escapes.
            pieces.append(quote(piece, safe=safe, encoding="utf-8", errors="surrogatepass"))
    return "".join(pieces)


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 5.2.4: /a/./b/../c -> /a/c
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")
    for segment in segments[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    trailing = "/" if segments[-1] in (".", "..") else ""
    return "/" + "/".join(output) + trailing


def normalize_url(url: str) -> str:
    """The identity form of an article URL; ValueError if `url` is not an http(s) URL.

    http and https are folded to https: newsrooms' feeds, sitemaps and share buttons link the
    same article both ways, and a site serves one article per path whatever the scheme.
    The host is lower-cased and IDNA-encoded; user info, default ports (80, 443), the
    fragment, tracking parameters, path session ids, duplicate and trailing slashes and dot
    segments are dropped; escapes of unreserved characters are decoded and the remaining
    query pairs sorted. The result is itself a valid URL, and normalize_url is idempotent.
    """
    _, netloc, path, query, port, _ = _split_http(url)
    if port is not None and port not in _DEFAULT_PORTS:
        netloc = f"{netloc}:{port}"
    path = _SESSION_PARAM.sub("", path)
    path = _normalize_escapes(path, _PATH_SAFE)
    path = _remove_dot_segments(_SLASHES.sub("/", "/" + path.lstrip("/")))
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    pairs = sorted(
        _normalize_escapes(pair, _QUERY_SAFE + "=")
        for pair in query.split("&")
        if pair and not is_tracking_param(unquote_plus(pair.split("=", 1)[0]))
    )
    return urlunsplit(("https", netloc, path, "&".join(pairs), ""))


def strip_tracking(url: str) -> str:
    """`url` without tracking parameters and fragment, otherwise exactly as given.

    For URLs that will be shown or posted: unlike normalize_url it keeps the scheme, path
    and parameter order, so the link still opens exactly what the site published.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url
    pairs = [
        pair
        for pair in parts.query.split("&")
        if pair and not is_tracking_param(unquote_plus(pair.split("=", 1)[0]))
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(pairs), ""))


def is_http_url(url: str) -> bool:
    """True when `url` is an absolute http(s) URL with a host (what normalize_url accepts)."""
    try:
        _split_http(url)
    except ValueError:
        return False
    return True


def absolute_url(base: str, href: str) -> str:
    """`href` resolved against `base`, as a browser does (href may be relative or //host/...)."""
    # Browsers drop tabs and newlines anywhere in a URL and trim surrounding white space.
    cleaned = re.sub(r"[\t\n\r]", "", href).strip()
    try:
        return urljoin(base, cleaned)
    except ValueError:  # e.g. a malformed IPv6 host in base or href
        return cleaned


def add_query_params(url: str, params: dict[str, str]) -> str:
    """Add (or replace) query parameters, e.g. UTM tags for one platform.

    Existing parameters keep their order and encoding; new ones are appended, and a fragment
    stays last.
    """
    parts = urlsplit(url)
    replaced = {str(key) for key in params}
    pairs = [
        pair
        for pair in parts.query.split("&")
        if pair and unquote_plus(pair.split("=", 1)[0]) not in replaced
    ]
    added = urlencode([(str(key), str(value)) for key, value in params.items()])
    query = "&".join([*pairs, added] if added else pairs)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


@lru_cache(maxsize=4096)
def registrable_domain(host: str) -> str:
    """The site a host belongs to by the Public Suffix List: news.co.uk for www.news.co.uk,
    alice.github.io for alice.github.io. An IP address, a name that is itself a public
    suffix, or a single label (localhost) is its own site. Lower-cased, IDNA (xn--) form."""
    host = host.strip().lower().rstrip(".").strip("[]")
    if not host:
        return ""
    try:
        return str(ipaddress.ip_address(host.split("%")[0]))
    except ValueError:
        pass
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return host
    return _PSL.privatesuffix(host) or host


def host_of(url: str) -> str:
    """The lower-cased ASCII host of an http(s) URL ("" when it is not one)."""
    try:
        return _split_http(url)[1].strip("[]")
    except ValueError:
        return ""


def site_of_url(url: str) -> str:
    """The registrable domain of a URL's host ("" when it is not an http(s) URL)."""
    host = host_of(url)
    return registrable_domain(host) if host else ""


def host_listed(host: str, patterns: Iterable[str]) -> bool:
    """`host` equals a listed host, or lies under a `*.suffix` pattern."""
    host = host.lower().rstrip(".").strip("[]")
    for pattern in patterns:
        pattern = pattern.strip().lower().rstrip(".").strip("[]")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def on_site(url: str, site_url: str, allow_hosts: Iterable[str] = ()) -> bool:
    """Whether `url` belongs to the site of `site_url`: the same registrable domain by the
    Public Suffix List (attacker.co.uk is not news.co.uk), or a host in `allow_hosts`."""
    host = host_of(url)
    if not host:
        return False
    if host_listed(host, allow_hosts):
        return True
    return registrable_domain(host) == site_of_url(site_url) != ""
