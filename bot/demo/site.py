"""The bundled sample news site: RSS per language, Atom, a news sitemap, article pages with
OpenGraph and JSON-LD, generated images, conditional GET, and knobs for tests (publish,
update, retract, broken feeds, failing paths)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from html import escape
from xml.sax.saxutils import escape as xml_escape

from PIL import Image, ImageDraw
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from bot.demo.articles import SAMPLES, TRAPS, DateMarkup, PageMarkup, Sample

OUTLET = "Sample Times"
LANGUAGES = ("en", "ru", "az")
NOTICE = "Any use of materials is allowed only if there is a hyperlink to Sample Times"


@dataclass
class SiteArticle:
    sample: Sample
    published: datetime
    updated: datetime
    guid: str
    views: int = 0

    @property
    def path(self) -> str:
        if self.sample.markup is not None:
            return f"/traps/{self.sample.slug}"
        return f"/{self.sample.lang}/news/{self.sample.slug}"


@dataclass
class SampleSite:
    """The newsroom's state. Starts with `backlog` articles already published."""

    backlog: int = 6
    published: list[SiteArticle] = field(default_factory=list)
    queue: list[Sample] = field(default_factory=list)
    retracted: set[str] = field(default_factory=set)
    hits: Counter[str] = field(default_factory=Counter)
    not_modified: Counter[str] = field(default_factory=Counter)
    broken_feeds: set[str] = field(default_factory=set)
    failing_paths: dict[str, int] = field(default_factory=dict)
    on_publish: list[Callable[[str], Awaitable[None]]] = field(default_factory=list)
    base_url: str = ""
    # Trap pages (issue #12): served at /traps/<slug>, in no feed, so no run posts them.
    traps: list[SiteArticle] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.traps:
            when = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
            self.traps = [SiteArticle(s, when, when, _guid(s)) for s in TRAPS]
        if not self.published and not self.queue:
            now = datetime.now(UTC).replace(microsecond=0)
            # The backlog spreads over languages so every feed has a history.
            first = [s for s in SAMPLES if s.slug in _BACKLOG_SLUGS][: self.backlog]
            for age, sample in enumerate(reversed(first), start=1):
                when = now - timedelta(hours=age)
                self.published.append(SiteArticle(sample, when, when, _guid(sample)))
            self.queue = [s for s in SAMPLES if s not in first]

    def find(self, slug: str) -> SiteArticle | None:
        return next((a for a in self.published if a.sample.slug == slug), None)

    async def publish(self, sample: Sample) -> SiteArticle:
        now = datetime.now(UTC).replace(microsecond=0)
        article = SiteArticle(sample, now, now, _guid(sample))
        self.published.append(article)
        for hook in list(self.on_publish):
            await hook(self.base_url + article.path)
        return article

    async def publish_next(self) -> SiteArticle | None:
        if not self.queue:
            return None
        return await self.publish(self.queue.pop(0))

    def update(self, slug: str, title: str | None = None, lead: str | None = None) -> None:
        article = self.find(slug)
        if article is None:
            raise KeyError(slug)
        article.sample = replace(
            article.sample, title=title or article.sample.title, lead=lead or article.sample.lead
        )
        article.updated = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)

    def retract(self, slug: str) -> None:
        self.retracted.add(slug)

    def listed(self, lang: str | None = None) -> list[SiteArticle]:
        items = [
            a
            for a in self.published
            if a.sample.slug not in self.retracted and (lang is None or a.sample.lang == lang)
        ]
        return sorted(items, key=lambda a: a.published, reverse=True)[:50]


_BACKLOG_SLUGS = {
    "harbour-bridge-reopens",
    "central-bank-holds-rate",
    "bank-holiday-opening",
    "metro-new-line",
    "baku-park-opens",
    "museum-night-record",
}


def make_sample(
    slug: str, title: str, lang: str = "en", lead: str = "A lead.", **fields: object
) -> Sample:
    """A sample article for tests."""
    values: dict[str, object] = {
        "paragraphs": ("First paragraph of the story, long enough to be body text.",),
        "category": "WORLD",
        "tags": ("test",),
        "author": "Test Author",
    }
    values.update(fields)
    return Sample(slug=slug, lang=lang, title=title, lead=lead, **values)  # type: ignore[arg-type]


