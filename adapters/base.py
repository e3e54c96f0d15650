"""The shared base every platform adapter builds on.

An adapter knows one platform and nothing of feeds: it turns an Article into a RenderedPost
(pure), sends a RenderedPost (I/O), and reports failures with bot.outcomes exceptions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from bot.hashtags import HashtagPolicy
from bot.models import Article, RenderedPost, SentPost
from bot.secrets import Secret, SecretRef
from bot.timing import Timing


class Outlet(BaseModel):
    """The newsroom the posts speak for; used in attribution lines and image cards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "Newsroom"
    url: str = ""
    #: The newsroom's hashtag steering (map, allow, deny); each target's adds to it.
    hashtags: HashtagPolicy = HashtagPolicy()


class TargetSettings(BaseModel):
    """Options common to every target. Each adapter extends this with its own fields."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    platform: str
    enabled: bool = True
    api_base: str = Field(description="API base URL; a stand-in server's URL in tests")
    timeout: float = Field(default=20.0, gt=0, le=300)
    # Which articles this target takes (the full routing rules live in the core's rules).
    sources: list[str] | None = None
    languages: list[str] | None = None
    max_hashtags: int = Field(default=3, ge=0, le=30)
    #: This target's hashtag steering over the outlet's (map, allow, deny).
    hashtags: HashtagPolicy | None = None
    timing: Timing = Timing()
    #: Jinja2 template of the post text (sandboxed); None: the platform's default layout.
    template: str | None = None
    #: Query parameters added to the article link in this target's posts (UTM tags).
    utm: dict[str, str] = Field(default_factory=dict)
    #: Emoji by category, offered to templates as {{ emoji }}.
    category_emoji: dict[str, str] = Field(default_factory=dict)

    def secret_fields(self) -> dict[str, SecretRef]:
        """Every SecretRef field of these settings, by field name."""
        return {
            name: value
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SecretRef)
        }


#: (image URL, article URL, byte cap) -> the image's bytes; raises when it cannot be had.
ImageFetcher = Callable[[str, str, int], Awaitable[bytes]]


class Adapter(ABC):
    """One platform. Subclasses set the class attributes and implement render and send."""

    platform: ClassVar[str]
    #: Whether a post can carry a clickable hyperlink (else the URL is attribution text).
    hyperlinks: ClassVar[bool] = True
    Settings: ClassVar[type[TargetSettings]] = TargetSettings

    def __init__(
        self, settings: TargetSettings, secrets: dict[str, Secret], outlet: Outlet
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self.outlet = outlet
        #: Set by the core: image downloads through its capped client and SSRF guard (the
        #: policy of the article's source). None when an adapter runs alone: its own client.
        self.fetch_image: ImageFetcher | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    @abstractmethod
    def render(self, article: Article) -> RenderedPost:
        """The post for `article`, within the platform's limits. Pure: no I/O."""

    @abstractmethod
    async def send(self, post: RenderedPost) -> SentPost:
        """Publish `post`. Raises a bot.outcomes.DeliveryError subclass on failure."""

    async def check(self) -> bool:
        """A cheap read-only call: is the platform answering and the login accepted?

        Raises a bot.outcomes.DeliveryError subclass when not. Returns False when the adapter
        has no such call (the core then lets one real post be the probe after an outage).
        """
        return False

    def cost(self, post: RenderedPost) -> float:
        """What sending `post` costs (for daily money budgets); free unless a platform bills."""
        return 0.0

    async def edit(self, remote_id: str, post: RenderedPost) -> None:
        raise NotImplementedError(f"{self.platform} posts cannot be edited")

    async def delete(self, remote_id: str) -> None:
        raise NotImplementedError(f"{self.platform} posts cannot be deleted")

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most adapters need it
        """Release connections."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "platform": self.platform, "api_base": self.settings.api_base}
