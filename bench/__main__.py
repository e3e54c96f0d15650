"""Run every benchmark and write docs/benchmarks.md: `python -m bench` (add --quick for a
smaller run). All traffic stays on 127.0.0.1 against the project's own stand-ins."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import article_cost, latency, polling

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
            ).stdout.strip()
            or "?"
        )
    except OSError:
        return "?"


def _polling_lines(polls: list[dict[str, Any]], big: dict[str, Any] | None) -> list[str]:
    lines = [
        "## Polling scale: newsbot against reader and a bare feedparser loop",
        "",
        "Cycle 1: every feed new (a cold start, or a newsroom adding its feeds). Cycle 2: most "
        f"feeds answer 304, {polling.NEW_ITEMS} carry a new item (newsbot also reads, extracts "
        "and records those articles; reader stores them; the bare loop only parses). Each peer "
        "runs in a fresh process; figures are medians of interleaved runs. newsbot runs with "
        "four targets (Telegram, X, Facebook, Instagram); reader with "
        f"{polling.READER_WORKERS} worker threads. `start` is RSS before the first poll.",
        "",
        "| feeds | hosts | runs | peer | cycle 1 CPU | cycle 1 wall | cycle 2 CPU | "
        "cycle 2 wall | start RSS | peak RSS |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in polls:
        for peer in polling.PEERS:
            if peer not in row:
                continue
            m = row[peer]
            lines.append(
                f"| {row['feeds']:,} | {row['hosts']} | {row['runs']} | {peer} | "
                f"{m['cycle1_cpu_s']:.2f} s | {m['cycle1_wall_s']:.2f} s | "
                f"{m['cycle2_cpu_s']:.2f} s | {m['cycle2_wall_s']:.2f} s | "
                f"{m['started_mb']:.0f} MB | {m['peak_mb']:.0f} MB |"
            )
    lines += [
        "",
        "### Goals",
        "",
        "| feeds | hosts | cycle 1 CPU / reader's (goal <= 1.0) | cycle 2 CPU / bare loop's "
        "(goal <= 1.5) | newsbot start RSS (goal < 70 MB) | newsbot peak RSS (goal < 150 MB "
        "at 30,000) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in polls:
        ours = row.get("newsbot")
        if ours is None:
            continue
        reader, bare = row.get("reader"), row.get("bare")
        one = f"{ours['cycle1_cpu_s'] / reader['cycle1_cpu_s']:.2f}×" if reader else "-"
        two = f"{ours['cycle2_cpu_s'] / bare['cycle2_cpu_s']:.2f}×" if bare else "-"
        lines.append(
            f"| {row['feeds']:,} | {row['hosts']} | {one} | {two} | "
            f"{ours['started_mb']:.0f} MB | {ours['peak_mb']:.0f} MB |"
        )
    if big is not None:
        lines += [
            "",
            f"### One feed of {big['entries']:,} entries (newsbot, one run)",
            "",
            "| poll | outcome | CPU | wall |",
            "| --- | --- | ---: | ---: |",
        ]
        names = {
            "first": "first poll (every entry new, recorded)",
            "not_modified": "again, with its ETag (304)",
            "unchanged_no_etag": "again, same body, no validators",
            "one_new": "one new entry (the body changed)",
        }
        for step, label in names.items():
            m = big[step]
            lines.append(f"| {label} | {m['outcome']} | {m['cpu_s']:.2f} s | {m['wall_s']:.2f} s |")
        lines += ["", f"Peak RSS: {big['peak_mb']:.0f} MB. Goal: under 10 s CPU when it changes."]
    return [*lines, ""]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmarks `args` choose; their raw figures."""
    sizes = (1000,) if args.quick else tuple(int(n) for n in args.sizes.split(","))
    runs = 1 if args.quick else args.runs
    figures: dict[str, Any] = {"cost": None, "lat": None, "polls": [], "big": None}
    if not args.polling_only:
        print("per-article cost ...", flush=True)
        figures["cost"] = article_cost.run()
        print("latency ...", flush=True)
        figures["lat"] = latency.run(10 if args.quick else 30, 3 if args.quick else 6)
    if not args.no_polling:
        print("polling ...", flush=True)
        figures["polls"] = polling.run(sizes, runs=runs)
    if not (args.quick or args.no_big):
        print(f"one feed of {polling.BIG_ENTRIES:,} entries ...", flush=True)
        figures["big"] = polling.big_case()
    return figures


