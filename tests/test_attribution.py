import pytest

from adapters import adapter_class
from adapters.base import Adapter
from bot.attribution import AttributionMissing, check_attribution, hyperlinks_in
from bot.models import Article, RenderedPost
from bot.render import ProblemKind, RenderProblem, render_for
from bot.targets import Outlet

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


# render_for: rendering and the guard as one step --------------------------------------------


def _telegram(template: str | None) -> Adapter:
    cls = adapter_class("telegram")
    settings = cls.Settings.model_validate(
        {
            "name": "tg",
            "platform": "telegram",
            "api_base": "http://127.0.0.1:9",
            "token": {"env": "T"},
            "chat_id": "@chan_c",
            "template": template,
        }
    )
    return cls(settings, {}, Outlet(name="Sample Times"))


ARTICLE = Article(url=URL, title="Budget passes", lead="A lead.")


def test_render_for_returns_the_post_when_it_carries_the_link() -> None:
    rendered = render_for(_telegram(None), ARTICLE)
    assert isinstance(rendered, RenderedPost)
    assert f'href="{URL}"' in rendered.text


def test_render_for_returns_a_problem_for_a_post_without_the_link() -> None:
    rendered = render_for(_telegram("{{ title }}"), ARTICLE)
    assert isinstance(rendered, RenderProblem)
    assert rendered.kind is ProblemKind.NO_LINK and URL in rendered.message


def test_render_for_names_a_broken_template() -> None:
    rendered = render_for(_telegram("{{ title "), ARTICLE)
    assert isinstance(rendered, RenderProblem)
    assert rendered.kind is ProblemKind.TEMPLATE and "does not compile" in rendered.message
