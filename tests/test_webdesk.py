"""The web desk through Starlette's TestClient: access control (argon2 accounts, signed
sessions, CSRF, CSP, login rate limit, admin-only pause), the queue, exact previews,
decisions through the chat's Desk, history, health and the rules tester."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bot.cli import main as cli_main
from bot.store import DeliveryStatus
from bot.webdesk.accounts import Accounts, LoginLimiter
from bot.webdesk.app import CSP
from tests.webdesk_world import ARTICLE, EDITOR_PASSWORD, World, make_world


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[tuple[TestClient, World]]:
    client = TestClient(make_app_holder := _Holder(), base_url="http://127.0.0.1")
    with client:
        world = client.portal.call(make_world, tmp_path)
        make_app_holder.app = world.app
        yield client, world
        client.portal.call(world.store.close)


class _Holder:
    """Lets the world (and its store) be made on the client's own event loop."""

    app = None

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.app is not None
        await self.app(scope, receive, send)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token in the form"
    return match.group(1)


def login(client: TestClient, name: str = "eve", password: str = EDITOR_PASSWORD) -> str:
    token = csrf_of(client.get("/desk/login").text)
    r = client.post(
        "/desk/login",
        data={"csrf": token, "name": name, "password": password},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/desk/").text)


def test_pages_need_a_login_and_every_answer_carries_a_strict_csp(desk) -> None:
    client, _ = desk
    r = client.get("/desk/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/desk/login")
    r = client.get("/desk/login")
    assert r.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
    assert "<script>" not in r.text and "onclick" not in r.text  # no inline script at all
    assert client.post("/desk/post", data={"url": "https://x"}).status_code == 401


def test_wrong_password_refused_and_password_stored_only_as_argon2(desk) -> None:
    client, world = desk
    token = csrf_of(client.get("/desk/login").text)
    r = client.post("/desk/login", data={"csrf": token, "name": "eve", "password": "nope"})
    assert r.status_code == 401 and "Wrong name or password" in r.text

    async def stored() -> str:
        async with world.store.engine.connect() as conn:
            return (await conn.execute("SELECT password_hash FROM desk_users")).scalar()

    digest = client.portal.call(stored)
    assert digest.startswith("$argon2id$") and EDITOR_PASSWORD not in digest


def test_login_without_csrf_token_is_refused(desk) -> None:
    client, _ = desk
    client.get("/desk/login")
    r = client.post("/desk/login", data={"name": "eve", "password": EDITOR_PASSWORD})
    assert r.status_code == 403
    assert client.get("/desk/", follow_redirects=False).status_code == 303


def test_a_form_without_the_sessions_csrf_token_changes_nothing(desk) -> None:
    client, world = desk
    login(client)
    tg = world.delivery_ids["tg"]
    r = client.post(f"/desk/item/{tg}/decide", data={"action": "skip", "csrf": "forged"})
    assert r.status_code == 403
    assert client.portal.call(world.store.delivery, tg).status == "awaiting"


def test_login_attempts_are_rate_limited_per_account(desk) -> None:
    client, _ = desk
    token = csrf_of(client.get("/desk/login").text)
    for _ in range(5):
        r = client.post("/desk/login", data={"csrf": token, "name": "eve", "password": "bad"})
        assert r.status_code == 401
    r = client.post("/desk/login", data={"csrf": token, "name": "eve", "password": EDITOR_PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "Too many failed logins" in r.text


def test_login_limiter_per_address_and_window() -> None:
    now = [0.0]
    limiter = LoginLimiter(3, 60, clock=lambda: now[0])
    for name in ("a", "b", "c"):  # a spray of names from one address
        limiter.failed([f"user:{name}", "ip:1.2.3.4"])
    assert limiter.retry_after(["user:d", "ip:1.2.3.4"]) == pytest.approx(60)
    assert limiter.retry_after(["user:d", "ip:5.6.7.8"]) == 0
    now[0] = 61
    assert limiter.retry_after(["user:d", "ip:1.2.3.4"]) == 0


def test_queue_lists_waiting_posts_with_reason_and_local_due_time(desk) -> None:
    client, world = desk
    login(client)
    page = client.get("/desk/").text
    for name, delivery_id in world.delivery_ids.items():
        assert f"#{delivery_id}</a>" in page and name in page
    assert "awaiting approval" in page and "Asia/Baku" in page
    fragment = client.get("/desk/queue/rows").text
    assert "<html" not in fragment and "awaiting approval" in fragment


def test_previews_show_each_platform_with_its_length_and_link(desk) -> None:
    client, world = desk
    login(client)
    page = client.get(f"/desk/item/{world.delivery_ids['tg']}").text
    # Telegram: its HTML formatting kept, the attribution as a real hyperlink.
    tg = page.split('id="preview-tg"')[1].split("</article>")[0]
    assert f'<a href="{ARTICLE.url}' in tg and "/ 1024" in tg  # a photo caption's limit
    x = page.split('id="preview-xmain"')[1].split("</article>")[0]
    assert "/ 280" in x and ARTICLE.url in x
    fb = page.split('id="preview-fb"')[1].split("</article>")[0]
    assert 'class="linkcard"' in fb
    ig = page.split('id="preview-ig"')[1].split("</article>")[0]
    assert 'class="square"' in ig and "/ 2200" in ig
    # Every other platform: its text, counted its own way against its own limit.
    for name, limit in (("bsky", "/ 300 graphemes"), ("masto", "/ 500"), ("threads", "/ 500")):
        shown = page.split(f'id="preview-{name}"')[1].split("</article>")[0]
        assert limit in shown and ARTICLE.title in shown, (name, shown)
    assert "attribution link missing" not in page


def test_approve_goes_through_the_desk_and_is_recorded_with_who(desk) -> None:
    client, world = desk
    token = login(client)
    tg = world.delivery_ids["tg"]
    r = client.post(f"/desk/item/{tg}/decide", data={"action": "post", "csrf": token})
    assert "posting now" in r.text and "eve (id web:eve)" in r.text
    delivery = client.portal.call(world.store.delivery, tg)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_error == "approved by eve (id web:eve)"
    # The same decision record as the chat's: who, what, when (shown by /history too).
    decisions = client.portal.call(world.store.decisions, 5)
    assert any(
        e["delivery_id"] == tg and e["message"].startswith("eve (id web:eve)") and e["at"]
        for e in decisions
    )
    # Pressed again on the queued post: it is brought forward (post now works until it is
    # sent); a retry of a post that has not failed is refused and says why.
    r = client.post(f"/desk/item/{tg}/decide", data={"action": "post", "csrf": token})
    assert "posting now" in r.text
    r = client.post(f"/desk/item/{tg}/decide", data={"action": "retry", "csrf": token})
    assert f"#{tg} is pending" in r.text


def test_edit_that_drops_the_link_is_refused_and_a_good_edit_is_saved(desk) -> None:
    client, world = desk
    token = login(client)
    x = world.delivery_ids["xmain"]
    original = client.portal.call(world.store.delivery, x).post.text
    for dropped in ("Budget passes", "Budget passes https://news.example/en/other"):
        r = client.post(f"/desk/item/{x}/edit", data={"text": dropped, "csrf": token})
        assert f"Not saved: the post must keep the link {ARTICLE.url}" in r.text
        assert client.portal.call(world.store.delivery, x).post.text == original
    too_long = "word " * 60 + ARTICLE.url
    r = client.post(f"/desk/item/{x}/edit", data={"text": too_long, "csrf": token})
    assert "over the x limit of 280" in r.text
    good = f"Budget passed.\n\n{ARTICLE.url}"
    r = client.post(f"/desk/item/{x}/edit", data={"text": good, "csrf": token})
    assert "Text updated" in r.text
    assert client.portal.call(world.store.delivery, x).post.text == good


def test_only_admins_pause_targets(desk) -> None:
    client, world = desk
    token = login(client)
    assert "Pause</button>" not in client.get("/desk/health").text
    r = client.post("/desk/targets/tg/pause", data={"csrf": token})
    assert r.status_code == 403
    assert client.portal.call(world.store.paused_targets) == {}
    client.post("/desk/logout", data={"csrf": token})
    token = login(client, "ada")
    r = client.post("/desk/targets/tg/pause", data={"csrf": token})
    assert r.status_code == 200 and "Paused: tg" in r.text
    assert "tg" in client.portal.call(world.store.paused_targets)


def test_history_filters_and_headline_search(desk) -> None:
    client, world = desk
    token = login(client)
    fb = world.delivery_ids["fb"]
    client.post(f"/desk/item/{fb}/decide", data={"action": "skip", "csrf": token})
    assert client.portal.call(world.store.delivery, fb).status == DeliveryStatus.SKIPPED
    page = client.get("/desk/history", params={"q": "budget"}).text
    assert ARTICLE.title in page and "skipped by eve (id web:eve)" in page
    assert ARTICLE.title not in client.get("/desk/history", params={"q": "football"}).text
    only = client.get("/desk/history", params={"status": "skipped"}).text
    assert f"#{fb}</a>" in only and f"#{world.delivery_ids['tg']}</a>" not in only
    assert "No article matches" in client.get("/desk/history", params={"day": "2020-01-01"}).text


def test_rules_tester_renders_every_target_and_sends_nothing(desk) -> None:
    client, world = desk
    token = login(client)
    r = client.post("/desk/rules/test", data={"url": "https://news.example/en/2", "csrf": token})
    assert "Tested headline" in r.text
    for name in world.delivery_ids:
        assert f'id="preview-{name}"' in r.text
    r = client.post("/desk/rules/test", data={"url": "ftp://x", "csrf": token})
    assert r.status_code == 400 and "http(s) URL" in r.text


def test_user_add_command_hashes_the_password(tmp_path: Path) -> None:
    config = tmp_path / "newsbot.yaml"
    config.write_text(
        "database: sqlite:///" + str(tmp_path / "s.db") + "\n"
        "sources: [{name: en, url: 'https://news.example/feed'}]\n"
        "targets: [{name: tg, platform: telegram, api_base: 'http://127.0.0.1:9',"
        " token: {env: TG}, chat_id: '@dailychan'}]\n"
    )
    pw = tmp_path / "pw"
    pw.write_text("a long enough password\n")
    args = ["-c", str(config), "user", "add", "sam", "--role", "admin", "--password-file"]
    assert cli_main([*args, str(pw)]) == 0
    pw.write_text("short\n")
    assert cli_main([*args, str(pw)]) == 2

    import asyncio

    from bot.store import Store

    async def check() -> tuple[bool, bool]:
        store = Store(f"sqlite:///{tmp_path}/s.db")
        accounts = Accounts(store.engine)
        try:
            ok = await accounts.authenticate("sam", "a long enough password")
            bad = await accounts.authenticate("sam", "short")
            return ok is not None and ok.is_admin, bad is None
        finally:
            await store.close()

    assert asyncio.run(check()) == (True, True)


def test_desk_enabled_without_a_key_is_a_config_error(tmp_path: Path) -> None:
    from bot.config import ConfigError
    from tests.webdesk_world import desk_config

    with pytest.raises(ConfigError, match=r"desk\.secret_key"):
        desk_config(f"sqlite:///{tmp_path}/s.db", secret_key=None)


def test_schedule_from_the_page_in_the_newsrooms_zone(desk) -> None:
    client, world = desk
    token = login(client)
    fb = world.delivery_ids["fb"]
    r = client.post(
        f"/desk/item/{fb}/decide", data={"action": "schedule", "at": "soon", "csrf": token}
    )
    assert "Not scheduled: give a date and time (Asia/Baku)" in r.text
    assert client.portal.call(world.store.delivery, fb).status == DeliveryStatus.AWAITING
    # The browser's datetime-local value, read in the newsroom's zone (Baku is UTC+4).
    r = client.post(
        f"/desk/item/{fb}/decide",
        data={"action": "schedule", "at": "2030-01-02T09:30", "csrf": token},
    )
    assert "scheduled for" in r.text and "eve (id web:eve)" in r.text
    delivery = client.portal.call(world.store.delivery, fb)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.next_attempt_at == datetime(2030, 1, 2, 5, 30, tzinfo=UTC).timestamp()
    # Moved again while still queued: schedule works until the post is sent.
    client.post(
        f"/desk/item/{fb}/decide",
        data={"action": "schedule", "at": "2030-01-03 10:00", "csrf": token},
    )
    delivery = client.portal.call(world.store.delivery, fb)
    assert delivery.next_attempt_at == datetime(2030, 1, 3, 6, 0, tzinfo=UTC).timestamp()
    decisions = client.portal.call(world.store.decisions, 10)
    assert sum(1 for e in decisions if e["delivery_id"] == fb) == 2
