"""URL identity: the same article reached with tracking parameters, another scheme, a
trailing slash or a fragment is one article."""

from __future__ import annotations

import contextlib
import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

# Query parameters that only say where a reader came from, never which article it is.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "yclid",
        "msclkid",
        "twclid",
        "ttclid",
        "igshid",
        "igsh",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "ref",
        "ref_src",
        "ref_url",
        "cmpid",
        "ocid",
        "spm",
        "share",
        "from",
        "rss",
        "s_cid",
        "sr_share",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "utm_id",
    }
)
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "at_", "oly_")
_SLASHES = re.compile(r"/{2,}")


def is_tracking_param(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(_TRACKING_PREFIXES)


def normalize_url(url: str) -> str:
    """The identity form of an article URL.

    https and http are folded together (the same article is often linked both ways), the host
    is lower-cased and IDNA-encoded, default ports, fragments, tracking parameters and a
    trailing slash are dropped, and the remaining query is sorted.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname.rstrip(".").lower()
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii")
    port = parts.port
    if port and port not in (80, 443):
        host = f"{host}:{port}"
    path = quote(unquote(_SLASHES.sub("/", parts.path)), safe="/%:@!$&'()*+,;=~-._")
    if len(path) > 1:
        path = path.rstrip("/")
    query = sorted(
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not is_tracking_param(key)
    )
    return urlunsplit(("https", host, path or "/", urlencode(query), ""))


def is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def absolute_url(base: str, href: str) -> str:
    return urljoin(base, href.strip())


def add_query_params(url: str, params: dict[str, str]) -> str:
    """Add (or replace) query parameters, e.g. UTM tags for one platform."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
