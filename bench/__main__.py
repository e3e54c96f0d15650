"""Run every benchmark and write docs/benchmarks.md: `python -m bench` (add --quick for a
smaller run). All traffic stays on 127.0.0.1 against the project's own stand-ins.

Polling runs are appended to a JSON-lines file as they finish (--samples); the same command
run again resumes from it, and the report is rewritten after every (size, layout), so a kill
mid-benchmark loses at most the run in progress. With --polling-only the latency and
per-article sections are carried over from the previous docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import article_cost, daemon, latency, polling, samples
from bench import report as bench_report

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


def measure(
    args: argparse.Namespace, store: Path, figures: dict[str, Any], write: Callable[[], None]
) -> None:
    """Run the benchmarks `args` choose. Polling runs go to `store` as they finish (see
    bench.samples); the rest into `figures`. `write` rewrites the report from both."""
    sizes = (1000,) if args.quick else tuple(int(n) for n in args.sizes.split(","))
    layouts = tuple(int(n) for n in args.layouts.split(","))
    runs = 1 if args.quick else args.runs
    if not args.polling_only:
        print("per-article cost ...", flush=True)
        figures["cost"] = article_cost.run()
        print("latency ...", flush=True)
        try:
            # 100 pushes: the p95 of 30 is their second-slowest, one hiccup of the machine
            figures["lat"] = latency.run(10 if args.quick else 100, 3 if args.quick else 6)
        except RuntimeError as error:
            # an article that missed a platform is a finding to report, not a reason to lose
            # the polling runs that follow
            print(f"latency: FAILED, {error}", flush=True)
            figures["lat"] = {"failed": str(error)}
    if not args.no_polling:
        print(f"polling, samples in {store} ...", flush=True)
        polling.run(
            store,
            sizes,
            layouts,
            runs,
            timeout=args.child_timeout,
            retry_failed=args.retry_failed,
            after_group=write,
        )
    if not args.no_polling:
        print("start-up memory with a typical config ...", flush=True)
        daemon.measure(store, runs, retry_failed=args.retry_failed)
        write()
    if not (args.quick or args.no_big):
        print(f"one feed of {args.big_entries:,} entries ...", flush=True)
        polling.big_case(store, args.big_entries, retry_failed=args.retry_failed)


def merged(paths: list[Path]) -> dict[str, Any]:
    """Figures saved by several partial runs (--json), as one run's (none: every figure
    absent)."""
    figures: dict[str, Any] = {
        "cost": None,
        "lat": None,
        "polls": [],
        "big": None,
        "daemon": None,
    }
    for path in paths:
        part = json.loads(path.read_text())
        figures["polls"] += part.get("polls") or []
        for key in ("cost", "lat", "big", "daemon"):
            figures[key] = figures[key] or part.get(key)
    return figures


def with_samples(figures: dict[str, Any], store: Path | None) -> dict[str, Any]:
    """`figures` with the polling and big-feed figures of `store`, where it has any."""
    found = samples.load(store) if store else []
    polls = samples.summarise(found)
    return figures | {
        "polls": polls or figures["polls"],
        "big": samples.big(found) or figures["big"],
        "daemon": daemon.summary(found) or figures.get("daemon"),
    }


def report(figures: dict[str, Any], notes: dict[str, str], carry_from: Path | None) -> str:
    """docs/benchmarks.md from `figures`; the latency and per-article sections not measured
    here are carried over verbatim from `carry_from` (the previous report)."""
    cost, lat, polls, big = figures["cost"], figures["lat"], figures["polls"], figures["big"]
    carried, origin = (
        bench_report.carried_sections(carry_from)
        if carry_from and (cost is None or lat is None)
        else ({}, "")
    )
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `python -m bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit "
        f"{commit()}, on {machine()}. All traffic on loopback against the project's stand-ins; "
        "ratios compare with peers measured in the same run.",
        "",
    ]
    moved = [
        name
        for name, figure, prefix in (
            ("latency", lat, "## Latency"),
            ("per-article cost", cost, "## Per-article"),
        )
        if figure is None and prefix in carried
    ]
    if moved:
        lines += [
            f"The {' and '.join(moved)} section{'s' if len(moved) > 1 else ''} "
            f"{'are' if len(moved) > 1 else 'is'} not measured in this run: carried over from "
            f"{origin or 'the previous report'}.",
            "",
        ]
    if lat is not None and lat.get("failed"):
        lines += [
            "## Latency from publication to posted on all seven platforms",
            "",
            f"Failed: {lat['failed']}.",
            "",
        ]
    elif lat is not None:
        lines += [
            "## Latency from publication to posted on all seven platforms",
            "",
            "Telegram, X, Facebook, Instagram, Bluesky, Mastodon and Threads, each through its "
            "stand-in; a sample counts when the last platform has it (Instagram's picture and "
            "Bluesky's link-card thumbnail are a generated card each time: the articles have no "
            "photo, their slowest path; the two share one card an article. Threads makes link "
            "posts, its default). The sample site and the stand-ins run in another process, "
            "as a newsroom's site and the platforms run on other machines, and time each "
            "article from the site's publishing it to the last platform's having it.",
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
    else:
        lines += carried.get("## Latency", [])
    push_p95 = (
        (None if lat.get("failed") else lat["push"]["p95_s"])
        if lat is not None
        else bench_report.carried_push_p95(carried.get("## Latency", []))
    )
    lines += bench_report.polling_lines(polls, big, push_p95, notes, figures.get("daemon"))
    if cost is not None:
        lines += [
            "## Per-article CPU cost (saved real pages, no network)",
            "",
            "| what | pages | median | p95 |",
            "| --- | ---: | ---: | ---: |",
            f"| newsbot: extract + summarise + render for 4 platforms | {cost['pages']} | "
            f"{cost['median_ms']:.1f} ms | {cost['p95_ms']:.1f} ms |",
            f"| baseline: `trafilatura.extract` alone | {cost['pages']} | "
            f"{cost['baseline_median_ms']:.1f} ms | {cost['baseline_p95_ms']:.1f} ms |",
            "",
            f"Ratio of medians: {cost['median_ms'] / cost['baseline_median_ms']:.2f}×. "
            "Goal: under 20 ms median.",
            "",
        ]
    elif "## Per-article" in carried:
        lines += carried["## Per-article"]
    else:
        lines += [
            "## Per-article CPU cost (saved real pages, no network)",
            "",
            "Skipped: not measured in this run.",
            "",
        ]
    lines += PROFILING
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The whole polling benchmark, resumable, in the background: nohup python "
        "-m bench --polling-only --samples /tmp/poll.jsonl > /tmp/bench.log 2>&1 &",
    )
    parser.add_argument("--quick", action="store_true", help="1,000 feeds, one run, no big feed")
    parser.add_argument("--sizes", default="1000,10000,30000", help="feed counts, comma-separated")
    parser.add_argument(
        "--layouts", default=f"1,{polling.HOSTS}", help="hosts the feeds are spread over"
    )
    parser.add_argument("--runs", type=int, default=polling.RUNS, help="interleaved runs per peer")
    parser.add_argument("--no-big", action="store_true", help="skip the 100,000-entry feed")
    parser.add_argument(
        "--big-entries", type=int, default=polling.BIG_ENTRIES, help="entries of the big feed"
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"the report (default {OUT})")
    parser.add_argument(
        "--polling-only",
        action="store_true",
        help="skip latency and per-article cost (carried over: --carry-from)",
    )
    parser.add_argument("--no-polling", action="store_true", help="skip the polling peers")
    parser.add_argument(
        "--samples",
        type=Path,
        help="JSON-lines file every finished polling run is appended to; a run with the same "
        "file skips what it holds (default: a new temporary file)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing; write the report from --samples and/or --from-json",
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="rerun runs --samples holds as failed"
    )
    parser.add_argument(
        "--child-timeout",
        type=float,
        help="seconds one peer's run may take (default: 60 + 0.03 per feed)",
    )
    parser.add_argument(
        "--reader-workers",
        type=int,
        help=f"reader's worker threads (default {polling.READER_WORKERS})",
    )
    parser.add_argument(
        "--notes", type=Path, help=f"why goals are missed, JSON (default {bench_report.NOTES})"
    )
    parser.add_argument(
        "--carry-from",
        type=Path,
        default=OUT,
        help="report to carry the latency and per-article sections from when not measured",
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--from-json", type=Path, nargs="+", help="write the report from saved figures instead"
    )
    args = parser.parse_args()
    # SIGTERM (kill PID) unwinds like Ctrl-C, so the run in progress is stopped with its server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.reader_workers:
        os.environ[polling.WORKERS_ENV] = str(args.reader_workers)
    notes = bench_report.load_notes(args.notes)
    store = args.samples
    if store is None and not (args.from_json or args.report_only):
        store = Path(tempfile.mkdtemp(prefix="newsbot-bench-")) / "polling.jsonl"
    base = merged(args.from_json or [])  # no files: no figures yet
    # the previous report is read once, before this run first rewrites it
    carry = args.carry_from.read_text(encoding="utf-8") if args.carry_from.exists() else None
    carry_copy = Path(tempfile.mkdtemp(prefix="newsbot-bench-")) / "previous.md"
    if carry is not None:
        carry_copy.write_text(carry, encoding="utf-8")

    def write() -> None:
        full = with_samples(base, store)
        if args.json:
            args.json.write_text(json.dumps(full, indent=1))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            report(full, notes, carry_copy if carry is not None else None), encoding="utf-8"
        )
        print(f"wrote {args.out}", flush=True)

    def write_midway() -> None:
        # a report that cannot be written mid-run must not stop the benchmark: the samples
        # are safe in the file and the final report (or --report-only) tries again
        try:
            write()
        except Exception as error:
            print(f"report not written ({type(error).__name__}: {error}); measuring on", flush=True)

    if not (args.from_json or args.report_only):
        assert store is not None
        measure(args, store, base, write_midway)
    write()


PROFILING = [
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
    "- Issue 18: the source states are read in one query at the first poll, not one per source.",
    "- Issue 18, cycle 2: httpcore walks every pooled connection on each request (and "
    "anyio calls `getpeername` for each to test expiry). Pools are now per host, at most "
    "16 connections each, idle ones kept for the 64 most recent hosts: the walk no longer "
    "grows with the number of feeds.",
    "- Issue 18: a body identical to the last clean poll's (servers without validators) is "
    "not parsed; a feed of 500 items or more keeps a 12-byte fingerprint per item, and a "
    "change parses only the changed items (the 100,000-entry feed with one new item).",
    "- Issue 18: ten new articles extracted at once loaded ten copies of the language "
    "model (a 450 MB peak); it now loads once, under a lock.",
    "- Issue 18, HTTP: even per host, httpx's default stack (httpcore's pool, h11, anyio "
    "streams) cost about 1 ms of CPU per conditional GET, 2.6 ms when 50 polls queued for "
    "one host's 16 connections, ten times the network work. Polls now go through a lean "
    "HTTP/1.1 transport on asyncio streams (`bot/http11.py`: per-origin pools, idle "
    "connections reused last in first out, bounded heads and chunk lines, httpx's "
    "exceptions), and fetch() hands its GETs straight to it, skipping the client's cookie, "
    "auth and redirect layers: about 0.2 ms per 304.",
    "- Issue 18, database: every poll took a pooled connection for its identity lookup and "
    "a transaction for its state; on SQLite each statement is a hop to the driver's thread. "
    "Lookups and state saves are now group-committed (`bot/store/batching.py`): those made "
    "while one runs go out together (one upsert, one executemany of recorded articles, one "
    "insert of events per batch). A cold start went from about 5.3 to 1.5-2.5 ms of CPU per feed.",
    "- Issue 18: a poll's URL was parsed four times (the policy, each hop's check, the "
    "request); now once (a small LRU of recent URLs).",
    "- Issue 18, the big feed: it is read item by item and the items not to be parsed are "
    "dropped as they are read (at most the newest 5,000 held): about 150 MB lower at its "
    "peak; the off-site check of its entries went from quadratic to one pass.",
    "- Issue 18, memory: a module-by-module trace of a started daemon put SQLAlchemy's asyncio "
    "extension and the ORM it imports at 7 MB (newsbot maps no class): the store drives Core "
    "through SQLAlchemy's own greenlet bridge (`bot/store/aio.py`). python-telegram-bot and "
    "tweepy (with requests and oauthlib) load at their target's first call, Jinja2 at the first"
    " template, regex at the first text cut, PostgreSQL's dialect only for PostgreSQL; httpx "
    "loaded the CA bundle once per client (0.8 MB each), now one TLS context serves them all. "
    "The service started with four targets went from 95 to 67 MB, `newsbot run` from 101 to 80 "
    "MB, the peak at 30,000 feeds from 147 to 121 MB.",
    "- Issue 18, latency run: a Telegram post five seconds after the last one rode a kept-alive"
    " connection the server closed at that moment (5 s keep-alive) and was flagged 'may have "
    "been posted'; python-telegram-bot's requests now drop idle connections after 4 s, like "
    "every other platform client.",
    "- Issue 18, latency: a sampling profile of the push run put a third of newsbot's CPU per "
    "article in image cards: Instagram, Threads and Bluesky each draw one, and the dark "
    "gradient under the text was a blend over the whole card (now one column, widened: 28 to "
    "12 ms a card, the same bytes); Bluesky then re-encoded its card as a thumbnail (63 ms; "
    "now uploaded as drawn, far under its size limit). A drain of a target claimed once more "
    "after its last due post, a write transaction that found nothing; a claim now says "
    "whether more was due; and SQLite's pool rolled back every connection it took back, "
    "after a commit too (30 round trips to the driver's thread an article; now only inside "
    "a transaction). The stand-ins, in the same process then, loaded the CA bundle for "
    "every image they fetched (50 ms each, on newsbot's event loop); they now run in their "
    "own process. With the stand-ins still in newsbot's process, 30 pushed articles took 15.5 s "
    "of CPU before these changes and 10.8-11.8 s after; in the new harness, run alternately "
    "three times on a slow afternoon, the session's first commit and dfd2094 (cards, claims, X): "
    "median 0.381 and 0.356 s, p95 0.441 and 0.411 s.",
    "- Issue 18, per article: rendering for X was 10 ms of a page's 20: fitting a post "
    "measures it a few dozen times and twitter-text scans the whole text for emoji with a "
    "very large regular expression each time. Text that cannot hold an emoji is now counted "
    "with X's weights and twitter-text's own URL extraction (`adapters/x/length.py`, checked "
    "against twitter-text), and X's text cleaning drops controls with one regular expression "
    "instead of a lookup per character: rendering for all four platforms went from 14 to "
    "2 ms a page.",
    "- Issue 18, latency: timing SQLite's write turn in the push run showed each write "
    "transaction (about thirty an article) holding it 8 ms on average while the others queued "
    "30 ms: its statements crossed to aiosqlite's thread four times each, and every crossing "
    "waited for a busy event loop. Each write transaction now runs whole in one call to a "
    "worker thread on the standard sqlite3 driver, one at a time (`bot/store/aio.py`); reads "
    "cross once a statement. Alternating with the session's first commit: median 0.27 to 0.25 "
    "s, p95 0.33-0.38 to 0.30-0.35 s. Image cards lost the JPEG encoder's Huffman-optimising "
    "pass (half the encoding time, a tenth larger file; the platforms re-encode uploads).",
    "- Issue 18, memory: with everything else removed that could be, `import sqlalchemy` was "
    "12 MB of the started daemon (90 modules, measured against the same daemon's other imports)"
    " for statements that are plain SQL on SQLite and PostgreSQL alike. The store now writes "
    "its SQL once with named parameters and runs it on the drivers' own APIs, SQLite's sqlite3 "
    "and psycopg 3 (loaded only for a PostgreSQL URL), in worker threads (`bot/store/aio.py`, "
    "the URLs in `bot/store/url.py`): `newsbot run` with the typical config went from 80 to "
    "67 MB, the service alone from 67 to 55 MB.",
    "",
]


if __name__ == "__main__":
    main()
