"""The editors' desk: what an editor can see and do, independent of where it is done from
(the editors' Telegram chat, the command line, the web desk). ONE implementation of every
operation: each takes the acting editor and returns a Reply.

Commands: /status, /queue, /pause [target], /resume [target], /skip ID, /retry ID,
/sent ID [link], /schedule ID WHEN, /delay ID, /postnow ID, /post URL, /preview URL,
/history [N], /find WORDS; and the buttons of an approval preview (post now, skip, edit
text, delay 1h). Every decision is recorded with the editor's name and id and the time.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo

from bot.logs import escape_log
from bot.models import PostLength, RenderedPost
from bot.render import RenderProblem, guard
from bot.store import Delivery, DeliveryStatus, IllegalTransition, Store
from bot.store.events import DECISION, PREVIEW_SHOWN, PREVIEWED

log = logging.getLogger("newsbot.desk")

HELP = (
    "/status: deliveries by target, paused targets\n"
    "/queue: what waits to be posted\n"
    "/pause [target]: stop posting (all targets if none named)\n"
    "/resume [target]: start again\n"
    "/postnow ID: post a waiting, delayed or scheduled post now\n"
    "/delay ID: post it one hour from now\n"
    "/schedule ID HH:MM (or YYYY-MM-DD HH:MM): post it then, in the newsroom's time zone\n"
    "/skip ID: never post this delivery (bring it back with /post URL)\n"
    "/retry ID: send a failed or uncertain delivery again (check the channel first)\n"
    "/sent ID [link]: an uncertain delivery did go out: mark it posted\n"
    "/post URL: post an article now (also one skipped or recorded on the first run)\n"
    "/preview URL: show how each target would post it\n"
    "/history [N] [PAGE]: the last N decisions (at most 100 a page; page 2: the N before)\n"
    "/find WORDS: deliveries whose post contains the words"
)

# Decisions a /history page shows at most (a longer list is paged: /history 100 2).
HISTORY_MAX = 100
# The id column is a 32-bit INTEGER on PostgreSQL: a larger "id" names no delivery.
MAX_ID = 2**31 - 1
DELAY = 3600.0


@dataclass(frozen=True)
class Editor:
    """Who acts: their id where they act (a Telegram user id, "web:alice", "cli:root") and
    the name shown in the record."""

    id: int | str
    name: str

    def __str__(self) -> str:
        return f"{self.name} (id {self.id})"


@dataclass(frozen=True)
class Reply:
    """The desk's answer. `ok` says whether the action was done; a console never reads that
    from the wording. `html`: the text is Telegram-style HTML (a preview), else plain."""

    text: str
    ok: bool = True
    html: bool = False


Who = Editor | int | None
# A desk operation's move on a loaded delivery, given the decision line to record with it.
Act = Callable[[Delivery, str], Awaitable[str]]


def refusal(exc: IllegalTransition) -> Reply:
    """One clear line for a move the delivery's state does not allow."""
    if exc.current is None:
        return Reply(f"No delivery #{exc.delivery_id}.", ok=False)
    return Reply(f"#{exc.delivery_id} is {exc.current}: not changed.", ok=False)


def parse_id(text: str) -> int | None:
    """A delivery number as an editor types it ("42", "#42"); None for anything else."""
    digits = text.strip().lstrip("#")
    if not digits.isascii() or not digits.isdigit() or len(digits) > 10:
        return None
    value = int(digits)
    return value if 0 < value <= MAX_ID else None


def parse_when(text: str, tz: tzinfo, now: float) -> float | str:
    """ "HH:MM" (today, or tomorrow if that time has passed) or "YYYY-MM-DD HH:MM", in the
    newsroom's zone, as a timestamp; or one line saying what is wrong."""
    text = " ".join(text.split())
    local_now = datetime.fromtimestamp(now, tz)
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}", text):
            hour, minute = (int(x) for x in text.split(":"))
            at = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if at.timestamp() <= now:
                at = (local_now + timedelta(days=1)).replace(
                    hour=hour, minute=minute, second=0, microsecond=0
                )
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{1,2}:\d{2}", text):
            at = datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=tz)
        else:
            return "Give a time as HH:MM or YYYY-MM-DD HH:MM, e.g. /schedule 42 18:30"
    except ValueError:
        return f"No such time: {text}"
    return at.timestamp()


