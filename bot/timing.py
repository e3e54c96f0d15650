"""When a post may go: publication delay, quiet hours, daily caps, spacing. Pure.

All clock reasoning happens in the newsroom's time zone (zoneinfo), so quiet hours that
cross midnight and days with a DST change behave as an editor reading a wall clock expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.config_types import parse_duration


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: time = Field(description="local time quiet hours begin, e.g. 23:00")
    end: time = Field(description="local time they end, e.g. 07:00 (may be the next day)")


class Timing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Wait this long after publication, so editors can fix typos first.
    delay: float = 0.0
    #: At least this long between two posts to the target.
    min_spacing: float = 0.0
    quiet_hours: QuietHours | None = None
    #: Posts older than this when they could finally go are dropped (0: never).
    max_age: float = 0.0
    #: At most this many posts per local day (0: no cap).
    daily_cap: int = Field(default=0, ge=0)
    #: At most this much money per local day, in the adapter's cost units (0: no budget).
    daily_budget: float = Field(default=0.0, ge=0)
    #: What to do with a post over the daily cap or budget: wait for tomorrow, or drop it.
    over_cap: Literal["wait", "drop"] = "wait"

    _durations = field_validator("delay", "min_spacing", "max_age", mode="before")(parse_duration)


@dataclass(frozen=True)
class Decision:
    action: Literal["send", "wait", "drop"]
    at: datetime | None = None  # for "wait": not before this moment
    reason: str = ""


SEND = Decision("send")


def in_quiet_hours(local: datetime, quiet: QuietHours) -> bool:
    now = local.time().replace(tzinfo=None)
    if quiet.start <= quiet.end:
        return quiet.start <= now < quiet.end
    return now >= quiet.start or now < quiet.end  # crosses midnight


def quiet_hours_end(local: datetime, quiet: QuietHours, tz: ZoneInfo) -> datetime:
    """The next wall-clock moment the quiet period ends, as an aware datetime."""
    day = local.date()
    for offset in (0, 1):
        candidate = datetime.combine(day + timedelta(days=offset), quiet.end, tzinfo=tz)
        # A wall time that a DST jump skips resolves forward (fold=0 maps it after the gap).
        if candidate > local:
            return candidate
    return datetime.combine(day + timedelta(days=2), quiet.end, tzinfo=tz)


def next_local_midnight(local: datetime, tz: ZoneInfo) -> datetime:
    return datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=tz)


def local_midnight(local: datetime, tz: ZoneInfo) -> datetime:
    return datetime.combine(local.date(), time(0), tzinfo=tz)


def decide(
    now: datetime,
    timing: Timing,
    tz: ZoneInfo,
    *,
    published: datetime | None,
    breaking: bool = False,
    last_sent: datetime | None = None,
    sent_today: int = 0,
    spent_today: float = 0.0,
    cost: float = 0.0,
) -> Decision:
    """Whether a post may go now, must wait (until when), or is dropped."""
    local = now.astimezone(tz)
    if timing.max_age and published and (now - published).total_seconds() > timing.max_age:
        return Decision("drop", reason=f"older than max_age {timing.max_age:g}s")
    if not breaking:
        if timing.delay and published:
            ready = published + timedelta(seconds=timing.delay)
            if ready > now:
                return Decision("wait", ready, "publication delay")
        if timing.quiet_hours and in_quiet_hours(local, timing.quiet_hours):
            return Decision("wait", quiet_hours_end(local, timing.quiet_hours, tz), "quiet hours")
    over = ""
    if timing.daily_cap and sent_today >= timing.daily_cap:
        over = f"daily cap of {timing.daily_cap} posts reached"
    elif timing.daily_budget and spent_today + cost > timing.daily_budget + 1e-9:
        over = f"daily budget of {timing.daily_budget:g} reached ({spent_today:g} spent)"
    if over:
        if timing.over_cap == "drop":
            return Decision("drop", reason=over)
        return Decision("wait", next_local_midnight(local, tz), over)
    if timing.min_spacing and last_sent:
        ready = last_sent + timedelta(seconds=timing.min_spacing)
        if ready > now:
            return Decision("wait", ready, "minimum spacing")
    return SEND
