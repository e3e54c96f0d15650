"""Editors' controls as pure functions: routing rules, timing, templates."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.telegram import HTML_TEXT, TelegramAdapter, TelegramSettings, visible_text
from bot.attribution import check_attribution
from bot.config import ConfigError, validate
from bot.models import Article
from bot.rules import Match, Rule, route
from bot.targets import Outlet, TargetSettings
from bot.templates import TemplateProblem, render_template
from bot.text import utf16_len
from bot.timing import QuietHours, Timing, decide, in_quiet_hours

BAKU = ZoneInfo("Asia/Baku")
BERLIN = ZoneInfo("Europe/Berlin")


def article(**fields: object) -> Article:
    base: dict[str, object] = {
        "url": "https://n.example/en/news/1",
        "title": "Parliament passes budget",
        "lead": "The vote was 80 to 20.",
        "source": "en",
        "language": "en",
        "categories": ("POLITICS",),
        "tags": ("budget",),
        "author": "Sabina Mammadli",
    }
    base.update(fields)
    return Article(**base)  # type: ignore[arg-type]


TARGETS = [
    TargetSettings(name=n, platform="telegram", api_base="http://127.0.0.1:1")
    for n in ("tg-en", "tg-ru", "tg-breaking", "x")
]


# Routing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "fields", "expected"),
    [
        (Match(sources=["en"]), {}, True),
        (Match(sources=["ru"]), {}, False),
        (Match(languages=["en-GB"]), {}, True),
        (Match(categories=["politics"]), {}, True),
        (Match(categories=["sport"]), {}, False),
        (Match(tags=["Budget"]), {}, True),
        (Match(authors=["sabina mammadli"]), {}, True),
        (Match(keywords=["budget"]), {}, True),
        (Match(keywords=["80 to 20"]), {}, True),  # found in the lead
        (Match(keywords=["budget"], exclude_keywords=["passes"]), {}, False),
        (Match(exclude_categories=["Politics"]), {}, False),
        (Match(exclude_tags=["budget"]), {}, False),
        (Match(languages=["ru"]), {"language": "ru-RU"}, True),
        (Match(keywords=["срочно"]), {"title": "СРОЧНО: пожар"}, True),
    ],
)
def test_each_match_kind(match: Match, fields: dict, expected: bool) -> None:
    assert match.matches(article(**fields)) is expected


def test_language_editions_route_to_their_channels() -> None:
    rules = [
        Rule(name="en", match=Match(languages=["en"]), targets=["tg-en"]),
        Rule(name="ru", match=Match(languages=["ru"]), targets=["tg-ru"]),
    ]
    assert [r.target for r in route(article(), rules, TARGETS)] == ["tg-en"]
    assert [r.target for r in route(article(language="ru"), rules, TARGETS)] == ["tg-ru"]


def test_first_match_wins_with_stop_and_all_matches_apply_otherwise() -> None:
    breaking = Rule(
        name="breaking",
        match=Match(keywords=["budget"]),
        targets=["tg-breaking"],
        breaking=True,
        stop=True,
    )
    everything = Rule(name="all", targets=["tg-en", "x"])
    routes = route(article(), [breaking, everything], TARGETS)
    assert [(r.target, r.rule, r.breaking) for r in routes] == [("tg-breaking", "breaking", True)]
    breaking.stop = False
    routes = route(article(), [breaking, everything], TARGETS)
    assert [r.target for r in routes] == ["tg-breaking", "tg-en", "x"]


def test_sponsored_category_never_posts_even_if_a_later_rule_matches() -> None:
    rules = [
        Rule(name="no-ads", match=Match(categories=["Sponsored"]), action="skip"),
        Rule(name="all", targets=["tg-en", "x"], approval=True),
    ]
    assert route(article(categories=("Sponsored",)), rules, TARGETS) == []
    (first, second) = route(article(), rules, TARGETS)
    assert first.approval and second.approval


def test_without_rules_target_filters_decide() -> None:
    targets = [
        TargetSettings(name="a", platform="p", api_base="http://x", languages=["ru"]),
        TargetSettings(name="b", platform="p", api_base="http://x", sources=["en"]),
    ]
    assert [r.target for r in route(article(), [], targets)] == ["b"]


def test_rule_naming_unknown_target_is_a_config_error() -> None:
    raw = {
        "sources": [{"name": "en", "url": "https://n.example/rss"}],
        "targets": [{"name": "tg", "platform": "telegram", "token": {"env": "T"}, "chat_id": 1}],
        "rules": [{"name": "r", "targets": ["tg", "nope"]}, {"name": "x", "mtach": {}}],
    }
    with pytest.raises(ConfigError) as caught:
        validate(raw, environ={"T": "1:abcdef"})
    locations = {p.location for p in caught.value.problems}
    assert "rules[r].targets" in locations and "rules[x].mtach" in locations


# Timing -------------------------------------------------------------------------------------


def at(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)


QUIET = Timing(quiet_hours=QuietHours(start=time(23), end=time(7)))


@pytest.mark.parametrize(
    ("local", "quiet"),
    [((22, 59), False), ((23, 0), True), ((2, 0), True), ((6, 59), True), ((7, 0), False)],
)
def test_quiet_hours_across_midnight(local: tuple[int, int], quiet: bool) -> None:
    moment = datetime(2026, 3, 10, *local, tzinfo=BAKU)
    assert in_quiet_hours(moment, QUIET.quiet_hours) is quiet  # type: ignore[arg-type]


def test_quiet_hours_post_waits_until_morning() -> None:
    now = at(BAKU, 2026, 3, 10, 23, 30)
    decision = decide(now, QUIET, BAKU, published=now)
    assert decision.action == "wait"
    assert decision.at == at(BAKU, 2026, 3, 11, 7, 0)


def test_breaking_skips_quiet_hours_and_delay() -> None:
    now = at(BAKU, 2026, 3, 10, 23, 30)
    timing = QUIET.model_copy(update={"delay": 600})
    assert decide(now, timing, BAKU, published=now, breaking=True).action == "send"


def test_quiet_hours_end_across_a_dst_change() -> None:
    # Europe/Berlin springs forward at 02:00 on 29 March 2026: the night is one hour shorter.
    timing = Timing(quiet_hours=QuietHours(start=time(23), end=time(7)))
    now = at(BERLIN, 2026, 3, 28, 23, 30)
    decision = decide(now, timing, BERLIN, published=now)
    assert decision.at is not None
    assert decision.at.astimezone(BERLIN).hour == 7
    assert decision.at - now == timedelta(hours=6, minutes=30)  # 7.5 wall hours, 6.5 real
    # And back in autumn (25 October 2026), the night is one hour longer.
    now = at(BERLIN, 2026, 10, 24, 23, 30)
    decision = decide(now, timing, BERLIN, published=now)
    assert decision.at is not None and decision.at - now == timedelta(hours=8, minutes=30)


def test_quiet_hours_within_one_day() -> None:
    timing = Timing(quiet_hours=QuietHours(start=time(13), end=time(14)))
    assert decide(at(BAKU, 2026, 1, 5, 13, 10), timing, BAKU, published=None).action == "wait"
    assert decide(at(BAKU, 2026, 1, 5, 14, 0), timing, BAKU, published=None).action == "send"


def test_delay_after_publication() -> None:
    published = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    timing = Timing(delay=300)
    wait = decide(published + timedelta(seconds=60), timing, BAKU, published=published)
    assert wait.action == "wait" and wait.at == published + timedelta(seconds=300)
    go = decide(published + timedelta(seconds=301), timing, BAKU, published=published)
    assert go.action == "send"


def test_stale_posts_are_dropped() -> None:
    published = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    timing = Timing(quiet_hours=QUIET.quiet_hours, max_age="6h")
    late = decide(published + timedelta(hours=7), timing, BAKU, published=published)
    assert late.action == "drop" and "max_age" in late.reason


def test_daily_cap_waits_for_local_midnight_or_drops() -> None:
    now = at(BAKU, 2026, 1, 5, 18, 0)
    capped = Timing(daily_cap=10)
    assert decide(now, capped, BAKU, published=now, sent_today=9).action == "send"
    wait = decide(now, capped, BAKU, published=now, sent_today=10)
    assert wait.action == "wait" and wait.at == at(BAKU, 2026, 1, 6, 0, 0)
    dropping = Timing(daily_cap=10, over_cap="drop")
    assert decide(now, dropping, BAKU, published=now, sent_today=10).action == "drop"


def test_min_spacing() -> None:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    timing = Timing(min_spacing="2m")
    decision = decide(now, timing, BAKU, published=now, last_sent=now - timedelta(seconds=30))
    assert decision.action == "wait" and decision.at == now + timedelta(seconds=90)


# Templates ----------------------------------------------------------------------------------


def tg_adapter(**overrides: object) -> TelegramAdapter:
    raw = {"name": "tg", "platform": "telegram", "token": {"env": "T"}, "chat_id": "@chan_c"}
    raw.update(overrides)
    return TelegramAdapter(TelegramSettings.model_validate(raw), {}, Outlet(name="Caliber"))


def test_template_renders_fields_helpers_utm_and_emoji() -> None:
    adapter = tg_adapter(
        template="{{ emoji }} <b>{{ title }}</b>\n{{ lead }}\n{{ hashtags }}\n{{ link('Read') }}",
        utm={"utm_source": "telegram", "utm_medium": "social"},
        category_emoji={"politics": "🏛"},
    )
    post = adapter.render(article(title="A & B <i>"))
    assert post.text == (
        "🏛 <b>A &amp; B &lt;i&gt;</b>\nThe vote was 80 to 20.\n#Politics #budget\n"
        '<a href="https://n.example/en/news/1?utm_source=telegram&amp;utm_medium=social">'
        "Read</a>"
    )
    check_attribution(post, hyperlinks=True)


def test_template_without_the_link_is_rejected_by_check_config() -> None:
    raw = {
        "sources": [{"name": "en", "url": "https://n.example/rss"}],
        "targets": [
            {
                "name": "tg",
                "platform": "telegram",
                "token": {"env": "T"},
                "chat_id": "@chan_c",
                "template": "<b>{{ title }}</b> {{ lead }}",
            },
            {
                "name": "tg2",
                "platform": "telegram",
                "token": {"env": "T"},
                "chat_id": "@chan_d",
                "template": "{{ title } broken",
            },
        ],
    }
    with pytest.raises(ConfigError) as caught:
        validate(raw, environ={"T": "1:abcdef"})
    messages = {p.location: p.message for p in caught.value.problems}
    assert "must carry the article link" in messages["targets[tg].template"]
    assert "does not compile" in messages["targets[tg2].template"]


def test_template_sandbox_blocks_unsafe_attribute_access() -> None:
    with pytest.raises(TemplateProblem):
        render_template("{{ title.__class__.__mro__ }}", article(), HTML_TEXT, outlet="x")


@settings(max_examples=60, deadline=None)
@given(title=st.text(min_size=1, max_size=2000), lead=st.text(max_size=6000))
def test_templates_are_trimmed_to_the_limit(title: str, lead: str) -> None:
    text = render_template(
        "<b>{{ title }}</b>\n\n{{ lead }}\n\n{{ link() }}",
        article(title=title, lead=lead),
        HTML_TEXT,
        outlet="Caliber",
    )
    assert utf16_len(visible_text(text)) <= 4096
    assert 'href="https://n.example/en/news/1"' in text
