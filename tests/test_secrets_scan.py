"""Secrets never leave the process: a full cycle with known fake secrets for every platform
(reliability/secrets_scan.py), then every byte written is searched; plus the scanner's and the
redaction's own checks."""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote, quote_plus

import pytest

from bot.secrets import REDACTED, Secret
from bot.store import Store
from reliability import secrets_scan
from tests.test_dispatcher import ScriptedAdapter, add, dispatcher, raising


async def test_full_cycle_writes_no_secret_anywhere() -> None:
    figures = await secrets_scan.run()
    assert figures["leaks"] == []
    assert figures["leaks_found"] == 0
    assert figures["secrets_planted"] == len(secrets_scan.SECRETS) >= 10
    places = figures["places"]
    for via_fmt in ("env/json", "file/text"):
        expected = [
            "daemon stdout/stderr and logs",
            "newsbot --log-level DEBUG run --once stderr",
            "newsbot status stdout",
            "newsbot check-config stdout",
            "http /metrics",
            "http /health/ready",
            "database table deliveries (text)",
            "database table events (text)",
            "database table target_state (text)",
            "file state.db",
        ]
        for place in expected:
            assert f"{via_fmt}: {place}" in places
        assert any(p.startswith(f"{via_fmt}: file cards/") for p in places)  # a card was made
        run = figures["passes"][via_fmt]
        # The failures really happened, so their error text was there to leak ...
        assert run["outcomes"]["sent"] > 0
        for outcome in ("retry", "uncertain", "paused"):
            assert run["outcomes"].get(outcome, 0) >= 1, run["outcomes"]
        assert run["refused_push_status"] == 401
        assert run["x_posts"] >= 1 and run["facebook_posts"] >= 1 and run["instagram_posts"] >= 1
        # ... and secrets reached the logging and were replaced.
        assert run["redactions"] > 0
    assert figures["bytes_scanned"] > 100_000
    assert len(secrets_scan.table_rows(figures)) >= 5


@pytest.mark.parametrize("name", sorted(secrets_scan.SECRETS))
def test_scanner_finds_every_form_of_every_secret(name: str) -> None:
    secret = secrets_scan.SECRETS[name]
    for form, text in secrets_scan.forms(name, secret).items():
        scan = secrets_scan.Scan()
        scan.add("place", f"before {text} after")
        scan.search()
        assert {"place": "place", "secret": name, "form": form} in scan.leaks, form
    # Base64 of a longer value that contains the secret at any offset is found too.
    for prefix in (b"", b"a", b"ab", b"abc"):
        scan = secrets_scan.Scan()
        scan.add("blob", base64.b64encode(prefix + secret.encode() + b":rest"))
        scan.search()
        assert any(leak["secret"] == name for leak in scan.leaks), prefix
    clean = secrets_scan.Scan()
    clean.add("clean", f"{REDACTED} and nothing else")
    clean.search()
    assert clean.leaks == []


def test_percent_encoded_secrets_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """The leak the scan found: OAuth 1.0a libraries log the percent-encoded consumer key
    and token (requests_oauthlib's header, oauthlib's base string, encoded twice)."""
    value = "oauth+KEY/with=chars-0099"
    Secret(value, "test")
    once = quote(value, safe="")
    mixed_case = once.replace("%2B", "%2b")
    forms = [once, quote(once, safe=""), quote_plus(value), mixed_case]
    with caplog.at_level(logging.DEBUG):
        for form in forms:
            logging.getLogger("oauthlib.test").debug("Signing: oauth_consumer_key=%s", form)
    assert caplog.text.count(f"oauth_consumer_key={REDACTED}") == len(forms)
    for form in [value, *forms]:
        assert form not in caplog.text


async def test_an_adapter_bug_quoting_a_token_stores_no_token(store: Store) -> None:
    """An unexpected exception's text goes into the outbox and the events: scrubbed first."""
    token = Secret("9999:adapter-bug-SECRET-token", "test").get()
    bug = RuntimeError(f"POST https://api.telegram.org/bot{token}/sendMessage failed")
    adapter = ScriptedAdapter("t", [raising(bug)])
    (delivery_id,) = await add(store, adapter, 1)
    report = await dispatcher(store, adapter).run_once()
    assert report.uncertain == 1
    row = await store.delivery(delivery_id)
    assert row is not None and row.last_error is not None
    assert f"bot{REDACTED}/sendMessage" in row.last_error
    events = " ".join(e["message"] for e in await store.recent_events())
    assert "RuntimeError" in events
    assert token not in row.last_error + events
