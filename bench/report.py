"""The polling, big-feed and goal sections of docs/benchmarks.md, and the sections a
polling-only run carries over from the previous report.

Goals are issue 18's. Where one is missed the text gives the ratio, the absolute gap and a
reason from the notes (bench/notes.json or --notes): a JSON object keyed by goal id, optionally
narrowed to one size and layout as "<goal>@<feeds>x<hosts>" (e.g. "cycle1@30000x50"), which
wins over the plain id. Goal ids: cycle1, cycle2, start_rss, peak_rss, big_changed,
big_unchanged, push_p95. A missed goal without a note says "not explained".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import daemon as daemon_case
from bench import polling

NOTES = Path(__file__).with_name("notes.json")
CYCLE2_LIMIT = 1.5  # newsbot's cycle 2 CPU against the bare loop's
START_RSS_MB = 70.0
PEAK_RSS_MB = 150.0
PEAK_RSS_AT = 30_000  # feeds: the peak RSS goal is stated for this size
BIG_CHANGED_S = 10.0
# "nothing measurable" for a 304 or unchanged big feed: below this much CPU per poll
BIG_UNCHANGED_S = 0.1
PUSH_P95_S = 0.3
KEPT = ("## Latency", "## Per-article")
CARRIED = re.compile(r"carried over from the report of (.+?) UTC at commit (\w+)")
PUSH_ROW = re.compile(r"^\| push \(`POST /push`\) \| \d+ \| [\d.]+ s \| ([\d.]+) s \|")
HEADER = re.compile(r"Produced by `python -m bench` on (.+?) UTC, commit (\w+)")


def load_notes(path: Path | None) -> dict[str, str]:
    path = path or NOTES
    if not path.exists():
        return {}
    return {str(k): str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}


@dataclass
class Verdict:
    goal: str  # id, for the notes
    where: str  # "1,000 feeds, 1 host", or "" for a goal with one measurement
    met: bool | None  # None: cannot be judged (a peer missing or failed)
    text: str  # what was measured against what, or why it cannot be judged
    gap: str = ""  # for a miss: by how much, as a ratio and in absolute terms

    def line(self, notes: dict[str, str], cell: str = "") -> str:
        head = f"{self.where}: " if self.where else ""
        if self.met:
            return f"- Met. {head}{self.text}."
        if self.met is None:
            return f"- Not judged. {head}{self.text}."
        why = notes.get(f"{self.goal}@{cell}") if cell else None
        why = why or notes.get(self.goal) or "not explained"
        return f"- **Missed** by {self.gap}. {head}{self.text}. Why: {why}"


def _where(row: dict[str, Any]) -> str:
    return f"{row['feeds']:,} feeds, {row['hosts']} host{'s' if row['hosts'] != 1 else ''}"


def _cell(row: dict[str, Any]) -> str:
    return f"{row['feeds']}x{row['hosts']}"


def _figures(row: dict[str, Any], peer: str) -> dict[str, Any] | None:
    """A peer's medians in `row`, or None when it has no successful run."""
    summary = row.get(peer)
    if not summary or "cycle1_cpu_s" not in summary:
        return None
    return summary


def _missing(row: dict[str, Any], peer: str) -> str:
    summary = row.get(peer) or {}
    failures = summary.get("failures") or []
    if failures:
        return f"{peer} failed ({'; '.join(failures)})"
    return f"{peer} not run"


def _ratio_verdict(
    goal: str, row: dict[str, Any], peer: str, key: str, limit: float, what: str
) -> Verdict:
    ours, theirs = _figures(row, "newsbot"), _figures(row, peer)
    if ours is None or theirs is None:
        missing = _missing(row, "newsbot" if ours is None else peer)
        return Verdict(goal, _where(row), None, f"{what}: {missing}")
    ratio = ours[key] / theirs[key] if theirs[key] else float("inf")
    allowed = limit * theirs[key]
    text = (
        f"{what}: newsbot {ours[key]:.2f} s, {peer} {theirs[key]:.2f} s, {ratio:.2f}× "
        f"(goal at most {limit:g}×)"
    )
    gap = f"{ratio / limit:.2f}× the allowed {allowed:.2f} s, {ours[key] - allowed:.2f} s of CPU"
    return Verdict(goal, _where(row), ratio <= limit, text, gap)


