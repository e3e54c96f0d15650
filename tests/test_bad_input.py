"""Hostile input: every case of reliability/bad_input.py against real Services, plus the SSRF
guard's verdicts, bounded decompression, image checks and feed encodings in isolation."""

from __future__ import annotations

import gzip
import io
import ipaddress
import logging
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.config import ConfigError, validate
from bot.fetch import FetchError, RefusedURL, fetch, image_problem
from bot.httpserver import serve
from bot.netguard import (
    PUBLIC,
    BlockedURL,
    Guard,
    Policy,
    Unresolvable,
    classify,
    host_allowed,
    judge,
    literal_address,
    static_resolver,
)
from bot.service import Service
from bot.sources import parse_feed
from reliability import bad_input

# The whole hostile site against real Services ---------------------------------------------


async def test_every_hostile_case_is_handled_and_the_good_source_still_posts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        figures = await bad_input.run()
    failed = [c for c in figures["cases"] if not (c["handled"] and c["others_unaffected"])]
    assert failed == []
    unlogged = [c["name"] for c in figures["cases"] if c["error_logged"] is False]
    assert unlogged == []
    for case in bad_input.CASES.values():
        if case.message is not None:
            assert case.message in caplog.text, case.name
    # Refused addresses were never contacted.
    assert all(c["internal_hits"] == 0 for c in figures["cases"])
    # The bomb really is one, and fetching it stays within a few times the cap.
    assert "compression bomb" in figures["bomb_error"]
    assert figures["bomb_peak_bytes"] < 4 * figures["max_bytes"]
    rows = bad_input.table_rows(figures)
    assert len(rows) == len(figures["cases"]) + 1
    assert all("NOT" not in value and "NO" not in value.split() for _, value in rows)


def test_the_gzip_bomb_inflates_past_a_gigabyte() -> None:
    engine = zlib.decompressobj(zlib.MAX_WBITS | 16)
    total = 0
    for chunk in bad_input.gzip_bomb():
        data = chunk
        while data:  # bounded steps: this test must not hold a gigabyte either
            out = engine.decompress(data, 1 << 24)
            total += len(out)
            data = engine.unconsumed_tail
    assert engine.eof and total == 1 << 30
    nested = gzip.compress(b"".join(bad_input.gzip_bomb()), 9)
    assert len(nested) < 20_000


# Netguard verdicts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.1.2.3", "private (RFC 1918)"),
        ("172.16.0.1", "private (RFC 1918)"),
        ("172.31.255.255", "private (RFC 1918)"),
        ("192.168.1.1", "private (RFC 1918)"),
        ("100.64.0.1", "shared CGNAT (RFC 6598)"),
        ("169.254.169.254", "link-local cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "reserved"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.10", "reserved (documentation)"),
        ("198.18.0.1", "reserved (benchmarking)"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "unique local (fc00::/7)"),
        ("fd12:3456::1", "unique local (fc00::/7)"),
        ("fd00:ec2::254", "cloud metadata"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "reserved (documentation)"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private (RFC 1918)"),
        ("::ffff:169.254.169.254", "link-local cloud metadata"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:a9fe:a9fe::", "link-local cloud metadata"),  # 6to4 of 169.254.169.254
        ("::127.0.0.1", "reserved"),  # deprecated IPv4-compatible form
    ],
)
def test_non_public_addresses_are_named(address: str, reason: str) -> None:
    verdict = classify(ipaddress.ip_address(address))
    assert verdict is not None and verdict.reason == reason


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("[::1]", "::1"),
        ("::ffff:7f00:1", "::ffff:127.0.0.1"),
        ("cafe.be", None),  # hex-looking, but a name
        ("example.com", None),
    ],
)
def test_literal_addresses_in_every_spelling(host: str, address: str | None) -> None:
    expected = ipaddress.ip_address(address) if address else None
    assert literal_address(host) == expected


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ipv4_mapped_and_decimal_forms_get_the_ipv4_verdict(number: int) -> None:
    v4 = ipaddress.IPv4Address(number)
    mapped = ipaddress.IPv6Address(f"::ffff:{v4}")
    assert classify(mapped) == classify(v4)
    assert literal_address(str(number)) == v4


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]{1,8}){0,2}", fullmatch=True))
def test_wildcards_cover_subdomains_only(label: str) -> None:
    assert host_allowed(f"{label}.example.com", ["*.example.com"])
    assert host_allowed(f"{label.upper()}.Example.COM.", ["*.example.com"])
    assert not host_allowed(f"{label}example.com", ["*.example.com"])
    assert not host_allowed("example.com", ["*.example.com"])
    assert host_allowed("example.com", ["example.com"])


