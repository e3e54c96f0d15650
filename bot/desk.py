"""The editors' desk: what an editor can see and do, independent of the chat it is done from.

Commands: /status, /queue, /pause [target], /resume [target], /skip ID, /retry ID,
/post URL, /preview URL, and decisions on posts awaiting approval (post now, skip,
edit text, delay). Every action is checked against the allowed user ids and recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from bot.logs import escape_log
from bot.render import RenderProblem, guard
from bot.store import Delivery, DeliveryStatus, IllegalTransition, Store

log = logging.getLogger("newsbot.desk")

HELP = (
    "/status: deliveries by target, paused targets\n"
    "/queue: what waits to be posted\n"
    "/pause [target]: stop posting (all targets if none named)\n"
    "/resume [target]: start again\n"
    "/skip ID: never post this delivery\n"
    "/retry ID: send a failed or uncertain delivery again (check the channel first)\n"
    "/post URL: post an article now\n"
    "/preview URL: show how each target would post it"
)


@dataclass(frozen=True)
class Reply:
    """The desk's answer. `ok` says whether the action was done; a console never reads that
    from the wording."""

    text: str
    ok: bool = True


def refusal(exc: IllegalTransition) -> Reply:
    """One clear line for a move the delivery's state does not allow."""
    if exc.current is None:
        return Reply(f"No delivery #{exc.delivery_id}.", ok=False)
    return Reply(f"#{exc.delivery_id} is {exc.current}: not changed.", ok=False)


