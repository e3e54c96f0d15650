"""The web desk's Starlette app, mounted at /desk. Every decision goes through the same
bot.desk.Desk operations as the editors' chat; pages are server-rendered (Jinja2), a small
script only refreshes the queue."""

from __future__ import annotations

import copy
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
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

from bot.desk import Desk
from bot.models import Article, RenderedPost
from bot.secrets import Secret
from bot.store import AWAITING, FAILED, SENDING, STATUSES, UNCERTAIN, Delivery, Store
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
    targets: Sequence[str] = ()


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


def web_identity(account: Account) -> str:
    return f"web:{account.name}"


def acting_desk(desk: Desk) -> Desk:
    """The chat's Desk acting for editors the web desk has authenticated (the Desk checks
    chat user ids; a web identity "web:NAME" was checked here, by password and session)."""
    web = copy.copy(desk)
    web.allowed = lambda user_id: isinstance(user_id, str) and user_id.startswith("web:")  # type: ignore[method-assign]
    return web


def wait_reason(
    delivery: Delivery, now: float, paused: dict[str, str], circuits: dict[str, str]
) -> str:
    """Why a queued delivery is not out yet, in an editor's words. Pure."""
    if delivery.status == AWAITING:
        return "awaiting approval"
    if delivery.status == SENDING:
        return "being sent now"
    if delivery.target in paused:
        return f"target paused ({paused[delivery.target] or 'by an editor'})"
    if circuits.get(delivery.target) == "open":
        return "target's circuit is open: the platform is failing, posts are held"
    if delivery.next_attempt_at > now:
        return delivery.last_error or "delayed by the target's timing rules"
    return "due now"


def edit_problem(post: RenderedPost, text: str) -> str | None:
    """Why an editor's full replacement text cannot go out (the link, the length). Pure."""
    shown = preview(replace(post, text=text))
    if not shown.link_visible:
        return f"the post must keep the link {post.article_url}"
    if shown.over_limit:
        return f"{shown.length} is over the {post.platform} limit of {shown.limit}"
    return None


def create_desk_app(parts: DeskParts, config: DeskConfig, secret_key: Secret) -> Starlette:
    accounts = Accounts(parts.store.engine)
    limiter = LoginLimiter(config.login_attempts, config.login_window)
    desk = acting_desk(parts.desk)
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        enable_async=False,
    )
    env.filters["local"] = lambda ts: _local(ts, parts.tz)
    env.globals["zone"] = str(parts.tz)

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.update(
            base=request.scope.get("root_path", ""),
            csrf=_csrf(request),
            account=request.scope.get("desk_account"),
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
                    "due": max(d.next_attempt_at, now) if d.status != AWAITING else None,
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
        stored = await parts.store.article(delivery.article_id)
        siblings = await parts.store.deliveries_for_article(delivery.article_id)
        return page(
            request,
            "item.html",
            d=delivery,
            article=stored.article if stored else None,
            previews=[(s, preview(s.post)) for s in siblings],
            notice=_notice(request),
            draft=request.query_params.get("draft"),
        )

    async def decide(request: Request, account: Account) -> Response:
        delivery_id = int(request.path_params["id"])
        form = await request.form()
        action = str(form.get("action", ""))
        who = web_identity(account)
        if action in ("post", "skip", "delay1h"):
            reply = await desk.decide(who, delivery_id, action)  # type: ignore[arg-type]
        elif action == "retry":
            reply = await desk.command(who, f"/retry {delivery_id}")  # type: ignore[arg-type]
        elif action == "cancel":
            reply = await desk.command(who, f"/skip {delivery_id}")  # type: ignore[arg-type]
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
            problem = edit_problem(delivery.post, text)
            if problem is not None:
                return _back(request, f"/item/{delivery_id}", f"Not saved: {problem}")
        reply = await desk.edit_text(web_identity(account), delivery_id, text)  # type: ignore[arg-type]
        return _back(request, f"/item/{delivery_id}", reply.text)

    async def post_url(request: Request, account: Account) -> Response:
        form = await request.form()
        url = str(form.get("url", "")).strip()
        reply = await desk.command(web_identity(account), f"/post {url}")  # type: ignore[arg-type]
        return _back(request, "/", reply.text if reply else "Done.")

    async def pause(request: Request, account: Account) -> Response:
        name = request.path_params["target"]
        verb = "resume" if request.url.path.endswith("/resume") else "pause"
        reply = await desk.command(web_identity(account), f"/{verb} {name}")  # type: ignore[arg-type]
        return _back(request, "/health", reply.text if reply else "Done.")

    # History -----------------------------------------------------------------------------

    async def history(request: Request, account: Account) -> Response:
        q = request.query_params
        filters = {k: q.get(k, "").strip() for k in ("target", "status", "source", "q", "day")}
        deliveries = await parts.store.recent_deliveries(1000)
        if filters["target"]:
            deliveries = [d for d in deliveries if d.target == filters["target"]]
        if filters["status"]:
            deliveries = [d for d in deliveries if d.status == filters["status"]]
        by_article: dict[int, list[Delivery]] = {}
        for d in deliveries:
            by_article.setdefault(d.article_id, []).append(d)
        day = _parse_day(filters["day"])
        words = filters["q"].lower().split()
        entries = []
        for article_id, items in by_article.items():
            stored = await parts.store.article(article_id)
            if stored is None:
                continue
            a = stored.article
            if filters["source"] and a.source != filters["source"]:
                continue
            if words and not all(w in a.title.lower() for w in words):
                continue
            when = a.published or datetime.fromtimestamp(items[0].created_at, UTC)
            if day is not None and when.astimezone(parts.tz).date() != day:
                continue
            entries.append(
                {
                    "article": a,
                    "retracted": stored.retracted,
                    "deliveries": [(d, _lag(a, d)) for d in sorted(items, key=lambda d: d.id)],
                }
            )
            if len(entries) >= 100:
                break
        return page(
            request,
            "history.html",
            entries=entries,
            filters=filters,
            statuses=STATUSES,
            targets=list(parts.targets),
        )

    # Health and the rules tester ---------------------------------------------------------

    async def health(request: Request, account: Account) -> Response:
        return page(request, "health.html", **await _health_context(), notice=_notice(request))

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
            (name, preview(post) if post is not None else None, problem)
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
        attention = await parts.store.recent_deliveries(20, [FAILED, UNCERTAIN])
        targets = [
            {
                "name": name,
                "paused": paused.get(name),
                "circuit": circuits.get(name, "closed"),
                "counts": counts.get(name, {}),
            }
            for name in parts.targets
        ]
        return {
            "sources": await parts.store.source_overview(),
            "targets": targets,
            "attention": attention,
        }

    routes = [
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
        Route("/health", guarded(health)),
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