def test_unicode_patterns_match_idna_hosts() -> None:
    assert host_allowed("xn--bcher-kva.example", ["bücher.example"])
    assert host_allowed("cdn.xn--bcher-kva.example", ["*.bücher.example"])


def test_judge_trusts_a_private_source_for_its_network_only() -> None:
    private = Policy("intranet", trusted_network=True, own_hosts=("127.0.0.1", "169.254.169.254"))
    public = Policy("news", trusted_network=False)
    loopback = [ipaddress.ip_address("127.0.0.1")]
    metadata = [ipaddress.ip_address("169.254.169.254")]
    assert judge("127.0.0.1", loopback, private) is None
    assert "source news is public" in (judge("127.0.0.1", loopback, public) or "")
    assert "no source may reach" in (judge("169.254.169.254", metadata, private) or "")
    # Another private host is named as not the intranet source's own, not as "public".
    other = [ipaddress.ip_address("10.255.0.1")]
    assert "not a host of source intranet, which may reach only its own (127.0.0.1" in (
        judge("10.255.0.1", other, private) or ""
    )
    # One private address among public ones is enough to refuse.
    mixed = [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("10.0.0.1")]
    assert "resolves to 10.0.0.1" in (judge("cms.example", mixed, public) or "")
    allowed = Policy("news", trusted_network=False, allow_hosts=("cms.example",))
    assert judge("cms.example", mixed, allowed) is None
    assert "no source on a private network" in (judge("127.0.0.1", loopback, PUBLIC) or "")


async def test_guard_policies_and_checks() -> None:
    guard = Guard(
        static_resolver({"news.example": ["93.184.215.14"], "intranet.example": ["10.0.0.5"]})
    )
    public = await guard.policy("news", "https://news.example/rss.xml")
    intranet = await guard.policy("cms", "http://intranet.example/rss.xml")
    loopback = await guard.policy("demo", "http://127.0.0.1:8000/rss.xml")
    assert not public.trusted_network and intranet.trusted_network and loopback.trusted_network
    await guard.check("https://news.example/a", public)
    await guard.check("http://intranet.example/a", intranet)
    with pytest.raises(BlockedURL, match=r"intranet\.example resolves to 10\.0\.0\.5"):
        await guard.check("http://intranet.example/a", public)
    for url in ("ftp://news.example/x", "file:///etc/passwd", "gopher://x/", "javascript:x"):
        with pytest.raises(BlockedURL, match="scheme is not allowed"):
            await guard.check(url, intranet)
    with pytest.raises(Unresolvable, match=r"cannot resolve nowhere\.example"):
        await guard.check("http://nowhere.example/", public)
    # An unresolvable feed host is judged as public.
    assert not (await guard.policy("x", "http://nowhere.example/rss")).trusted_network


async def test_the_production_resolver_is_real() -> None:
    guard = Guard()
    with pytest.raises(BlockedURL, match=r"localhost resolves to \S+, a loopback address"):
        await guard.check("http://localhost/", Policy("news", trusted_network=False))


# Downloads ------------------------------------------------------------------------------


PAYLOAD = ("<rss version='2.0'><channel><title>Новости</title></channel></rss>" * 50).encode()


