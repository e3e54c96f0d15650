"""Replicas: several `newsbot run` processes share one PostgreSQL state database.

They all deliver (deliveries claimed with leases, one replica per target at a time); one
leader, chosen by an advisory lock, polls the feeds. Midway the leader is SIGKILLed: another
replica must take over polling within a few leader checks, and at the end every (article,
target) pair is posted once, or flagged uncertain if the dead leader was mid-send, none twice.
Uses the crash experiment's world (sample site + four platform stand-ins) and verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.config import validate
from bot.store import DeliveryStatus, Store
from reliability.crash import (
    Bot,
    Burst,
    Ledger,
    _verdict,
    bot_config,
    bot_environ,
    fresh_schema,
    settle,
    world,
)

LEADER_CHECK = 0.5
LEADER_LINE = "is now the leader"


def _leads(bot: Bot, since_line: int = 0) -> bool:
    """Whether the replica's log says it became leader (after line `since_line`)."""
    return any(LEADER_LINE in line for line in bot.lines[since_line:])


async def run(
    replicas: int = 3, articles: int = 16, database_url: str = "", seed: int = 1
) -> dict[str, Any]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="newsbot-replicas-") as tmp:
        workdir = Path(tmp)
        with fresh_schema(database_url) as url:
            async with world() as made:
                raw = bot_config(made, url, workdir)
                raw["dispatch"]["leader_check"] = LEADER_CHECK
                validate(raw, "replicas config", environ=bot_environ())
                config_path = workdir / "newsbot.yaml"
                config_path.write_text(json.dumps(raw))  # JSON is YAML
                store = Store(url)
                await store.init()  # the schema exists before the replicas race to create it
                try:
                    figures = await _experiment(made, store, config_path, replicas, articles)
                finally:
                    await store.close()
    figures.update(replicas=replicas, wall_time_s=round(time.monotonic() - started, 1))
    return figures


async def _experiment(
    made: Any, store: Store, config_path: Path, replicas: int, total: int
) -> dict[str, Any]:
    ledger = Ledger(store)
    log: list[str] = []
    bots = [Bot(config_path, log) for _ in range(replicas)]
    for bot in bots:
        await bot.start()
    ready = [await bot.wait_ready() for bot in bots]
    burst = Burst(total, waves=4)
    handover: float | None = None
    killed: Bot | None = None
    try:
        # First half of the burst with every replica up.
        deadline = time.monotonic() + 60
        while len(burst.published) < total // 2 and time.monotonic() < deadline:
            if await burst.may_publish(ledger):
                await burst.publish_wave(made.site)
            await asyncio.sleep(0.2)
        killed = next((b for b in bots if _leads(b)), None)
        if killed is not None:
            await asyncio.sleep(0.3)  # mid-delivery of the wave just published
            seen = {id(b): len(b.lines) for b in bots}
            killed_at = time.monotonic()
            await killed.kill()
            while time.monotonic() - killed_at < 30:
                if any(_leads(b, seen[id(b)]) for b in bots if b is not killed):
                    handover = time.monotonic() - killed_at
                    break
                await asyncio.sleep(0.05)
        settled = await settle(made, ledger, burst, time.monotonic() + 90 + total)
    finally:
        for bot in bots:
            if bot is not killed and bot.process is not None and bot.process.returncode is None:
                await bot.terminate()
    figures = await _verdict(made, ledger, burst)
    async with store.engine.connect() as conn:
        senders = (
            await conn.execute(
                "SELECT DISTINCT claimed_by FROM deliveries WHERE status = :sent",
                {"sent": str(DeliveryStatus.SENT)},
            )
        ).scalars()
        sending_replicas = len({s for s in senders if s})
    figures.update(
        replicas_ready=sum(ready),
        leader_killed=killed is not None,
        handover_s=round(handover, 2) if handover is not None else None,
        leader_check_s=LEADER_CHECK,
        replicas_that_posted=sending_replicas,
        settled=settled,
    )
    return figures


def table_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    f = figures
    return [
        ("replicas on one PostgreSQL database", str(f["replicas"])),
        ("articles x targets = pairs", f"{f['articles']} x {f['targets']} = {f['pairs']}"),
        ("replicas that delivered posts", str(f["replicas_that_posted"])),
        (
            "leader SIGKILLed midway; polling taken over after",
            f"{f['handover_s']} s (leader check every {f['leader_check_s']} s)",
        ),
        (
            "sent / uncertain / failed",
            f"{f['sent']} / {f['uncertain']} / {f['failed']}",
        ),
        ("duplicates", str(f["duplicates"])),
        ("lost or stalled (missing or left open)", str(f["lost"])),
        ("wall time", f"{f['wall_time_s']} s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m reliability.replicas")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--articles", type=int, default=16)
    parser.add_argument(
        "--postgres", default="postgresql://postgres@127.0.0.1:5432/test", help="server URL"
    )
    args = parser.parse_args()
    figures = asyncio.run(run(args.replicas, args.articles, args.postgres))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