def _below_verdict(
    goal: str, where: str, value: float, limit: float, what: str, unit: str, digits: int = 2
) -> Verdict:
    text = f"{what}: {value:.{digits}f} {unit} (goal under {limit:g} {unit})"
    gap = f"{value / limit:.2f}× the limit, {value - limit:.{digits}f} {unit} over"
    return Verdict(goal, where, value < limit, text, gap)


def verdicts(
    polls: list[dict[str, Any]],
    big: dict[str, Any] | None,
    push_p95: str | float | None,
    daemon: dict[str, Any] | None = None,
) -> list[tuple[Verdict, str]]:
    """Every goal the figures can judge, with the size and layout it was judged at."""
    out: list[tuple[Verdict, str]] = [(_start_verdict(daemon), "")]
    for row in polls:
        cell = _cell(row)
        out.append(
            (_ratio_verdict("cycle1", row, "reader", "cycle1_cpu_s", 1.0, "cycle 1 CPU"), cell)
        )
        out.append(
            (
                _ratio_verdict("cycle2", row, "bare", "cycle2_cpu_s", CYCLE2_LIMIT, "cycle 2 CPU"),
                cell,
            )
        )
        ours = _figures(row, "newsbot")
        if ours is None:
            continue
        if row["feeds"] == PEAK_RSS_AT:
            out.append(
                (
                    _below_verdict(
                        "peak_rss", _where(row), ours["peak_mb"], PEAK_RSS_MB, "peak RSS", "MB", 0
                    ),
                    cell,
                )
            )
    if not any(row["feeds"] == PEAK_RSS_AT and _figures(row, "newsbot") for row in polls):
        out.append(
            (
                Verdict(
                    "peak_rss",
                    "",
                    None,
                    f"peak RSS at {PEAK_RSS_AT:,} feeds: newsbot has no successful run there",
                ),
                "",
            )
        )
    if big is None or big.get("failed"):
        why = f"failed ({big['failed']})" if big else "not run"
        out.append((Verdict("big_changed", "", None, f"the 100,000-entry feed {why}"), ""))
    else:
        checks = (
            ("big_changed", ("first", "one_new"), BIG_CHANGED_S, ""),
            (
                "big_unchanged",
                ("not_modified", "unchanged_no_etag"),
                BIG_UNCHANGED_S,
                " (nothing measurable)",
            ),
        )
        for goal, steps, limit, aside in checks:
            for step in steps:
                what = f"{big['entries']:,}-entry feed, {BIG_STEPS[step]}, CPU{aside}"
                verdict = _below_verdict(goal, "", big[step]["cpu_s"], limit, what, "s")
                out.append((verdict, ""))
    if push_p95 is not None:
        # a string: read from the carried-over latency section, said so
        what = "push to posted, p95" + (" (carried over)" if isinstance(push_p95, str) else "")
        out.append((_below_verdict("push_p95", "", float(push_p95), PUSH_P95_S, what, "s", 3), ""))
    return out


def _start_verdict(daemon: dict[str, Any] | None) -> Verdict:
    """Start-up memory is judged on `newsbot run` with the typical config (bench.daemon): the
    daemon an editor starts, setup check included; the service alone is said beside it."""
    run = (daemon or {}).get("run") or {}
    if run.get("rss_mb") is None:
        why = "; ".join(run.get("failures") or []) or "not run"
        return Verdict("start_rss", "typical config", None, f"`newsbot run`: {why}")
    verdict = _below_verdict(
        "start_rss", "typical config", run["rss_mb"], START_RSS_MB, "`newsbot run`", "MB", 0
    )
    service = ((daemon or {}).get("service") or {}).get("rss_mb")
    if service is not None:
        verdict.text += f"; the service alone, before its setup check: {service:.0f} MB"
    return verdict


BIG_STEPS = {
    "first": "first poll (every entry new, recorded)",
    "not_modified": "again, with its ETag (304)",
    "unchanged_no_etag": "again, same body, no validators",
    "one_new": "one new entry (the body changed)",
}


