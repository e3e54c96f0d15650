"""The update pipeline: poll a source, identify each entry, enrich new articles, and put one
delivery per routed target into the outbox. Storage and sending live elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from bot.config import Config, SourceConfig
from bot.enrich import EnrichmentError, extract_article
from bot.fetch import FetchError, FetchResult, RefusedURL, fetch, fetch_image
from bot.logs import escape_log
from bot.metrics import Metrics
from bot.models import Article, FeedEntry, RenderedPost
from bot.netguard import PUBLIC, Guard, Policy, URLCheck
from bot.render import RenderProblem, render_for
from bot.rules import route
from bot.sources import (
    SourceFormatError,
    header_charset,
    parse_feed,
    parse_sitemap,
    select_items,
)
from bot.store import DeliveryStatus, NewDelivery, SourceState, Store
from bot.urls import host_listed, host_of, is_http_url, normalize_url, on_site

if TYPE_CHECKING:
    from adapters import Adapter  # the registry's name for adapters.base.Adapter

log = logging.getLogger("newsbot.pipeline")

STATE_REFRESH = 600.0  # seconds an unchanged source's "last polled" may lag in the database

ChangedHook = Callable[[int, Article, Article], Awaitable[object]]
RetractedHook = Callable[[int, str], Awaitable[object]]
AlertHook = Callable[[str, str], Awaitable[object]]  # (about what, message) to the editors

_TAGS = re.compile(r"<[^>]+>")
#: Seconds before the page of an article posted from its feed entry alone is read again
#: (doubling each time; given up after about a day).
ENTRY_ONLY_RETRY = 60.0
ENTRY_ONLY_GIVE_UP = 86_400.0
#: Publication dates earlier than this before first sight are clamped for ordering.
BACKDATE_WINDOW = 3_600.0
#: Seconds between one source's articles in delivery order (fair interleaving).
SOURCE_SPACING = 1.0


class PageUnavailable(Exception):
    """The article page cannot be read and the source waits for pages (entry_only: wait)."""


def page_never_came_key(link: str) -> str:
    """The identity of an entry set aside after waiting entry_only_max_wait for its page:
    it stops the wait (and the alert) for good, but claims no URL, so the article can still
    be pushed or posted by an editor once its page works ("" for a link that is no URL)."""
    try:
        return f"page-never-came:{normalize_url(link)}"
    except ValueError:
        return ""


def entry_only_key(link: str) -> str:
    """The identity an article posted from its feed entry alone is stored under instead of
    its URL: it marks the post as such and claims no URL ("" for a link that is no URL)."""
    try:
        return f"entry-only:{normalize_url(link)}"
    except ValueError:
        return ""


@dataclass
class PollReport:
    source: str
    outcome: str  # "ok", "not-modified", "unchanged" (same body as last time), "error"
    entries: int = 0
    new: int = 0
    updated: int = 0
    recorded: int = 0
    error: str | None = None


@dataclass
class IngestResult:
    kind: str  # "new", "known", "updated", "alias", "recorded", "failed"
    article_id: int | None = None
    deliveries: list[int] = field(default_factory=list)
    error: str | None = None
    #: The article's page is still awaited (entry_only: wait, or posted from the feed entry
    #: alone and not yet seen): the feed is read again in full at the next poll, not 304'd.
    awaiting_page: bool = False


def entry_keys(entry: FeedEntry) -> list[str]:
    """Identities an entry announces: its normalized link and its GUID within the source."""
    keys = []
    with contextlib.suppress(ValueError):
        keys.append(f"url:{normalize_url(entry.link)}")
    if entry.guid and entry.guid.strip():
        keys.append(f"guid:{entry.source}:{entry.guid.strip()}")
    return keys


def entry_changes(stored: Article, entry: FeedEntry) -> bool:
    """Whether a feed entry says a known article changed (another title or update time)."""
    changed_title = bool(entry.title) and (entry.title or "").strip() != stored.title
    changed_time = entry.updated is not None and entry.updated != stored.updated
    return changed_title or changed_time


def body_digest(content: bytes) -> bytes:
    """A feed body's fingerprint: the same bytes as last time need no parsing at all.
    SHA-256 because OpenSSL runs it on the processor's SHA instructions: a third of BLAKE2b's
    time on a 7.5 MB feed (the unchanged big feed's whole cost, issue 18)."""
    return hashlib.sha256(content).digest()[:16]


def read_entries(
    source: SourceConfig, result: FetchResult, known_items: set[bytes] | None
) -> tuple[list[FeedEntry], set[bytes] | None]:
    """A downloaded feed's entries, and for a big UTF-8 RSS 2.0 or Atom feed the
    fingerprints of its items. Given the fingerprints of the last clean poll, only the
    items not among them are parsed: a 100,000-entry feed with one new item costs an XML
    parse and a hash per item, not feedparser's work on every entry (issue 18)."""
    if source.type == "sitemap":
        return parse_sitemap(
            result.content, source.name, source.language, result.content_type
        ), None
    charset = (header_charset(result.content_type) or "utf-8").lower().replace("_", "-")
    selection = select_items(result.content, known_items) if charset in ("utf-8", "utf8") else None
    if selection is None:
        entries = parse_feed(result.content, source.name, source.language, result.content_type)
        return entries, None
    if selection.over_limit:
        # Feeds list newest first: the newest MAX_FEED_ENTRIES new or changed items are read
        # and the rest are taken as already seen (never parsed, never posted); feedparser on
        # all of them would stall the process (issue 15).
        first_sight = known_items is None
        log.warning(
            "source %s: the feed lists %d %s; only the newest %d are read",
            source.name,
            selection.items if first_sight else selection.selected + selection.over_limit,
            "entries" if first_sight else "new or changed entries",
            selection.selected,
        )
    content_type = (
        result.content_type
        if selection.document is result.content
        else "application/xml; charset=utf-8"
    )
    entries = parse_feed(selection.document, source.name, source.language, content_type)
    return entries, selection.digests


def _same_headline(a: str, b: str) -> bool:
    """Headlines equal but for case and spacing (a feed and its page rarely differ more)."""
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def article_from_entry(entry: FeedEntry) -> Article:
    """What a feed entry alone tells about an article (used when the page is unavailable)."""
    summary = html.unescape(_TAGS.sub(" ", entry.summary or ""))
    return Article(
        url=entry.link,
        title=(entry.title or entry.link).strip(),
        source=entry.source,
        lead=" ".join(summary.split()),
        image_url=entry.image_url,
        published=entry.published,
        updated=entry.updated,
        language=entry.language,
        author=entry.author,
        categories=entry.categories,
    )


def _shared_segments(a: str, b: str) -> int:
    count = 0
    for left, right in zip(a.split("/"), b.split("/"), strict=False):
        if left != right:
            break
        count += 1
    return count


def trusted_canonical(article: Article, page_url: str, allow_hosts: Sequence[str] = ()) -> Article:
    """Keep the page's claimed canonical URL (link rel=canonical, og:url, JSON-LD url) only
    when it is on the page's own site by the Public Suffix List (news.co.uk's page cannot
    claim attacker.co.uk, nor alice.github.io bob.github.io), or on a host its source lists."""
    if on_site(article.url, page_url, allow_hosts):
        return article
    return replace(article, url=page_url)


@dataclass(slots=True)
class _CachedState:
    """What the pipeline keeps per source between polls (one record, not three dicts: it
    is multiplied by every source). A 304 then costs no database round trip."""

    state: SourceState
    #: When this process last wrote the state (monotonic; never: far in the past).
    saved_at: float = -1e9
    #: The fingerprint of the last body read in full with nothing left to retry: the same
    #: body again is answered like a 304 (issue 18).
    body: bytes | None = None


@dataclass(frozen=True)
class SourceIndex:
    """The configured sources by name and by feed host: a pushed URL or a new article no
    longer scans every source (30,000 of them took tens of milliseconds a push)."""

    sources: list[SourceConfig]
    by_name: dict[str, SourceConfig]
    #: Per feed host, its sources in configuration order.
    by_host: dict[str, list[SourceConfig]]
    #: Sources that list allow_hosts (patterns such as *.example.com, checked one by one).
    listing_hosts: list[SourceConfig]

    @classmethod
    def of(cls, sources: list[SourceConfig]) -> SourceIndex:
        by_name: dict[str, SourceConfig] = {}
        by_host: dict[str, list[SourceConfig]] = {}
        for source in sources:
            by_name.setdefault(source.name, source)
            by_host.setdefault(host_of(source.url), []).append(source)
        return cls(sources, by_name, by_host, [s for s in sources if s.allow_hosts])

    def matching(self, host: str) -> list[SourceConfig]:
        """The sources of `host` (its feed host, or listed in allow_hosts), in configuration
        order."""
        found = list(self.by_host.get(host, ()))
        listed = [
            s for s in self.listing_hosts if host_listed(host, s.allow_hosts) and s not in found
        ]
        if not listed:
            return found
        order = {id(s): i for i, s in enumerate(self.sources)}  # rare: allow_hosts matched
        return sorted(found + listed, key=lambda s: order[id(s)])


class Pipeline:
    def __init__(
        self,
        config: Config,
        store: Store,
        client: httpx.AsyncClient,
        adapters: dict[str, Adapter],
        on_new_deliveries: Callable[[], None] | None = None,
        on_changed: ChangedHook | None = None,
        on_retracted: RetractedHook | None = None,
        metrics: Metrics | None = None,
        alert: AlertHook | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.client = client
        self.adapters = adapters
        self.on_new_deliveries = on_new_deliveries or (lambda: None)
        self.on_changed = on_changed
        self.on_retracted = on_retracted
        self.alert = alert
        self.metrics = metrics or Metrics()
        #: Wall-clock time (tests move it): when an entry began waiting for its page.
        self.clock: Callable[[], float] = time.time
        self._awaiting_since: dict[str, float] = {}
        # Source state cached between polls: a 304 then costs no database round trip.
        self._states: dict[str, _CachedState] = {}
        self._states_loaded = False
        self._states_loading = asyncio.Lock()
        # Per big feed, the fingerprints of its items read last time: a change then parses
        # only the items that changed (see read_entries).
        self._item_digests: dict[str, set[bytes]] = {}
        # Thousands of sources fall due together; more polls in flight than this only queue
        # for sockets and database connections (and time out there).
        self._polls = asyncio.Semaphore(config.file.fetch.concurrency)
        # The SSRF guard for every download; tests swap in a resolver that makes a loopback
        # name look public.
        self.guard = Guard()
        # Articles posted from the feed entry alone: (monotonic time of the next look at
        # the page, the pause after it).
        self._entry_only_retry: dict[int, tuple[float, float]] = {}
        self._pushes_in_flight: dict[str, asyncio.Future[IngestResult]] = {}
        self._push_slots = asyncio.Semaphore(config.file.fetch.concurrency)
        # Per source, the sort key given to its latest article (see _fair_sort_key).
        self._source_clock: dict[str, float] = {}
        self._sources: SourceIndex | None = None

    # Polling ---------------------------------------------------------------------------

    def _cached(self, name: str) -> _CachedState:
        cached = self._states.get(name)
        if cached is None:
            cached = self._states[name] = _CachedState(SourceState(name))
        return cached

    async def _save_state(self, name: str, **values: Any) -> bool:
        """Save (and cache) a source's state; False, with nothing saved, when `records`
        (articles to record with it) met one already stored."""
        if await self.store.save_source_state(name, **values) is None:
            return False
        cached = self._states.get(name)
        previous = cached.state if cached else SourceState(name)
        failures = 0 if values.get("error") is None else previous.failures + 1
        state = SourceState(
            name, values["etag"], values["last_modified"], values["initialized"], failures
        )
        self._states[name] = _CachedState(state, time.monotonic(), cached.body if cached else None)
        return True

    async def poll(self, source: SourceConfig) -> PollReport:
        """One poll of one source. Never raises: a broken source is reported and logged."""
        try:
            async with self._polls:
                return await self._poll(source)
        except Exception as exc:  # one broken source never stops the others
            log.exception(
                "source %s: poll failed unexpectedly", source.name, extra={"source": source.name}
            )
            return PollReport(source.name, "error", error=f"{type(exc).__name__}: {exc}")

    async def _state(self, name: str) -> SourceState:
        """The source's polling state; every source's is read in one query at the first poll."""
        if not self._states_loaded:
            async with self._states_loading:
                if not self._states_loaded:
                    for key, value in (await self.store.source_states()).items():
                        self._states.setdefault(key, _CachedState(value))
                    self._states_loaded = True
        cached = self._states.get(name)
        return cached.state if cached else SourceState(name)

    async def _unchanged(
        self, source: SourceConfig, state: SourceState, result: FetchResult
    ) -> None:
        """A 304 or the same body as last time: skip the database unless the state needs
        refreshing (a past error to clear, new validators, or a "last polled" older than a
        few minutes)."""
        quiet = (
            state.failures == 0
            and (result.etag or state.etag) == state.etag
            and time.monotonic() - self._cached(source.name).saved_at < STATE_REFRESH
        )
        if not quiet:
            await self._save_state(
                source.name,
                etag=result.etag or state.etag,
                last_modified=result.last_modified or state.last_modified,
                initialized=state.initialized,
                status=result.status,
                error=None,
            )

    async def _poll(self, source: SourceConfig) -> PollReport:
        state = await self._state(source.name)
        fetch_cfg = self.config.file.fetch
        policy = await self.guard.policy(source.name, source.url, source.allow_hosts)
        try:
            result = await fetch(
                self.client,
                source.url,
                max_bytes=fetch_cfg.max_bytes,
                deadline=fetch_cfg.timeout * 2,
                check=self.guard.checker(policy),
                etag=state.etag,
                last_modified=state.last_modified,
                accept="application/rss+xml, application/atom+xml, application/xml;q=0.9, "
                "text/xml;q=0.8, */*;q=0.1",
            )
        except FetchError as exc:
            return await self._poll_failed(source, state, str(exc))
        if result.not_modified:
            await self._unchanged(source, state, result)
            return PollReport(source.name, "not-modified")
        digest = body_digest(result.content)
        if state.initialized and self._cached(source.name).body == digest:
            await self._unchanged(source, state, result)
            return PollReport(source.name, "unchanged")
        self._cached(source.name).body = None
        known_items = self._item_digests.pop(source.name, None)
        try:
            # Off the event loop: a big feed takes a parser seconds (issue 15).
            entries, item_digests = await asyncio.to_thread(
                read_entries, source, result, known_items
            )
        except SourceFormatError as exc:
            # Keep the old validators: the next poll must fetch and parse again.
            return await self._poll_failed(source, state, f"{source.url}: {exc}")
        report = PollReport(source.name, "ok", entries=len(entries))
        entries = await self._own_site_entries(source, entries)
        first_run = not state.initialized
        post_now = self._first_run_selection(entries) if first_run else None
        capped = 0
        awaiting_pages = failed = False
        notes: list[tuple[str, str, str]] = []
        settled, records = await self._settle(entries, post_now)
        if records and settled:
            # The entries ingested one by one must find these already stored.
            settled = await self._record(records, report) + settled
            records = []
        for entry, record_only in settled:
            over_cap = not record_only and report.new >= source.max_new_per_poll
            outcome = await self.ingest_entry(entry, record_only=record_only or over_cap)
            awaiting_pages = awaiting_pages or outcome.awaiting_page
            failed = failed or outcome.kind == "failed"
            if outcome.kind == "new":
                report.new += 1
            elif outcome.kind == "updated":
                report.updated += 1
            elif outcome.kind == "recorded":
                report.recorded += 1
                capped += over_cap
        if capped:
            message = (
                f"source {source.name}: {capped} new article(s) beyond max_new_per_poll "
                f"({source.max_new_per_poll}) recorded without posting"
            )
            log.warning(message, extra={"source": source.name})
            notes.append(("warning", "poll-cap", message))
        if first_run and report.recorded + len(records):
            message = (
                f"first run of source {source.name}: recorded "
                f"{report.recorded + len(records)} existing article(s) without posting"
            )
            log.info(message, extra={"source": source.name})
            notes.append(("info", "first-run", message))
        # While a page is awaited, forget the validators: an unchanged feed must still be
        # read so the entry is tried again (a 304 would leave it waiting for ever).
        state = {
            "etag": None if awaiting_pages else result.etag,
            "last_modified": None if awaiting_pages else result.last_modified,
            "initialized": True,
            "status": result.status,
            "error": None,
        }
        # The recorded entries, the events and the state in one write.
        rows = [(article, keys) for _, article, keys in records]
        if await self._save_state(source.name, records=rows, notes=notes, **state):
            self._count_recorded(records, report)
        else:  # a concurrent writer stored one of them first: one by one, then the state
            for entry, _, _ in records:
                outcome = await self.ingest_entry(entry, record_only=True)
                report.recorded += outcome.kind == "recorded"
                failed = failed or outcome.kind == "failed"
            await self._save_state(source.name, notes=notes, **state)
        if not (awaiting_pages or failed):
            self._cached(source.name).body = digest
            if item_digests is not None:
                self._item_digests[source.name] = item_digests
        return report

    async def _settle(
        self, entries: Sequence[FeedEntry], post_now: Sequence[FeedEntry] | None
    ) -> tuple[list[tuple[FeedEntry, bool]], list[tuple[FeedEntry, Article, list[str]]]]:
        """Settle a feed's plain cases in bulk: its identities in one query, and entries known
        and unchanged counted as such. Returns the entries to record without posting (to be
        stored in one transaction), and the rest, in feed order, with their record-only flag,
        for ingest_entry one by one (anything new to post, changed, retracted, posted from
        the entry alone, or sharing an identity with another entry of the feed)."""
        planned = []
        seen: dict[str, int] = {}
        for entry in entries:
            keys = entry_keys(entry)
            marker = entry_only_key(entry.link)
            planned.append((entry, keys, marker))
            for key in [*keys, marker] if marker else keys:
                seen[key] = seen.get(key, 0) + 1
        known = await self.store.articles_by_key(k for k in seen if k)
        rest: list[tuple[FeedEntry, bool]] = []
        records: list[tuple[FeedEntry, Article, list[str]]] = []
        for entry, keys, marker in planned:
            record_only = post_now is not None and entry not in post_now
            by_url = next((known[k] for k in keys if k.startswith("url:") and k in known), None)
            hit = by_url or next((known[k] for k in keys if k in known), None)
            shared = any(seen[k] > 1 for k in keys) or (marker and seen[marker] > 1)
            if shared or (by_url is None and marker in known):
                rest.append((entry, record_only))
            elif hit is not None:
                retracting = entry.retracted and not hit.retracted and self.on_retracted
                settled = all(k in known for k in keys) and not retracting
                if settled and not entry_changes(hit.article, entry):
                    self.metrics.article_seen(entry.source, "known")
                    continue
                rest.append((entry, record_only))
            elif record_only and keys:
                records.append((entry, article_from_entry(entry), keys))
            else:
                rest.append((entry, record_only))
        return rest, records

    async def _record(
        self, records: Sequence[tuple[FeedEntry, Article, list[str]]], report: PollReport
    ) -> list[tuple[FeedEntry, bool]]:
        """Store entries recorded without posting in one transaction; those to record one by
        one (when a concurrent writer stored one of them first)."""
        if await self.store.add_articles([(a, k) for _, a, k in records]) is None:
            return [(entry, True) for entry, _, _ in records]
        self._count_recorded(records, report)
        return []

    def _count_recorded(
        self, records: Sequence[tuple[FeedEntry, Article, list[str]]], report: PollReport
    ) -> None:
        for entry, _, _ in records:
            self.metrics.article_seen(entry.source, "recorded")
        report.recorded += len(records)

    async def _own_site_entries(
        self, source: SourceConfig, entries: Sequence[FeedEntry]
    ) -> list[FeedEntry]:
        """The entries on the source's own site (its feed's registrable domain, or a host it
        lists): a source never introduces, nor claims the identity of, another site's
        article. The others are logged and skipped."""
        own: list[FeedEntry] = []
        strays: list[FeedEntry] = []
        for entry in entries:
            on_own_site = on_site(entry.link, source.url, source.allow_hosts)
            (own if on_own_site else strays).append(entry)
        # Split in one pass: looking the first stray up with `not in own` compared every pair
        # of entries (4 s for a 5,000-entry feed whose one stray is its oldest entry).
        if strays:
            message = (
                f"source {source.name}: skipped {len(strays)} entr(ies) linking "
                f"off its site (e.g. {strays[0].link!r}); list the host in allow_hosts if it "
                "is theirs"
            )
            log.warning(escape_log(message), extra={"source": source.name})
            await self.store.record_event("warning", "off-site-entry", message)
        return own

    def _first_run_selection(self, entries: Sequence[FeedEntry]) -> list[FeedEntry]:
        newest = self.config.file.first_run.post_newest
        return list(entries[-newest:]) if newest else []

    async def _poll_failed(
        self, source: SourceConfig, state: SourceState, error: str
    ) -> PollReport:
        """Log and remember a failed poll. The old validators stay: the next poll starts over."""
        log.error("source %s: %s", source.name, error, extra={"source": source.name})
        await self._save_state(
            source.name,
            etag=state.etag,
            last_modified=state.last_modified,
            initialized=state.initialized,
            status=None,
            error=error,
        )
        return PollReport(source.name, "error", error=error)

    # Ingesting -------------------------------------------------------------------------

    async def ingest_entry(
        self, entry: FeedEntry, *, record_only: bool = False, pushed: bool = False
    ) -> IngestResult:
        """Identify one entry; enrich and enqueue it if it is new. Never raises. `pushed`: a
        URL pushed by the CMS or given by an editor (/post), not a feed's entry."""
        try:
            result = await self._ingest_entry(entry, record_only, pushed)
        except Exception as exc:  # one broken article never stops the rest of the feed
            log.exception(
                "source %s: entry %s failed",
                entry.source,
                entry.link,
                extra={"source": entry.source},
            )
            result = IngestResult("failed", error=f"{type(exc).__name__}: {exc}")
        self.metrics.article_seen(entry.source, result.kind)
        return result

    async def _ingest_entry(
        self, entry: FeedEntry, record_only: bool, pushed: bool = False
    ) -> IngestResult:
        keys = entry_keys(entry)
        url_keys = [k for k in keys if k.startswith("url:")]
        by_url = await self.store.find_article(url_keys) if url_keys else None
        marker = entry_only_key(entry.link)
        if by_url is None and marker:
            # Posted before from the feed entry alone: that post never claimed the URL's
            # identity (not even through its GUID), so when the page appears with other
            # content it is posted properly.
            entry_only = await self.store.find_article([marker])
            if entry_only is not None:
                if record_only:
                    return IngestResult("known", entry_only.id)
                return await self._retry_entry_only(entry_only.id, entry_only.article, entry)
        known = by_url or await self.store.find_article(keys)
        if known is not None:
            await self.store.add_keys(known.id, keys)
            if entry.retracted and not known.retracted and self.on_retracted is not None:
                await self.on_retracted(known.id, "marked retracted in the feed")
                return IngestResult("retracted", known.id)
            return await self._maybe_updated(known.id, known.article, entry)
        set_aside = "" if pushed else page_never_came_key(entry.link)
        if set_aside and await self.store.find_article([set_aside]) is not None:
            # The feed's entry waited for its page in vain and the editors were told; only a
            # push or an editor's /post brings it back.
            return IngestResult("known")
        if record_only:
            article = article_from_entry(entry)
            article_id = await self.store.add_article(article, keys)
            return IngestResult("recorded", article_id)
        try:
            article, page_url = await self.load_article(entry.link, entry, entry.source)
        except RefusedURL as exc:  # SSRF guard: not posted, not even from the feed entry
            log.error("source %s: %s", entry.source, exc, extra={"source": entry.source})
            return IngestResult("failed", error=str(exc))
        except PageUnavailable as exc:  # the source waits for its pages: try at next poll
            return await self._await_page(entry, str(exc))
        if page_url is None:
            # From the feed entry alone: marked, and claiming no URL identity (a feed can
            # name a page that does not exist yet; the real article must still be posted).
            keys = [k for k in keys if not k.startswith("url:")] + [entry_only_key(entry.link)]
            stored = await self._store_new(article, keys)
            return replace(stored, awaiting_page=True)
        keys += self._own_keys(entry, [page_url, article.url])
        if self._awaiting_since:
            self._awaiting_since.pop(page_never_came_key(entry.link), None)
        return await self._store_new(article, keys)

    async def _await_page(self, entry: FeedEntry, problem: str) -> IngestResult:
        """entry_only: wait, and the page is unreadable: try again at the next poll, but not
        for ever. After entry_only_max_wait the entry is set aside unposted (a careful editor
        does not publish blind an article whose page never worked) and the editors are told,
        once, so they can post it by hand."""
        identity = page_never_came_key(entry.link)
        now = self.clock()
        since = self._awaiting_since.setdefault(identity, now)
        found = self._source_named(entry.source)
        limit = (
            found.entry_only_max_wait
            if found is not None
            else SourceConfig.__pydantic_fields__["entry_only_max_wait"].default
        )
        if not identity or now - since < limit:
            log.warning("source %s: %s", entry.source, problem, extra={"source": entry.source})
            return IngestResult("failed", error=problem, awaiting_page=True)
        self._awaiting_since.pop(identity, None)
        article = replace(article_from_entry(entry), url=identity)
        await self.store.add_article(article, [identity])
        body = (
            f"article {entry.link} ({article.title[:200]!r}) not posted: its page could not "
            f"be read for {(now - since) / 3600:.1f} h (entry_only_max_wait); last problem: "
            f"{problem}. Once the page works, post it with /post {entry.link}"
        )
        message = f"source {entry.source}: {body}"
        log.warning(escape_log(message), extra={"source": entry.source})
        await self.store.record_event("warning", "page-never-came", message)
        if self.alert is not None:
            try:
                await self.alert(f"source {entry.source}", escape_log(body))
            except Exception:  # the editors' chat failing never stops a poll
                log.exception("could not tell the editors about %s", escape_log(entry.link))
        return IngestResult("failed", error=message)

    def _own_keys(self, entry: FeedEntry, urls: Sequence[str]) -> list[str]:
        """URL identity keys for the page an entry led to, only on the entry's own site: a
        redirect or a canonical to another site never claims that site's article."""
        return [
            f"url:{normalize_url(url)}"
            for url in urls
            if is_http_url(url) and on_site(url, entry.link, self._allow_hosts(entry.source))
        ]

    def _allow_hosts(self, source: str) -> tuple[str, ...]:
        found = self._source_named(source)
        return found.allow_hosts if found else ()

    async def _retry_entry_only(
        self, article_id: int, stored: Article, entry: FeedEntry
    ) -> IngestResult:
        """Read the page of an article posted from its feed entry alone again (with a
        growing pause per article); if it now exists with other content, post it properly."""
        now = time.monotonic()
        due, pause = self._entry_only_retry.get(article_id, (0.0, ENTRY_ONLY_RETRY))
        if pause > ENTRY_ONLY_GIVE_UP:
            return IngestResult("known", article_id)
        if now < due:
            return IngestResult("known", article_id, awaiting_page=True)
        self._entry_only_retry[article_id] = (now + pause, pause * 2)
        try:
            article, page_url = await self.load_article(entry.link, None, entry.source)
        except Exception as exc:  # still no page: stays as posted from the entry
            log.info(escape_log(f"article {entry.link}: page still unavailable: {exc}"))
            return IngestResult("known", article_id, awaiting_page=True)
        own = self._own_keys(entry, [entry.link, page_url or entry.link, article.url])
        if _same_headline(article.title, stored.title):
            # The entry told the truth: the post stands, and now claims its URL.
            self._entry_only_retry.pop(article_id, None)
            await self.store.add_keys(article_id, own)
            return IngestResult("known", article_id)
        message = (
            f"article {entry.link} was posted from its feed entry alone ({stored.title!r}); "
            f"its page now says {article.title!r}: posting it properly"
        )
        log.warning(escape_log(message), extra={"source": entry.source})
        await self.store.record_event("warning", "entry-only-replaced", message)
        self._entry_only_retry.pop(article_id, None)
        await self.store.release_url(article_id, f"{entry_only_key(entry.link)}#{article_id}")
        return await self._store_new(article, own)

    async def ingest_url(self, url: str, source: str | None = None) -> IngestResult:
        """A URL pushed by the CMS (or given by an editor): same path as a feed entry.

        Pushes of a URL already being ingested wait for that one (1,000 pushes of one URL
        fetch its page once), and at most fetch.concurrency pushed URLs load at a time."""
        try:
            identity = normalize_url(url)
        except ValueError:
            identity = url
        running = self._pushes_in_flight.get(identity)
        if running is not None:
            return await asyncio.shield(running)
        task = asyncio.ensure_future(self._ingest_pushed(url, source))
        self._pushes_in_flight[identity] = task
        task.add_done_callback(lambda _: self._pushes_in_flight.pop(identity, None))
        return await asyncio.shield(task)

    async def _ingest_pushed(self, url: str, source: str | None) -> IngestResult:
        async with self._push_slots:
            return await self._ingest_url(url, source)

    async def _ingest_url(self, url: str, source: str | None) -> IngestResult:
        source_cfg = self._source_for(url, source)
        entry = FeedEntry(
            # A URL no source covers is judged as public, whatever the push body claims.
            source=source_cfg.name if source_cfg else "push",
            link=url,
            language=source_cfg.language if source_cfg else None,
        )
        return await self.ingest_entry(entry, pushed=True)

    def _source_index(self) -> SourceIndex:
        if self._sources is None or self._sources.sources is not self.config.sources:
            self._sources = SourceIndex.of(self.config.sources)  # a new configuration
        return self._sources

    def _source_named(self, name: str) -> SourceConfig | None:
        return self._source_index().by_name.get(name)

    def _source_for(self, url: str, name: str | None) -> SourceConfig | None:
        """The configured source a URL belongs to: one whose feed host is EXACTLY the URL's
        host, or which lists the host in allow_hosts; never a suffix match (an intranet
        source on 127.0.0.1 does not vouch for 10.255.0.1). `name` (the push body's
        `source`) only chooses among those sources: it can never widen the policy."""
        host = host_of(url)
        if not host:
            return None
        matching = self._source_index().matching(host)
        named = [s for s in matching if s.name == name]
        if named:
            return named[0]
        # The longest shared path prefix (/ru/rss.xml for /ru/news/...), so a pushed article
        # lands in the right language edition.
        article_path = urlsplit(url).path
        best, best_len = None, -1
        for source in matching:
            shared = _shared_segments(urlsplit(source.url).path, article_path)
            if shared > best_len:
                best, best_len = source, shared
        return best

    async def load_article(
        self, url: str, entry: FeedEntry | None = None, source: str = ""
    ) -> tuple[Article, str | None]:
        """Fetch and enrich one article page. Falls back to the feed entry's own data (page
        URL None: from the feed entry alone), except when the SSRF guard refuses the URL
        (RefusedURL) or the source waits for pages (PageUnavailable). A bad image is dropped,
        not fatal."""
        fetch_cfg = self.config.file.fetch
        check = self.guard.checker(await self._policy_for(url, source))
        try:
            page = await fetch(
                self.client,
                url,
                max_bytes=fetch_cfg.max_bytes,
                deadline=fetch_cfg.timeout * 2,
                accept="text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
                check=check,
            )
            # trafilatura and lxml are CPU-bound: off the event loop, so nothing stalls.
            article = await asyncio.to_thread(
                extract_article, page.content, page.url, entry, source
            )
            article = trusted_canonical(article, page.url, self._allow_hosts(source))
            page_url = page.url
        except RefusedURL:
            raise
        except (FetchError, EnrichmentError) as exc:
            if entry is None or not entry.title:
                raise
            found = self._source_named(source)
            if found is not None and found.entry_only == "wait":
                raise PageUnavailable(f"article {url}: {exc}; waiting for the page") from None
            log.warning(escape_log(f"article {url}: {exc}; posting from the feed entry alone"))
            article, page_url = article_from_entry(entry), None
        if not article.language:
            # The source's default language, also for a URL given alone (`newsbot preview`).
            configured = self._source_for(url, source or None)
            default = (entry.language if entry else None) or (
                configured.language if configured else None
            )
            if default:
                article = replace(article, language=default)
        if not article.source:
            article = replace(article, source=source)
        if article.image_url and fetch_cfg.check_images:
            article = await self._vet_image(article, article.image_url, check)
        return article, page_url

    async def _policy_for(self, url: str, source: str) -> Policy:
        """The SSRF policy for a URL of `source` (by name; else the source it matches, as for
        a pushed URL; a URL matching none is judged as public)."""
        found = self._source_named(source)
        found = found or self._source_for(url, None)
        if found is None:
            return PUBLIC
        return await self.guard.policy(found.name, found.url, found.allow_hosts)

    async def download_image(self, image_url: str, article_url: str, max_bytes: int) -> bytes:
        """An image for an adapter's post, through the capped client and the SSRF guard under
        the policy of the article's source (the adapters know no sources). FetchError if it
        cannot be had or is not an image."""
        check = self.guard.checker(await self._policy_for(article_url, ""))
        result = await fetch_image(
            self.client,
            image_url,
            max_bytes=max_bytes,
            deadline=self.config.file.fetch.timeout * 2,
            check=check,
        )
        return result.content

    async def _vet_image(self, article: Article, image_url: str, check: URLCheck) -> Article:
        """Download the image once (guarded, capped) and check that it is one; if not, the
        article goes out without it rather than failing on every platform."""
        fetch_cfg = self.config.file.fetch
        try:
            await fetch_image(
                self.client,
                image_url,
                max_bytes=fetch_cfg.max_image_bytes,
                deadline=fetch_cfg.timeout * 2,
                check=check,
            )
        except FetchError as exc:
            log.warning(
                "article %s: image dropped, posting without it: %s",
                article.url,
                exc,
                extra={"source": article.source},
            )
            return replace(article, image_url=None)
        return article

    async def _store_new(self, article: Article, keys: list[str]) -> IngestResult:
        alias = await self.store.find_article(keys)
        if alias is not None:  # the same article reached under another URL
            await self.store.add_keys(alias.id, keys)
            return IngestResult("alias", alias.id)
        planned = self.plan_deliveries(article)
        # One transaction: a crash between storing the article and queueing its posts would
        # leave it known as seen, never posted (found by reliability/crash.py).
        stored = await self.store.add_article_with_deliveries(article, keys, planned)
        if stored is None:  # a concurrent poll stored it first
            raced = await self.store.find_article(keys)
            return IngestResult("alias", raced.id if raced else None)
        article_id, ids = stored
        delivery_ids = []
        for item, delivery_id in zip(planned, ids, strict=True):
            if not item.error:
                delivery_ids.append(delivery_id)
            else:
                log.error("target %s: %s", item.post.target, item.error)
                self.metrics.delivery(item.post.target, "failed")
                await self.store.record_event(
                    "error", "render", item.error, item.post.target, delivery_id
                )
        log.info(
            "new article %r (%s) -> %d deliveries", article.title, article.url, len(delivery_ids)
        )
        if delivery_ids:
            self.on_new_deliveries()
        return IngestResult("new", article_id, delivery_ids)

    def _fair_sort_key(self, article: Article, now: float | None = None) -> float:
        """The delivery order of a new article (its publication time, as the dispatcher
        reads it), fair between sources: a publication date in the future or more than
        BACKDATE_WINDOW before it was first seen counts as first seen (a backdated pubDate
        cannot jump the queue), and each source's articles are spaced SOURCE_SPACING apart,
        so a source announcing 1,000 articles at once interleaves with the others on a
        shared target instead of going ahead of all of them."""
        first_seen = time.time() if now is None else now
        published = article.published.timestamp() if article.published else first_seen
        if not first_seen - BACKDATE_WINDOW <= published <= first_seen:
            published = first_seen
        previous = self._source_clock.get(article.source)
        key = published if previous is None else max(published, previous + SOURCE_SPACING)
        self._source_clock[article.source] = key
        return key

    def plan_deliveries(self, article: Article) -> list[NewDelivery]:
        """Render for every routed target: the outbox rows stored with a new article."""
        planned: list[NewDelivery] = []
        sort_key = self._fair_sort_key(article)
        for routed in route(article, self.config.rules, self.config.targets):
            adapter = self.adapters.get(routed.target)
            if adapter is None or any(p.post.target == routed.target for p in planned):
                continue
            target = adapter.settings
            status, error = (
                (DeliveryStatus.AWAITING if routed.approval else DeliveryStatus.PENDING),
                None,
            )
            rendered = render_for(adapter, article)
            if isinstance(rendered, RenderProblem):
                post = _placeholder(target.name, adapter, article)
                status, error = DeliveryStatus.FAILED, rendered.message
            else:
                post = rendered
            priority = 1 if routed.breaking else 0
            planned.append(NewDelivery(post, status, sort_key, priority, routed.rule, error))
        return planned

    async def _maybe_updated(
        self, article_id: int, stored: Article, entry: FeedEntry
    ) -> IngestResult:
        if not entry_changes(stored, entry):
            return IngestResult("known", article_id)
        changed_title = bool(entry.title) and entry.title.strip() != stored.title
        # The feed says the article changed: read the page again for the current text.
        try:
            fresh, _ = await self.load_article(entry.link, entry, stored.source)
            updated = replace(fresh, url=stored.url, source=stored.source)
        except Exception as exc:
            log.warning("article %s changed but could not be re-read: %s", entry.link, exc)
            updated = replace(
                stored,
                title=entry.title.strip() if changed_title and entry.title else stored.title,
            )
        updated = replace(updated, updated=entry.updated or updated.updated or stored.updated)
        await self.store.update_article(article_id, updated)
        if (updated.title, updated.lead) != (stored.title, stored.lead):
            message = f"article changed after it was seen: {stored.title!r} -> {updated.title!r}"
            log.info(message)
            await self.store.record_event("info", "article-updated", message)
            if self.on_changed is not None:
                await self.on_changed(article_id, stored, updated)
        return IngestResult("updated", article_id)

    def render_all(self, article: Article) -> list[tuple[str, RenderedPost | None, str | None]]:
        """(target, post, problem) for every configured target: the `preview` command."""
        rows: list[tuple[str, RenderedPost | None, str | None]] = []
        routed = {r.target for r in route(article, self.config.rules, self.config.targets)}
        for name, adapter in self.adapters.items():
            rendered = render_for(adapter, article)
            if isinstance(rendered, RenderProblem):
                rows.append((name, None, rendered.message))
            else:
                problem = None if name in routed else "no rule routes this article here"
                rows.append((name, rendered, problem))
        return rows


def _placeholder(target: str, adapter: Adapter, article: Article) -> RenderedPost:
    return RenderedPost(target=target, platform=adapter.platform, article_url=article.url, text="")
