"""Run every reliability experiment and write docs/reliability.md: `python -m reliability`.

`--quick` runs the CI sizes; the default runs larger ones; `--articles N --kills N` set the
crash experiment's size (on both databases). `--only "Hostile input"` runs the experiments
whose title starts so and replaces just their sections of docs/reliability.md.
PostgreSQL experiments use `--postgres URL` (default: the local server) and are left out when
it is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.store.url import DatabaseURL
from reliability import bad_input, crash, outage, replicas, secrets_scan

OUT = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"

Rows = Callable[[dict[str, Any]], list[tuple[str, str]]]


def _reachable(url: str) -> bool:
    parsed = DatabaseURL.parse(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), 2):
            return True
    except OSError:
        return False


def _commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "?"


def _table(rows: list[tuple[str, str]]) -> list[str]:
    lines = ["| measure | result |", "| --- | --- |"]
    lines += [f"| {name} | {value.replace('|', '/')} |" for name, value in rows]
    return [*lines, ""]


async def _experiments(
    quick: bool,
    pg: str | None,
    only: str | None = None,
    crash_size: tuple[int | None, int | None] = (None, None),
) -> list[tuple[str, str, dict[str, Any], Rows]]:
    """(title, how it was run, figures, row maker) for each experiment, run one by one.
    `crash_size`: (articles, kills) of the crash experiment on both databases, where given."""
    plan: list[tuple[str, str, Callable[[], Awaitable[dict[str, Any]]], Rows]] = []
    articles, kills = (16, 10) if quick else (60, 40)
    articles, kills = crash_size[0] or articles, crash_size[1] or kills
    plan.append(
        (
            "Crash safety: SIGKILL at random moments (SQLite)",
            f"`python -m reliability.crash --articles {articles} --kills {kills}`",
            lambda: crash.run(articles=articles, kills=kills, seed=7),
            crash.table_rows,
        )
    )
    if pg:
        pg_articles, pg_kills = (8, 5) if quick else (40, 25)
        pg_articles, pg_kills = crash_size[0] or pg_articles, crash_size[1] or pg_kills
        plan.append(
            (
                "Crash safety on PostgreSQL",
                f"`python -m reliability.crash --articles {pg_articles} --kills {pg_kills} "
                "--postgres URL`",
                lambda: _crash_on_pg(pg, pg_articles, pg_kills),
                crash.table_rows,
            )
        )
    for mode in outage.MODES:
        plan.append(
            (
                f"Outage: Telegram {mode} for 30 minutes (time compressed)",
                f"`python -m reliability.outage --mode {mode}`",
                lambda mode=mode: outage.run(mode, outage=8.0, articles=6 if quick else 12),
                outage.table_rows,
            )
        )
    if pg:
        count = 12 if quick else 30
        plan.append(
            (
                "Replicas on PostgreSQL, leader killed midway",
                f"`python -m reliability.replicas --replicas 3 --articles {count}`",
                lambda: replicas.run(replicas=3, articles=count, database_url=pg),
                replicas.table_rows,
            )
        )
    plan.append(("Hostile input", "`tests/test_bad_input.py`", bad_input.run, bad_input.table_rows))
    plan.append(
        (
            "Secrets: full cycle scan",
            "`tests/test_secrets_scan.py`",
            secrets_scan.run,
            secrets_scan.table_rows,
        )
    )
    if only:
        plan = [step for step in plan if step[0].startswith(only)]
    results = []
    for title, how, start, rows in plan:
        print(f"{title} ...", flush=True)
        began = time.monotonic()
        figures = await start()
        print(f"  done in {time.monotonic() - began:.0f} s", flush=True)
        results.append((title, how, figures, rows))
    return results


async def _crash_on_pg(server: str, articles: int, kills: int) -> dict[str, Any]:
    with crash.fresh_schema(server) as url:
        return await crash.run(articles=articles, kills=kills, seed=11, database_url=url)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m reliability")
    parser.add_argument("--quick", action="store_true", help="the sizes CI runs")
    parser.add_argument("--postgres", default=DEFAULT_PG, help="PostgreSQL server URL")
    parser.add_argument("--only", help="run only experiments whose title starts with this")
    parser.add_argument("--articles", type=int, help="crash experiment: articles in the burst")
    parser.add_argument("--kills", type=int, help="crash experiment: SIGKILLs (and restarts)")
    args = parser.parse_args()
    for name in ("articles", "kills"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, not {getattr(args, name)}")
    pg = args.postgres if _reachable(args.postgres) else None
    results = asyncio.run(_experiments(args.quick, pg, args.only, (args.articles, args.kills)))
    if args.only:
        _replace_sections(results)
        return
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor() or "unknown CPU",
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    lines = [
        "# Reliability",
        "",
        f"Produced by `python -m reliability{' --quick' if args.quick else ''}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {_commit()}, on {cpu}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}. Every experiment runs "
        "real `newsbot` code (real processes where it kills them) against the sample site and "
        "the platform stand-ins on 127.0.0.1, with real SQLite and PostgreSQL databases. "
        "Rerun it to refresh these figures; the tests run the same experiments at CI size.",
        "",
    ]
    if pg is None:
        lines += ["PostgreSQL was not reachable: its experiments were left out.", ""]
    for title, how, figures, rows in results:
        lines += _section(title, how, figures, rows)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


def _section(title: str, how: str, figures: dict[str, Any], rows: Rows) -> list[str]:
    return [f"## {title}", "", f"Run: {how}.", "", *_table(rows(figures))]


def _replace_sections(results: list[tuple[str, str, dict[str, Any], Rows]]) -> None:
    """Rewrite only these experiments' sections of the report (appended when missing)."""
    text = OUT.read_text() if OUT.exists() else "# Reliability\n"
    for title, how, figures, rows in results:
        new = "\n".join(_section(title, how, figures, rows))
        head = f"## {title}\n"
        start = text.find(head)
        if start < 0:
            text = text.rstrip("\n") + "\n\n" + new
            continue
        end = text.find("\n## ", start + len(head))
        text = text[:start] + new + ("\n" + text[end + 1 :] if end >= 0 else "")
    OUT.write_text(text)
    print(f"updated {OUT}")


if __name__ == "__main__":
    main()