def _guid(sample: Sample) -> str:
    return f"sample-times-{sample.lang}-{hashlib.sha1(sample.slug.encode()).hexdigest()[:10]}"


def image_bytes(name: str) -> bytes:
    """A deterministic 1200x675 JPEG per name: a gradient and a few shapes, no text."""
    return _image_cache.get(name) or _image_cache.setdefault(name, _draw_image(name))


_image_cache: dict[str, bytes] = {}


def _draw_image(name: str) -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    width, height = 1200, 675
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    top, bottom = seed[0:3], seed[3:6]
    for y in range(height):
        t = y / height
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    for i in range(4):
        x, y, r = seed[6 + i] * 4, seed[10 + i] * 2, 40 + seed[14 + i] // 2
        draw.ellipse([x, y, x + r * 2, y + r * 2], fill=tuple(seed[18 + i * 3 : 21 + i * 3]))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


# Rendering ---------------------------------------------------------------------------------


def _rfc822(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def rss(site: SampleSite, lang: str, base: str) -> str:
    items = []
    for a in site.listed(lang):
        s = a.sample
        image = (
            f'<media:content url="{base}/images/{s.slug}.jpg" medium="image" type="image/jpeg"/>'
            if s.image
            else ""
        )
        items.append(
            f"<item><title>{xml_escape(s.title)}</title><link>{base}{a.path}</link>"
            f'<guid isPermaLink="false">{a.guid}</guid><pubDate>{_rfc822(a.published)}</pubDate>'
            f"<description>{xml_escape(s.lead)}</description>"
            f"<category>{xml_escape(s.category)}</category>"
            f"<dc:creator>{xml_escape(s.author)}</dc:creator>{image}</item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
        'xmlns:media="http://search.yahoo.com/mrss/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>{OUTLET} ({lang})</title><link>{base}/</link>"
        f"<description>{OUTLET} news in {lang}</description><language>{lang}</language>"
        + "".join(items)
        + "</channel></rss>"
    )


def atom(site: SampleSite, base: str) -> str:
    entries = []
    listed = site.listed("en")
    for a in listed:
        s = a.sample
        entries.append(
            f"<entry><title>{xml_escape(s.title)}</title><id>urn:{a.guid}</id>"
            f'<link href="{base}{a.path}"/><published>{a.published.isoformat()}</published>'
            f"<updated>{a.updated.isoformat()}</updated><summary>{xml_escape(s.lead)}</summary>"
            f'<category term="{xml_escape(s.category, {chr(34): "&quot;"})}"/>'
            f"<author><name>{xml_escape(s.author)}</name></author></entry>"
        )
    updated = (listed[0].updated if listed else datetime(2025, 1, 1, tzinfo=UTC)).isoformat()
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{OUTLET}</title><id>urn:sample-times:en</id><updated>{updated}</updated>"
        f'<link href="{base}/"/>' + "".join(entries) + "</feed>"
    )


def news_sitemap(site: SampleSite, base: str) -> str:
    cutoff = datetime.now(UTC) - timedelta(days=2)
    urls = []
    for a in site.listed():
        if a.published < cutoff:
            continue
        s = a.sample
        image = (
            f"<image:image><image:loc>{base}/images/{s.slug}.jpg</image:loc></image:image>"
            if s.image
            else ""
        )
        urls.append(
            f"<url><loc>{base}{a.path}</loc><lastmod>{a.updated.isoformat()}</lastmod>"
            f"<news:news><news:publication><news:name>{OUTLET}</news:name>"
            f"<news:language>{s.lang}</news:language></news:publication>"
            f"<news:publication_date>{a.published.isoformat()}</news:publication_date>"
            f"<news:title>{xml_escape(s.title)}</news:title></news:news>{image}</url>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9" '
        'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">'
        + "".join(urls)
        + "</urlset>"
    )


