"""Local stand-ins for the platforms' APIs, for the demo and the tests. Loopback only.

`standins.<platform>` exposes `create_app(state) -> Starlette` and a `State` class that records
what was posted and lets a test inject faults, and `HARNESS`: the platform's side of the shared
contract test (standins/contract.py). Facebook and Instagram share standins/graph.py; their
modules here only name its harnesses.
"""
