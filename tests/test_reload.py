"""Rules without a restart (issue #17 point 8): the file is reloaded when it changes and on
SIGHUP, applied only when it passes every check-config check; the desk's rule editor keeps
the file's comments, previews against the latest articles, records who, and undoes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot.config import load
from bot.models import Article
from bot.service import Service
from bot.webdesk.accounts import Accounts, Role
from tests.test_end_to_end import TOKEN, World, wait_for
from tests.test_end_to_end import world as world
from tests.test_webdesk import csrf_of

DESK_KEY = "d" * 40
PASSWORD = "correct horse battery"
ARTICLE = Article(
    url="https://news.example/ru/1-budget", title="Бюджет принят", source="ru", language="ru"
)


def raw_config(world: World, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "outlet": {"name": "Sample Times", "url": world.site_url},
        "database": f"sqlite:///{world.tmp}/state.db",
        "sources": [
            {"name": lang, "url": f"{world.site_url}/{lang}/rss.xml", "language": lang}
            for lang in ("en", "ru")
        ],
        "targets": [
            {
                "name": f"tg-{lang}",
                "platform": "telegram",
                "api_base": world.tg_url,
                "token": {"env": "TG_TOKEN"},
                "chat_id": f"@chan_{lang}",
                "timeout": 3,
            }
            for lang in ("en", "ru")
        ],
        "rules": [{"name": "english", "match": {"languages": ["en"]}, "targets": ["tg-en"]}],
        "http": {"port": 0},
        "reload": {"watch_interval": 0.2},
    }
    raw.update(overrides)
    return raw


def write(path: Path, raw: dict[str, Any], head: str = "") -> None:
    path.write_text(head + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_TOKEN", TOKEN)
    monkeypatch.setenv("DESK_KEY", DESK_KEY)


def routed(service: Service, article: Article) -> list[str]:
    return [p.post.target for p in service.pipeline.plan_deliveries(article)]


async def test_a_changed_file_is_applied_and_a_new_rule_takes_the_next_article(
    world: World,
) -> None:
    path = world.tmp / "newsbot.yaml"
    raw = raw_config(world)
    write(path, raw)
    service = Service(load(path), config_path=path)
    await service.start()
    try:
        assert routed(service, ARTICLE) == []  # no rule takes Russian articles yet
        assert await service.reloader.check() is None  # unchanged: nothing happens
        raw["rules"].append(
            {"name": "russian", "match": {"languages": ["ru"]}, "targets": ["tg-ru"]}
        )
        raw["database"] = f"sqlite:///{world.tmp}/other.db"
        write(path, raw)
        result = await service.reloader.check()
        assert result is not None and result.applied, result
        assert routed(service, ARTICLE) == ["tg-ru"]
        # What cannot change at run time is reported, the rest still applied.
        assert result.needs_restart == ["database"]
        assert service.config.file.database.endswith("state.db")
        events = await service.store.recent_events(5)
        (event,) = [e for e in events if e["kind"] == "config-reload"]
        assert "file changed" in event["message"] and "rules changed" in event["message"]
        assert "needs a restart to take effect: database" in event["message"]
    finally:
        await service.close()


async def test_a_bad_file_is_kept_out_and_the_editors_chat_is_told_where(world: World) -> None:
    world.tg.add_chat("@editors", "supergroup")
    editors = {
        "platform": "telegram",
        "api_base": world.tg_url,
        "token": {"env": "TG_TOKEN"},
        "chat_id": "@editors",
        "allowed_user_ids": [1001],
        "poll_timeout": 1,
    }
    path = world.tmp / "newsbot.yaml"
    raw = raw_config(world, editors=editors)
    write(path, raw)
    service = Service(load(path), config_path=path)
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    try:
        await wait_for(lambda: service.is_leader and service.scheduler is not None, 10)
        before = len(world.tg.in_chat("@editors"))
        raw["targets"][1]["template"] = "{{ title }} (no link)"
        raw["rules"].append(
            {"name": "russian", "match": {"languages": ["ru"]}, "targets": ["tg-ru"]}
        )
        write(path, raw)
        line = path.read_text().splitlines().index("  template: '{{ title }} (no link)'") + 1

        def told() -> list[str]:
            texts = [m.get("text", "") for m in world.tg.in_chat("@editors")[before:]]
            return [t for t in texts if "NOT reloaded" in t]

        await wait_for(lambda: told(), 10)
        (message,) = told()
        assert f"targets[tg-ru].template ({path}:{line})" in message
        assert "must carry the article link" in message
        assert routed(service, ARTICLE) == []  # the running configuration stayed
        assert service.reloader.refused is not None
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)


async def test_sighup_reloads_a_running_newsbot(world: World) -> None:
    path = world.tmp / "newsbot.yaml"
    raw = raw_config(world, reload={"watch_interval": 0})  # SIGHUP only
    write(path, raw)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "-c", str(path), "run",
        env={**os.environ}, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    seen = b""
    try:
        while b"newsbot running" not in seen:
            line = await asyncio.wait_for(process.stderr.readline(), 20)
            assert line, seen.decode()
            seen += line
        raw["rules"].append(
            {"name": "russian", "match": {"languages": ["ru"]}, "targets": ["tg-ru"]}
        )
        write(path, raw)
        process.send_signal(signal.SIGHUP)
        while b"configuration reloaded" not in seen:
            line = await asyncio.wait_for(process.stderr.readline(), 20)
            assert line, seen.decode()
            seen += line
        assert b"configuration reloaded (SIGHUP): rules changed" in seen
    finally:
        process.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(process.stderr.read(), 20)
        assert await process.wait() == 0, (seen + rest).decode()
    assert TOKEN.encode() not in seen + rest


@dataclass
class Desk:
    service: Service
    client: httpx.AsyncClient
    path: Path
    raw: dict[str, Any]


RUSSIAN = {"name": "russian", "match": {"languages": ["ru"]}, "targets": ["tg-ru"]}
COMMENTED = "# The newsroom's bot: edited by hand and from the desk.\n"


@pytest.fixture
async def desk(world: World) -> AsyncIterator[Desk]:
    path = world.tmp / "newsbot.yaml"
    raw = raw_config(world, desk={"enabled": True, "secret_key": {"env": "DESK_KEY"}})
    write(path, raw, COMMENTED)
    service = Service(load(path), config_path=path)
    await service.start()
    accounts = Accounts(service.store.engine)
    await accounts.add("eve", Role.EDITOR, PASSWORD)
    await accounts.add("ada", Role.ADMIN, PASSWORD)
    for n in range(3):
        article = replace(ARTICLE, url=f"https://news.example/ru/{n}", title=f"Новость {n}")
        await service.store.add_article_with_deliveries(article, [f"url:{article.url}"], [])
    app = service._desk_app()
    transport = httpx.ASGITransport(app=app, root_path="/desk")
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1/desk") as client:
        yield Desk(service, client, path, raw)
    await service.close()


async def login(client: httpx.AsyncClient, name: str) -> str:
    token = csrf_of((await client.get("/login")).text)
    r = await client.post("/login", data={"csrf": token, "name": name, "password": PASSWORD})
    assert r.status_code == 303, r.text
    return csrf_of((await client.get("/")).text)


async def edit(desk: Desk, csrf: str, path: str, fragment: str, **extra: str) -> httpx.Response:
    data = {"csrf": csrf, "path": path, "label": path, "fragment": fragment, **extra}
    return await desk.client.post("/config/item", data=data)


async def test_rule_editor_previews_saves_with_comments_and_undoes(desk: Desk) -> None:
    csrf = await login(desk.client, "ada")
    page = (await desk.client.get("/config")).text
    assert "rules[english]" in page and "a new rule" in page
    new_rule = "name: russian  # added from the desk\nmatch: {languages: [ru]}\ntargets: [tg-ru]\n"
    preview = await edit(desk, csrf, "rules.1", new_rule, action="preview")
    assert preview.status_code == 200, preview.text
    # The latest articles, each with the targets it would go to and its post as rendered.
    assert preview.text.count('id="preview-tg-ru"') == 3 and "Новость 2" in preview.text
    assert "attribution link missing" not in preview.text
    assert routed(desk.service, ARTICLE) == []  # a preview changes nothing
    previewed = preview.text.split('name="previewed" value="', 1)[1].split('"', 1)[0]
    saved = await edit(desk, csrf, "rules.1", new_rule, action="save", previewed=previewed)
    assert saved.status_code == 303
    text = desk.path.read_text()
    assert text.startswith(COMMENTED) and "# added from the desk" in text
    assert routed(desk.service, ARTICLE) == ["tg-ru"]
    events = await desk.service.store.recent_events(10)
    assert any(e["message"] == "web:ada edited rules.1" for e in events)
    assert any("desk editor web:ada" in e["message"] for e in events)
    # Undo: the previous file and configuration come back through the same checks.
    undone = await desk.client.post("/config/undo", data={"csrf": csrf})
    assert undone.status_code == 303
    assert "# added from the desk" not in desk.path.read_text()
    assert routed(desk.service, ARTICLE) == []
    assert not desk.path.with_name("newsbot.yaml.1").exists()


async def test_a_template_that_drops_the_link_is_refused_with_its_location(desk: Desk) -> None:
    csrf = await login(desk.client, "ada")
    before = desk.path.read_text()
    r = await edit(desk, csrf, "targets.1.template", "template: '{{ title }}'\n", action="save")
    assert r.status_code == 400
    assert "targets[tg-ru].template" in r.text and f"{desk.path}:" in r.text
    assert "must carry the article link" in r.text
    assert desk.path.read_text() == before
    # Saving needs the preview of exactly this file: a stale or missing one is refused.
    good = "template: '{{ title }} {{ link() }}'\n"
    r = await edit(desk, csrf, "targets.1.template", good, action="save", previewed="x")
    assert r.status_code == 409 and desk.path.read_text() == before


async def test_a_refused_file_shows_on_every_desk_page(desk: Desk) -> None:
    await login(desk.client, "eve")
    desk.raw["rules"][0]["targets"] = ["nowhere"]
    write(desk.path, desk.raw)
    result = await desk.service.reloader.check()
    assert result is not None and not result.applied
    for page in ("/", "/history", "/health"):
        text = (await desk.client.get(page)).text
        assert 'id="config-refused"' in text and "no target named &#39;nowhere&#39;" in text
        assert "rules[english].targets" in text


async def test_an_editor_cannot_edit_the_rules(desk: Desk) -> None:
    csrf = await login(desk.client, "eve")
    assert (await desk.client.get("/config")).status_code == 403
    before = desk.path.read_text()
    r = await edit(desk, csrf, "rules.0", "", action="preview")
    assert r.status_code == 403
    assert (await desk.client.post("/config/undo", data={"csrf": csrf})).status_code == 403
    assert desk.path.read_text() == before
    # and an admin without the CSRF token changes nothing either
    await login(desk.client, "ada")
    r = await desk.client.post("/config/undo", data={"csrf": "forged"})
    assert r.status_code == 403
