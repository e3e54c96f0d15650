"""The `newsbot` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime

from bot.config import Config, ConfigError, load
from bot.logs import setup_logging

DEFAULT_CONFIG = "newsbot.yaml"


def _config_path(args: argparse.Namespace) -> str:
    return args.config or os.environ.get("NEWSBOT_CONFIG") or DEFAULT_CONFIG


def _load(args: argparse.Namespace, resolve_secrets: bool = True) -> Config:
    config = load(_config_path(args), resolve_secrets=resolve_secrets)
    setup_logging(args.log_level or config.file.logging.level, config.file.logging.format)
    return config


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args)
    print(f"{_config_path(args)}: OK")
    print(f"  outlet:   {config.outlet.name} {config.outlet.url}")
    print(f"  database: {_safe_db(config.file.database)}")
    for source in config.sources:
        print(f"  source {source.name}: {source.type} {source.url} every {source.interval:g}s")
    for target in config.targets:
        state = "" if target.enabled else " (disabled)"
        print(f"  target {target.name}: {target.platform} via {target.api_base}{state}")
    return 0


def _safe_db(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_run(args: argparse.Namespace) -> int:
    from bot.service import Service

    config = _load(args)
    service = Service(config)

    async def main() -> int:
        if not args.once:
            await service.run()
            return 0
        try:
            polls, report = await service.run_once()
        finally:
            await service.close()
        for poll in polls:
            extra = f": {poll.error}" if poll.error else ""
            print(f"source {poll.source}: {poll.outcome}, {poll.new} new{extra}")
        print(
            f"sent {report.sent}, retrying {report.retried}, failed {report.failed}, "
            f"uncertain {report.uncertain}"
            + (f", paused {', '.join(report.paused)}" if report.paused else "")
        )
        return 0 if not any(p.outcome == "error" for p in polls) else 3

    return asyncio.run(main())


def cmd_preview(args: argparse.Namespace) -> int:
    from bot.service import Service

    config = _load(args, resolve_secrets=False)
    config.secrets = {t.name: {} for t in config.targets}
    service = Service(config)

    async def main() -> int:
        try:
            article, _ = await service.pipeline.load_article(args.url)
            print(f"Article: {article.title}")
            print(f"  url:       {article.url}")
            print(f"  language:  {article.language}   published: {article.published}")
            print(f"  image:     {article.image_url}")
            print(f"  lead:      {article.lead[:300]}")
            for name, post, problem in service.pipeline.render_all(article):
                print(f"\n=== {name} ===")
                if post is not None:
                    if post.image_url:
                        print(f"[photo: {post.image_url}]")
                    print(post.text)
                if problem:
                    print(f"(!) {problem}")
            return 0
        finally:
            await service.client.aclose()

    return asyncio.run(main())


def cmd_status(args: argparse.Namespace) -> int:
    from bot.store import FAILED, UNCERTAIN, Store

    config = _load(args, resolve_secrets=False)

    async def main() -> int:
        store = Store(config.file.database)
        try:
            await store.init()
            counts = await store.counts()
            paused = await store.paused_targets()
            print(f"Articles known: {await store.count_articles()}")
            print("\nTargets:")
            for target in config.targets:
                row = counts.get(target.name, {})
                summary = ", ".join(f"{k} {v}" for k, v in sorted(row.items())) or "nothing yet"
                flag = f"  PAUSED: {paused[target.name]}" if target.name in paused else ""
                print(f"  {target.name} ({target.platform}): {summary}{flag}")
            print("\nSources:")
            for src in await store.source_overview():
                when = _ago(src["last_polled_at"])
                err = f"  last error: {src['last_error']}" if src["last_error"] else ""
                print(f"  {src['name']}: polled {when}, HTTP {src['last_status']}{err}")
            problems = await store.recent_deliveries(args.limit, [FAILED, UNCERTAIN])
            if problems:
                print("\nNeeds attention:")
                for d in problems:
                    print(f"  #{d.id} {d.target} {d.status}: {d.post.article_url}")
                    print(f"      {d.last_error}")
            print("\nRecent deliveries:")
            for d in await store.recent_deliveries(args.limit):
                where = d.remote_url or d.remote_id or ""
                when = _ago(d.updated_at)
                print(f"  #{d.id} {when} {d.target} {d.status} {d.post.article_url} {where}")
            return 0
        finally:
            await store.close()

    return asyncio.run(main())


def _ago(ts: float | None) -> str:
    if not ts:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo.runner import run_demo

    setup_logging(args.log_level or "WARNING")
    return asyncio.run(run_demo(every=args.every, forever=args.forever, db=args.db))


def cmd_user_add(args: argparse.Namespace) -> int:
    """`newsbot user add NAME --role editor|admin`: a web desk account (bot/webdesk)."""
    from bot.webdesk.accounts import add_user, read_password

    config = _load(args, resolve_secrets=False)
    try:
        password = read_password(args.password_file)
        new = asyncio.run(add_user(config.file.database, args.name, args.role, password))
    except (ValueError, OSError) as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return 2
    print(f"{'added' if new else 'updated'} {args.role} {args.name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsbot",
        description="Posts a newsroom's new articles to its social channels, exactly once.",
    )
    parser.add_argument(
        "-c", "--config", help=f"YAML config (default $NEWSBOT_CONFIG or {DEFAULT_CONFIG})"
    )
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the bot (polls, push endpoint, dispatcher)")
    run.add_argument("--once", action="store_true", help="poll once, deliver what is due, exit")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate the config and exit")
    check.set_defaults(func=cmd_check_config)

    preview = sub.add_parser("preview", help="show how each target would render an article")
    preview.add_argument("url")
    preview.set_defaults(func=cmd_preview)

    status = sub.add_parser("status", help="recent deliveries, failures and paused targets")
    status.add_argument("--limit", type=int, default=15)
    status.set_defaults(func=cmd_status)

    demo = sub.add_parser("demo", help="run against a bundled sample site and stand-in platforms")
    demo.add_argument("--every", type=float, default=4.0, help="seconds between sample articles")
    demo.add_argument("--forever", action="store_true", help="keep running after the samples")
    demo.add_argument("--db", help="state database file (default: a temporary one)")
    demo.set_defaults(func=cmd_demo)

    user = sub.add_parser("user", help="web desk accounts").add_subparsers(required=True)
    user_add = user.add_parser("add", help="add an account, or set its role and password")
    user_add.add_argument("name")
    user_add.add_argument("--role", choices=["editor", "admin"], required=True)
    user_add.add_argument("--password-file", help="read the password from this file's first line")
    user_add.set_defaults(func=cmd_user_add)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"newsbot: invalid configuration\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
