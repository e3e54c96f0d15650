"""The polling benchmark's bookkeeping: samples appended as JSON lines, a restarted run
skipping what is there, and the report built from a partial file (no network, except the
timeout test's own loopback feed server)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench import daemon as daemon_case
from bench import polling, report, samples


def _poll(feeds: int, hosts: int, peer: str, run: int, c1: float, c2: float, **extra: Any) -> dict:
    return {
        "kind": "poll",
        "feeds": feeds,
        "hosts": hosts,
        "peer": peer,
        "run": run,
        "started_mb": 60.0,
        "peak_mb": 100.0 + run,
        "cycle1": {"cpu_s": c1, "wall_s": c1 + 1, "ok": feeds},
        "cycle2": {"cpu_s": c2, "wall_s": c2 + 1},
    } | extra


def _plan(sizes: list[int], runs: int = 3) -> dict:
    return {
        "kind": "plan",
        "sizes": sizes,
        "layouts": [1],
        "runs": runs,
        "peers": list(polling.PEERS),
    }


def test_a_line_cut_short_by_a_kill_is_skipped_and_its_run_counts_as_not_done(
    tmp_path: Path,
) -> None:
    store = tmp_path / "poll.jsonl"
    samples.append(store, _plan([1000]))
    samples.append(store, _poll(1000, 1, "newsbot", 1, 4.0, 1.0))
    samples.append(store, _poll(1000, 1, "reader", 1, 2.0, 1.0, failed="timed out after 90 s"))
    with store.open("a") as out:
        out.write('{"kind": "poll", "feeds": 1000, "hosts": 1, "peer": "bare", "ru')

    rows = samples.load(store)

    assert [r["kind"] for r in rows] == ["plan", "poll", "poll"]
    assert samples.done(rows) == {("poll", 1000, 1, "newsbot", 1), ("poll", 1000, 1, "reader", 1)}
    assert samples.done(rows, retry_failed=True) == {("poll", 1000, 1, "newsbot", 1)}


def test_a_restarted_run_starts_no_child_for_samples_already_there(tmp_path: Path) -> None:
    store = tmp_path / "poll.jsonl"
    for peer in polling.PEERS:
        samples.append(store, _poll(7, 1, peer, 1, 1.0, 0.5))
    groups: list[int] = []

    polling.run(store, sizes=(7,), layouts=(1,), runs=1, after_group=lambda: groups.append(1))

    rows = samples.load(store)
    # only this invocation's plan line was added: every run was skipped, none was started
    assert [r["kind"] for r in rows] == ["poll", "poll", "poll", "plan"]
    assert groups == [1]


def test_the_plan_interleaves_peers_within_a_size_and_layout_with_sizes_ascending() -> None:
    steps = polling.plan((30000, 1000), (1, 50), 2, ("newsbot", "reader"))

    assert steps[:5] == [
        (1000, 1, 1, "newsbot"),
        (1000, 1, 1, "reader"),
        (1000, 1, 2, "newsbot"),
        (1000, 1, 2, "reader"),
        (1000, 50, 1, "newsbot"),
    ]
    assert steps[-1] == (30000, 50, 2, "reader")
    assert len(steps) == 16


def test_a_partial_file_is_summarised_with_what_is_missing() -> None:
    rows = [
        _plan([1000, 30000]),
        _poll(1000, 1, "newsbot", 1, 4.0, 1.0),
        _poll(1000, 1, "newsbot", 2, 6.0, 3.0),
        _poll(1000, 1, "reader", 1, 2.0, 1.0, failed="timed out after 90 s"),
        _poll(1000, 1, "reader", 1, 2.5, 1.0),  # the retry succeeded: it wins
        _poll(1000, 1, "reader", 2, 3.5, 1.0),
        _poll(1000, 1, "reader", 3, 1.0, 1.0, failed="exit status 1: boom"),
        _poll(1000, 1, "bare", 1, 1.0, 0.5),
    ]

    summary = samples.summarise(rows)

    assert [(r["feeds"], r["hosts"]) for r in summary] == [(1000, 1), (30000, 1)]
    ours, reader = summary[0]["newsbot"], summary[0]["reader"]
    assert (ours["runs"], ours["planned"], ours["cycle1_cpu_s"], ours["cycle2_cpu_s"]) == (
        2,
        3,
        5.0,
        2.0,
    )
    assert reader["runs"] == 2 and reader["cycle1_cpu_s"] == 3.0
    assert reader["failures"] == ["exit status 1: boom"]
    assert summary[1]["newsbot"]["runs"] == 0 and "cycle1_cpu_s" not in summary[1]["newsbot"]


def test_the_report_says_which_peers_are_short_or_failed_and_by_how_much_goals_are_missed() -> None:
    rows = [
        _plan([1000, 30000]),
        *(_poll(1000, 1, "newsbot", n, 6.0, 3.0) for n in (1, 2, 3)),
        *(_poll(1000, 1, "reader", n, 3.0, 1.0) for n in (1, 2)),
        _poll(1000, 1, "reader", 3, 3.0, 1.0, failed="timed out after 90 s"),
        *(_poll(1000, 1, "bare", n, 1.0, 1.0) for n in (1, 2, 3)),
    ]
    polls = samples.summarise(rows)

    text = "\n".join(report.polling_lines(polls, None, None, {"cycle2@1000x1": "parses twice"}))

    assert "| 1,000 | 1 | 2 of 3 | reader | 3.00 s |" in text
    assert "1,000 feeds, 1 host, reader: 2 of 3 runs (1 failed: timed out after 90 s)" in text
    assert "| 30,000 | 1 | 0 of 3 | newsbot | newsbot not run |" in text
    # cycle 1: 6.00 s against reader's 3.00 s, twice the allowed
    assert "**Missed** by 2.00× the allowed 3.00 s, 3.00 s of CPU." in text
    assert (
        "cycle 1 CPU: newsbot 6.00 s, reader 3.00 s, 2.00× (goal at most 1×). Why: not explained"
        in text
    )
    # cycle 2: 3.00 s against 1.5 × 1.00 s, explained by the note for this size and layout
    assert "by 2.00× the allowed 1.50 s, 1.50 s of CPU" in text and "Why: parses twice" in text
    assert "Not judged. peak RSS at 30,000 feeds: newsbot has no successful run there." in text
    assert "Not judged. the 100,000-entry feed not run." in text
    # start-up memory is judged on the typical config's `newsbot run`, here not measured
    assert "Not judged. typical config: `newsbot run`: not run." in text


def test_start_up_memory_is_judged_on_newsbot_run_with_the_service_beside_it(
    tmp_path: Path,
) -> None:
    store = tmp_path / "poll.jsonl"
    for run, (service, daemon) in enumerate(((66.0, 80.0), (67.0, 82.0), (68.0, 81.0)), 1):
        samples.append(store, {"kind": "daemon", "how": "service", "run": run, "rss_mb": service})
        samples.append(store, {"kind": "daemon", "how": "run", "run": run, "rss_mb": daemon})
    samples.append(store, {"kind": "daemon", "how": "run", "run": 4, "failed": "exit status 2"})
    found = samples.load(store)
    assert ("daemon", "run", 2) in samples.done(found)

    figures = daemon_case.summary(found)

    assert figures == {
        "service": {"runs": 3, "failures": [], "rss_mb": 67.0},
        "run": {"runs": 3, "failures": ["exit status 2"], "rss_mb": 81.0},
    }
    text = "\n".join(report.polling_lines([], None, None, {"start_rss": "telegram"}, figures))
    assert "| service | 3 | 67.0 MB |" in text
    assert "| `newsbot run` | 3 (1 failed) | 81.0 MB |" in text
    assert (
        "**Missed** by 1.16× the limit, 11 MB over. typical config: `newsbot run`: 81 MB (goal "
        "under 70 MB); the service alone, before its setup check: 67 MB. Why: telegram"
    ) in text
    lower = {how: m | {"rss_mb": 60.0} for how, m in figures.items()}
    assert "- Met. typical config: `newsbot run`: 60 MB" in "\n".join(
        report.polling_lines([], None, None, {}, lower)
    )


def test_the_big_feed_and_its_goals_are_reported() -> None:
    step = {"outcome": "ok", "cpu_s": 12.0, "wall_s": 20.0, "entries_read": 5, "new": 5}
    big = {
        "kind": "big",
        "entries": 100_000,
        "peak_mb": 700.0,
        "first": step,
        "not_modified": step | {"outcome": "not-modified", "cpu_s": 0.0},
        "unchanged_no_etag": step | {"outcome": "unchanged", "cpu_s": 0.25},
        "one_new": step | {"cpu_s": 0.9},
    }
    chosen = samples.big([{"kind": "big", "entries": 100_000, "failed": "timed out"}, big])

    text = "\n".join(report.polling_lines([], chosen, None, {"big_changed": "no index yet"}))

    assert "| first poll (every entry new, recorded) | ok | 12.00 s | 20.00 s |" in text
    assert "Peak RSS: 700 MB." in text
    assert "**Missed** by 1.20× the limit, 2.00 s over." in text and "Why: no index yet" in text
    assert "again, same body, no validators, CPU (nothing measurable): 0.25 s" in text
    assert "Met. 100,000-entry feed, one new entry (the body changed), CPU: 0.90 s" in text


def test_the_latency_and_per_article_sections_are_carried_over_verbatim(tmp_path: Path) -> None:
    old = tmp_path / "old.md"
    old.write_text(
        "# Benchmarks\n\nProduced by `python -m bench` on 2026-11-30 12:53 UTC, commit 26854a3, "
        "on a box.\n\n## Latency from publication\n\n| push | 0.245 s |\n\n"
        "## Polling scale\n\nold polling\n\n## Per-article CPU cost\n\nRatio 1.58×.\n\n"
        "## What profiling changed\n\n- a thing\n"
    )

    sections, origin = report.carried_sections(old)

    assert origin == "the report of 2026-11-30 12:53 UTC at commit 26854a3"
    assert sections["## Latency"] == ["## Latency from publication", "", "| push | 0.245 s |", ""]
    assert sections["## Per-article"] == ["## Per-article CPU cost", "", "Ratio 1.58×.", ""]
    assert report.carried_push_p95(["| push (`POST /push`) | 30 | 0.234 s | 0.345 s | p95 |"]) == (
        "0.345"
    )


def test_a_child_past_its_timeout_is_reported_and_killed_with_its_feed_server() -> None:
    feeds = 99_991  # marks this test's feed server among the machine's processes
    # 4 s: the feed server is up by then, and newsbot is far from polling 99,991 feeds
    result = polling._child(["newsbot", str(feeds), "1"], timeout=4)

    assert result == {"failed": "timed out after 4 s"}
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"bench.feed_server" in cmdline and str(feeds).encode() in cmdline:
            left.append(pid)
    assert left == [], "the child's feed server is still running"


def test_a_run_whose_polls_did_not_all_succeed_is_a_failure() -> None:
    sample = _poll(1000, 1, "newsbot", 1, 4.0, 1.0)
    sample["cycle1"]["ok"] = 990
    sample["cycle2"] |= {"not_modified": 990, "new": 10}

    assert polling.problem(sample) == "cycle 1: 990 of 1,000 feeds polled ok"
    sample["cycle1"]["ok"] = 1000
    assert polling.problem(sample) is None
    sample["cycle2"]["new"] = 3
    assert polling.problem(sample) == "cycle 2: 3 of 10 new items found"


def test_the_typical_config_case_measures_a_real_newsbot_run() -> None:
    """bench.daemon starts `python -m bot run` and waits for the log lines that end its
    start-up (every setup check, every feed's first poll): if they change, this fails fast
    instead of the benchmark waiting out its timeout."""
    measured = daemon_case.run_one("run")
    assert 20 < measured["rss_mb"] <= measured["peak_mb"] < 1000


def test_a_failed_latency_run_is_reported_and_the_rest_of_the_report_still_written() -> None:
    from bench.__main__ import merged
    from bench.__main__ import report as whole_report

    figures = merged([]) | {"lat": {"failed": "an article did not reach every platform"}}
    text = whole_report(figures, {}, None)
    assert "Failed: an article did not reach every platform." in text
    assert "### Start-up memory with a typical config" in text  # the rest is there
    assert "push to posted" not in text  # no p95 to judge
