"""The outbox: one row per (article, target), moved between statuses only by the named
operations below, each an atomic UPDATE guarded by the transition table (bot.store.types)."""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from bot.models import RenderedPost
from bot.store.aio import Connection, Result, in_list
from bot.store.base import StoreBase
from bot.store.events import DECISION, PREVIEWED, add_event
from bot.store.schema import DELIVERY_COLUMNS
from bot.store.types import (
    Claim,
    Delivery,
    DeliveryStatus,
    IllegalTransition,
    Move,
    NewDelivery,
    move_sources,
    move_target,
)

#: The statuses of a claimed delivery (it holds a lease).
IN_HAND = (DeliveryStatus.PREPARING, DeliveryStatus.SENDING)

# The order a target's queue goes out in: breaking first, then publication order.
QUEUE_ORDER = "priority DESC, sort_key ASC, id ASC"

_SELECT_DELIVERIES = f"SELECT {DELIVERY_COLUMNS} FROM deliveries"
_SENT = str(DeliveryStatus.SENT)
_AWAITING = str(DeliveryStatus.AWAITING)
_UNCERTAIN = str(DeliveryStatus.UNCERTAIN)


def _like_escaped(text: str) -> str:
    """`text` matched literally by LIKE ... ESCAPE '/'."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


@dataclass(frozen=True)
class Computed:
    """A value a move computes from the row itself (SQL over its columns)."""

    sql: str


#: The computed values a move may set.
ONE_MORE_ATTEMPT = Computed("attempts + 1")
ONE_FEWER_ATTEMPT = Computed("attempts - 1")

_INSERT_DELIVERY = (
    "INSERT INTO deliveries (article_id, target, status, attempts, next_attempt_at, sort_key, "
    "priority, rule, payload, last_error, idempotency_key, created_at, updated_at) VALUES "
    "(:article_id, :target, :status, 0, :now, :sort_key, :priority, :rule, :payload, "
    ":last_error, :idempotency_key, :now, :now) RETURNING id"
)


def insert_deliveries(
    conn: Connection, article_id: int, planned: Sequence[NewDelivery], now: float
) -> list[int]:
    """The one way outbox rows are created (inside the article's transaction). Returns their
    ids in `planned` order; a second row for the same (article, target) raises IntegrityError."""
    ids = []
    for item in planned:
        result = conn.execute(
            _INSERT_DELIVERY,
            {
                "article_id": article_id,
                "target": item.post.target,
                "status": str(item.status),
                "now": now,
                "sort_key": item.sort_key if item.sort_key is not None else now,
                "priority": item.priority,
                "rule": item.rule,
                "payload": json.dumps(item.post.to_json(), ensure_ascii=False),
                "last_error": item.error,
                "idempotency_key": secrets.token_hex(16),
            },
        )
        ids.append(int(result.scalar()))
    return ids


def abandoned_report(delivery: Delivery) -> str:
    """What editors are told about a delivery its sender left mid-send."""
    return (
        f"delivery {delivery.id} of {delivery.post.article_url} was being sent when its "
        "sender stopped; it may or may not be posted. Not resent: check and decide."
    )


class OutboxMixin(StoreBase):
    # Reads --------------------------------------------------------------------------------

    async def _select_deliveries(
        self,
        where: str = "",
        parameters: dict[str, Any] | None = None,
        order_by: str = "id",
        limit: int | None = None,
    ) -> list[Delivery]:
        """The one shape of "select deliveries": rows matching `where` (SQL), in order."""
        query = _SELECT_DELIVERIES + (f" WHERE {where}" if where else "") + f" ORDER BY {order_by}"
        parameters = dict(parameters or {})
        if limit is not None:
            query += " LIMIT :limit"
            parameters["limit"] = limit
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query, parameters)).all()
        return [Delivery.from_row(r) for r in rows]

    async def delivery(self, delivery_id: int) -> Delivery | None:
        found = await self._select_deliveries("id = :id", {"id": delivery_id})
        return found[0] if found else None

    async def deliveries_for_article(self, article_id: int) -> list[Delivery]:
        return await self._select_deliveries("article_id = :article_id", {"article_id": article_id})

    async def recent_deliveries(
        self, limit: int = 20, statuses: Sequence[DeliveryStatus] | None = None
    ) -> list[Delivery]:
        where, parameters = "", {}
        if statuses:
            listed, parameters = in_list("status", [str(s) for s in statuses])
            where = f"status IN {listed}"
        return await self._select_deliveries(
            where, parameters, order_by="updated_at DESC, id DESC", limit=limit
        )

    async def awaiting(self) -> list[Delivery]:
        return await self._select_deliveries("status = :status", {"status": _AWAITING})

    async def previews_due(self) -> list[Delivery]:
        """Deliveries awaiting approval whose preview has not reached the editors yet."""
        return await self._select_deliveries(
            "status = :status AND NOT EXISTS (SELECT 1 FROM events WHERE events.kind = "
            ":previewed AND events.delivery_id = deliveries.id)",
            {"status": _AWAITING, "previewed": PREVIEWED},
        )

    async def queue(self, limit: int = 50) -> list[Delivery]:
        """Deliveries not yet settled, in the order they will go."""
        unsettled = [
            DeliveryStatus.PENDING,
            DeliveryStatus.PREPARING,
            DeliveryStatus.SENDING,
            DeliveryStatus.AWAITING,
        ]
        listed, parameters = in_list("status", [str(s) for s in unsettled])
        return await self._select_deliveries(
            f"status IN {listed}", parameters, order_by=f"target, {QUEUE_ORDER}", limit=limit
        )

    async def _sent_since(self, column: str, target: str, since: float) -> list[Any]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                f"SELECT {column} FROM deliveries "
                "WHERE target = :target AND status = :sent AND sent_at >= :since",
                {"target": target, "sent": _SENT, "since": since},
            )
        return result.scalars()

    async def posts_sent_since(self, target: str, since: float) -> list[RenderedPost]:
        payloads = await self._sent_since("payload", target, since)
        return [RenderedPost.from_json(json.loads(payload)) for payload in payloads]

    async def progress_sent_since(self, target: str, since: float) -> list[dict[str, Any]]:
        """The stored progress of the target's deliveries sent since `since` (billed reads)."""
        found = await self._sent_since("progress", target, since)
        return [json.loads(progress) if progress else {} for progress in found]

    async def last_sent_at(self, target: str) -> float | None:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    "SELECT max(sent_at) FROM deliveries WHERE target = :target AND status = :sent",
                    {"target": target, "sent": _SENT},
                )
            ).scalar()

    async def sent_count_since(self, target: str, since: float) -> int:
        in_hand, parameters = in_list("in_hand", [str(s) for s in IN_HAND])
        parameters |= {"target": target, "sent": _SENT, "since": since}
        async with self.engine.connect() as conn:
            return int(
                (
                    await conn.execute(
                        "SELECT count(*) FROM deliveries WHERE target = :target AND ("
                        f"(status = :sent AND sent_at >= :since) OR status IN {in_hand})",
                        parameters,
                    )
                ).scalar()
            )

    async def update_payload(self, delivery_id: int, post: RenderedPost) -> None:
        await self._write(
            "UPDATE deliveries SET payload = :payload, updated_at = :now WHERE id = :id",
            {
                "payload": json.dumps(post.to_json(), ensure_ascii=False),
                "now": time.time(),
                "id": delivery_id,
            },
        )

    # Moves ----------------------------------------------------------------------------------
    # Each runs whole in one write transaction (AsyncEngine.transaction), by the synchronous
    # functions at the end of this module.

    async def _apply(
        self,
        delivery_id: int,
        move: Move,
        decision: str | None = None,
        kind: str = DECISION,
        **values: Any,
    ) -> None:
        """Apply `move`; with `decision` (who decided what), record it in the same
        transaction, so whoever reads the row's new status also finds who moved it there
        (two editors deciding at once: the loser is told the winner's decision)."""
        await self.engine.transaction(
            _apply_move, delivery_id, move, time.time(), decision, kind, values
        )

    async def claim_next(
        self, target: str, now: float, lease: float, claimer: str
    ) -> Delivery | None:
        """claim (pending -> preparing): atomically take the target's next DUE delivery
        (next_attempt_at <= now), in priority then publication order among the due ones.
        None if nothing is due.

        Preparing publishes nothing; `begin_publish` commits `sending` just before the one
        publishing request, so a crash there leaves evidence instead of a silent resend.
        """
        return (await self.claim_due(target, now, lease, claimer)).delivery

    async def claim_due(self, target: str, now: float, lease: float, claimer: str) -> Claim:
        """`claim_next`, also telling whether another delivery was due behind the claimed one:
        a drain that knows none was stops without a transaction that finds nothing."""
        return await self.engine.transaction(
            _claim, target, now, lease, claimer, not self.is_sqlite
        )

    async def mark_sent(self, delivery_id: int, remote_id: str, remote_url: str | None) -> None:
        """mark sent (sending, or uncertain after a lapsed lease -> sent)."""
        await self._apply(
            delivery_id,
            Move.MARK_SENT,
            remote_id=remote_id,
            remote_url=remote_url,
            sent_at=time.time(),
            last_error=None,
        )

    async def begin_publish(self, delivery_id: int, lease_until: float) -> None:
        """publish (preparing -> sending), committed before the one publishing request."""
        await self._apply(delivery_id, Move.PUBLISH, lease_until=lease_until)

    async def save_progress(self, delivery_id: int, progress: dict[str, Any]) -> None:
        """Store what a delivery's preparation achieved (no status change)."""
        await self._write(
            "UPDATE deliveries SET progress = :progress, updated_at = :now WHERE id = :id",
            {"progress": json.dumps(progress), "now": time.time(), "id": delivery_id},
        )

    async def confirm_sent(
        self, delivery_id: int, remote_id: str | None, remote_url: str | None, how: str
    ) -> None:
        """confirm sent (uncertain or sending -> sent): a read-back found the post; its event
        (kind "confirmed") says how, in the same commit."""
        await self._apply(
            delivery_id,
            Move.CONFIRM_SENT,
            how,
            "confirmed",
            remote_id=remote_id,
            remote_url=remote_url,
            sent_at=time.time(),
            last_error=None,
        )

    async def confirm_absent(self, delivery_id: int, how: str) -> None:
        """confirm absent (uncertain -> pending, due now): a read-back says it was not posted,
        so sending it is safe; its event (kind "absent") says how, in the same commit."""
        await self._apply(
            delivery_id,
            Move.CONFIRM_ABSENT,
            how,
            "absent",
            next_attempt_at=time.time(),
            last_error=how,
        )

    async def unchecked_uncertain(self) -> list[Delivery]:
        """Uncertain deliveries no read-back has been tried on since they were flagged."""
        found = await self._select_deliveries("status = :status", {"status": _UNCERTAIN})
        return [d for d in found if "read_back" not in d.progress]

    async def retry_later(
        self, delivery_id: int, at: float, error: str, *, count_attempt: bool = True
    ) -> None:
        """retry later (sending -> pending, due at `at`). `count_attempt=False` gives the
        claim's attempt back (rate limits, timing, a target known to be down)."""
        values: dict[str, Any] = {"next_attempt_at": at, "last_error": error}
        if not count_attempt:
            values["attempts"] = ONE_FEWER_ATTEMPT
        await self._apply(delivery_id, Move.RETRY_LATER, **values)

    async def drop(self, delivery_id: int, reason: str) -> None:
        """drop (sending -> skipped): the target's timing rules say it is not worth sending."""
        await self._apply(delivery_id, Move.DROP, last_error=reason)

    async def fail(self, delivery_id: int, error: str) -> None:
        """fail (sending -> failed)."""
        await self._apply(delivery_id, Move.FAIL, last_error=error)

    async def flag_uncertain(self, delivery_id: int, error: str, report: str) -> None:
        """flag uncertain (sending -> uncertain) and record the editors' report in the same
        commit, so no crash can leave an uncertain post nobody is told about."""
        await self.engine.transaction(_flag_uncertain, delivery_id, error, report, time.time())

    async def expire_leases(self, now: float, resend_safe: Collection[str] = ()) -> list[Delivery]:
        """Rows left claimed past their lease: their sender died.

        preparing -> pending (resume): nothing was published. sending on a target in
        `resend_safe` (an idempotent platform; the resend carries the same key) -> pending
        (resume). Any other sending row -> uncertain (expire): flag, never resend, with its
        `uncertain` event in the same commit. Returns the rows flagged (as they were)."""
        return await self.engine.transaction(_expire_leases, now, frozenset(resend_safe))

    async def approve(
        self,
        delivery_id: int,
        note: str,
        *,
        not_before: float | None = None,
        priority: int | None = None,
        decision: str | None = None,
        kind: str = DECISION,
    ) -> None:
        """approve (awaiting -> pending), due at `not_before` (default now). `decision`
        (here and below): who decided, recorded with the move (an event of `kind`)."""
        values: dict[str, Any] = {"next_attempt_at": not_before or time.time(), "last_error": note}
        if priority is not None:
            values["priority"] = priority
        await self._apply(delivery_id, Move.APPROVE, decision, kind, **values)

    async def decline(
        self, delivery_id: int, note: str, decision: str | None = None, kind: str = DECISION
    ) -> None:
        """decline (awaiting -> skipped): the answer to an approval request is no."""
        await self._apply(delivery_id, Move.DECLINE, decision, kind, last_error=note)

    async def skip(self, delivery_id: int, note: str, decision: str | None = None) -> None:
        """skip (pending, awaiting, failed or uncertain -> skipped); never a post in flight."""
        await self._apply(delivery_id, Move.SKIP, decision, last_error=note)

    async def requeue(self, delivery_id: int, note: str, decision: str | None = None) -> None:
        """requeue (failed, uncertain or skipped -> pending, due now)."""
        await self._apply(
            delivery_id, Move.REQUEUE, decision, next_attempt_at=time.time(), last_error=note
        )

    async def reschedule(self, delivery_id: int, at: float, decision: str | None = None) -> None:
        """reschedule (pending -> pending, due at `at`)."""
        await self._apply(delivery_id, Move.RESCHEDULE, decision, next_attempt_at=at)

    # The editors' desk ----------------------------------------------------------------------

    async def post_now(self, delivery_id: int, decision: str | None = None) -> None:
        """post now (pending -> pending, due now, breaking priority): an editor brings a
        delayed or scheduled post forward."""
        await self._apply(
            delivery_id, Move.RESCHEDULE, decision, next_attempt_at=time.time(), priority=1
        )

    async def revive(self, delivery_id: int, note: str, *, awaiting: bool) -> None:
        """revive (skipped or backlog -> pending, due now) or resubmit (... -> awaiting, when
        the rule asks for approval): `/post URL` for a post that was not sent."""
        await self.engine.transaction(_revive, delivery_id, note, awaiting, time.time())

    async def editor_marks_sent(
        self, delivery_id: int, remote_url: str | None, note: str, decision: str | None = None
    ) -> None:
        """editor marks sent (uncertain -> sent only: a post in flight is its sender's to
        settle); an editor checked the channel. The decision is recorded in the same commit.
        Raises IllegalTransition from any other status."""
        await self._apply(
            delivery_id,
            Move.EDITOR_MARKS_SENT,
            decision,
            remote_url=remote_url,
            sent_at=time.time(),
            last_error=note,
        )

    async def add_deliveries(self, article_id: int, planned: Sequence[NewDelivery]) -> list[int]:
        """Outbox rows for an article stored without them (recorded on a first run)."""
        return await self.engine.transaction(insert_deliveries, article_id, planned, time.time())

    async def find_deliveries(self, words: Sequence[str], limit: int = 10) -> list[Delivery]:
        """The latest deliveries whose post (text, link) contains every word (any case)."""
        conditions = [f"lower(payload) LIKE :word_{i} ESCAPE '/'" for i in range(len(words))]
        parameters = {
            f"word_{i}": f"%{_like_escaped(word.lower())}%" for i, word in enumerate(words)
        }
        return await self._select_deliveries(
            " AND ".join(conditions), parameters, order_by="id DESC", limit=limit
        )


