"""A desk world for the web desk tests: a real SQLite store holding articles rendered by the
real adapters (all seven platforms), the real chat Desk, and the desk's app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

from bot.config import Config, validate
from bot.desk import Desk
from bot.models import Article
from bot.service import build_adapters
from bot.store import DeliveryStatus, NewDelivery, Store
from bot.webdesk.accounts import Accounts, Role
from bot.webdesk.app import DeskParts, create_desk_app

SECRET = "k" * 40
ENV = {
    "TG": "123:tok",
    "X": "xk",
    "FB": "fbt",
    "IG": "igt",
    "BSKY": "app-pass-word",
    "MASTO": "mt",
    "THREADS": "tht",
    "DESK_KEY": SECRET,
}
EDITOR_PASSWORD = "correct horse battery"


def desk_config(db: str, **desk: Any) -> Config:
    # The Telegram target posts at most 5 a day: the health page shows today's count against it.
    raw = {
        "outlet": {"name": "Daily", "url": "https://news.example"},
        "database": db,
        "timezone": "Asia/Baku",
        "sources": [{"name": "en", "url": "https://news.example/feed"}],
        "targets": [
            {"name": "tg", "platform": "telegram", "api_base": "http://127.0.0.1:9",
             "token": {"env": "TG"}, "chat_id": "@dailychan", "timing": {"daily_cap": 5}},
            {"name": "xmain", "platform": "x", "api_base": "http://127.0.0.1:9",
             "upload_base": "http://127.0.0.1:9", "api_key": {"env": "X"},
             "api_secret": {"env": "X"}, "access_token": {"env": "X"},
             "access_token_secret": {"env": "X"}},
            {"name": "fb", "platform": "facebook", "api_base": "http://127.0.0.1:9",
             "page_id": "1", "page_access_token": {"env": "FB"}},
            {"name": "ig", "platform": "instagram", "api_base": "http://127.0.0.1:9",
             "ig_user_id": "2", "access_token": {"env": "IG"}},
            {"name": "bsky", "platform": "bluesky", "api_base": "http://127.0.0.1:9",
             "identifier": "daily.bsky.social", "app_password": {"env": "BSKY"}},
            {"name": "masto", "platform": "mastodon", "api_base": "http://127.0.0.1:9",
             "access_token": {"env": "MASTO"}},
            {"name": "threads", "platform": "threads", "api_base": "http://127.0.0.1:9",
             "user_id": "3", "access_token": {"env": "THREADS"}},
        ],
        "desk": {"enabled": True, "secret_key": {"env": "DESK_KEY"}, **desk},
    }  # fmt: skip
    return validate(raw, environ=ENV)


ARTICLE = Article(
    url="https://news.example/en/1-budget-vote",
    title="Parliament passes the budget vote",
    source="en",
    lead="The budget passed late on Tuesday after a long debate.",
    image_url="https://news.example/img/1.jpg",
    published=datetime(2025, 5, 6, 10, 0, tzinfo=UTC),
    language="en",
)


@dataclass
class World:
    store: Store
    config: Config
    app: Starlette
    desk: Desk
    delivery_ids: dict[str, int]


async def make_world(
    tmp_path: Path, awaiting: bool = True, article: Article = ARTICLE, **desk: Any
) -> World:
    config = desk_config(f"sqlite:///{tmp_path}/state.db", **desk)
    store = Store(config.file.database)
    await store.init()
    adapters = build_adapters(config)
    planned = [
        NewDelivery(
            a.render(article),
            status=DeliveryStatus.AWAITING if awaiting else DeliveryStatus.PENDING,
        )
        for a in adapters.values()
    ]
    _, ids = await store.add_article_with_deliveries(article, [f"url:{article.url}"], planned)
    desk_ops = Desk(
        store,
        list(adapters),
        {n: a.hyperlinks for n, a in adapters.items()},
        set(),
        _never,
        _never,
        lambda: None,
        tz=config.timezone,  # as the service builds it: times in the newsroom's zone
        measure={n: a.measure for n, a in adapters.items()},
    )

    async def try_url(url: str) -> Any:
        article = Article(url=url, title="Tested headline", source="en", language="en")
        return article, [(n, a.render(article), None) for n, a in adapters.items()]

    parts = DeskParts(store, desk_ops, config.timezone, try_url, lambda: {}, adapters)
    assert config.desk_secret is not None
    app = Starlette(
        routes=[Mount("/desk", create_desk_app(parts, config.file.desk, config.desk_secret))]
    )
    accounts = Accounts(store.engine)
    await accounts.add("eve", Role.EDITOR, EDITOR_PASSWORD)
    await accounts.add("ada", Role.ADMIN, EDITOR_PASSWORD)
    return World(store, config, app, desk_ops, dict(zip(adapters, ids, strict=True)))


async def _never(url: str) -> str:
    return "not in these tests"
