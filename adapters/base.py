"""The shared base every platform adapter builds on (adapters/__init__.py says how to write one).

An adapter knows one platform and nothing of feeds: it turns an Article into a RenderedPost
(pure), sends a RenderedPost (I/O), and reports failures with bot.outcomes exceptions.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar

from bot.hashtags import article_hashtags
from bot.models import Article, PostLength, RenderedPost, SentPost
from bot.outcomes import CannotTell, SetupCheck, SetupStatus
from bot.secrets import Secret
from bot.targets import ImageFetcher, Outlet, TargetSettings
from bot.templates import Dialect, render_template

# Re-exported for code written against the old home of these names; import from bot.targets.
__all__ = [
    "Adapter",
    "ImageFetcher",
    "Outlet",
    "SendContext",
    "SetupCheck",
    "SetupStatus",
    "TargetSettings",
]


async def _keep_in_memory(_progress: dict[str, Any]) -> None:
    return None


@dataclass
class SendContext:
    """What the dispatcher hands an adapter for one delivery's prepare/publish/read-back."""

    delivery_id: int = 0
    #: Stable for the delivery's life (stored on its row): a resend carries the same key.
    idempotency_key: str | None = None
    #: What an earlier prepare() saved for this delivery (a restart resumes from it).
    progress: dict[str, Any] = field(default_factory=dict)
    #: When the delivery was created (a read-back need look no further back).
    since: float = 0.0
    _store: Callable[[dict[str, Any]], Awaitable[None]] = _keep_in_memory

    async def save_progress(self, progress: dict[str, Any]) -> None:
        """Record preparation progress durably (a JSON object) before going on."""
        self.progress = dict(progress)
        await self._store(self.progress)


async def import_deferred(module: str) -> ModuleType:
    """One of an adapter's `deferred_imports`, imported in a worker thread the first time: a
    platform library takes a tenth of a second or more of CPU to import, and polls and other
    targets go on meanwhile."""
    return sys.modules.get(module) or await asyncio.to_thread(importlib.import_module, module)