# The write transactions, on the synchronous connection (run by AsyncEngine.transaction) ------


@functools.cache
def _move_statement(
    move: Move, bound: tuple[str, ...], computed: tuple[tuple[str, str], ...], returning: bool
) -> str:
    """The guarded UPDATE of `move` setting `bound` columns from `:new_<column>` parameters
    and `computed` ones from SQL; built once per shape."""
    sources = ", ".join(f"'{status}'" for status in move_sources(move))
    assignments = [f"{name} = :new_{name}" for name in bound]
    assignments += [f"{name} = {sql}" for name, sql in computed]
    statement = (
        f"UPDATE deliveries SET {', '.join(assignments)} "
        f"WHERE id = :moved_id AND status IN ({sources})"
    )
    return statement + f" RETURNING {DELIVERY_COLUMNS}" if returning else statement


def _execute_move(
    conn: Connection,
    delivery_id: int,
    move: Move,
    now: float,
    values: dict[str, Any],
    returning: bool = False,
) -> Result:
    """The guarded UPDATE of `move`: it changes the row only if the table allows the move from
    the row's current status. `values` may hold plain values and Computed ones."""
    values["status"] = str(move_target(move))
    values["updated_at"] = now
    if values["status"] not in IN_HAND:
        values.setdefault("lease_until", None)
    bound = {k: v for k, v in values.items() if not isinstance(v, Computed)}
    computed = tuple(sorted((k, v.sql) for k, v in values.items() if isinstance(v, Computed)))
    statement = _move_statement(move, tuple(sorted(bound)), computed, returning)
    parameters = {f"new_{k}": v for k, v in bound.items()}
    parameters["moved_id"] = delivery_id
    return conn.execute(statement, parameters)


