"""A circuit breaker per target: a platform that keeps failing is left alone for a while.

Closed: posts flow. After `threshold` failures in a row (or one uncertain outcome, which means
the platform stopped answering mid-send) it opens: nothing is sent to that target until a
cooldown has passed, the cooldown growing with each failed recovery (exponential, jittered,
capped). Then it is half-open: one health check (or, for an adapter without one, one post) decides
whether it closes again. Pure state, no I/O: the dispatcher drives it with the clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

State = Literal["closed", "open", "half-open"]


def jittered(base: float, cap: float, step: int, rng: random.Random | None = None) -> float:
    """`base * 2**step`, capped, with "equal jitter": half fixed, half random."""
    exp = min(cap, base * (2 ** max(0, step)))
    return exp / 2 + (rng or random).random() * exp / 2


@dataclass
class Circuit:
    threshold: int = 3
    cooldown_base: float = 10.0
    cooldown_max: float = 300.0
    failures: int = 0  # consecutive failures while closed
    trips: int = 0  # openings since the last success: drives the cooldown growth
    open_until: float = 0.0
    opened_at: float | None = None  # start of the current outage, for the recovery note
    last_error: str = ""
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def state(self, now: float) -> State:
        if self.trips == 0:
            return "closed"
        return "open" if now < self.open_until else "half-open"

    def allows(self, now: float) -> bool:
        return self.state(now) != "open"

    def success(self, now: float) -> float | None:
        """Record a success; returns the outage length if this closed an open circuit."""
        outage = None
        if self.trips and self.opened_at is not None:
            outage = max(0.0, now - self.opened_at)
        self.failures = 0
        self.trips = 0
        self.open_until = 0.0
        self.opened_at = None
        return outage

    def failure(self, now: float, error: str, *, at_least: float = 0.0, trip: bool = False) -> bool:
        """Record a failure. Returns True when this failure opened the circuit (first time).

        `at_least`: the platform asked us to wait this long (429 retry-after); `trip`: open at
        once (an uncertain outcome). A failure while half-open re-opens with a longer cooldown.
        """
        self.last_error = error
        first_trip = self.trips == 0
        if first_trip:
            self.failures += 1
            if not trip and self.failures < self.threshold:
                return False
        cooldown = jittered(self.cooldown_base, self.cooldown_max, self.trips, self.rng)
        self.trips += 1
        self.open_until = now + max(cooldown, at_least)
        if self.opened_at is None:
            self.opened_at = now
        return first_trip
