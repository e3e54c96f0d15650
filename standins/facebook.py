"""Facebook shares the Graph stand-in (standins/graph.py); this names its contract harness."""

from standins.graph import FacebookHarness as HARNESS

__all__ = ["HARNESS"]
