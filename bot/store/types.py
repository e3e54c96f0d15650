"""What the store hands out and takes in: delivery statuses and their one transition table,
the moves between them, and the row types. Pure: no database here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.models import Article, RenderedPost


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting to be sent (possibly backing off)
    PREPARING = "preparing"  # claimed; steps that publish nothing (pacing, uploads) under way
    SENDING = "sending"  # the one publishing request may be in flight
    SENT = "sent"
    FAILED = "failed"  # rejected or out of attempts; an editor may requeue it
    UNCERTAIN = "uncertain"  # may or may not have been posted: an editor decides, never resent
    BACKLOG = "backlog"  # recorded on a first run, deliberately not posted
    SKIPPED = "skipped"  # an editor, a rule or a takedown decided not to post
    AWAITING = "awaiting"  # waiting for an editor's approval


class Move(StrEnum):
    """The named operations that change a delivery's status (one Store method each)."""

    CLAIM = "claim"  # the dispatcher takes the due head of a target's queue
    PUBLISH = "publish"  # preparation done: the one publishing request is next
    RESUME = "resume"  # its lease ran out where a resend is safe (nothing published yet, or
    # an idempotent platform given the same key): back to the queue, progress kept
    CONFIRM_SENT = "confirm sent"  # a read-back of the platform found the post
    CONFIRM_ABSENT = "confirm absent"  # a read-back says it certainly was not posted
    MARK_SENT = "mark sent"
    EDITOR_MARKS_SENT = "mark sent by editor"  # /sent ID: an editor checked the channel
    RETRY_LATER = "retry later"  # back to the queue: rate limit, backoff, paused target, timing
    DROP = "drop"  # the target's timing rules say this post is no longer worth sending
    FAIL = "fail"
    FLAG_UNCERTAIN = "flag uncertain"  # no clear answer from the platform
    EXPIRE_LEASE = "expire"  # its lease ran out: the sender died mid-send
    APPROVE = "approve"  # an editor (or the rule's default) lets an awaiting post go
    DECLINE = "decline"  # an editor (or the rule's default) answers an approval with no
    SKIP = "skip"  # an editor or a takedown stops a post that has not gone out
    REQUEUE = "requeue"  # an editor sends a failed or uncertain post again (/retry)
    RESCHEDULE = "reschedule"  # a pending post gets a new not-before time
    REVIVE = "revive"  # /post URL: a skipped or backlog post goes to the queue
    RESUBMIT = "resubmit"  # /post URL: ... or back to approval when its rule asks for it

    @property
    def phrase(self) -> str:
        """The move said of one delivery: "skip it", "mark it sent"."""
        verb, _, rest = self.value.partition(" ")
        return f"{verb} it {rest}".rstrip()


_S = DeliveryStatus

# The one transition table: status -> {move: next status}. A move is legal only from the
# statuses listed here; each Store operation derives its "WHERE status IN (...)" from it.
TRANSITIONS: dict[DeliveryStatus, dict[Move, DeliveryStatus]] = {
    _S.PENDING: {Move.CLAIM: _S.PREPARING, Move.SKIP: _S.SKIPPED, Move.RESCHEDULE: _S.PENDING},
    # Nothing is published while preparing: any failure, or a lapsed lease, is a plain retry.
    _S.PREPARING: {
        Move.PUBLISH: _S.SENDING,
        Move.RETRY_LATER: _S.PENDING,
        Move.DROP: _S.SKIPPED,
        Move.FAIL: _S.FAILED,
        Move.RESUME: _S.PENDING,
    },
    _S.SENDING: {
        Move.MARK_SENT: _S.SENT,
        Move.RETRY_LATER: _S.PENDING,
        Move.DROP: _S.SKIPPED,
        Move.FAIL: _S.FAILED,
        Move.FLAG_UNCERTAIN: _S.UNCERTAIN,
        Move.EXPIRE_LEASE: _S.UNCERTAIN,
        Move.RESUME: _S.PENDING,
        Move.CONFIRM_SENT: _S.SENT,
    },
    _S.AWAITING: {Move.APPROVE: _S.PENDING, Move.DECLINE: _S.SKIPPED, Move.SKIP: _S.SKIPPED},
    # A sender whose lease ran out may still learn that the post went out: that settles it.
    _S.UNCERTAIN: {
        Move.REQUEUE: _S.PENDING,
        Move.SKIP: _S.SKIPPED,
        Move.MARK_SENT: _S.SENT,
        Move.CONFIRM_SENT: _S.SENT,
        Move.CONFIRM_ABSENT: _S.PENDING,
        Move.EDITOR_MARKS_SENT: _S.SENT,
    },
    _S.FAILED: {Move.REQUEUE: _S.PENDING, Move.SKIP: _S.SKIPPED},
    # A skipped or backlog post comes back only through /post URL (never /retry).
    _S.SKIPPED: {Move.REVIVE: _S.PENDING, Move.RESUBMIT: _S.AWAITING},
    _S.SENT: {},
    _S.BACKLOG: {Move.REVIVE: _S.PENDING, Move.RESUBMIT: _S.AWAITING},
}