class Adapter(ABC):
    """One platform. Subclasses set the class attributes and implement render and send."""

    platform: ClassVar[str]
    #: Whether a post can carry a clickable hyperlink (else the URL is attribution text).
    hyperlinks: ClassVar[bool] = True
    #: Whether the platform honours a client-chosen idempotency key on send (then a resend
    #: with the same key cannot make a second post).
    idempotent: ClassVar[bool] = False
    #: What find_published() reads back ("" if nothing: uncertain posts go to editors).
    read_back: ClassVar[str] = ""
    Settings: ClassVar[type[TargetSettings]] = TargetSettings
    #: Modules the adapter imports at its first call rather than at start-up (its platform
    #: library); `newsbot check-config` imports them, so a broken install shows there.
    deferred_imports: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        settings: TargetSettings,
        secrets: dict[str, Secret],
        outlet: Outlet,
        *,
        fetch_image: ImageFetcher | None = None,
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self.outlet = outlet
        #: Given by the core: image downloads through its capped client and SSRF guard (the
        #: policy of the article's source). None when an adapter runs alone: its own client.
        self.fetch_image = fetch_image
        # send() runs prepare() and publish(), and publish() defaults to send(): a platform
        # writes one or the other, or a send would never end.
        cls = type(self)
        if cls.send is Adapter.send and cls.publish is Adapter.publish:
            raise TypeError(f"{cls.__name__} must define send() or publish()")
        self.init_state()

    def init_state(self) -> None:  # noqa: B027 - optional hook
        """Set up per-instance state (clients made lazily, locks, caches): the base's
        constructor calls it, so an adapter never re-declares the constructor."""

    @property
    def name(self) -> str:
        return self.settings.name

    @abstractmethod
    def render(self, article: Article) -> RenderedPost:
        """The post for `article`, within the platform's limits. Pure: no I/O."""

    async def send(self, post: RenderedPost, *, idempotency_key: str | None = None) -> SentPost:
        """Publish `post`. Raises a bot.outcomes.DeliveryError subclass on failure.

        `idempotency_key` is stable for one delivery; platforms that are `idempotent` pass it
        on so a repeated send cannot post twice, the others ignore it. An adapter overrides
        either this (one step) or prepare()/publish() (the steps, which this runs in turn
        for direct callers; the dispatcher calls them itself).
        """
        ctx = SendContext(idempotency_key=idempotency_key)
        await self.prepare(post, ctx)
        return await self.publish(post, ctx)

    # The dispatcher's split of a send (issue 14): prepare() does everything that publishes
    # nothing and may be repeated; the dispatcher then commits `sending` and calls publish(),
    # which makes the ONE publishing request. An adapter that does not split keeps the
    # defaults: nothing to prepare, publish = send.

    async def prepare(self, post: RenderedPost, ctx: SendContext) -> None:  # noqa: B027
        """Steps before publishing (start-up calls, pacing, quota checks, uploads). Must
        publish nothing; saves what a restart can reuse with ctx.save_progress()."""

    async def publish(self, post: RenderedPost, ctx: SendContext) -> SentPost:
        """The one publishing request (after prepare(post, ctx))."""
        return await self.send(post, idempotency_key=ctx.idempotency_key)

    async def find_published(self, post: RenderedPost, ctx: SendContext) -> SentPost | None:
        """Read back whether `post` went out: the post if found, None if it certainly did not.
        Raises bot.outcomes.CannotTell (saying which check was tried) when it cannot decide."""
        raise CannotTell(f"{self.platform} offers no read-back of published posts")

    @abstractmethod
    def measure(self, post: RenderedPost) -> PostLength:
        """How long `post` is as the platform counts it, against its limit. Pure: the desk
        re-checks an editor's edited text with it, previews show it, the contract test holds
        every rendered post to it."""

    # Helpers for render() ---------------------------------------------------------------------

    @staticmethod
    def measure_in(dialect: Dialect, post: RenderedPost) -> PostLength:
        """The usual measure: what a reader sees of the text, counted the dialect's way."""
        return PostLength(dialect.measure(dialect.visible(post.text)), dialect.limit, dialect.unit)

    def hashtags_for(self, article: Article) -> list[str]:
        """The hashtags this target's posts of `article` carry (at most max_hashtags)."""
        s = self.settings
        return article_hashtags(article, s.max_hashtags, self.outlet, s.hashtags)

    def render_template(self, article: Article, dialect: Dialect) -> str:
        """The target's template (settings.template, which must be set) rendered for `article`
        in the platform's `dialect`, with the target's UTM tags, hashtags and emoji."""
        s = self.settings
        if s.template is None:
            raise ValueError(f"target {s.name}: render_template needs settings.template")
        return render_template(
            s.template,
            article,
            dialect,
            outlet=self.outlet.name,
            utm=s.utm,
            tags=self.hashtags_for(article),
            category_emoji=s.category_emoji,
        )

    async def warm_up(self) -> None:  # noqa: B027 - optional hook, most adapters need none
        """Load what render() needs from the platform before the first post (Mastodon: the
        instance's limits). The service calls it once at start; a failure is logged and the
        adapter renders with the platform's defaults meanwhile."""

    async def check(self) -> bool:
        """A cheap read-only call: is the platform answering and the login accepted?

        Raises a bot.outcomes.DeliveryError subclass when not. Returns False when the adapter
        has no such call (the core then lets one real post be the probe after an outage).
        """
        return False

    def cost(self, post: RenderedPost) -> float:
        """What sending `post` costs (for daily money budgets); free unless a platform bills."""
        return 0.0

    def read_cost(self, progress: dict[str, Any]) -> float:
        """What the billed reads recorded in a delivery's progress cost (X's read-back)."""
        return 0.0

    async def edit(self, remote_id: str, post: RenderedPost) -> None:
        raise NotImplementedError(f"{self.platform} posts cannot be edited")

    async def delete(self, remote_id: str) -> None:
        raise NotImplementedError(f"{self.platform} posts cannot be deleted")

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most adapters need it
        """Release connections."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "platform": self.platform, "api_base": self.settings.api_base}

    async def verify(self) -> list[SetupCheck]:
        """Ask the platform whether this target's setup really works (login, page or chat,
        rights to post), without posting. One line per target; by default: not checked."""
        return [SetupCheck(self.name, SetupStatus.SKIPPED, f"no online check for {self.platform}")]