def _app(hits: dict[str, int]) -> Starlette:
    async def gz(request: Request) -> Response:
        return Response(gzip.compress(PAYLOAD), headers={"Content-Encoding": "gzip"})

    async def deflate(request: Request) -> Response:
        raw = request.query_params.get("raw") == "1"
        engine = zlib.compressobj(wbits=-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        body = engine.compress(PAYLOAD) + engine.flush()
        return Response(body, headers={"Content-Encoding": "deflate"})

    async def hop(request: Request) -> Response:
        return Response(status_code=302, headers={"Location": request.query_params["to"]})

    async def feed(request: Request) -> Response:
        hits["feed"] = hits.get("feed", 0) + 1
        if request.headers.get("if-none-match") == '"v1"':
            return Response(status_code=304, headers={"ETag": '"v1"'})
        return Response(PAYLOAD, headers={"ETag": '"v1"'})

    return Starlette(
        routes=[
            Route("/gz", gz),
            Route("/deflate", deflate),
            Route("/hop", hop),
            Route("/feed", feed),
        ]
    )


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, dict[str, int]]]:
    hits: dict[str, int] = {}
    async with serve(_app(hits)) as running:
        yield running.url, hits


async def test_compressed_bodies_still_decode(server: tuple[str, dict[str, int]]) -> None:
    url, _ = server
    async with httpx.AsyncClient() as client:
        for path in ("/gz", "/deflate", "/deflate?raw=1"):
            result = await fetch(client, url + path, max_bytes=len(PAYLOAD), deadline=5)
            assert result.content == PAYLOAD, path
        with pytest.raises(FetchError, match="inflates to more than"):
            await fetch(client, url + "/gz", max_bytes=len(PAYLOAD) - 1, deadline=5)


async def test_redirects_are_checked_hop_by_hop_and_keep_conditional_get(
    server: tuple[str, dict[str, int]],
) -> None:
    url, hits = server
    guard = Guard(
        static_resolver({"localhost": ["93.184.215.14"]}), dial={"93.184.215.14": "127.0.0.1"}
    )
    public = guard.checker(Policy("news", trusted_network=False))
    port = url.rsplit(":", 1)[1]
    async with httpx.AsyncClient() as client:
        via = f"http://localhost:{port}/hop?to=http://localhost:{port}/feed"
        first = await fetch(client, via, max_bytes=100_000, deadline=5, check=public)
        assert first.url.endswith("/feed") and first.etag == '"v1"'
        again = await fetch(client, via, max_bytes=100_000, deadline=5, etag='"v1"', check=public)
        assert again.not_modified
        inside = f"http://localhost:{port}/hop?to={url}/feed"
        before = hits["feed"]
        with pytest.raises(RefusedURL, match=r"redirected to http://127\.0\.0\.1.*loopback"):
            await fetch(client, inside, max_bytes=100_000, deadline=5, check=public)
        assert hits["feed"] == before  # the refused hop was never requested
        with pytest.raises(RefusedURL, match="scheme is not allowed"):
            await fetch(client, f"{url}/hop?to=file:///etc/passwd", max_bytes=10_000, deadline=5)


def _image(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_real_images_pass(fmt: str) -> None:
    assert image_problem(_image(fmt)) is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty body"),
        (b"<!DOCTYPE html><html><body>login</body></html>", "an HTML page, not an image"),
        (b"GIF89a" + b"\0" * 3, "not an image"),
        (_image("PNG")[:40], "not an image"),
        (_image("BMP"), "a BMP image, not JPEG, PNG, GIF or WebP"),
    ],
)
def test_not_images_are_named(content: bytes, problem: str) -> None:
    assert problem in (image_problem(content) or "")


# Pushed URLs, switches, config ------------------------------------------------------------


def _config(tmp: Path, feed: str, **fetch_cfg: Any) -> Any:
    return validate(
        {
            "database": f"sqlite:///{tmp}/s.db",
            "sources": [{"name": "news", "url": feed, "language": "en"}],
            "targets": [
                {"name": "tg", "platform": "telegram", "token": {"env": "T"}, "chat_id": "@chan_c"}
            ],
            "fetch": fetch_cfg,
            "http": {"enabled": False},
        },
        environ={"T": "1:abcdef"},
    )


