"""Image cards are drawn once per article and shared by the platforms that want one
(Instagram, Threads, Bluesky), across the threads that draw them."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from adapters import _cards
from adapters._cards import CARDS_KEPT, _DrawnCards, attribution_line, render_card
from adapters.instagram import InstagramAdapter
from adapters.threads import ThreadsAdapter
from bot.models import Article
from bot.targets import Outlet

URL = "https://news.example.com/en/news/7"
ENV = {"TOKEN": "EAAB-test-token"}
# Never dialled: drawing a card makes no request.
UNUSED_API = "http://127.0.0.1:9"
UTM = {"utm_source": "instagram"}


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (900, 600), (30, 120, 60)).save(out, "JPEG")
    return out.getvalue()


def test_threads_asking_for_one_card_at_once_get_one_drawing() -> None:
    before = _cards._drawn.drawn
    start = threading.Barrier(8)

    def ask(_: int) -> bytes:
        start.wait()
        return render_card("Parliament passes the budget (cards test)", "Sample Times", "S — u")

    with ThreadPoolExecutor(8) as pool:
        cards = list(pool.map(ask, range(8)))
    assert _cards._drawn.drawn == before + 1
    assert len(set(cards)) == 1
    with Image.open(io.BytesIO(cards[0])) as card:
        assert card.format == "JPEG" and card.size == _cards.CARD_SIZE


def test_different_inputs_draw_different_cards() -> None:
    before = _cards._drawn.drawn
    base = ("Other inputs (cards test)", "Sample Times", "S — u")
    first = render_card(*base)
    # Spacing and Unicode normalisation do not make a headline different: the card is shared.
    assert render_card("  Other   inputs (cards test) ", *base[1:]) == first
    others = {
        render_card(*base, photo()),
        render_card(*base, None, "#c82828"),
        render_card(base[0], "Other Outlet", base[2]),
        render_card(base[0], base[1], "S — another url"),
    }
    assert first not in others and len(others) == 4
    assert _cards._drawn.drawn == before + 5


def test_a_failed_drawing_is_not_kept_and_the_kept_cards_are_bounded() -> None:
    drawn = _DrawnCards(kept=2)

    def broken() -> bytes:
        raise OSError("the font file is unreadable")

    with pytest.raises(OSError, match="unreadable"):
        drawn.get(("a",), broken)
    assert drawn.get(("a",), lambda: b"card a") == b"card a"  # drawn again, not the error
    drawn.get(("b",), lambda: b"card b")
    drawn.get(("c",), lambda: b"card c")  # "a" is the oldest: let go
    assert drawn.drawn == 4
    assert drawn.get(("a",), lambda: b"card a, again") == b"card a, again"
    assert drawn.get(("c",), lambda: b"not drawn") == b"card c"
    assert drawn.drawn == 5
    assert CARDS_KEPT >= 3  # one article's three platforms at least


async def test_instagram_and_threads_post_the_same_card_for_one_article(tmp_path: Path) -> None:
    outlet = Outlet(name="Sample Times")
    cards = tmp_path / "cards"
    shared = {
        "api_base": UNUSED_API,
        "access_token": {"env": "TOKEN"},
        "public_base_url": "https://bot.example.org",
        "card_dir": str(cards),
    }
    own: list[tuple[type[InstagramAdapter] | type[ThreadsAdapter], dict[str, object]]] = [
        (InstagramAdapter, {"platform": "instagram", "ig_user_id": "1789", "utm": UTM}),
        (ThreadsAdapter, {"platform": "threads", "user_id": "42"}),
    ]
    adapters = []
    for cls, fields in own:
        s = cls.Settings.model_validate({"name": fields["platform"], **shared, **fields})
        secrets = {n: r.resolve(ENV) for n, r in s.secret_fields().items()}
        adapters.append(cls(s, secrets, outlet))  # type: ignore[arg-type]
    article = Article(url=URL, title="Budget passes after a long night (shared card)", lead="")
    before = _cards._drawn.drawn
    urls = [await a.image_for(a.render(article)) for a in adapters]
    assert _cards._drawn.drawn == before + 1
    assert urls[0] == urls[1]
    (card,) = cards.iterdir()
    # The card carries the article's own address, not Instagram's tracking parameters.
    expected = attribution_line("Sample Times", URL)
    assert card.read_bytes() == render_card(article.title, "Sample Times", expected)
    assert "utm_source" in adapters[0].render(article).text  # the caption keeps them
    for adapter in adapters:
        await adapter.aclose()