def merged(paths: list[Path]) -> dict[str, Any]:
    """Figures saved by several partial runs (--json), as one run's."""
    figures: dict[str, Any] = {"cost": None, "lat": None, "polls": [], "big": None}
    for path in paths:
        part = json.loads(path.read_text())
        figures["polls"] += part.get("polls") or []
        for key in ("cost", "lat", "big"):
            figures[key] = figures[key] or part.get(key)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="1,000 feeds, one run, no big feed")
    parser.add_argument("--sizes", default="1000,10000,30000", help="feed counts, comma-separated")
    parser.add_argument("--runs", type=int, default=polling.RUNS, help="interleaved runs per peer")
    parser.add_argument("--no-big", action="store_true", help="skip the 100,000-entry feed")
    parser.add_argument("--polling-only", action="store_true", help="skip latency and cost")
    parser.add_argument("--no-polling", action="store_true", help="skip the polling peers")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--from-json", type=Path, nargs="+", help="write the report from saved figures instead"
    )
    args = parser.parse_args()
    figures = merged(args.from_json) if args.from_json else measure(args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    cost = figures["cost"] or {"skipped": "not measured in this run"}
    lat, polls, big = figures["lat"], figures["polls"], figures["big"]
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `python -m bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit "
        f"{commit()}, on {machine()}. All traffic on loopback against the project's stand-ins; "
        "ratios compare with peers measured in the same run.",
        "",
    ]
    if lat is not None:
        lines += [
            "## Latency from publication to posted on all seven platforms",
            "",
            "Telegram, X, Facebook, Instagram, Bluesky, Mastodon and Threads, each through its "
            "stand-in; a sample counts when the last platform has it (Instagram with a generated "
            "card each time: the articles have no photo, its slowest path).",
            "",
            "| trigger | samples | median | p95 | goal |",
            "| --- | ---: | ---: | ---: | --- |",
            f"| push (`POST /push`) | {lat['push']['samples']} | {lat['push']['median_s']:.3f} s "
            f"| {lat['push']['p95_s']:.3f} s | p95 under 0.3 s |",
            f"| polling every {lat['poll_interval_s']:g} s | {lat['poll']['samples']} | "
            f"{lat['poll']['median_s']:.3f} s | {lat['poll']['p95_s']:.3f} s | "
            "no more than the interval |",
            "",
        ]
    lines += _polling_lines(polls, big)
    lines += [
        "## Per-article CPU cost (saved real pages, no network)",
        "",
    ]
    if "skipped" in cost:
        lines.append(f"Skipped: {cost['skipped']}.")
    else:
        lines += [
            "| what | pages | median | p95 |",
            "| --- | ---: | ---: | ---: |",
            f"| newsbot: extract + summarise + render for 4 platforms | {cost['pages']} | "
            f"{cost['median_ms']:.1f} ms | {cost['p95_ms']:.1f} ms |",
            f"| baseline: `trafilatura.extract` alone | {cost['pages']} | "
            f"{cost['baseline_median_ms']:.1f} ms | {cost['baseline_p95_ms']:.1f} ms |",
            "",
            f"Ratio of medians: {cost['median_ms'] / cost['baseline_median_ms']:.2f}×. "
            "Goal: under 20 ms median.",
        ]
    lines += [
        "",
        "## What profiling changed",
        "",
        "- A 304 returned its connection to the pool only after its (empty) body was read; "
        "before, every poll opened a new TCP connection.",
        "- httpcore looks for `sniffio` on every request; without it installed each failed "
        "import searched the filesystem (a third of a 304 poll's CPU). It is now a dependency.",
        "- An unchanged source no longer costs two database round trips per poll: its state "
        "is cached and written when it changes (or every 10 minutes).",
        "- 1,000 feeds went from 4.0 s to about 1.6 s of CPU per cycle.",
        "- 10,000 feeds first failed outright: every poll started at once and waited for one of "
        "15 database connections until SQLAlchemy's 30 s pool timeout. Polls in flight are now "
        "bounded (`fetch.concurrency`, 50) and SQLite writes queue in the process instead of "
        "racing for the file lock.",
        "- httpcore checks every pooled connection on each request; the pool is now sized to the "
        "polls in flight (60) rather than 100.",
        "- Peak memory is read from `VmHWM` in a fresh process per size: Linux carries "
        "`ru_maxrss` over from the parent across fork and exec.",
        "- Issue 18, cycle 1 (every feed new): a feed's identity lookups were two queries per "
        "entry and each recorded entry its own transaction, then an event and the state two "
        "more. Now one query per feed finds every known identity, and the recorded entries "
        "(one executemany), the first-run event and the state are one write transaction.",
        "- Issue 18: the source states are read in one query at the first poll, not one per "
        "source.",
        "- Issue 18, cycle 2: httpcore walks every pooled connection on each request (and "
        "anyio calls `getpeername` for each to test expiry). Pools are now per host, at most "
        "16 connections each, idle ones kept for the 64 most recent hosts: the walk no longer "
        "grows with the number of feeds.",
        "- Issue 18: a body identical to the last clean poll's (servers without validators) is "
        "not parsed; a feed of 500 items or more keeps a 12-byte fingerprint per item, and a "
        "change parses only the changed items (the 100,000-entry feed with one new item).",
        "- Issue 18: ten new articles extracted at once loaded ten copies of the language "
        "model (a 450 MB peak); it now loads once, under a lock.",
        "",
    ]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