def _json_ld(a: SiteArticle, base: str) -> str:
    s = a.sample
    markup = s.markup or PageMarkup(traps=())
    data: dict[str, object] = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": markup.head_title or s.title,
        "description": markup.description or s.lead,
        "url": base + a.path,
        "mainEntityOfPage": {"@type": "WebPage", "@id": base + a.path},
        "datePublished": a.published.isoformat(),
        "dateModified": a.updated.isoformat(),
        "author": {"@type": "Person", "name": s.author},
        "publisher": {"@type": "Organization", "name": OUTLET},
        "articleSection": s.category,
        "keywords": ", ".join(s.tags),
        "inLanguage": s.lang,
    }
    if markup.dates is DateMarkup.JSON_LD_YEAR_ONE:
        data["datePublished"] = data["dateModified"] = "0001-01-01T00:00:00"
    elif markup.dates is not DateMarkup.STANDARD:
        del data["datePublished"], data["dateModified"]
    if not markup.declares_language:
        del data["inLanguage"]
    if s.image:
        data["image"] = [f"{base}/images/{s.slug}.jpg"]
    # "</" is escaped so text such as "</script>" cannot end the block early.
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def _date_meta(a: SiteArticle, markup: PageMarkup) -> str:
    published, modified = a.published.isoformat(), a.updated.isoformat()
    if markup.dates is DateMarkup.ITEMPROP_MULTI:
        return f'<meta itemprop="datePublished dateCreated" content="{published}">'
    if markup.dates is DateMarkup.ARTICLE_PUBLISHED:
        return f'<meta property="article:published" content="{published}">'
    return (
        f'<meta property="article:published_time" content="{published}">'
        f'<meta property="article:modified_time" content="{modified}">'
    )


def article_page(a: SiteArticle, base: str) -> str:
    s = a.sample
    # A trap page says in its HTML what an editor would not post (issue #12).
    markup = s.markup or PageMarkup(traps=(), head_title=f"{s.title} - {OUTLET}")
    url = base + a.path
    image_meta = (
        f'<meta property="og:image" content="{base}/images/{s.slug}.jpg">' if s.image else ""
    )
    tags = "".join(f'<meta property="article:tag" content="{escape(t)}">' for t in s.tags)
    paragraphs = "".join(f"<p>{escape(p)}</p>" for p in s.paragraphs)
    # A trap page shows no visible date: its markup is what is under test.
    when = a.published.strftime("%d %B %Y %H:%M") if s.markup is None else ""
    description = escape(markup.description or s.lead)
    og_title = escape(s.title if s.markup is None else markup.head_title or s.title)
    h1 = markup.h1_html or escape(s.title)
    lang = f' lang="{s.lang}"' if markup.declares_language else ""
    locale = f'<meta property="og:locale" content="{s.lang}">' if markup.declares_language else ""
    return f"""<!doctype html>
<html{lang}><head><meta charset="utf-8">
<title>{escape(markup.head_title or s.title)}</title>
<link rel="canonical" href="{url}">
<meta name="description" content="{description}">
<meta name="author" content="{escape(s.author)}">
<meta property="og:type" content="article"><meta property="og:site_name" content="{OUTLET}">
<meta property="og:title" content="{og_title}">
<meta property="og:description" content="{description}">
<meta property="og:url" content="{url}">{image_meta}
{locale}
{_date_meta(a, markup)}
<meta property="article:section" content="{escape(s.category)}">{tags}
<script type="application/ld+json">{_json_ld(a, base)}</script>
<style>body{{font-family:Georgia,serif;max-width:46rem;margin:2rem auto;color:#222}}
header,footer{{font-family:sans-serif;font-size:.85rem;color:#666}}
.meta{{color:#888;font-size:.9rem}}</style></head>
<body><header><nav><a href="/">{OUTLET}</a> · <a href="/en/rss.xml">RSS</a></nav>
<p>{NOTICE}</p></header>
<article><div class="meta">{escape(s.category)} · {when}</div>
<h1>{h1}</h1><p class="lead"><strong>{escape(s.lead)}</strong></p>
{paragraphs}<p class="byline">By {escape(s.author)}</p>
<p class="views">Views: {a.views}</p></article>
<footer><p>{NOTICE}</p><p>© {OUTLET}</p></footer></body></html>"""


def home_page(site: SampleSite) -> str:
    rows = "".join(
        f'<li><a href="{a.path}">{escape(a.sample.title)}</a> <small>{a.sample.lang} · '
        f"{a.published:%H:%M:%S}</small></li>"
        for a in site.listed()
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{OUTLET}</title></head>"
        f"<body><h1>{OUTLET}</h1><ul>{rows}</ul></body></html>"
    )


# The app -----------------------------------------------------------------------------------


