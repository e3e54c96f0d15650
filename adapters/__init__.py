"""Platform adapters: one module or package per platform, found by name.

A new platform `<name>` is:

1. `adapters/<name>.py`, or a package `adapters/<name>/` when it has helpers of its own (the
   way Instagram keeps its image rules in adapters/instagram/images.py). Names starting with
   `_` are private helpers shared by platforms, not platforms (adapters/_graph.py is the Graph
   API client of Facebook, Instagram and Threads; adapters/_cards.py draws the image cards of
   Instagram, Threads and Bluesky); `base` is the base class.
2. A `Settings` model: a subclass of `bot.targets.TargetSettings` with the platform's fields
   (`api_base` with the real API's URL as default: it must stay configurable, tests point it at
   the stand-in), every credential a `bot.secrets.SecretRef` (resolved values arrive in
   `secrets`, a dict of `Secret`, by field name; never log them).
3. An `adapters.base.Adapter` subclass with `platform`, `Settings`, `hyperlinks` (can a post
   carry a clickable link?) and `idempotent` (does the platform honour a client-chosen key?),
   and `ADAPTER = <the class>` at module level. Its constructor is
   `(settings, secrets, outlet, *, fetch_image=None)`: core services come in as keyword
   arguments (`fetch_image` downloads an article image through the core's guarded client),
   never as attributes set afterwards. The base owns the constructor: put per-instance state
   (lazily made clients, locks) in `init_state()`, which it calls.
   - `render(article) -> RenderedPost`: pure, within the platform's limits as the platform
     counts them, with the article link (a hyperlink where the platform has them). Use
     `self.render_template(article, dialect)` when `settings.template` is set and
     `self.hashtags_for(article)` for hashtags. The core checks every render with
     `bot.render.render_for`; a post without the link never leaves.
   - `measure(post) -> PostLength`: pure; the post's length as the platform counts it against
     its limit (`self.measure_in(dialect, post)` for a Dialect). The desk re-checks an
     editor's edited text with it and previews show it.
   - `send(post, *, idempotency_key=None) -> SentPost`: I/O; failures raise bot.outcomes:
     AuthFailure (credentials refused), RetryLater(wait) (rate limits), TemporaryFailure (not
     sent: 5xx, connection refused), PermanentFailure (refused for good), UncertainDelivery
     (may have been sent: timeout or cut connection after the request went out).
     Or, instead of send, the two steps: `prepare(post, ctx)` (all that publishes nothing:
     start-up calls, pacing, quotas, uploads; progress saved with `ctx.save_progress`) and
     `publish(post, ctx)` (the one publishing request); the base's send runs them in turn.
   - optional: `check()` (cheap read-only probe), `edit(remote_id, post)`,
     `delete(remote_id)`, `cost(post)` (money per post), `aclose()`.
   - A platform library (python-telegram-bot, tweepy) is imported at the target's first
     call, not at start-up: keep its calls in a module of the package (adapters/telegram/
     bot_api.py, adapters/x/tweepy_api.py) that maps its errors into bot.outcomes, name it in
     `deferred_imports` (check-config imports it) and load it with `import_deferred`.
4. A stand-in `standins/<name>.py`: the platform's API on 127.0.0.1 with its real limits and
   error shapes, and a `HARNESS` implementing standins/contract.py's `Harness`. Then
   tests/test_contract.py runs the shared contract (link, hostile text, 401/429/refused/timeout,
   edit/delete) over the platform by itself; platform-specific tests go in tests/test_<name>.py.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapters.base import Adapter


def available_platforms() -> list[str]:
    """Every platform module or package here (base and `_` private helpers excluded)."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules(__path__)
        if m.name != "base" and not m.name.startswith("_")
    )


def adapter_class(platform: str) -> type[Adapter]:
    """The Adapter class for `platform`, or ValueError naming the platforms there are."""
    if platform not in available_platforms():
        raise ValueError(
            f"unknown platform {platform!r}; available: {', '.join(available_platforms())}"
        )
    module = importlib.import_module(f"adapters.{platform}")
    return module.ADAPTER
