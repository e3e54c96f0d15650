"""newsbot core: sources, articles, rules, outbox and dispatch. Knows no platform."""

__version__ = "0.1.0"