def _conditional(request: Request, body: str, media_type: str, site: SampleSite) -> Response:
    """A response honouring If-None-Match / If-Modified-Since."""
    data = body.encode("utf-8")
    etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
    newest = max((a.updated for a in site.published), default=datetime(2025, 1, 1, tzinfo=UTC))
    headers = {"ETag": etag, "Last-Modified": _rfc822(newest), "Cache-Control": "max-age=0"}
    if request.headers.get("if-none-match") == etag:
        site.not_modified[request.url.path] += 1
        return Response(status_code=304, headers=headers)
    since = request.headers.get("if-modified-since")
    if since and "if-none-match" not in request.headers:
        try:
            if newest <= parsedate_to_datetime(since):
                site.not_modified[request.url.path] += 1
                return Response(status_code=304, headers=headers)
        except (TypeError, ValueError):
            pass
    return Response(data, media_type=media_type, headers=headers)


def create_app(site: SampleSite) -> Starlette:
    def base(request: Request) -> str:
        return site.base_url or str(request.base_url).rstrip("/")

    def guard(request: Request) -> Response | None:
        site.hits[request.url.path] += 1
        status = site.failing_paths.get(request.url.path)
        return Response("Internal error", status_code=status) if status else None

    async def home(request: Request) -> Response:
        return guard(request) or HTMLResponse(home_page(site))

    async def feed(request: Request) -> Response:
        lang = request.path_params["lang"]
        if failed := guard(request):
            return failed
        if lang not in LANGUAGES:
            return Response("Not found", status_code=404)
        if request.url.path in site.broken_feeds:
            return Response(b"<rss><channel><item><title>Broken", media_type="application/rss+xml")
        return _conditional(request, rss(site, lang, base(request)), "application/rss+xml", site)

    async def atom_feed(request: Request) -> Response:
        return guard(request) or _conditional(
            request, atom(site, base(request)), "application/atom+xml", site
        )

    async def sitemap(request: Request) -> Response:
        return guard(request) or _conditional(
            request, news_sitemap(site, base(request)), "application/xml", site
        )

    async def article(request: Request) -> Response:
        if failed := guard(request):
            return failed
        slug = request.path_params["slug"]
        found = site.find(slug)
        if found is None or found.sample.lang != request.path_params["lang"]:
            return HTMLResponse("<h1>Not found</h1>", status_code=404)
        if slug in site.retracted:
            return HTMLResponse("<h1>This article was removed</h1>", status_code=410)
        found.views += 1
        return HTMLResponse(article_page(found, base(request)))

    async def trap(request: Request) -> Response:
        if failed := guard(request):
            return failed
        slug = request.path_params["slug"]
        found = next((a for a in site.traps if a.sample.slug == slug), None)
        if found is None:
            return HTMLResponse("<h1>Not found</h1>", status_code=404)
        return HTMLResponse(article_page(found, base(request)))

    async def traps(request: Request) -> Response:
        rows = "".join(
            f'<li><a href="{a.path}">{escape(a.sample.slug)}</a>: '
            f"{escape(', '.join(a.sample.markup.traps if a.sample.markup else ()))}</li>"
            for a in site.traps
        )
        return guard(request) or HTMLResponse(
            f"<!doctype html><html><head><meta charset='utf-8'><title>Trap pages</title>"
            f"</head><body><h1>Trap pages (issue #12)</h1><ul>{rows}</ul></body></html>"
        )

    async def image(request: Request) -> Response:
        if failed := guard(request):
            return failed
        return Response(image_bytes(request.path_params["name"]), media_type="image/jpeg")

    return Starlette(
        routes=[
            Route("/", home),
            Route("/{lang}/rss.xml", feed),
            Route("/en/atom.xml", atom_feed),
            Route("/sitemap-news.xml", sitemap),
            Route("/{lang}/news/{slug}", article),
            Route("/amp/{lang}/news/{slug}", article),
            Route("/traps/", traps),
            Route("/traps/{slug}", trap),
            Route("/images/{name}.jpg", image),
        ]
    )


async def run_publisher(site: SampleSite, every: float, stop: asyncio.Event) -> None:
    """Publish the next queued sample every `every` seconds until the queue is empty."""
    while site.queue and not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
            return
        except TimeoutError:
            pass
        await site.publish_next()
