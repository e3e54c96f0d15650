import pytest

from bot.attribution import AttributionMissing, check_attribution, hyperlinks_in
from bot.models import RenderedPost

URL = "https://news.example/en/news/42-budget"


def post(text: str, markup: str = "html", link_url: str | None = None) -> RenderedPost:
    return RenderedPost(
        target="t", platform="p", article_url=URL, text=text, markup=markup, link_url=link_url
    )


def test_html_anchor_to_the_article_passes() -> None:
    check_attribution(post(f'<b>Title</b>\n\n<a href="{URL}">Read</a>'), hyperlinks=True)


def test_utm_tagged_link_still_counts() -> None:
    tagged = f"{URL}?utm_source=telegram&utm_medium=social"
    check_attribution(post(f'<a href="{tagged}">Read</a>'), hyperlinks=True)


def test_url_as_bare_text_is_not_a_hyperlink_in_html() -> None:
    with pytest.raises(AttributionMissing, match="as a hyperlink"):
        check_attribution(post(f"<b>Title</b> {URL}"), hyperlinks=True)


def test_link_to_another_article_fails() -> None:
    with pytest.raises(AttributionMissing):
        check_attribution(post('<a href="https://news.example/en/news/43">x</a>'), hyperlinks=True)


def test_plain_text_platform_with_auto_linked_url() -> None:
    check_attribution(post(f"Headline {URL} #news", markup="plain"), hyperlinks=True)


def test_link_card_counts_as_hyperlink() -> None:
    check_attribution(post("Headline only", markup="plain", link_url=URL), hyperlinks=True)


def test_no_hyperlink_platform_needs_visible_url_text() -> None:
    check_attribution(post(f"Caption. Source: News — {URL}", markup="plain"), hyperlinks=False)
    with pytest.raises(AttributionMissing, match="as visible text"):
        check_attribution(post("Caption only", markup="plain", link_url=URL), hyperlinks=False)


def test_hyperlinks_in_reads_escaped_hrefs() -> None:
    links = hyperlinks_in(post('<a href="https://n.example/a?x=1&amp;y=2">a</a>'))
    assert links == ["https://n.example/a?x=1&y=2"]
