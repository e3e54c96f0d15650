"""The options every target shares, whatever its platform; each adapter's Settings extends
TargetSettings. They live in the core so the core never imports from adapters/."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ConfigDict, Field

from bot.hashtags import HashtagPolicy
from bot.secrets import SecretRef
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