class Desk:
    def __init__(
        self,
        store: Store,
        targets: Sequence[str],
        hyperlinks: dict[str, bool],
        allowed_users: set[int],
        post_url: Callable[[str], Awaitable[str | Reply]],
        preview_url: Callable[[str], Awaitable[str | Reply]],
        wake: Callable[[], None],
        *,
        tz: tzinfo = UTC,
        measure: dict[str, Callable[[RenderedPost], PostLength]] | None = None,
    ) -> None:
        self.store = store
        self.targets = list(targets)
        self.hyperlinks = hyperlinks
        self.allowed_users = allowed_users
        self.post_url = post_url
        self.preview_url = preview_url
        self.wake = wake
        self.tz = tz
        # Each target's own length count against its limit (the adapters' measure()).
        self.measure = measure or {}

    def when(self, ts: float | None) -> str:
        """A time as editors read it: in the newsroom's zone, with the zone's name
        ("2026-01-05 14:30 Asia/Baku"; a bare "+04" would leave them guessing)."""
        if ts is None:
            return "-"
        zone = getattr(self.tz, "key", None) or datetime.fromtimestamp(ts, self.tz).tzname()
        return f"{datetime.fromtimestamp(ts, self.tz):%Y-%m-%d %H:%M} {zone}"

    def allowed(self, who: Who) -> bool:
        """Chat users must be listed in allowed_user_ids; an Editor with a text id comes from
        a front end that authenticated it (the web desk's login, the shell for the CLI)."""
        if isinstance(who, Editor):
            return isinstance(who.id, str) or who.id in self.allowed_users
        return who is not None and who in self.allowed_users

    @staticmethod
    def editor(who: Who) -> Editor:
        if isinstance(who, Editor):
            return who
        return Editor(who if who is not None else 0, f"user {who}")

    async def _record(self, who: Editor, action: str, delivery: Delivery | None = None) -> None:
        await self.store.record_decision(
            delivery.id if delivery else None,
            delivery.target if delivery else None,
            str(who),
            action,
        )

    async def _load(self, delivery_id: int) -> Delivery | Reply:
        if not 0 < delivery_id <= MAX_ID:
            return Reply(f"No delivery #{delivery_id}.", ok=False)
        delivery = await self.store.delivery(delivery_id)
        return delivery if delivery is not None else Reply(f"No delivery #{delivery_id}.", ok=False)

    async def who_decided(self, delivery_id: int) -> str | None:
        """The latest decision on a delivery, as one line: what, who, when."""
        if not 0 < delivery_id <= MAX_ID:
            return None
        found = await self.store.decisions(1, delivery_id)
        if not found:
            return None
        event = found[0]
        return f"{event['message']} at {self.when(event['at'])}"

    # Commands ------------------------------------------------------------------------------

    async def command(self, who: Who, text: str) -> Reply | None:
        """Answer one command message. Strangers get a refusal and nothing happens."""
        if not text.startswith("/"):
            return None
        word, _, rest = text.strip().partition(" ")
        name = word[1:].split("@")[0].lower()
        arg = rest.strip()
        if not self.allowed(who):
            log.warning(
                "refused /%s from user %s: not an allowed editor",
                escape_log(name, 100),
                escape_log(who.id if isinstance(who, Editor) else who, 100),
            )
            return Reply("You are not allowed to control this bot.", ok=False)
        editor = self.editor(who)
        handlers: dict[str, Callable[[Editor, str], Awaitable[Reply]]] = {
            "status": self._status,
            "queue": self._queue,
            "pause": self._pause,
            "resume": self._resume,
            "skip": self._by_id(self.skip),
            "retry": self._by_id(self.retry),
            "postnow": self._by_id(self.post_now),
            "delay": self._by_id(self.delay),
            "sent": self._sent,
            "schedule": self._schedule,
            "post": self._post,
            "preview": self._preview,
            "history": self._history,
            "find": self._find,
            "help": self._help,
            "start": self._help,
        }
        handler = handlers.get(name)
        if handler is None:
            return Reply(f"Unknown command /{name[:40]}.\n\n{HELP}", ok=False)
        return await handler(editor, arg)

    def _by_id(
        self, operation: Callable[[Editor, int], Awaitable[Reply]]
    ) -> Callable[[Editor, str], Awaitable[Reply]]:
        async def handler(editor: Editor, arg: str) -> Reply:
            delivery_id = parse_id(arg)
            if delivery_id is None:
                return Reply("Give a delivery number, e.g. /skip 42", ok=False)
            return await operation(editor, delivery_id)

        return handler

    async def _help(self, _: Editor, __: str) -> Reply:
        return Reply(HELP)

    async def _status(self, _: Editor, __: str) -> Reply:
        counts = await self.store.counts()
        paused = await self.store.paused_targets()
        lines = []
        for target in self.targets:
            row = counts.get(target, {})
            summary = ", ".join(f"{k} {v}" for k, v in sorted(row.items())) or "nothing yet"
            flag = f" (PAUSED: {paused[target]})" if target in paused else ""
            lines.append(f"{target}: {summary}{flag}")
        attention = await self.store.recent_deliveries(
            5, [DeliveryStatus.FAILED, DeliveryStatus.UNCERTAIN]
        )
        for d in attention:
            lines.append(f"#{d.id} {d.target} {d.status}: {d.post.article_url}")
        return Reply("\n".join(lines))

    async def _queue(self, _: Editor, __: str) -> Reply:
        rows = await self.store.queue(30)
        if not rows:
            return Reply("Nothing is waiting.")
        lines = []
        for d in rows:
            lines.append(
                f"#{d.id} {d.target} {d.status} (not before {self.when(d.next_attempt_at)}):"
                f" {d.post.article_url}"
            )
        return Reply("\n".join(lines))

    def _targets_from(self, arg: str) -> list[str] | str:
        if not arg:
            return self.targets
        if arg not in self.targets:
            return f"No target {escape_log(arg, 80)!r}. Targets: {', '.join(self.targets)}"
        return [arg]

    async def _pause(self, editor: Editor, arg: str) -> Reply:
        names = self._targets_from(arg)
        if isinstance(names, str):
            return Reply(names, ok=False)
        for name in names:
            await self.store.set_paused(name, True, f"paused by {editor}")
        await self._record(editor, f"paused {', '.join(names)}")
        return Reply(f"Paused: {', '.join(names)}")

    async def _resume(self, editor: Editor, arg: str) -> Reply:
        names = self._targets_from(arg)
        if isinstance(names, str):
            return Reply(names, ok=False)
        for name in names:
            await self.store.set_paused(name, False, "")
        await self._record(editor, f"resumed {', '.join(names)}")
        self.wake()
        return Reply(f"Resumed: {', '.join(names)}")

    async def _sent(self, editor: Editor, arg: str) -> Reply:
        raw_id, _, link = arg.partition(" ")
        delivery_id = parse_id(raw_id)
        if delivery_id is None:
            return Reply("Give a delivery number, e.g. /sent 42 https://t.me/chan/7", ok=False)
        link = link.strip()
        if link and not link.startswith(("http://", "https://")):
            return Reply("The link must start with https://", ok=False)
        return await self.mark_sent(editor, delivery_id, link or None)

    async def _schedule(self, editor: Editor, arg: str) -> Reply:
        raw_id, _, when = arg.partition(" ")
        delivery_id = parse_id(raw_id)
        if delivery_id is None:
            return Reply("Give a delivery number and a time, e.g. /schedule 42 18:30", ok=False)
        at = parse_when(when, self.tz, time.time())
        if isinstance(at, str):
            return Reply(at, ok=False)
        return await self.schedule(editor, delivery_id, at)

    async def _post(self, editor: Editor, arg: str) -> Reply:
        if not arg.startswith(("http://", "https://")):
            return Reply("Give the article URL, e.g. /post https://site/news/1", ok=False)
        answer = await self.post_url(arg)
        reply = answer if isinstance(answer, Reply) else Reply(answer)
        await self.store.record_decision(None, None, str(editor), f"/post {arg}: {reply.text}")
        return reply

    async def _preview(self, _: Editor, arg: str) -> Reply:
        if not arg.startswith(("http://", "https://")):
            return Reply("Give the article URL, e.g. /preview https://site/news/1", ok=False)
        answer = await self.preview_url(arg)
        return answer if isinstance(answer, Reply) else Reply(answer)

    async def _history(self, _: Editor, arg: str) -> Reply:
        words = arg.split()
        numbers = [int(w) if w.isascii() and w.isdigit() and len(w) < 10 else 0 for w in words]
        if len(numbers) > 2 or any(n < 1 for n in numbers):
            return Reply("Give how many and which page, e.g. /history 20 2", ok=False)
        return await self.history(*numbers) if numbers else await self.history()

    async def _find(self, _: Editor, arg: str) -> Reply:
        return await self.find(arg.split())

    # The operations (one implementation for the chat, the web desk and the CLI) ----------

    async def _settle(self, editor: Editor, delivery_id: int, what: str, act: Act) -> Reply:
        """Load, act, and record who did what in the same transaction as the move; a refused
        move names the current state and the decision that put it there (who and when)."""
        found = await self._load(delivery_id)
        if isinstance(found, Reply):
            return found
        try:
            done = await act(found, f"{editor}: {what} #{delivery_id}")
        except IllegalTransition as exc:
            reply = refusal(exc)
            earlier = await self.who_decided(delivery_id)
            if earlier:
                reply = Reply(f"{reply.text} Last decision: {earlier}.", ok=False)
            return reply
        return Reply(f"#{delivery_id} {found.target}: {done}, decided by {editor}.")

    async def post_now(self, who: Who, delivery_id: int, *, awaiting_only: bool = False) -> Reply:
        """Approve a waiting post, or bring a delayed/scheduled one forward: due now, first.
        `awaiting_only`: only as the answer to its approval (a preview's button)."""

        async def act(d: Delivery, decision: str) -> str:
            if awaiting_only or d.status == DeliveryStatus.AWAITING:
                await self.store.approve(
                    d.id, f"approved by {self.editor(who)}", priority=1, decision=decision
                )
            else:
                await self.store.post_now(d.id, decision)
            self.wake()
            return "posting now"

        return await self._guarded(who, delivery_id, "post now", act)

    async def delay(
        self, who: Who, delivery_id: int, seconds: float = DELAY, *, awaiting_only: bool = False
    ) -> Reply:
        return await self.schedule(
            who, delivery_id, time.time() + seconds, "delayed 1h", awaiting_only=awaiting_only
        )

    async def schedule(
        self,
        who: Who,
        delivery_id: int,
        at: float,
        what: str | None = None,
        *,
        awaiting_only: bool = False,
    ) -> Reply:
        """Post at `at` (a waiting post is approved for then; a queued one moves)."""
        label = what or f"scheduled for {self.when(at)}"

        async def act(d: Delivery, decision: str) -> str:
            if awaiting_only or d.status == DeliveryStatus.AWAITING:
                note = f"{label} by {self.editor(who)}"
                await self.store.approve(d.id, note, not_before=at, decision=decision)
            else:
                await self.store.reschedule(d.id, at, decision)
            self.wake()
            return f"{label} (posts at {self.when(at)})" if what else label

        return await self._guarded(who, delivery_id, label, act)

    async def skip(self, who: Who, delivery_id: int, *, awaiting_only: bool = False) -> Reply:
        async def act(d: Delivery, decision: str) -> str:
            note = f"skipped by {self.editor(who)}"
            if awaiting_only or d.status == DeliveryStatus.AWAITING:
                await self.store.decline(d.id, note, decision)
            else:
                await self.store.skip(d.id, note, decision)
            return "skipped"

        return await self._guarded(who, delivery_id, "skip", act)

    async def retry(self, who: Who, delivery_id: int) -> Reply:
        """Send a failed or uncertain delivery again (never a skipped one: /post URL)."""

        async def act(d: Delivery, decision: str) -> str:
            await self.store.requeue(d.id, f"retried by {self.editor(who)}", decision)
            self.wake()
            return "queued again"

        reply = await self._guarded(who, delivery_id, "retry", act)
        if not reply.ok and " is skipped" in reply.text:
            return Reply(f"{reply.text} A skipped post comes back only with /post URL.", ok=False)
        return reply

    async def mark_sent(self, who: Who, delivery_id: int, link: str | None = None) -> Reply:
        """An uncertain delivery did go out (an editor checked the channel)."""

        async def act(d: Delivery, decision: str) -> str:
            note = f"marked sent by {self.editor(who)}"
            await self.store.editor_marks_sent(d.id, link, note, decision)
            return "marked sent" + (f" ({link})" if link else "")

        return await self._guarded(who, delivery_id, "mark sent", act)

    async def _guarded(self, who: Who, delivery_id: int, what: str, act: Act) -> Reply:
        if not self.allowed(who):
            log.warning("refused %s from user %s", what, escape_log(self.editor(who).id, 100))
            return Reply("You are not allowed to do that.", ok=False)
        return await self._settle(self.editor(who), delivery_id, what, act)

    async def history(self, limit: int = 10, page: int = 1) -> Reply:
        """The last `limit` decisions (at most HISTORY_MAX a page), newest first; `page` 2
        is the `limit` before those, and so on."""
        size = max(1, min(limit, HISTORY_MAX))
        page = max(1, min(page, MAX_ID // HISTORY_MAX))
        rows = await self.store.decisions(size, offset=(page - 1) * size)
        note = (
            f"(at most {HISTORY_MAX} a page: /history {HISTORY_MAX} 2 shows the ones before)"
            if limit > HISTORY_MAX
            else ""
        )
        if not rows:
            return Reply("No decisions yet." if page == 1 else f"No decisions on page {page}.")
        lines = [
            f"{self.when(e['at'])} "
            + (f"#{e['delivery_id']} " if e["delivery_id"] else "")
            + (e["message"] if e["kind"] == "decision" else f"approval timeout: {e['message']}")
            for e in rows
        ]
        if len(rows) == size:
            lines.append(f"(older: /history {size} {page + 1})")
        if note:
            lines.insert(0, note)
        return Reply("\n".join(lines))

    async def find(self, words: Sequence[str]) -> Reply:
        words = [w for w in words if w][:10]
        if not words:
            return Reply("Give words to look for, e.g. /find budget", ok=False)
        found = await self.store.find_deliveries(words)
        if not found:
            return Reply("Nothing found.")
        return Reply(
            "\n".join(
                f"#{d.id} {d.target} {d.status} {self.when(d.sent_at or d.updated_at)}:"
                f" {d.post.article_url}"
                for d in found
            )
        )

    # Approval ------------------------------------------------------------------------------

    async def previews_due(self) -> list[Delivery]:
        """Posts awaiting approval whose preview the editors have not been shown yet."""
        return await self.store.previews_due()

    async def mark_previewed(self, delivery_id: int, target: str, where: str) -> None:
        """Remember that the preview of `delivery_id` reached the editors (at `where`)."""
        await self.store.mark_previewed(delivery_id, target, where)

    async def awaiting_delivery(self, delivery_id: int) -> Delivery | None:
        """The delivery if it still waits for approval (to show its preview again)."""
        found = await self._load(delivery_id)
        if isinstance(found, Reply) or found.status != DeliveryStatus.AWAITING:
            return None
        return found

    async def decide(self, who: Who, delivery_id: int, action: str) -> Reply:
        """An editor's answer to an approval preview: post, skip, or delay1h. The preview asks
        once: the first answer wins (two editors pressing at once, a stale button, a press
        after the timeout) and any later press is told what was decided, by whom and when.
        A decided post can still be changed with /postnow, /schedule or /skip."""
        operation = {"post": self.post_now, "skip": self.skip, "delay1h": self.delay}.get(action)
        if operation is None:
            return Reply(f"Unknown action {escape_log(action, 40)!r}", ok=False)
        reply = await operation(who, delivery_id, awaiting_only=True)
        if reply.ok or not self.allowed(who):
            return reply
        earlier = await self.who_decided(delivery_id)
        if earlier is None:
            return reply
        found = await self.store.delivery(delivery_id)
        status = found.status if found is not None else None
        change = (
            f" Change it with /postnow {delivery_id}, /schedule {delivery_id} HH:MM or"
            f" /skip {delivery_id}."
            if status == DeliveryStatus.PENDING
            else ""
        )
        return Reply(f"#{delivery_id} was already decided: {earlier}.{change}", ok=False)

    async def edit_text(self, who: Who, delivery_id: int, text: str) -> Reply:
        """Replace an awaiting post's text; it must still carry the article link and fit
        the platform's limit as the platform counts it."""
        if not self.allowed(who):
            return Reply("You are not allowed to edit posts.", ok=False)
        delivery = await self.awaiting_delivery(delivery_id)
        if delivery is None:
            return Reply(f"#{delivery_id} is not waiting for approval.", ok=False)
        hyperlinks = self.hyperlinks.get(delivery.target, True)
        # Every renderer ends a post with its link block; an edit without the link keeps it.
        link_block = delivery.post.text.rsplit("\n\n", 1)[-1]
        for candidate in (text, f"{text.rstrip()}\n\n{link_block}"):
            edited = replace(delivery.post, text=candidate)
            if not isinstance(guard(edited, hyperlinks), RenderProblem):
                break
        else:
            return Reply(
                f"Not saved: the post must keep the link {delivery.post.article_url}", ok=False
            )
        measure = self.measure.get(delivery.target)
        if measure is not None:
            length = measure(edited)
            if not length.fits:
                return Reply(
                    f"Not saved: too long for {delivery.target}: {length}. Shorten it and send"
                    " it again.",
                    ok=False,
                )
        await self.store.update_payload(delivery_id, edited)
        await self._record(self.editor(who), f"edited text of #{delivery_id}", delivery)
        return Reply("Text updated. Press Post now to publish it.")

    # The preview as the record -------------------------------------------------------------

    def record_line(
        self, delivery: Delivery, decision: dict[str, object] | None, now: float | None = None
    ) -> str:
        """What happened to a previewed post, as lines of plain text (a console formats them):
        the outcome ("Posted", "Skipped", "Scheduled for 2026-01-05 14:30 Asia/Baku",
        "Timed out: skipped by rule"), who decided and when, and once sent the published link.
        The first line replaces the preview's "Approval needed"."""
        now = time.time() if now is None else now
        status = delivery.status
        timed_out = decision is not None and decision["kind"] != DECISION
        lines: list[str] = []
        if status == DeliveryStatus.SENT:
            head = "Posted"
            lines.append(f"Published {self.when(delivery.sent_at)}: {delivery.remote_url or '-'}")
        elif status == DeliveryStatus.PENDING:
            due = delivery.next_attempt_at or now
            head = f"Scheduled for {self.when(due)}" if due > now + 60 else "Approved: being posted"
        elif status == DeliveryStatus.SENDING:
            head = "Approved: being posted"
        elif status == DeliveryStatus.UNCERTAIN:
            head = "Uncertain whether it went out"
            lines.append(
                f"Check {delivery.target}, then /sent {delivery.id} [link] or /retry {delivery.id}"
            )
        elif status == DeliveryStatus.FAILED:
            head = "Failed"
            if delivery.last_error:
                lines.append(delivery.last_error)
            lines.append(f"/retry {delivery.id} sends it again")
        else:
            head = str(status).capitalize()
        if timed_out and status == DeliveryStatus.SKIPPED:
            head = "Timed out: skipped by rule"
        elif timed_out:
            head = f"{head} (timed out: posted by rule)"
        if decision is not None:
            at = decision["at"]
            when = self.when(at if isinstance(at, float) else None)
            message = str(decision["message"])
            if timed_out:
                lines.insert(0, f"{message.capitalize()}, {when}")
            else:
                who, _, what = message.rpartition(": ")
                what = what.removesuffix(f" #{delivery.id}")
                lines.insert(0, f"{what.capitalize()}: decided by {who or message}, {when}")
        return "\n".join([head, *lines])

    async def preview_records(self, since: float) -> list[tuple[Delivery, str, str, bool]]:
        """Previews shown since `since` whose message no longer says what happened:
        (delivery, where the preview is, the record lines, whether nobody decided in time:
        announce it once). A console replaces the preview's buttons with the record, then
        calls `record_shown` so each change is shown once (across restarts and leaders)."""
        shown: dict[tuple[int, str], str] = {}
        for event in await self.store.preview_events(PREVIEW_SHOWN, since):
            key, _, where = str(event["message"]).partition(" @ ")
            shown[int(event["delivery_id"]), where] = key
        announced = {delivery_id for delivery_id, _ in shown}
        due = []
        for event in await self.store.preview_events(PREVIEWED, since):
            delivery = await self.store.delivery(int(event["delivery_id"]))
            if delivery is None or delivery.status == DeliveryStatus.AWAITING:
                continue
            where = str(event["message"])
            if shown.get((delivery.id, where)) == self._record_key(delivery):
                continue
            decisions = await self.store.decisions(1, delivery.id)
            decision = decisions[0] if decisions else None
            timed_out = (
                decision is not None
                and decision["kind"] != DECISION
                and delivery.id not in announced
            )
            announced.add(delivery.id)
            due.append((delivery, where, self.record_line(delivery, decision), timed_out))
            shown[delivery.id, where] = self._record_key(delivery)
        return due

    @staticmethod
    def _record_key(delivery: Delivery) -> str:
        return f"{delivery.status}|{delivery.remote_url or ''}|{delivery.next_attempt_at}"

    async def record_shown(self, delivery: Delivery, where: str = "") -> None:
        """The preview at `where` (as given by preview_records) now shows its record."""
        await self.store.record_event(
            "info",
            PREVIEW_SHOWN,
            f"{self._record_key(delivery)} @ {where}",
            delivery.target,
            delivery.id,
        )
