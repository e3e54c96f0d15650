"""Facebook and Instagram adapters against the Graph API stand-in, and the image cards."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from adapters._cards import render_card
from adapters.facebook import FacebookAdapter
from adapters.instagram import InstagramAdapter
from adapters.instagram.images import check_instagram_image
from bot.attribution import check_attribution
from bot.httpserver import serve
from bot.models import Article
from bot.outcomes import AuthFailure, PermanentFailure, RetryLater, TemporaryFailure
from bot.targets import Outlet
from standins import graph

TOKEN = "EAAB-page-SECRET-token"
ENV = {"FB_TOKEN": TOKEN, "IG_TOKEN": TOKEN}


def image(size: tuple[int, int], kind: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, kind)
    return out.getvalue()


IMAGES = {
    "good.jpg": image((1200, 675)),
    "tall.jpg": image((600, 1400)),
    "tiny.jpg": image((200, 200)),
    "png.png": image((1080, 1080), "PNG"),
    "junk.jpg": b"this is not an image at all",
}


@dataclass
class Meta:
    state: graph.State
    url: str
    files: str
    cards: Path


@pytest.fixture
async def meta(tmp_path: Path) -> AsyncIterator[Meta]:
    state = graph.State(in_progress_polls=2)
    state.tokens.add(TOKEN)
    cards = tmp_path / "cards"

    async def files(request: Request) -> Response:
        name = request.path_params["name"]
        if name in IMAGES:
            media = "image/png" if name.endswith(".png") else "image/jpeg"
            return Response(IMAGES[name], media_type=media)
        return Response(status_code=404)

    async def card(request: Request) -> Response:
        path = cards / request.path_params["name"]
        return FileResponse(path) if path.is_file() else Response(status_code=404)

    app = Starlette(routes=[Route("/img/{name}", files), Route("/cards/{name}", card)])
    async with serve(graph.create_app(state)) as g, serve(app) as f:
        yield Meta(state, g.url, f.url, cards)


def facebook(meta: Meta, **overrides: object) -> FacebookAdapter:
    raw: dict[str, object] = {
        "name": "fb",
        "platform": "facebook",
        "api_base": meta.url,
        "page_id": meta.state.page_id,
        "page_access_token": {"env": "FB_TOKEN"},
    }
    raw.update(overrides)
    s = FacebookAdapter.Settings.model_validate(raw)
    return FacebookAdapter(
        s, {n: r.resolve(ENV) for n, r in s.secret_fields().items()}, Outlet(name="Sample Times")
    )


def instagram(meta: Meta, **overrides: object) -> InstagramAdapter:
    raw: dict[str, object] = {
        "name": "ig",
        "platform": "instagram",
        "api_base": meta.url,
        "ig_user_id": meta.state.ig_user_id,
        "access_token": {"env": "IG_TOKEN"},
        "public_base_url": meta.files,
        "card_dir": str(meta.cards),
        "poll_interval": 0.05,
        "poll_timeout": 5,
    }
    raw.update(overrides)
    s = InstagramAdapter.Settings.model_validate(raw)
    return InstagramAdapter(
        s, {n: r.resolve(ENV) for n, r in s.secret_fields().items()}, Outlet(name="Sample Times")
    )


def article(**fields: object) -> Article:
    base: dict[str, object] = {
        "url": "https://news.example.com/en/news/7",
        "title": "Budget passes",
        "lead": "The vote was close.",
        "categories": ("Politics",),
    }
    base.update(fields)
    return Article(**base)  # type: ignore[arg-type]


# Facebook -------------------------------------------------------------------------------------


async def test_link_post_edit_and_delete(meta: Meta) -> None:
    fb = facebook(meta)
    post = fb.render(article())
    check_attribution(post, fb.hyperlinks)
    sent = await fb.send(post)
    stored = meta.state.posts[sent.remote_id]
    assert stored["link"] == "https://news.example.com/en/news/7"
    assert "https://news.example.com/en/news/7" in stored["message"]
    await fb.edit(sent.remote_id, fb.render(article(title="Budget passes narrowly")))
    assert stored["edited"] and stored["message"].startswith("Budget passes narrowly")
    await fb.delete(sent.remote_id)
    assert stored["deleted"]
    await fb.aclose()


async def test_photo_post(meta: Meta) -> None:
    fb = facebook(meta, post_as="photo")
    post = fb.render(article(image_url=f"{meta.files}/img/good.jpg"))
    sent = await fb.send(post)
    stored = meta.state.posts[sent.remote_id]
    assert stored["kind"] == "photos" and stored["url"].endswith("/img/good.jpg")
    assert "https://news.example.com/en/news/7" in stored["message"]
    await fb.aclose()


@pytest.mark.parametrize(
    ("fault", "error", "text"),
    [
        (
            graph.GraphFault(
                code=32,
                status=400,
                message="Page request limit reached",
                usage={
                    "1000001": [
                        {"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 5}
                    ]
                },
            ),
            RetryLater,
            "rate limit",
        ),
        (
            graph.GraphFault(code=190, status=400, message="Error validating access token"),
            AuthFailure,
            "190",
        ),
        (
            graph.GraphFault(
                code=368, status=400, message="The action attempted has been deemed abusive"
            ),
            PermanentFailure,
            "blocked",
        ),
        (graph.GraphFault(code=2, status=500), TemporaryFailure, "unexpected error"),
    ],
)
async def test_facebook_errors(meta: Meta, fault: graph.GraphFault, error: type, text: str) -> None:
    meta.state.inject(fault)
    fb = facebook(meta)
    with pytest.raises(error, match=text) as caught:
        await fb.send(fb.render(article()))
    if isinstance(caught.value, RetryLater):
        assert caught.value.retry_after == 300  # 5 minutes from the BUC header
    assert TOKEN not in str(caught.value)
    await fb.aclose()


async def test_duplicate_and_expired_token(meta: Meta) -> None:
    fb = facebook(meta)
    post = fb.render(article())
    await fb.send(post)
    with pytest.raises(PermanentFailure, match="duplicate"):
        await fb.send(post)
    meta.state.tokens.discard(TOKEN)
    meta.state.expired_tokens.add(TOKEN)
    with pytest.raises(AuthFailure, match="Session has expired") as caught:
        await fb.send(fb.render(article(title="Another")))
    assert TOKEN not in str(caught.value)
    await fb.aclose()


# Instagram ------------------------------------------------------------------------------------


async def test_instagram_publishes_after_polling_to_finished(meta: Meta) -> None:
    ig = instagram(meta)
    post = ig.render(article(image_url=f"{meta.files}/img/good.jpg"))
    sent = await ig.send(post)
    media = meta.state.media[sent.remote_id]
    assert media["image_url"].endswith("/img/good.jpg")  # valid as is: no card needed
    assert "Source: Sample Times — https://news.example.com/en/news/7" in media["caption"]
    (container,) = meta.state.containers.values()
    assert container["status"] == "PUBLISHED"
    await ig.aclose()


@pytest.mark.parametrize(
    "name", [None, "tall.jpg", "tiny.jpg", "png.png", "junk.jpg", "missing.jpg"]
)
async def test_instagram_uses_a_card_when_the_image_breaks_the_rules(
    meta: Meta, name: str | None
) -> None:
    ig = instagram(meta)
    url = f"{meta.files}/img/{name}" if name else None
    sent = await ig.send(ig.render(article(image_url=url)))
    media = meta.state.media[sent.remote_id]
    assert "/cards/" in media["image_url"]
    (card,) = meta.cards.iterdir()
    assert check_instagram_image(card.read_bytes()) == []
    await ig.aclose()


async def test_container_error_is_permanent(meta: Meta) -> None:
    ig = instagram(meta, public_base_url=f"{meta.files}/nowhere")  # cards cannot be fetched
    with pytest.raises(PermanentFailure, match="ERROR"):
        await ig.send(ig.render(article()))
    assert meta.state.media == {}
    await ig.aclose()


async def test_publishing_limit_is_respected(meta: Meta) -> None:
    meta.state.quota_total = 1
    ig = instagram(meta)
    await ig.send(ig.render(article(image_url=f"{meta.files}/img/good.jpg")))
    with pytest.raises(RetryLater, match="publishing limit"):
        await ig.send(ig.render(article(title="Second", image_url=f"{meta.files}/img/good.jpg")))
    assert len(meta.state.media) == 1
    await ig.aclose()


def test_caption_rules() -> None:
    meta = Meta(graph.State(), "http://127.0.0.1:9", "http://127.0.0.1:9", Path("/tmp"))
    ig = instagram(meta)
    tags = tuple(f"Tag{i}" for i in range(12))
    lead = " ".join(f"@user{i}" for i in range(30)) + " " + "word " * 800
    post = ig.render(article(title="T" * 3000, lead=lead, categories=tags))
    assert len(post.text) <= 2200
    assert post.text.endswith("Source: Sample Times — https://news.example.com/en/news/7")
    assert post.text.count("#") == 5
    assert len([w for w in post.text.split() if w.startswith("@")]) <= 20
    check_attribution(post, hyperlinks=False)


@pytest.mark.parametrize(
    "headline",
    [
        "Short",
        "Новости: парламент принял бюджет",
        "Bakıda yeni şəhər parkı açıldı: Ə ğ ş ı",
        "Long " * 100,
    ],
)
@pytest.mark.parametrize("photo", [None, image((600, 1400)), image((3000, 500)), b"junk"])
def test_cards_meet_every_instagram_rule(headline: str, photo: bytes | None) -> None:
    data = render_card(headline, "Sample Times", "Source: Sample Times — https://x.az/1", photo)
    assert check_instagram_image(data) == []
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.format == "JPEG" and opened.size == (1080, 1350)


async def test_first_comment_carries_the_link(meta: Meta) -> None:
    ig = instagram(meta, first_comment_link=True)
    sent = await ig.send(ig.render(article(image_url=f"{meta.files}/img/good.jpg")))
    (comment,) = meta.state.comments
    assert comment["media"] == sent.remote_id
    assert comment["message"] == "Source: Sample Times — https://news.example.com/en/news/7"
    await ig.aclose()


@pytest.mark.parametrize("color", ["#0b3d91", "#c82828", "#ffffff"])
def test_card_shade_is_the_same_on_the_brand_colour_and_on_a_photo(color: str) -> None:
    """A flat background is shaded one column at a time, a photo as a whole: the same colour
    as a photo must come out the same, clear above 35% of the height, darkening below."""
    from PIL import ImageChops, ImageColor

    from adapters._cards import CARD_SIZE, _backdrop

    out = io.BytesIO()
    Image.new("RGB", (800, 1000), color).save(out, "PNG")  # lossless: the exact colour
    flat = _backdrop(None, color)
    photo = _backdrop(out.getvalue(), "#000000")
    assert flat.size == photo.size == CARD_SIZE
    assert ImageChops.difference(flat, photo).getbbox() is None
    rows = [flat.getpixel((CARD_SIZE[0] // 2, y)) for y in range(CARD_SIZE[1])]
    assert rows[0] == rows[int(CARD_SIZE[1] * 0.35) - 1] == ImageColor.getrgb(color)
    brightness = [sum(rgb) for rgb in rows]
    assert all(a >= b for a, b in pairwise(brightness))
    assert brightness[-1] < brightness[0] / 4
