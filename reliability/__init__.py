"""Reliability experiments: each module runs one on loopback (real processes, real HTTP, real
databases) and returns its figures; the tests run them small and assert on the figures, and
`python -m reliability` runs them larger and writes docs/reliability.md.

Contract for a module here: `run(**size) -> dict[str, Any]` (a coroutine function or a plain
function), JSON-serialisable figures, plus `table_rows(figures) -> list[tuple[str, str]]`
giving (measure, value) rows for the report.
"""
