"""newsbot core: sources, articles, rules, outbox and dispatch. Knows no platform."""

import os

# python-telegram-bot 22 warns on every flood-control error that retry_after will become a
# timedelta; opt in now (our code reads both forms) so logs stay clean.
os.environ.setdefault("PTB_TIMEDELTA", "1")

__version__ = "0.1.0"
