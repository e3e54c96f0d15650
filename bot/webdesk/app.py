"""The web desk's Starlette app, mounted at /desk. Every decision goes through the same
bot.desk.Desk operations as the editors' chat; pages are server-rendered (Jinja2), a small
script only refreshes the queue."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.base import Adapter
from bot.config_edit import EditRefused, Item, preview_routing
from bot.desk import Desk, Editor
from bot.models import Article, RenderedPost
from bot.secrets import Secret
from bot.store import Delivery, DeliveryStatus, Store
from bot.timing import local_midnight
from bot.webdesk import queries
from bot.webdesk.accounts import Account, Accounts, LoginLimiter
from bot.webdesk.previews import preview
from bot.webdesk.settings import DeskConfig

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' http: https: data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}

#: (target, post or None, problem or None) for every target, as the pipeline renders it.
Rendered = list[tuple[str, RenderedPost | None, str | None]]
TryUrl = Callable[[str], Awaitable[tuple[Article, Rendered]]]


@dataclass
class DeskParts:
    """What the web desk reads and acts through (the running service's parts)."""

    store: Store
    desk: Desk
    tz: ZoneInfo
    try_url: TryUrl  # load an article and render it for every target, sending nothing
    circuits: Callable[[], dict[str, str]] = field(default=lambda: {})  # target -> state
    #: The running service's adapters by target name: they measure posts and know the limits.
    adapters: Mapping[str, Adapter] = field(default_factory=dict)
    #: The rule editor (bot.config_edit.ConfigEditor) when the service runs from a file.
    config_editor: Any = None

    @property
    def targets(self) -> list[str]:
        return list(self.adapters)


class SecurityHeaders:
    """Adds the strict CSP and friends to every response of the desk."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def web_identity(account: Account) -> Editor:
    """The editor the web desk has authenticated (password and session), as the desk's record
    names them: "alice (id web:alice)"."""
    return Editor(f"web:{account.name}", account.name)


def wait_reason(
    delivery: Delivery, now: float, paused: dict[str, str], circuits: dict[str, str]
) -> str:
    """Why a queued delivery is not out yet, in an editor's words. Pure."""
    if delivery.status == DeliveryStatus.AWAITING:
        return "awaiting approval"
    if delivery.status == DeliveryStatus.SENDING:
        return "being sent now"
    if delivery.target in paused:
        return f"target paused ({paused[delivery.target] or 'by an editor'})"
    if circuits.get(delivery.target) == "open":
        return "target's circuit is open: the platform is failing, posts are held"
    if delivery.next_attempt_at > now:
        return delivery.last_error or "delayed by the target's timing rules"
    return "due now"


def edit_problem(post: RenderedPost, text: str, adapter: Adapter | None) -> str | None:
    """Why an editor's full replacement text cannot go out (the link, the length), measured by
    the target's own adapter. Pure."""
    shown = preview(replace(post, text=text), adapter)
    if not shown.link_visible:
        return f"the post must keep the link {post.article_url}"
    if shown.over_limit:
        return f"{shown.length} {shown.unit} is over the {post.platform} limit of {shown.limit}"
    return None


def create_desk_app(parts: DeskParts, config: DeskConfig, secret_key: Secret) -> Starlette:
    accounts = Accounts(parts.store.engine)
    limiter = LoginLimiter(config.login_attempts, config.login_window)
    desk = parts.desk
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        enable_async=False,
    )
    env.filters["local"] = lambda ts: _local(ts, parts.tz)
    env.globals["zone"] = str(parts.tz)

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        editor = parts.config_editor
        context.update(
            base=request.scope.get("root_path", ""),
            csrf=_csrf(request),
            account=request.scope.get("desk_account"),
            # A refused reload shows on every page until the file is fixed.
            config_status=editor.reloader.status() if editor is not None else None,
        )
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    async def current(request: Request) -> Account | None:
        name = request.session.get("user")
        if not isinstance(name, str):
            return None
        started = request.session.get("since", 0)
        if time.time() - float(started) > config.session_lifetime:
            request.session.clear()
            return None
        account = await accounts.get(name)  # removed or demoted accounts lose access at once
        request.scope["desk_account"] = account
        return account

    def guarded(
        handler: Callable[[Request, Account], Awaitable[Response]], admin: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            account = await current(request)
            if account is None:
                if request.method == "GET":
                    base = request.scope.get("root_path", "")
                    return RedirectResponse(f"{base}/login", status_code=303)
                return Response("Log in first.", status_code=401)
            if request.method == "POST" and not await _csrf_ok(request):
                return Response("Refused: the form's CSRF token is missing or wrong.", 403)
            if admin and not account.is_admin:
                return Response("Only an admin may do this.", status_code=403)
            return await handler(request, account)

        return endpoint

    # Login -------------------------------------------------------------------------------

    async def login_form(request: Request) -> Response:
        return page(request, "login.html")

    async def login(request: Request) -> Response:
        if not await _csrf_ok(request):
            return page(request, "login.html", 403, error="The form expired: try again.")
        form = await request.form()
        name = str(form.get("name", "")).strip()[:64]
        password = str(form.get("password", ""))[:1024]
        client = request.client.host if request.client else "unknown"
        keys = [f"user:{name.lower()}", f"ip:{client}"]
        wait = limiter.retry_after(keys)
        if wait > 0:
            response = page(
                request,
                "login.html",
                429,
                error=f"Too many failed logins: try again in {int(wait) + 1} s.",
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        account = await accounts.authenticate(name, password) if name and password else None
        if account is None:
            limiter.failed(keys)
            return page(request, "login.html", 401, error="Wrong name or password.")
        limiter.succeeded(keys[0])
        request.session.clear()  # a fresh session (and CSRF token) for the logged-in editor
        request.session.update(user=account.name, since=time.time(), csrf=secrets.token_urlsafe(32))
        return RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)

    async def logout(request: Request, account: Account) -> Response:
        request.session.clear()
        return RedirectResponse(f"{request.scope.get('root_path', '')}/login", status_code=303)

    # Queue -------------------------------------------------------------------------------

    async def queue_rows() -> list[dict[str, Any]]:
        now = time.time()
        paused = await parts.store.paused_targets()
        circuits = parts.circuits()
        rows = []
        for d in await parts.store.queue(300):
            rows.append(
                {
                    "d": d,
                    "reason": wait_reason(d, now, paused, circuits),
                    "due": (
                        max(d.next_attempt_at, now) if d.status != DeliveryStatus.AWAITING else None
                    ),
                }
            )
        return rows

    async def queue_page(request: Request, account: Account) -> Response:
        return page(request, "queue.html", rows=await queue_rows(), notice=_notice(request))

    async def queue_fragment(request: Request, account: Account) -> Response:
        return page(request, "_queue_rows.html", rows=await queue_rows())

    # One delivery: previews and decisions ------------------------------------------------

    async def item(request: Request, account: Account) -> Response:
        delivery = await parts.store.delivery(int(request.path_params["id"]))
        if delivery is None:
            return page(request, "message.html", 404, message="No such delivery.")
        stored = await queries.stored_article(parts.store.engine, delivery.article_id)
        siblings = await parts.store.deliveries_for_article(delivery.article_id)
        return page(
            request,
            "item.html",
            d=delivery,
            article=stored.article if stored else None,
            previews=[(s, preview(s.post, parts.adapters.get(s.target))) for s in siblings],
            notice=_notice(request),
            draft=request.query_params.get("draft"),
        )

    async def decide(request: Request, account: Account) -> Response:
        delivery_id = int(request.path_params["id"])
        form = await request.form()
        action = str(form.get("action", ""))
        who = web_identity(account)
        # The same desk operations as the editors' chat and the command line: one record.
        if action == "post":
            reply = await desk.post_now(who, delivery_id)
        elif action == "delay1h":
            reply = await desk.delay(who, delivery_id)
        elif action in ("skip", "cancel"):
            reply = await desk.skip(who, delivery_id)
        elif action == "retry":
            reply = await desk.retry(who, delivery_id)
        elif action == "sent":
            link = str(form.get("link", "")).strip() or None
            reply = await desk.mark_sent(who, delivery_id, link)
        elif action == "schedule":
            at = _local_time(str(form.get("at", "")), parts.tz)
            if at is None:
                return _back(
                    request,
                    f"/item/{delivery_id}",
                    f"Not scheduled: give a date and time ({parts.tz}), e.g. 2026-12-01 14:30.",
                )
            reply = await desk.schedule(who, delivery_id, at.timestamp())
        else:
            return Response(f"Unknown action {action!r}.", status_code=400)
        text = reply.text if reply is not None else "Done."
        return _back(request, f"/item/{delivery_id}", text)

    async def edit(request: Request, account: Account) -> Response:
        delivery_id = int(request.path_params["id"])
        form = await request.form()
        text = str(form.get("text", ""))[:70_000].replace("\r\n", "\n")
        delivery = await parts.store.delivery(delivery_id)
        if delivery is not None:
            # The page shows the whole text, link included: an edit that drops the link or
            # runs past the platform's limit is refused, not silently repaired.
            problem = edit_problem(delivery.post, text, parts.adapters.get(delivery.target))
            if problem is not None:
                return _back(request, f"/item/{delivery_id}", f"Not saved: {problem}")
        reply = await desk.edit_text(web_identity(account), delivery_id, text)
        return _back(request, f"/item/{delivery_id}", reply.text)

    async def post_url(request: Request, account: Account) -> Response:
        form = await request.form()
        url = str(form.get("url", "")).strip()
        reply = await desk.command(web_identity(account), f"/post {url}")
        return _back(request, "/", reply.text if reply else "Done.")

    async def pause(request: Request, account: Account) -> Response:
        name = request.path_params["target"]
        verb = "resume" if request.url.path.endswith("/resume") else "pause"
        reply = await desk.command(web_identity(account), f"/{verb} {name}")
        return _back(request, "/health", reply.text if reply else "Done.")

    # History -----------------------------------------------------------------------------

    async def history_context(request: Request) -> dict[str, Any]:
        q = request.query_params
        filters = {
            k: q.get(k, "").strip()[:200] for k in ("target", "status", "source", "q", "day")
        }
        try:
            page_number = max(1, min(int(q.get("page", "1")), 100_000))
        except ValueError:
            page_number = 1
        wanted = queries.HistoryFilter(
            target=filters["target"],
            status=filters["status"],
            source=filters["source"],
            words=filters["q"],
            day=_parse_day(filters["day"]),
        )
        found = await queries.history(parts.store.engine, wanted, parts.tz, page_number)
        entries = [
            {
                "article": e.article,
                "retracted": e.retracted,
                "deliveries": [(d, _lag(e.article, d)) for d in e.deliveries],
            }
            for e in found.entries
        ]
        query = {k: v for k, v in filters.items() if v}
        return {
            "entries": entries,
            "filters": filters,
            "found": found,
            "query": "&".join(f"{k}={quote_plus(v)}" for k, v in query.items()),
            "statuses": [s.value for s in DeliveryStatus],
            "targets": parts.targets,
        }

    async def history(request: Request, account: Account) -> Response:
        return page(request, "history.html", **await history_context(request))

    async def history_fragment(request: Request, account: Account) -> Response:
        return page(request, "_history_entries.html", **await history_context(request))

    # Health and the rules tester ---------------------------------------------------------

    async def health(request: Request, account: Account) -> Response:
        return page(request, "health.html", **await _health_context(), notice=_notice(request))

    async def health_fragment(request: Request, account: Account) -> Response:
        return page(request, "_health_live.html", **await _health_context())

    async def rules_test(request: Request, account: Account) -> Response:
        form = await request.form()
        url = str(form.get("url", "")).strip()
        context = await _health_context()
        if not url.startswith(("http://", "https://")):
            return page(request, "health.html", 400, **context, test_error="Give an http(s) URL.")
        try:
            article, rendered = await parts.try_url(url)
        except Exception as exc:
            return page(
                request, "health.html", 200, **context, test_url=url,
                test_error=f"Could not load {url}: {exc}",
            )  # fmt: skip
        results = [
            (name, preview(post, parts.adapters.get(name)) if post is not None else None, problem)
            for name, post, problem in rendered
        ]
        return page(
            request, "health.html", **context, test_url=url, test_article=article,
            test_results=results,
        )  # fmt: skip

    async def _health_context() -> dict[str, Any]:
        counts = await parts.store.counts()
        paused = await parts.store.paused_targets()
        circuits = parts.circuits()
        attention = await parts.store.recent_deliveries(
            20, [DeliveryStatus.FAILED, DeliveryStatus.UNCERTAIN]
        )
        midnight = local_midnight(datetime.now(parts.tz), parts.tz).timestamp()
        targets = []
        for name, adapter in parts.adapters.items():
            timing = adapter.settings.timing
            today = await parts.store.sent_count_since(name, midnight)
            spent = None
            if timing.daily_budget:
                sent = await parts.store.posts_sent_since(name, midnight)
                spent = sum(adapter.cost(post) for post in sent)
            targets.append(
                {
                    "name": name,
                    "platform": adapter.platform,
                    "paused": paused.get(name),
                    "circuit": circuits.get(name, "closed"),
                    "counts": counts.get(name, {}),
                    "today": today,
                    "cap": timing.daily_cap or None,
                    "spent": spent,
                    "budget": timing.daily_budget or None,
                }
            )
        return {
            "sources": await parts.store.source_overview(),
            "targets": targets,
            "attention": attention,
        }

    # Rules without a restart: the rule editor (admins only) ---------------------------

    def no_editor(request: Request) -> Response:
        return page(request, "message.html", 404, message="This desk cannot edit the file.")

    async def config_page(request: Request, account: Account) -> Response:
        editor = parts.config_editor
        if editor is None:
            return no_editor(request)
        found = await asyncio.to_thread(editor.items)
        chosen = request.query_params.get("target")
        if chosen is not None:
            shown = [i for i in found if i.label.startswith(f"targets[{chosen}].")]
        else:
            rules = [i for i in found if i.path.startswith("rules.")]
            new_rule = Item(f"rules.{len(rules)}", "a new rule", "name: \nmatch: {}\ntargets: []\n")
            shown = [i for i in found if i.path.startswith("outlet.")] + rules + [new_rule]
        targets = sorted({i.label.split("]")[0].removeprefix("targets[") for i in found
                          if i.path.startswith("targets.")})  # fmt: skip
        return page(
            request, "config.html", items=shown, targets=targets, chosen=chosen,
            versions=len(editor.versions()), notice=_notice(request),
        )  # fmt: skip

    async def config_item(request: Request, account: Account) -> Response:
        """Preview (checked with the edit applied, routed against the latest articles) or
        save (only the text that was previewed, unchanged since)."""
        editor = parts.config_editor
        if editor is None:
            return no_editor(request)
        form = await request.form()
        path = str(form.get("path", ""))[:200]
        label = str(form.get("label", path))[:200]
        fragment = str(form.get("fragment", ""))[:200_000]
        try:
            text, candidate = await asyncio.to_thread(editor.candidate, path, fragment)
        except EditRefused as exc:
            return page(
                request, "config_preview.html", 400, path=path, label=label,
                fragment=fragment, problems=exc.problems,
            )  # fmt: skip
        digest = hashlib.sha256(text.encode()).hexdigest()
        if form.get("action") == "save":
            if not hmac.compare_digest(str(form.get("previewed", "")), digest):
                return page(
                    request, "config_preview.html", 409, path=path, label=label,
                    fragment=fragment,
                    problems=["the file or the edit changed since the preview: preview again"],
                )  # fmt: skip
            result = await editor.save(text, str(web_identity(account).id), label)
            return _back(request, "/config", result.summary())
        articles = await queries.latest_articles(parts.store.engine, 20)
        routed = await preview_routing(candidate, articles)
        shown = [
            (r.article, [(t, preview(p, parts.adapters.get(t)) if p else None, n)
                         for t, p, n in r.posts])
            for r in routed
        ]  # fmt: skip
        return page(
            request, "config_preview.html", path=path, label=label, fragment=fragment,
            previewed=digest, routed=shown,
        )  # fmt: skip

    async def config_undo(request: Request, account: Account) -> Response:
        editor = parts.config_editor
        if editor is None:
            return no_editor(request)
        try:
            result = await editor.undo(str(web_identity(account).id))
        except EditRefused as exc:
            return _back(request, "/config", "Not undone: " + "; ".join(exc.problems))
        return _back(request, "/config", result.summary())

    routes = [
        Route("/config", guarded(config_page, admin=True)),
        Route("/config/item", guarded(config_item, admin=True), methods=["POST"]),
        Route("/config/undo", guarded(config_undo, admin=True), methods=["POST"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", guarded(logout), methods=["POST"]),
        Route("/", guarded(queue_page)),
        Route("/queue/rows", guarded(queue_fragment)),
        Route("/item/{id:int}", guarded(item)),
        Route("/item/{id:int}/decide", guarded(decide), methods=["POST"]),
        Route("/item/{id:int}/edit", guarded(edit), methods=["POST"]),
        Route("/post", guarded(post_url), methods=["POST"]),
        Route("/targets/{target}/pause", guarded(pause, admin=True), methods=["POST"]),
        Route("/targets/{target}/resume", guarded(pause, admin=True), methods=["POST"]),
        Route("/history", guarded(history)),
        Route("/history/entries", guarded(history_fragment)),
        Route("/health", guarded(health)),
        Route("/health/live", guarded(health_fragment)),
        Route("/rules/test", guarded(rules_test), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=secret_key.get(),
                session_cookie="newsbot_desk",
                max_age=int(config.session_lifetime),
                same_site="strict",
                https_only=config.secure_cookie,
            ),
        ],
    )


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def _csrf_ok(request: Request) -> bool:
    expected = request.session.get("csrf")
    if not isinstance(expected, str):
        return False
    given = str((await request.form()).get("csrf", ""))
    return hmac.compare_digest(given.encode(), expected.encode())


def _back(request: Request, path: str, notice: str) -> Response:
    """Post/redirect/get, carrying the desk's answer in the session for the next page."""
    request.session["notice"] = notice[:500]
    return RedirectResponse(f"{request.scope.get('root_path', '')}{path}", status_code=303)


def _notice(request: Request) -> str | None:
    return request.session.pop("notice", None)


def _local_time(text: str, tz: ZoneInfo) -> datetime | None:
    """A time an editor typed ("2026-12-01 14:30", or the browser's "2026-12-01T14:30") in
    the newsroom's zone; None when it is not one."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("T", " "))
    except ValueError:
        return None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def _local(ts: float | datetime | None, tz: ZoneInfo) -> str:
    if ts is None:
        return "—"
    moment = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def _parse_day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _lag(article: Article, delivery: Delivery) -> str | None:
    """Time from publication to post, e.g. '42 s' or '3 min 5 s'."""
    if delivery.sent_at is None or article.published is None:
        return None
    seconds = max(0.0, delivery.sent_at - article.published.timestamp())
    whole = timedelta(seconds=round(seconds))
    minutes, secs = divmod(int(whole.total_seconds()), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
