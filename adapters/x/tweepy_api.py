"""Everything that calls tweepy (and with it requests, urllib3 and oauthlib), for adapters/x.

Imported at an X target's first call, not at start-up: tweepy with requests and oauthlib is
about 7 MB and 160 modules, which a daemon whose X targets have not posted yet need not hold.
tweepy's and requests' errors are mapped here, once, into bot.outcomes.
"""

from __future__ import annotations

import time
from typing import Any

import requests
import tweepy
import urllib3

from adapters.x import PER_POST_403, _describe, _problem_text, retry_after
from bot.outcomes import (
    AuthFailure,
    DeliveryError,
    PermanentFailure,
    RetryLater,
    TemporaryFailure,
    UncertainDelivery,
)

#: The host tweepy hard-codes in Client.request; _RebasedSession sends it to api_base.
TWEEPY_HOST = "https://api.twitter.com"
#: Seconds after which a post does not reuse an idle keep-alive connection.
FRESH_AFTER = 2.0


class _RebasedSession(requests.Session):
    """tweepy's Client calls a fixed host; this session sends those calls to `base`.

    The URL is rewritten before requests signs it (OAuth 1.0a signs the host), so the
    signature matches the server that receives it.
    """

    def __init__(self, base: str, timeout: float) -> None:
        super().__init__()
        self.base = base.rstrip("/")
        self.timeout = timeout
        self._last_used = 0.0

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:  # type: ignore[override]
        if isinstance(url, str) and url.startswith(TWEEPY_HOST):
            url = self.base + url[len(TWEEPY_HOST) :]
        kwargs.setdefault("timeout", self.timeout)
        if method in ("POST", b"POST") and time.monotonic() - self._last_used > FRESH_AFTER:
            # A server may close an idle connection just as a post goes out on it; the post's
            # fate is then unknown (flagged uncertain) for nothing. Posts are rare: dial anew.
            for adapter in self.adapters.values():
                adapter.close()
        try:
            return super().request(method, url, *args, **kwargs)
        finally:
            self._last_used = time.monotonic()


class XClient(tweepy.Client):
    """tweepy's v2 Client on a configurable base URL, with a timeout on every call."""

    def __init__(self, base: str, timeout: float, **credentials: str) -> None:
        super().__init__(**credentials, wait_on_rate_limit=False)  # waiting is the core's job
        self.session = _RebasedSession(base, timeout)


def http_status(exc: Exception) -> int | None:
    """The HTTP status X answered with, when `exc` is tweepy's error for an answer."""
    if isinstance(exc, tweepy.HTTPException):
        return int(exc.response.status_code)
    return None


def map_error(exc: Exception) -> DeliveryError:
    """Translate tweepy/requests failures into the outbox's vocabulary."""
    if isinstance(exc, tweepy.HTTPException):
        return _map_http(exc.response.status_code, exc.response)
    if isinstance(exc, requests.ConnectTimeout):
        return TemporaryFailure("X unreachable (connect timeout); nothing was sent")
    if isinstance(exc, requests.ConnectionError) and _never_connected(exc):
        return TemporaryFailure("X unreachable (connection refused); nothing was sent")
    if isinstance(exc, requests.RequestException):
        # Read timeout, connection reset or cut mid-answer: X may have posted it.
        return UncertainDelivery(
            f"no complete answer from X ({type(exc).__name__}); it may have posted"
        )
    return UncertainDelivery(f"unexpected error from X: {type(exc).__name__}: {_describe(exc)}")


def _never_connected(exc: requests.ConnectionError) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _map_http(status: int, response: requests.Response) -> DeliveryError:
    detail = _problem_text(response)
    if status == 429:
        if "UsageCapExceeded" in detail or "Usage cap exceeded" in detail:
            # The monthly product cap does not lift in 15 minutes: pause and tell editors.
            return AuthFailure(f"X usage cap reached for this app: {detail}")
        return RetryLater(
            f"X rate limit reached: {detail}", retry_after(response.headers, time.time())
        )
    if status == 401:
        return AuthFailure(f"X refused the credentials: {detail}")
    if status == 402:
        return AuthFailure(f"X account has no API credits left: {detail}")
    if status == 403:
        if PER_POST_403.search(detail):
            return PermanentFailure(f"X refused this post: {detail}")
        return AuthFailure(f"X forbids this app or account to post: {detail}")
    if status >= 500:
        return TemporaryFailure(f"X server error {status}: {detail}")
    return PermanentFailure(f"X rejected the post ({status}): {detail}")
