"""Instagram shares the Graph stand-in (standins/graph.py); this names its contract harness."""

from standins.graph import InstagramHarness as HARNESS

__all__ = ["HARNESS"]
