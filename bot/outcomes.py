"""How an adapter reports a failed send. The dispatcher maps each kind to an outbox state.

Adapters raise these; the core never looks at platform error codes itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class DeliveryError(Exception):
    """Base: the post was not (known to be) delivered."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryLater(DeliveryError):
    """Not sent; the platform asked us to wait (rate limit, flood control). Not a failed try."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(0.0, float(retry_after))


class TemporaryFailure(DeliveryError):
    """Not sent (5xx, connection refused, ...): retry with backoff, counting the attempt."""


class PermanentFailure(DeliveryError):
    """Rejected for good (bad request, duplicate content): do not retry."""


class AuthFailure(DeliveryError):
    """Credentials rejected or revoked: pause the whole target and alert, do not burn retries."""


class UncertainDelivery(DeliveryError):
    """The request may have reached the platform (timeout after sending, connection reset).

    Never resent automatically: an editor decides.
    """


class CannotTell(Exception):
    """A read-back (Adapter.find_published) could not decide whether a post went out; the
    message says which check was tried and why it did not decide."""


class SetupStatus(Enum):
    OK = "OK"
    FAILED = "FAILED"
    #: Not asked: the platform has no such call, or asking costs money and was not opted in.
    SKIPPED = "SKIPPED"


@dataclass(frozen=True)
class SetupCheck:
    """The platform's answer about one target or editors' chat: does the setup work?"""

    name: str
    status: SetupStatus
    detail: str

    @property
    def failed(self) -> bool:
        return self.status is SetupStatus.FAILED

    def __str__(self) -> str:
        return f"{self.status.value:<7} {self.name}: {self.detail}"