async def test_pushed_urls_are_judged_by_their_matching_source(
    server: tuple[str, dict[str, int]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, hits = server
    port = url.rsplit(":", 1)[1]
    service = Service(_config(tmp_path, f"http://localhost:{port}/feed"))
    service.pipeline.guard = Guard(
        static_resolver({"localhost": ["93.184.215.14"]}), dial={"93.184.215.14": "127.0.0.1"}
    )
    await service.start()
    try:
        with caplog.at_level(logging.ERROR):
            refused = await service.pipeline.ingest_url(f"{url}/feed?pushed=1")
        assert refused.kind == "failed" and "loopback address" in (refused.error or "")
        assert "refused" in caplog.text and "/feed?pushed=1" in caplog.text
        assert hits.get("feed", 0) == 0
        # A pushed URL matching no source at all is judged as public too.
        with pytest.raises(RefusedURL, match="no source on a private network"):
            await service.pipeline.load_article("http://10.0.0.1/story")
    finally:
        await service.close()


async def test_check_images_off_leaves_the_image_alone(tmp_path: Path) -> None:
    hits: dict[str, int] = {}

    async def page(request: Request) -> Response:
        return Response(
            "<html><head><title>T</title><meta property='og:title' content='Story'>"
            "<meta property='og:image' content='/img.jpg'></head><body><article><h1>Story</h1>"
            "<p>Lead paragraph that is long enough to count as text.</p></article></body></html>",
            media_type="text/html",
        )

    async def img(request: Request) -> Response:
        hits["img"] = hits.get("img", 0) + 1
        return Response(b"not an image", media_type="image/jpeg")

    app = Starlette(routes=[Route("/story", page), Route("/img.jpg", img)])
    async with serve(app) as running:
        for check, kept in ((False, True), (True, False)):
            service = Service(_config(tmp_path, f"{running.url}/rss", check_images=check))
            try:
                story = f"{running.url}/story"
                article, _ = await service.pipeline.load_article(story, None, "news")
            finally:
                await service.close()
            assert (article.image_url is not None) is kept
    assert hits["img"] == 1  # downloaded only when checking


def test_allow_hosts_entries_are_validated() -> None:
    raw = {
        "sources": [
            {"name": "a", "url": "https://a.example/rss", "allow_hosts": ["http://x.example/"]}
        ],
        "targets": [
            {"name": "tg", "platform": "telegram", "token": {"env": "T"}, "chat_id": "@chan_c"}
        ],
    }
    with pytest.raises(ConfigError, match=r"sources\[a\]\.allow_hosts.*is not a host"):
        validate(raw, environ={"T": "1:abc"})
    raw["sources"][0]["allow_hosts"] = ["cms.example", "*.cdn.example", "10.0.0.5", "[fd00::1]"]
    assert validate(raw, environ={"T": "1:abc"}).sources[0].allow_hosts[1] == "*.cdn.example"


# Feed encodings ---------------------------------------------------------------------------


def _feed(title: str, declared: str | None) -> str:
    prolog = f'<?xml version="1.0" encoding="{declared}"?>' if declared else '<?xml version="1.0"?>'
    return (
        f"{prolog}<rss version='2.0'><channel><title>T</title><item><title>{title}</title>"
        "<link>https://news.example/a</link></item></channel></rss>"
    )


def test_declared_encodings_give_the_right_text() -> None:
    cyr, lat = "Новости дня: переговоры в Баку", "Café, crème brûlée"
    assert parse_feed(_feed(cyr, "windows-1251").encode("cp1251"), "s")[0].title == cyr
    assert parse_feed(_feed(lat, "ISO-8859-1").encode("latin-1"), "s")[0].title == lat
    # The HTTP charset wins over a wrong prolog.
    wrong = _feed(cyr, "utf-8").encode("cp1251")
    entries = parse_feed(wrong, "s", content_type="application/rss+xml; charset=windows-1251")
    assert entries[0].title == cyr


def test_an_undeclared_or_wrong_encoding_never_crashes(caplog: pytest.LogCaptureFixture) -> None:
    text = "Сегодня в Баку прошли большие переговоры о будущем региона"
    with caplog.at_level(logging.WARNING):
        entries = parse_feed(_feed(text, None).encode("cp1251"), "cyr")
    assert entries[0].title == text
    assert "source cyr: the feed's declared encoding is missing or wrong" in caplog.text
    # Bytes that fit no encoding well still give entries or a clear error, never a crash.
    junk = _feed("x", "utf-8").encode().replace(b"<title>x", b"<title>\xff\xfe\x80\x81")
    assert len(parse_feed(junk, "junk")) == 1


async def test_connections_go_to_the_address_the_guard_judged(
    server: tuple[str, dict[str, int]],
) -> None:
    """`pinned.test` is unknown to the system's DNS: the fetch can only succeed by dialling
    the address the guard resolved and judged, not by resolving the name again."""
    from bot.config import FetchConfig
    from bot.fetch import make_client

    url, hits = server
    port = url.rsplit(":", 1)[1]
    guard = Guard(static_resolver({"pinned.test": ["127.0.0.1"]}))
    intranet = guard.checker(Policy("cms", trusted_network=True, own_hosts=("pinned.test",)))
    client = make_client(FetchConfig())
    try:
        result = await fetch(
            client, f"http://pinned.test:{port}/feed", max_bytes=10_000, deadline=5, check=intranet
        )
    finally:
        await client.aclose()
    assert result.status == 200 and hits["feed"] >= 1


async def test_a_dns_answer_that_changes_after_the_check_is_refused_at_connect(
    server: tuple[str, dict[str, int]],
) -> None:
    """DNS rebinding: public when checked, loopback when connecting. The connection is judged
    again on the address it would dial, so the internal server is never reached."""
    from bot.config import FetchConfig
    from bot.fetch import make_client

    url, hits = server
    port = url.rsplit(":", 1)[1]
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])

    async def rebinding(host: str) -> list[str]:
        return next(answers, ["127.0.0.1"])

    guard = Guard(rebinding)
    guard.CACHE_SECONDS = 0.0  # a zero TTL: every lookup asks again, as a rebinder wants
    public = guard.checker(Policy("news", trusted_network=False))
    before = hits.get("feed", 0)
    client = make_client(FetchConfig())
    try:
        with pytest.raises(FetchError, match="refused at connect"):
            await fetch(
                client,
                f"http://rebind.test:{port}/feed",
                max_bytes=10_000,
                deadline=5,
                check=public,
            )
    finally:
        await client.aclose()
    assert hits.get("feed", 0) == before


async def test_adapters_get_images_through_the_guard_of_the_articles_source(
    tmp_path: Path,
) -> None:
    """Adapters know no sources: the core hands them a downloader that judges an image by the
    policy of the article's source. Loopback images: fine for a loopback source's article,
    refused for an article of no (hence a public) source."""
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), "navy").save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    hits: dict[str, int] = {}

    async def img(request: Request) -> Response:
        hits["img"] = hits.get("img", 0) + 1
        return Response(jpeg, media_type="image/jpeg")

    async with serve(Starlette(routes=[Route("/img.jpg", img)])) as running:
        service = Service(_config(tmp_path, f"{running.url}/rss"))
        try:
            fetcher = service.adapters["tg"].fetch_image
            assert fetcher is not None  # wired by the core
            image = f"{running.url}/img.jpg"
            assert await fetcher(image, f"{running.url}/story", 1_000_000) == jpeg
            with pytest.raises(RefusedURL, match="loopback"):
                await fetcher(image, "https://news.example/story", 1_000_000)
            with pytest.raises(FetchError, match="bytes"):
                await fetcher(image, f"{running.url}/story", 1_000)  # the adapter's cap holds
        finally:
            await service.close()
    assert hits["img"] == 2  # the refused one never reached the server
