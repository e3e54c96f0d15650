"""Follow-ups on posted articles: edit posts when the headline or lead changes, delete or
flag them when the article is taken down, and never post a retracted article."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import httpx

from bot.config import Config
from bot.fetch import FetchError, fetch
from bot.models import Article
from bot.netguard import PUBLIC, Guard
from bot.outcomes import DeliveryError
from bot.render import RenderProblem, render_for
from bot.store import DeliveryStatus, IllegalTransition, Store

if TYPE_CHECKING:
    from adapters import Adapter  # the registry's name for adapters.base.Adapter

log = logging.getLogger("newsbot.followups")

GONE = (404, 410)
GUARD = Guard()  # the SSRF guard for rechecks (the article URL may now redirect elsewhere)


class FollowUps:
    def __init__(
        self,
        config: Config,
        store: Store,
        client: httpx.AsyncClient,
        adapters: dict[str, Adapter],
        alert: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self.config = config
        self.store = store
        self.client = client
        self.adapters = adapters
        self.alert = alert
        self.rules = {rule.name: rule for rule in config.rules}

    async def article_changed(self, article_id: int, old: Article, new: Article) -> int:
        """Edit every sent post of the article whose platform allows edits. Returns edits."""
        if not self.config.file.followups.edit_on_update:
            return 0
        if (old.title, old.lead) == (new.title, new.lead):
            return 0
        edited = 0
        for delivery in await self.store.deliveries_for_article(article_id):
            adapter = self.adapters.get(delivery.target)
            if adapter is None:
                continue
            if delivery.status not in (
                DeliveryStatus.PENDING,
                DeliveryStatus.AWAITING,
                DeliveryStatus.SENT,
            ):
                continue
            if delivery.status == DeliveryStatus.SENT and not delivery.remote_id:
                continue
            post = render_for(adapter, new)
            if isinstance(post, RenderProblem):
                # The stored post keeps its link; a corrected one without it never replaces it.
                await self.store.record_event(
                    "warning",
                    "edit-refused",
                    f"post not updated: {post.message}",
                    delivery.target,
                    delivery.id,
                )
                continue
            if delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.AWAITING):
                # Not sent yet: it simply goes out with the corrected text.
                await self.store.update_payload(delivery.id, post)
                continue
            try:
                await adapter.edit(delivery.remote_id, post)
            except NotImplementedError:
                continue
            except DeliveryError as exc:
                await self.store.record_event(
                    "warning", "edit-failed", exc.message, delivery.target, delivery.id
                )
                continue
            await self.store.update_payload(delivery.id, post)
            await self.store.record_event(
                "info", "edited", f"post updated: {new.title!r}", delivery.target, delivery.id
            )
            edited += 1
        return edited

    async def retract(self, article_id: int, reason: str) -> None:
        """The article was taken down: stop its pending posts, delete or flag the sent ones."""
        await self.store.set_retracted(article_id)
        for delivery in await self.store.deliveries_for_article(article_id):
            if delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.AWAITING):
                # Refused if a sender claimed it meanwhile: its sender records the outcome.
                with contextlib.suppress(IllegalTransition):
                    await self.store.skip(delivery.id, f"article taken down: {reason}")
                continue
            if delivery.status != DeliveryStatus.SENT or not delivery.remote_id:
                continue
            rule = self.rules.get(delivery.rule or "")
            action = (rule.on_takedown if rule else None) or self.config.file.followups.on_takedown
            adapter = self.adapters.get(delivery.target)
            message = f"{delivery.post.article_url} was taken down ({reason})"
            if action == "delete" and adapter is not None:
                try:
                    await adapter.delete(delivery.remote_id)
                    await self.store.record_event(
                        "info", "deleted", f"{message}: post deleted", delivery.target, delivery.id
                    )
                    continue
                except (NotImplementedError, DeliveryError) as exc:
                    message += f"; could not delete the post: {exc}"
            await self.store.record_event(
                "warning",
                "takedown",
                f"{message}: check the post {delivery.remote_url or ''}",
                delivery.target,
                delivery.id,
            )
            await self.alert(
                delivery.target, f"{message}. Post: {delivery.remote_url or delivery.remote_id}"
            )

    async def recheck(self) -> int:
        """Look at recently posted articles again; returns how many were found taken down."""
        cfg = self.config.file.followups
        since = time.time() - cfg.recheck_window
        found = 0
        for stored in await self.store.articles_sent_since(since):
            policy = PUBLIC
            for source in self.config.sources:
                if source.name == stored.article.source:
                    policy = await GUARD.policy(source.name, source.url, source.allow_hosts)
            try:
                await fetch(
                    self.client,
                    stored.article.url,
                    max_bytes=self.config.file.fetch.max_bytes,
                    deadline=self.config.file.fetch.timeout,
                    check=GUARD.checker(policy),
                )
            except FetchError as exc:
                if exc.status in GONE:
                    log.warning("article taken down: %s (HTTP %s)", stored.article.url, exc.status)
                    await self.retract(stored.id, f"HTTP {exc.status}")
                    found += 1
        return found