def allowed_next(status: DeliveryStatus) -> set[DeliveryStatus]:
    """The statuses a delivery in `status` may move to."""
    return set(TRANSITIONS[status].values())


def move_sources(move: Move) -> list[DeliveryStatus]:
    """The statuses `move` may start from (in table order)."""
    return [status for status, moves in TRANSITIONS.items() if move in moves]


def move_target(move: Move) -> DeliveryStatus:
    """The status `move` leads to (the same from every status it may start from)."""
    (target,) = {moves[move] for moves in TRANSITIONS.values() if move in moves}
    return target


class IllegalTransition(Exception):
    """A move the transition table does not allow from the delivery's current status (or a
    delivery that does not exist: `current` is None)."""

    def __init__(self, delivery_id: int, current: DeliveryStatus | None, move: Move) -> None:
        self.delivery_id = delivery_id
        self.current = current
        self.move = move
        self.wanted = move_target(move)
        if current is None:
            message = f"delivery {delivery_id} does not exist; cannot {move.phrase}"
        else:
            message = f"delivery {delivery_id} is {current}; cannot {move.phrase}"
        super().__init__(message)


@dataclass(frozen=True)
class Delivery:
    id: int
    article_id: int
    target: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float
    post: RenderedPost
    priority: int
    rule: str | None
    sort_key: float
    remote_id: str | None
    remote_url: str | None
    last_error: str | None
    created_at: float
    sent_at: float | None
    updated_at: float
    #: What the adapter's prepare() saved (an Instagram container, an X media id): a restart
    #: resumes from it.
    progress: dict[str, Any] = field(default_factory=dict)
    #: Stable for the delivery's life: a resend with it cannot post twice where honoured.
    idempotency_key: str = ""

    @classmethod
    def from_row(cls, row: Any) -> Delivery:
        return cls(
            id=row.id,
            article_id=row.article_id,
            target=row.target,
            status=DeliveryStatus(row.status),
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            post=RenderedPost.from_json(json.loads(row.payload)),
            priority=row.priority,
            rule=row.rule,
            sort_key=row.sort_key,
            remote_id=row.remote_id,
            remote_url=row.remote_url,
            last_error=row.last_error,
            created_at=row.created_at,
            sent_at=row.sent_at,
            updated_at=row.updated_at,
            progress=json.loads(row.progress) if row.progress else {},
            idempotency_key=row.idempotency_key or f"newsbot-{row.id}",
        )


@dataclass(frozen=True)
class Claim:
    """What a claim took (None: nothing was due, or another replica took it) and whether
    another delivery of the same target was due behind it."""

    delivery: Delivery | None
    more_due: bool


@dataclass(frozen=True)
class NewDelivery:
    """An outbox row to create with its article (see Store.add_article_with_deliveries)."""

    post: RenderedPost
    status: DeliveryStatus = DeliveryStatus.PENDING
    sort_key: float | None = None
    priority: int = 0
    rule: str | None = None
    error: str | None = None  # set with status FAILED: why it cannot be posted


@dataclass(frozen=True, slots=True)  # slotted: one per source, kept for every poll
class SourceState:
    name: str
    etag: str | None = None
    last_modified: str | None = None
    initialized: bool = False
    failures: int = 0


@dataclass(frozen=True)
class StoredArticle:
    id: int
    article: Article
    retracted: bool

    @classmethod
    def from_row(cls, row: Any) -> StoredArticle:
        return cls(row.id, Article.from_json(json.loads(row.data)), bool(row.retracted))