def _try_move(conn: Connection, delivery_id: int, move: Move, now: float, **values: Any) -> bool:
    """Apply `move` if the table allows it from the row's current status (one atomic
    UPDATE). False if it does not, or the row is gone."""
    return bool(_execute_move(conn, delivery_id, move, now, values).rowcount == 1)


def _column_of(conn: Connection, delivery_id: int, column: str) -> Any:
    return conn.execute(
        f"SELECT {column} FROM deliveries WHERE id = :id", {"id": delivery_id}
    ).scalar()


def _move(conn: Connection, delivery_id: int, move: Move, now: float, **values: Any) -> None:
    """Apply `move` or raise IllegalTransition naming the row's current status."""
    if _try_move(conn, delivery_id, move, now, **values):
        return
    current = _column_of(conn, delivery_id, "status")
    raise IllegalTransition(
        delivery_id, DeliveryStatus(current) if current is not None else None, move
    )


def _event_for(
    conn: Connection, delivery_id: int, level: str, kind: str, text: str, now: float
) -> None:
    """An event about a delivery, naming its target."""
    target = _column_of(conn, delivery_id, "target")
    add_event(conn, level, kind, text, target, delivery_id, now)


def _apply_move(
    conn: Connection,
    delivery_id: int,
    move: Move,
    now: float,
    decision: str | None,
    kind: str,
    values: dict[str, Any],
) -> None:
    _move(conn, delivery_id, move, now, **values)
    if decision is not None:
        _event_for(conn, delivery_id, "info", kind, decision, now)


