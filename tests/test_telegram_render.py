"""Telegram rendering: escaping, limits counted as Telegram counts, the link always kept."""

from __future__ import annotations

import html
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.telegram import CAPTION_LIMIT, TEXT_LIMIT, TelegramAdapter, TelegramSettings
from bot.attribution import check_attribution
from bot.models import Article
from bot.targets import Outlet
from bot.text import utf16_len

URL = "https://news.example/en/news/1-x?id=5&lang=en"
ALLOWED_TAGS = {"b", "a"}


class Visible(HTMLParser):
    """Independent reading of Telegram HTML: the visible text, the tags used, the links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs += [v for k, v in attrs if k == "href" and v]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def read(text: str) -> Visible:
    parser = Visible()
    parser.feed(text)
    parser.close()
    return parser


def adapter(**overrides: object) -> TelegramAdapter:
    raw = {"name": "tg", "platform": "telegram", "token": {"env": "T"}, "chat_id": "@chan_c"}
    raw.update(overrides)
    settings = TelegramSettings.model_validate(raw)
    return TelegramAdapter(settings, {}, Outlet(name="Sample Times"))


def article(**fields: object) -> Article:
    base: dict[str, object] = {
        "url": URL,
        "title": "Budget passes",
        "lead": "Parliament approved the budget.",
        "categories": ("Politics",),
        "language": "en",
    }
    base.update(fields)
    return Article(**base)  # type: ignore[arg-type]


def test_text_post_layout() -> None:
    post = adapter().render(article())
    assert post.markup == "html" and post.image_url is None
    assert post.text == (
        "<b>Budget passes</b>\n\nParliament approved the budget.\n\n#Politics\n\n"
        f'<a href="{html.escape(URL)}">Read more at Sample Times</a>'
    )
    check_attribution(post, hyperlinks=True)


def test_photo_post_when_image() -> None:
    post = adapter().render(article(image_url="https://news.example/i.jpg"))
    assert post.image_url == "https://news.example/i.jpg"
    post = adapter(photo_posts=False).render(article(image_url="https://news.example/i.jpg"))
    assert post.image_url is None


def test_hostile_text_is_escaped() -> None:
    hostile = article(
        title='<script>alert(1)</script> & <b>bold "quote"',
        lead="Tom & Jerry <i>stray</b> 😀 ə ğ ş Привет",
    )
    post = adapter().render(hostile)
    parsed = read(post.text)
    assert set(parsed.tags) <= ALLOWED_TAGS
    visible = "".join(parsed.text)
    assert '<script>alert(1)</script> & <b>bold "quote"' in visible
    assert "Tom & Jerry <i>stray</b> 😀 ə ğ ş Привет" in visible


def test_language_specific_link_label() -> None:
    post = adapter().render(article(language="ru"))
    assert "Читать на Sample Times</a>" in post.text
    post = adapter(link_label={"*": "{outlet}"}).render(article(language="de"))
    assert ">Sample Times</a>" in post.text


def test_very_long_body_and_lead_fit_the_caption() -> None:
    long_lead = ("Sentence number one is fairly long indeed. " * 600).strip()
    post = adapter(lead_max_chars=4000).render(
        article(lead=long_lead, image_url="https://news.example/i.jpg", title="T" * 3000)
    )
    parsed = read(post.text)
    assert utf16_len("".join(parsed.text)) <= CAPTION_LIMIT
    assert parsed.hrefs == [URL]


@settings(max_examples=200, deadline=None)
@given(
    title=st.text(min_size=1, max_size=3000),
    lead=st.text(max_size=6000),
    tags=st.lists(st.text(max_size=30), max_size=8),
    photo=st.booleans(),
)
def test_any_article_renders_within_limits_with_its_link(
    title: str, lead: str, tags: list[str], photo: bool
) -> None:
    post = adapter(lead_max_chars=4000, max_hashtags=8).render(
        article(
            title=title,
            lead=lead,
            categories=tuple(tags),
            image_url="https://news.example/i.jpg" if photo else None,
        )
    )
    parsed = read(post.text)
    limit = CAPTION_LIMIT if photo else TEXT_LIMIT
    assert utf16_len("".join(parsed.text).strip()) <= limit
    assert parsed.hrefs == [URL]
    assert set(parsed.tags) <= ALLOWED_TAGS
    check_attribution(post, hyperlinks=True)