class Desk:
    def __init__(
        self,
        store: Store,
        targets: Sequence[str],
        hyperlinks: dict[str, bool],
        allowed_users: set[int],
        post_url: Callable[[str], Awaitable[str]],
        preview_url: Callable[[str], Awaitable[str]],
        wake: Callable[[], None],
    ) -> None:
        self.store = store
        self.targets = list(targets)
        self.hyperlinks = hyperlinks
        self.allowed_users = allowed_users
        self.post_url = post_url
        self.preview_url = preview_url
        self.wake = wake

    def allowed(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.allowed_users

    async def _record(self, user_id: int, action: str, delivery_id: int | None = None) -> None:
        await self.store.record_event(
            "info", "editor", f"user {user_id}: {action}", delivery_id=delivery_id
        )

    # Commands ------------------------------------------------------------------------------

    async def command(self, user_id: int | None, text: str) -> Reply | None:
        """Answer one command message. Strangers get a refusal and nothing happens."""
        if not text.startswith("/"):
            return None
        word, _, rest = text.strip().partition(" ")
        name = word[1:].split("@")[0].lower()
        arg = rest.strip()
        if not self.allowed(user_id):
            log.warning(
                "refused /%s from user %s: not an allowed editor",
                escape_log(name, 100),
                escape_log(user_id),
            )
            return Reply("You are not allowed to control this bot.", ok=False)
        assert user_id is not None
        handlers = {
            "status": self._status,
            "queue": self._queue,
            "pause": self._pause,
            "resume": self._resume,
            "skip": self._skip,
            "retry": self._retry,
            "post": self._post,
            "preview": self._preview,
            "help": self._help,
            "start": self._help,
        }
        handler = handlers.get(name)
        if handler is None:
            return Reply(f"Unknown command /{name}.\n\n{HELP}", ok=False)
        reply = await handler(arg)
        await self._record(user_id, f"/{name} {arg}".strip())
        return reply

    async def _help(self, _: str) -> Reply:
        return Reply(HELP)

    async def _status(self, _: str) -> Reply:
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

    async def _queue(self, _: str) -> Reply:
        rows = await self.store.queue(30)
        if not rows:
            return Reply("Nothing is waiting.")
        lines = []
        for d in rows:
            when = time.strftime("%H:%M", time.gmtime(d.next_attempt_at))
            lines.append(
                f"#{d.id} {d.target} {d.status} (not before {when} UTC): {d.post.article_url}"
            )
        return Reply("\n".join(lines))

    def _targets_from(self, arg: str) -> list[str] | str:
        if not arg:
            return self.targets
        if arg not in self.targets:
            return f"No target {arg!r}. Targets: {', '.join(self.targets)}"
        return [arg]

    async def _pause(self, arg: str) -> Reply:
        names = self._targets_from(arg)
        if isinstance(names, str):
            return Reply(names, ok=False)
        for name in names:
            await self.store.set_paused(name, True, "paused by an editor")
        return Reply(f"Paused: {', '.join(names)}")

    async def _resume(self, arg: str) -> Reply:
        names = self._targets_from(arg)
        if isinstance(names, str):
            return Reply(names, ok=False)
        for name in names:
            await self.store.set_paused(name, False, "")
        self.wake()
        return Reply(f"Resumed: {', '.join(names)}")

    async def _delivery(self, arg: str) -> Delivery | str:
        if not arg.lstrip("#").isdigit():
            return "Give a delivery number, e.g. /skip 42"
        delivery = await self.store.delivery(int(arg.lstrip("#")))
        return delivery if delivery is not None else f"No delivery #{arg}"

    async def _skip(self, arg: str) -> Reply:
        found = await self._delivery(arg)
        if isinstance(found, str):
            return Reply(found, ok=False)
        try:
            await self.store.skip(found.id, "skipped by an editor")
        except IllegalTransition as exc:
            return refusal(exc)
        return Reply(f"#{found.id} skipped.")

    async def _retry(self, arg: str) -> Reply:
        found = await self._delivery(arg)
        if isinstance(found, str):
            return Reply(found, ok=False)
        try:
            await self.store.requeue(found.id, "retried by an editor")
        except IllegalTransition as exc:
            return refusal(exc)
        self.wake()
        return Reply(f"#{found.id} queued again.")

    async def _post(self, arg: str) -> Reply:
        if not arg.startswith(("http://", "https://")):
            return Reply("Give the article URL, e.g. /post https://site/news/1", ok=False)
        return Reply(await self.post_url(arg))

    async def _preview(self, arg: str) -> Reply:
        if not arg.startswith(("http://", "https://")):
            return Reply("Give the article URL, e.g. /preview https://site/news/1", ok=False)
        return Reply(await self.preview_url(arg))

    # Approval ------------------------------------------------------------------------------

    async def previews_due(self) -> list[Delivery]:
        """Posts awaiting approval whose preview the editors have not been shown yet."""
        return await self.store.previews_due()

    async def mark_previewed(self, delivery_id: int, target: str, where: str) -> None:
        """Remember that the preview of `delivery_id` reached the editors (at `where`)."""
        await self.store.mark_previewed(delivery_id, target, where)

    async def awaiting_delivery(self, delivery_id: int) -> Delivery | None:
        """The delivery if it still waits for approval (to show its preview again)."""
        delivery = await self.store.delivery(delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.AWAITING:
            return None
        return delivery

    async def decide(self, user_id: int | None, delivery_id: int, action: str) -> Reply:
        """An editor's answer to an approval preview: post, skip, or delay1h."""
        if not self.allowed(user_id):
            log.warning("refused approval action from user %s", escape_log(user_id))
            return Reply("You are not allowed to approve posts.", ok=False)
        assert user_id is not None
        note = {"post": "approved", "skip": "skipped", "delay1h": "delayed 1h"}.get(action)
        if note is None:
            return Reply(f"Unknown action {action!r}", ok=False)
        note = f"{note} by {user_id}"
        try:
            if action == "post":
                await self.store.approve(delivery_id, note, priority=1)
                self.wake()
            elif action == "skip":
                await self.store.decline(delivery_id, note)
            else:
                await self.store.approve(delivery_id, note, not_before=time.time() + 3600)
        except IllegalTransition as exc:
            reply = refusal(exc)
        else:
            reply = Reply(
                {"post": "Posting now.", "skip": "Skipped.", "delay1h": "Delayed by one hour."}[
                    action
                ]
            )
        await self._record(user_id, f"{action} #{delivery_id}", delivery_id)
        return reply

    async def edit_text(self, user_id: int | None, delivery_id: int, text: str) -> Reply:
        """Replace an awaiting post's text; it must still carry the article link."""
        if not self.allowed(user_id):
            return Reply("You are not allowed to edit posts.", ok=False)
        delivery = await self.store.delivery(delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.AWAITING:
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
        await self.store.update_payload(delivery_id, edited)
        await self._record(user_id or 0, f"edited #{delivery_id}", delivery_id)
        return Reply("Text updated. Press Post now to publish it.")