@functools.cache
def _due_statement(for_update: bool) -> str:
    sources = ", ".join(f"'{status}'" for status in move_sources(Move.CLAIM))
    # Only DUE rows compete: a post an editor delayed, one backing off or held by timing
    # never holds up the due posts behind it.
    query = (
        f"SELECT id FROM deliveries WHERE target = :due_target AND status IN ({sources}) "
        f"AND next_attempt_at <= :due_at ORDER BY {QUEUE_ORDER} LIMIT 2"
    )
    if for_update:  # replicas on PostgreSQL: each takes a row the others are not taking
        query += " FOR UPDATE SKIP LOCKED"
    return query


def _claim(
    conn: Connection, target: str, now: float, lease: float, claimer: str, for_update: bool
) -> Claim:
    due = conn.execute(_due_statement(for_update), {"due_target": target, "due_at": now})
    ids = due.scalars()
    if not ids:
        return Claim(None, more_due=False)
    values = {"attempts": ONE_MORE_ATTEMPT, "lease_until": now + lease, "claimed_by": claimer}
    row = _execute_move(conn, ids[0], Move.CLAIM, now, values, returning=True).first()
    if row is None:  # another replica took it first
        return Claim(None, more_due=False)
    return Claim(Delivery.from_row(row), more_due=len(ids) > 1)


