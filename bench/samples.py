"""The polling benchmark's samples: one JSON line per finished child run, appended (and
fsynced) the moment the child ends, so a crash or a kill mid-benchmark loses nothing; a
restarted run reads the file and skips what is already there.

Line kinds:
- {"kind": "plan", "sizes": [...], "layouts": [...], "runs": N, "peers": [...]}: written at
  the start of each invocation; the last one is what the report counts runs against.
- {"kind": "poll", "feeds", "hosts", "peer", "run", ...}: one run of one peer, with its
  figures, or with "failed": why (a timeout, an exit status, polls that did not succeed).
- {"kind": "big", "entries", ...}: the one-feed case, likewise.
- {"kind": "daemon", "how", "run", "rss_mb"}: start-up memory with a typical config
  (bench.daemon), likewise.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

Sample = dict[str, Any]
FIGURES = (
    ("cycle1_cpu_s", ("cycle1", "cpu_s")),
    ("cycle1_wall_s", ("cycle1", "wall_s")),
    ("cycle2_cpu_s", ("cycle2", "cpu_s")),
    ("cycle2_wall_s", ("cycle2", "wall_s")),
    ("started_mb", ("started_mb",)),
    ("peak_mb", ("peak_mb",)),
)


def key(sample: Sample) -> tuple[Any, ...]:
    """What makes a sample the same run as another (a restarted run skips it)."""
    if sample["kind"] == "big":
        return ("big", sample["entries"])
    if sample["kind"] == "daemon":
        return ("daemon", sample["how"], sample["run"])
    return ("poll", sample["feeds"], sample["hosts"], sample["peer"], sample["run"])


def load(path: Path) -> list[Sample]:
    """Every complete line of `path` (none if it does not exist). A line cut short by a kill
    mid-write is skipped: its run simply counts as not done."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "kind" in row:
            rows.append(row)
    return rows


def append(path: Path, sample: Sample) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(sample) + "\n")
        out.flush()
        os.fsync(out.fileno())


def done(samples: list[Sample], retry_failed: bool = False) -> set[tuple[Any, ...]]:
    """Keys a restarted run skips: every finished run, or only the successful ones."""
    return {
        key(s) for s in samples if s["kind"] != "plan" and not (retry_failed and s.get("failed"))
    }


def latest(samples: list[Sample]) -> dict[tuple[Any, ...], Sample]:
    """One sample per key: a success wins over a failure, a later one over an earlier one."""
    out: dict[tuple[Any, ...], Sample] = {}
    for sample in samples:
        if sample["kind"] == "plan":
            continue
        here = out.get(key(sample))
        if here is None or not sample.get("failed") or here.get("failed"):
            out[key(sample)] = sample
    return out


def plan(samples: list[Sample]) -> Sample | None:
    plans = [s for s in samples if s["kind"] == "plan"]
    return plans[-1] if plans else None


def _value(sample: Sample, path: tuple[str, ...]) -> float:
    value: Any = sample
    for part in path:
        value = value[part]
    return float(value)


def summarise(samples: list[Sample], expected_runs: int | None = None) -> list[dict[str, Any]]:
    """Per (feeds, hosts), ascending, and per peer: medians of the successful runs, how many
    there are against how many were planned, and why the others failed.

    A (size, layout) of the last plan with no sample yet is listed too (every peer "not run"),
    so a partial file's report shows what is missing."""
    chosen = latest(samples)
    last_plan = plan(samples)
    runs = expected_runs or (last_plan["runs"] if last_plan else 1)
    peers: list[str] = list(last_plan["peers"]) if last_plan else []
    cells: set[tuple[int, int]] = set()
    if last_plan:
        cells |= {(f, h) for f in last_plan["sizes"] for h in last_plan["layouts"]}
    for sample in chosen.values():
        if sample["kind"] == "poll":
            cells.add((sample["feeds"], sample["hosts"]))
            if sample["peer"] not in peers:
                peers.append(sample["peer"])
    rows = []
    for feeds, hosts in sorted(cells):
        row: dict[str, Any] = {"feeds": feeds, "hosts": hosts, "runs": runs}
        for peer in peers:
            mine = [
                s
                for s in chosen.values()
                if s["kind"] == "poll"
                and (s["feeds"], s["hosts"], s["peer"]) == (feeds, hosts, peer)
            ]
            good = sorted((s for s in mine if not s.get("failed")), key=lambda s: s["run"])
            summary: dict[str, Any] = {
                "runs": len(good),
                "planned": max([runs, *(s["run"] for s in mine)]),
                "failures": [s["failed"] for s in mine if s.get("failed")],
                "samples": good,
            }
            if good:
                for name, path in FIGURES:
                    summary[name] = statistics.median(_value(s, path) for s in good)
            workers = sorted({s["reader_workers"] for s in good if "reader_workers" in s})
            if workers:
                summary["reader_workers"] = workers
            row[peer] = summary
        rows.append(row)
    return rows


def big(samples: list[Sample]) -> Sample | None:
    """The newest big-feed sample (a success before a failure)."""
    found = [s for k, s in latest(samples).items() if k[0] == "big"]
    return found[-1] if found else None