def _runs(summary: dict[str, Any] | None, planned: int) -> str:
    if not summary:
        return f"0 of {planned}"
    done, planned = summary.get("runs", planned), summary.get("planned", planned)
    return str(done) if done == planned else f"{done} of {planned}"


def polling_lines(
    polls: list[dict[str, Any]],
    big: dict[str, Any] | None,
    push_p95: str | float | None,
    notes: dict[str, str],
    daemon: dict[str, Any] | None = None,
) -> list[str]:
    """The polling tables, the goals with ratios, the big feed and the goal verdicts (with
    push-to-posted p95: a float measured in this run, a string read from a carried section)."""
    workers = sorted(
        {w for row in polls for w in (row.get("reader") or {}).get("reader_workers", [])}
    ) or [polling.READER_WORKERS]
    lines = [
        "## Polling scale: newsbot against reader and a bare feedparser loop",
        "",
        "Cycle 1: every feed new (a cold start, or a newsroom adding its feeds). Cycle 2: most "
        f"feeds answer 304, {polling.NEW_ITEMS} carry a new item (newsbot also reads, extracts "
        "and records those articles; reader stores them; the bare loop only parses). Each peer "
        "runs in a fresh process; figures are medians of interleaved runs. newsbot runs with "
        "four targets (Telegram, X, Facebook, Instagram); reader with "
        f"{' or '.join(map(str, workers))} worker thread{'s' if workers != [1] else ''} "
        "(its lowest-CPU setting on this machine). `start RSS` is the service's RSS before the "
        "first poll (the start-up goal is judged on the typical config below). "
        "`runs` counts successful runs; a run whose polls did not all succeed counts as failed.",
        "",
        "| feeds | hosts | runs | peer | cycle 1 CPU | cycle 1 wall | cycle 2 CPU | "
        "cycle 2 wall | start RSS | peak RSS |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    short: list[str] = []
    for row in polls:
        for peer in polling.PEERS:
            if peer not in row:
                continue
            m, runs = row[peer], _runs(row[peer], row["runs"])
            head = f"| {row['feeds']:,} | {row['hosts']} | {runs} | {peer} |"
            if _figures(row, peer) is None:
                lines.append(f"{head} {_missing(row, peer)} | | | | | |")
            else:
                lines.append(
                    f"{head} {m['cycle1_cpu_s']:.2f} s | {m['cycle1_wall_s']:.2f} s | "
                    f"{m['cycle2_cpu_s']:.2f} s | {m['cycle2_wall_s']:.2f} s | "
                    f"{m['started_mb']:.0f} MB | {m['peak_mb']:.0f} MB |"
                )
            if m.get("runs", row["runs"]) < m.get("planned", row["runs"]):
                failed = m.get("failures") or []
                short.append(
                    f"{_where(row)}, {peer}: {runs} runs"
                    + (f" ({len(failed)} failed: {'; '.join(failed)})" if failed else "")
                )
    if short:
        lines += ["", "Fewer runs than planned (medians of what there is):", ""]
        lines += [f"- {entry}" for entry in short]
    lines += [
        "",
        "### Goals",
        "",
        "| feeds | hosts | cycle 1 CPU / reader's (goal <= 1.0) | cycle 2 CPU / bare loop's "
        f"(goal <= {CYCLE2_LIMIT:g}) | newsbot start RSS | newsbot "
        f"peak RSS (goal < {PEAK_RSS_MB:g} MB at {PEAK_RSS_AT:,}) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in polls:
        ours = _figures(row, "newsbot")
        if ours is None:
            lines.append(f"| {row['feeds']:,} | {row['hosts']} | - | - | - | - |")
            continue
        reader, bare = _figures(row, "reader"), _figures(row, "bare")
        one = f"{ours['cycle1_cpu_s'] / reader['cycle1_cpu_s']:.2f}×" if reader else "-"
        two = f"{ours['cycle2_cpu_s'] / bare['cycle2_cpu_s']:.2f}×" if bare else "-"
        lines.append(
            f"| {row['feeds']:,} | {row['hosts']} | {one} | {two} | "
            f"{ours['started_mb']:.0f} MB | {ours['peak_mb']:.0f} MB |"
        )
    if big is not None:
        lines += ["", f"### One feed of {big['entries']:,} entries (newsbot, one run)", ""]
        if big.get("failed"):
            lines.append(f"Failed: {big['failed']}.")
        else:
            lines += ["| poll | outcome | CPU | wall |", "| --- | --- | ---: | ---: |"]
            for step, label in BIG_STEPS.items():
                m = big[step]
                lines.append(
                    f"| {label} | {m['outcome']} | {m['cpu_s']:.2f} s | {m['wall_s']:.2f} s |"
                )
            lines += [
                "",
                f"Peak RSS: {big['peak_mb']:.0f} MB. Goals: under {BIG_CHANGED_S:g} s CPU when it "
                f"changes, nothing measurable (under {BIG_UNCHANGED_S:g} s) on a 304 or an "
                "unchanged body.",
            ]
    lines += daemon_lines(daemon)
    judged = verdicts(polls, big, push_p95, daemon)
    missed = sum(v.met is False for v, _ in judged)
    unjudged = sum(v.met is None for v, _ in judged)
    lines += [
        "",
        "### Goal verdicts",
        "",
        f"{len(judged) - missed - unjudged} met, {missed} missed, {unjudged} not judged. "
        "Where one is missed: by how much (against the limit, and in absolute terms) and why.",
        "",
    ]
    order = {None: 1, True: 2, False: 0}
    for verdict, cell in sorted(judged, key=lambda vc: order[vc[0].met]):
        lines.append(verdict.line(notes, cell))
    return [*lines, ""]


def daemon_lines(daemon: dict[str, Any] | None) -> list[str]:
    """The start-up memory section (bench.daemon's figures)."""
    lines = [
        "",
        "### Start-up memory with a typical config",
        "",
        f"Four targets (Telegram, X, Facebook, Instagram), {daemon_case.FEEDS} feeds, the HTTP "
        "endpoint on; medians of interleaved runs, each in a fresh process. `service`: the service "
        "started, before its first poll. `newsbot run`: the command itself, once every "
        "target's start-up setup check is logged and every feed polled once (the targets' "
        "APIs refuse connections, so the checks fail at once, after loading what a real "
        "check loads: python-telegram-bot for Telegram's getMe; X's check is off by default, "
        f"X bills reads). Goal: under {START_RSS_MB:g} MB after start-up.",
        "",
    ]
    if not daemon:
        return [*lines, "Not measured in this run."]
    lines += ["| how | runs | RSS |", "| --- | ---: | ---: |"]
    for how, label in (("service", "service"), ("run", "`newsbot run`")):
        m = daemon.get(how) or {}
        value = f"{m['rss_mb']:.1f} MB" if m.get("rss_mb") is not None else "-"
        failed = f" ({len(m['failures'])} failed)" if m.get("failures") else ""
        lines.append(f"| {label} | {m.get('runs', 0)}{failed} | {value} |")
    return lines


def carried_push_p95(latency: list[str]) -> str | None:
    """The push p95 in a carried-over latency section, as written there."""
    for line in latency:
        found = PUSH_ROW.match(line)
        if found:
            return found.group(1)
    return None


def carried_sections(path: Path) -> tuple[dict[str, list[str]], str]:
    """The latency and per-article sections of an earlier report, verbatim (keyed by their
    heading's start, as in KEPT), and where they come from ("the report of 2026-11-30 12:53 UTC
    at commit 26854a3"; kept through any number of carry-overs), or ({}, "")."""
    if not path.exists():
        return {}, ""
    text = path.read_text(encoding="utf-8")
    origin = CARRIED.search(text) or HEADER.search(text)
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            prefix = next((p for p in KEPT if line.startswith(p)), None)
            current = sections.setdefault(prefix, []) if prefix else None
        if current is not None:
            current.append(line)
    for lines in sections.values():
        while lines and not lines[-1].strip():
            lines.pop()
        lines.append("")
    where = f"the report of {origin.group(1)} UTC at commit {origin.group(2)}" if origin else ""
    return sections, where