def _flag_uncertain(
    conn: Connection, delivery_id: int, error: str, report: str, now: float
) -> None:
    raw = _column_of(conn, delivery_id, "progress")
    progress = {k: v for k, v in json.loads(raw or "{}").items() if k != "read_back"}
    _move(
        conn,
        delivery_id,
        Move.FLAG_UNCERTAIN,
        now,
        last_error=error,
        progress=json.dumps(progress),
    )
    _event_for(conn, delivery_id, "warning", "uncertain", report, now)


def _expire_leases(conn: Connection, now: float, resend_safe: frozenset[str]) -> list[Delivery]:
    flagged = []
    in_hand, parameters = in_list("in_hand", [str(s) for s in IN_HAND])
    rows = conn.execute(
        f"{_SELECT_DELIVERIES} WHERE status IN {in_hand} AND lease_until < :now ORDER BY id",
        parameters | {"now": now},
    ).all()
    for row in rows:
        delivery = Delivery.from_row(row)
        if delivery.status == DeliveryStatus.PREPARING or row.target in resend_safe:
            why = (
                "resumed: its sender stopped before publishing"
                if delivery.status == DeliveryStatus.PREPARING
                else "resent with the same idempotency key: its sender stopped while publishing"
            )
            if _try_move(conn, row.id, Move.RESUME, now, next_attempt_at=now, last_error=why):
                add_event(conn, "info", "resumed", why, row.target, row.id, now)
            continue
        progress = {k: v for k, v in delivery.progress.items() if k != "read_back"}
        expired = _try_move(
            conn,
            row.id,
            Move.EXPIRE_LEASE,
            now,
            progress=json.dumps(progress),
            last_error="the process stopped while sending; not resent "
            "(check the channel, then mark sent or retry)",
        )
        if not expired:  # its sender answered meanwhile
            continue
        report = abandoned_report(delivery)
        add_event(conn, "warning", "uncertain", report, row.target, row.id, now)
        flagged.append(delivery)
    return flagged


def _revive(conn: Connection, delivery_id: int, note: str, awaiting: bool, now: float) -> None:
    _move(
        conn,
        delivery_id,
        Move.RESUBMIT if awaiting else Move.REVIVE,
        now,
        next_attempt_at=now,
        priority=1,
        last_error=note,
        # A fresh approval: its timeout counts from now, and its preview is shown again.
        created_at=now,
    )
    if awaiting:
        conn.execute(
            "DELETE FROM events WHERE kind = :previewed AND delivery_id = :id",
            {"previewed": PREVIEWED, "id": delivery_id},
        )
