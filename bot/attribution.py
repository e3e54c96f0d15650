"""The attribution guard: no post leaves unless it carries the article's URL.

Enforced once, here, for every platform: as a real hyperlink where the platform has them,
as visible text where it does not. Tracking parameters (UTM) do not change the identity.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from bot.models import RenderedPost
from bot.urls import normalize_url

_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"']+")


class AttributionMissing(Exception):
    """The rendered post does not carry the article's URL."""


class _AnchorCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def _same(url: str, article_url: str) -> bool:
    try:
        return normalize_url(url) == normalize_url(article_url)
    except ValueError:
        return False


def hyperlinks_in(post: RenderedPost) -> list[str]:
    """URLs the platform will show as clickable links for this post."""
    links: list[str] = []
    if post.markup == "html":
        collector = _AnchorCollector()
        collector.feed(post.text)
        collector.close()
        links.extend(collector.hrefs)
    else:
        links.extend(match.rstrip(".,;:!?)»") for match in _URL_IN_TEXT.findall(post.text))
    if post.link_url:
        links.append(post.link_url)
    return links


def visible_urls(post: RenderedPost) -> list[str]:
    return [m.rstrip(".,;:!?)»") for m in _URL_IN_TEXT.findall(post.text)]


def check_attribution(post: RenderedPost, hyperlinks: bool) -> None:
    """Raise AttributionMissing unless `post` carries its article URL the way it must."""
    if not post.article_url:
        raise AttributionMissing(f"{post.target}: the post names no article URL")
    candidates = hyperlinks_in(post) if hyperlinks else visible_urls(post)
    if not any(_same(url, post.article_url) for url in candidates):
        how = "as a hyperlink" if hyperlinks else "as visible text"
        raise AttributionMissing(
            f"{post.target}: the post does not carry the article URL {post.article_url} {how}"
        )
