"""The `newsbot` command.

Every mistake of the user's or of the network ends as one line on stderr (what, where, what to
do) and a documented exit code; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import traceback
from collections.abc import Callable
from datetime import datetime, tzinfo
from enum import IntEnum
from pathlib import Path
from typing import Any

from bot.config import Config, ConfigError, load
from bot.logs import setup_logging
from bot.secrets import redact

DEFAULT_CONFIG = "newsbot.yaml"


class Exit(IntEnum):
    """Exit codes scripts can rely on (README, "Command line")."""

    OK = 0
    PROBLEMS = 1  # the command ran and found something that needs attention
    USAGE = 2  # bad command line or configuration
    RUNTIME = 3  # database, network or platform error
    BUG = 4  # an unexpected error: a bug (--debug shows the traceback)
    INTERRUPTED = 130


class CLIError(Exception):
    """A failure told to the user in one line, with the exit code it ends the command with."""

    def __init__(self, message: str, code: Exit = Exit.RUNTIME) -> None:
        super().__init__(message)
        self.code = code


def _config_path(args: argparse.Namespace) -> str:
    return args.config or os.environ.get("NEWSBOT_CONFIG") or DEFAULT_CONFIG


def _load(args: argparse.Namespace, resolve_secrets: bool = True) -> Config:
    config = load(_config_path(args), resolve_secrets=resolve_secrets)
    args.database_url = config.file.database  # for the database error's message
    setup_logging(args.log_level or config.file.logging.level, config.file.logging.format)
    return config


# Errors -> one line ------------------------------------------------------------------------


def _safe_db(url: str) -> str:
    from bot.store.url import DatabaseURL, InvalidDatabaseURL

    try:
        return DatabaseURL.parse(url).render(hide_password=True)
    except InvalidDatabaseURL:
        return repr(url) if "@" not in url else "(the URL given)"


def _sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (None: not SQLite, in memory, or not a URL)."""
    from bot.store.url import DatabaseURL, InvalidDatabaseURL

    try:
        parsed = DatabaseURL.parse(url)
    except InvalidDatabaseURL:
        return None
    if parsed.backend != "sqlite" or parsed.in_memory or not parsed.database:
        return None
    return Path(parsed.database)


def _database_problem(exc: Exception, url: str, config_path: str) -> CLIError:
    from bot.store.url import InvalidDatabaseURL

    where = f"(`database` in {config_path}, or $NEWSBOT_DATABASE)" if config_path else "(--db)"
    if isinstance(exc, InvalidDatabaseURL):
        return CLIError(
            f"database {url!r} is not a database URL {where}; "
            "use e.g. sqlite:///newsbot.db or postgresql://user@host/db",
            Exit.USAGE,
        )
    reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    hint = "check that the server runs and the URL, user and database are right"
    path = _sqlite_file(url)
    if path is not None:
        folder = path.resolve().parent
        if not folder.is_dir():
            hint = f"the folder {folder} does not exist: create it or change the path"
        elif not os.access(folder, os.W_OK):
            hint = f"the folder {folder} is not writable: fix its permissions or change the path"
        else:
            hint = "check the file and its folder's permissions"
    return CLIError(f"database {_safe_db(url)}: {reason} {where}; {hint}")


def explain(exc: BaseException, args: argparse.Namespace) -> CLIError | None:
    """The one-line account of an error the user or the network caused (None: a bug)."""
    if isinstance(exc, ImportError):
        # Checked first: the imports below may be the very ones that fail.
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return CLIError(
            f"the installation is incomplete: {first} (install the missing package, or "
            "reinstall newsbot: `pip install .` in its folder)"
        )
    from bot.enrich import EnrichmentError
    from bot.fetch import FetchError, RefusedURL

    if isinstance(exc, CLIError):
        return exc
    if isinstance(exc, ConfigError):
        if len(exc.problems) == 1:  # the usual case: one line, naming where
            return CLIError(f"invalid configuration: {exc.problems[0]}", Exit.USAGE)
        return CLIError(f"invalid configuration: {exc}", Exit.USAGE)
    from bot.store.aio import DatabaseError, NotAnAsyncDriver
    from bot.store.url import InvalidDatabaseURL

    if isinstance(exc, InvalidDatabaseURL | DatabaseError | NotAnAsyncDriver):
        url = getattr(args, "database_url", None) or "?"
        config_path = "" if args.command == "demo" else _config_path(args)
        return _database_problem(exc, url, config_path)
    if isinstance(exc, RefusedURL):
        return CLIError(
            f"{exc} (a private address is reachable only from a source whose allow_hosts "
            "names its host)"
        )
    if isinstance(exc, FetchError):
        return CLIError(f"cannot fetch {exc}")
    if isinstance(exc, EnrichmentError):
        return CLIError(f"no article found: {exc}")
    platform = _platform_error(exc)
    if platform is not None:
        return CLIError(platform)
    if isinstance(exc, OSError):
        return CLIError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    return None


def _platform_error(exc: BaseException) -> str | None:
    """A platform library's error (bad token, unreachable API) in one line."""
    import httpx
    import telegram.error
    import tweepy.errors

    if isinstance(exc, telegram.error.TelegramError):
        return f"Telegram: {exc.message} (check the bot token and the chat id)"
    if isinstance(exc, tweepy.errors.TweepyException):
        return f"X: {str(exc).splitlines()[0]} (check the four X credentials)"
    if isinstance(exc, httpx.HTTPError):
        where = f" {exc.request.url}" if _has_request(exc) else ""
        return f"network error{where}: {type(exc).__name__}: {exc}"
    return None


def _has_request(exc: Any) -> bool:
    try:
        return exc.request is not None
    except RuntimeError:  # httpx raises when the error was made without a request
        return False


# Commands -------------------------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args)
    # What `run` would import, and what it imports later (the extraction stack at the first
    # article, Pillow at the first image, twitter-text at the first X or Mastodon render,
    # Jinja2 at the first template, each target's platform library at its first call):
    # a broken installation is found here, not at the first post.
    import importlib

    import htmldate  # noqa: F401
    import PIL.Image  # noqa: F401
    import trafilatura  # noqa: F401
    import twitter_text  # noqa: F401

    import bot.language_model
    import bot.service
    import bot.template_sandbox  # noqa: F401
    from adapters import adapter_class

    for platform in sorted({target.platform for target in config.targets}):
        for module in adapter_class(platform).deferred_imports:
            importlib.import_module(module)

    print(f"{_config_path(args)}: OK")
    print(f"  outlet:   {config.outlet.name} {config.outlet.url}")
    print(f"  database: {_safe_db(config.file.database)}")
    print(f"  timezone: {config.file.timezone}")
    for source in config.sources:
        print(f"  source {source.name}: {source.type} {source.url} every {source.interval:g}s")
    for target in config.targets:
        state = "" if target.enabled else " (disabled)"
        print(f"  target {target.name}: {target.platform} via {target.api_base}{state}")
    if getattr(args, "online", False):
        return _check_online(config)
    return Exit.OK


def _check_online(config: Config) -> int:
    """Ask each platform whether the setup works: one line per target and editors' chat;
    exit code 1 when any fails."""
    from bot.selfcheck import check_setup
    from bot.service import build_adapters

    async def main() -> list:
        adapters = build_adapters(config)
        try:
            return await check_setup(config, adapters.values())
        finally:
            for adapter in adapters.values():
                await adapter.aclose()

    checks = asyncio.run(main())
    print("online check (asks each platform, posts nothing):")
    for check in checks:
        print(f"  {check}")
    return Exit.PROBLEMS if any(check.failed for check in checks) else Exit.OK


def cmd_run(args: argparse.Namespace) -> int:
    from bot.service import Service

    config = _load(args)
    # The daemon reloads its file when it changes and on SIGHUP (bot/reload.py).
    service = Service(config, config_path=None if args.once else _config_path(args))

    async def main() -> int:
        if not args.once:
            try:
                await service.run()
            except Exception:
                # Close the database first: its worker thread must not outlive the loop.
                with contextlib.suppress(Exception):
                    await service.close()
                raise
            return Exit.OK
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
        return Exit.OK if not any(p.outcome == "error" for p in polls) else Exit.RUNTIME

    return asyncio.run(main())


def cmd_preview(args: argparse.Namespace) -> int:
    from bot.service import Service

    config = _load(args, resolve_secrets=False)
    # A preview sends nothing: no secrets are read and the editors' chat is not opened.
    config.secrets = {t.name: {} for t in config.targets}
    config.editors = None
    # Nor is the state database read or created: the service gets a throwaway one in memory.
    config.file = config.file.model_copy(update={"database": "sqlite://"})
    service = Service(config)
    tz = config.timezone

    async def main() -> int:
        try:
            article, _ = await service.pipeline.load_article(args.url)
            print(f"Article: {article.title}")
            print(f"  url:       {article.url}")
            published = _when(article.published.timestamp(), tz) if article.published else "?"
            print(f"  language:  {article.language}   published: {published}")
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
            return Exit.OK
        finally:
            await service.client.aclose()
            await service.store.engine.dispose()

    return asyncio.run(main())


def cmd_status(args: argparse.Namespace) -> int:
    from bot.store import DeliveryStatus, Store

    config = _load(args, resolve_secrets=False)
    url = config.file.database
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        # A read-only command: never create the database to report that it is empty.
        raise CLIError(
            f"no state database at {path} ({_safe_db(url)}): nothing has run with this "
            f"configuration yet; `newsbot run --once` creates it"
        )
    tz = config.timezone

    async def main() -> int:
        store = Store(url)
        try:
            await store.init()
            counts = await store.counts()
            paused = await store.paused_targets()
            print(f"Articles known: {await store.count_articles()}")
            print(f"\nTargets (times in {config.file.timezone}):")
            for target in config.targets:
                row = counts.get(target.name, {})
                summary = ", ".join(f"{k} {v}" for k, v in sorted(row.items())) or "nothing yet"
                flag = f"  PAUSED: {paused[target.name]}" if target.name in paused else ""
                print(f"  {target.name} ({target.platform}): {summary}{flag}")
            print("\nSources:")
            failing = False
            for src in await store.source_overview():
                when = _when(src["last_polled_at"], tz)
                status = src["last_status"]
                answer = f"HTTP {status}" if status else "no answer"
                err = f"  last error: {src['last_error']}" if src["last_error"] else ""
                failing = failing or bool(src["last_error"])
                print(f"  {src['name']}: polled {when}, {answer}{err}")
            problems = await store.recent_deliveries(
                args.limit, [DeliveryStatus.FAILED, DeliveryStatus.UNCERTAIN]
            )
            if problems:
                print("\nNeeds attention:")
                for d in problems:
                    print(f"  #{d.id} {d.target} {d.status}: {d.post.article_url}")
                    print(f"      {d.last_error}")
            print("\nRecent deliveries:")
            for d in await store.recent_deliveries(args.limit):
                where = d.remote_url or d.remote_id or ""
                when = _when(d.updated_at, tz)
                print(f"  #{d.id} {when} {d.target} {d.status} {d.post.article_url} {where}")
            return Exit.PROBLEMS if problems or paused or failing else Exit.OK
        finally:
            await store.close()

    return asyncio.run(main())


def _when(ts: float | None, tz: tzinfo) -> str:
    """A moment in the newsroom's time zone."""
    if not ts:
        return "never"
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo.runner import run_demo

    setup_logging(args.log_level or "WARNING")
    if args.db:
        args.database_url = f"sqlite:///{Path(args.db).resolve()}"
        folder = Path(args.db).resolve().parent
        if not folder.is_dir():
            raise CLIError(
                f"database {args.database_url} (--db): the folder {folder} does not exist: "
                "create it or choose another path",
                Exit.USAGE,
            )
    return asyncio.run(run_demo(every=args.every, forever=args.forever, db=args.db))


def cmd_user_add(args: argparse.Namespace) -> int:
    """`newsbot user add NAME --role editor|admin`: a web desk account (bot/webdesk)."""
    from bot.webdesk.accounts import add_user, read_password

    config = _load(args, resolve_secrets=False)
    args.database_url = config.file.database
    try:
        password = read_password(args.password_file)
    except OSError as exc:
        raise CLIError(f"--password-file: {exc.strerror}: {exc.filename}", Exit.USAGE) from exc
    except ValueError as exc:
        raise CLIError(str(exc), Exit.USAGE) from exc
    try:
        new = asyncio.run(add_user(config.file.database, args.name, args.role, password))
    except ValueError as exc:
        raise CLIError(str(exc), Exit.USAGE) from exc
    print(f"{'added' if new else 'updated'} {args.role} {args.name}")
    return Exit.OK


# The command line ---------------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from bot import __version__

    try:
        return version("newsbot")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return __version__


def _common_options(defaults: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the subcommand (`-c x.yaml status` and
    `status -c x.yaml`). The subcommands' copies default to "absent", so they never overwrite
    what was given before the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    default: Any = None if defaults else argparse.SUPPRESS
    common.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        default=default,
        help=f"YAML configuration (default: $NEWSBOT_CONFIG, else ./{DEFAULT_CONFIG})",
    )
    common.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default=default,
        help="log detail on stderr (default: the config's logging.level)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=False if defaults else argparse.SUPPRESS,
        help="show the full traceback of an error instead of its one-line account",
    )
    return common


EXIT_CODES_HELP = (
    "exit codes: 0 ok; 1 problems found (status: failed/uncertain deliveries, paused targets, "
    "failing sources); 2 usage or configuration error; 3 database, network or platform error; "
    "4 unexpected error (a bug: run again with --debug and report it); 130 interrupted"
)


def cmd_desk(args: argparse.Namespace) -> int:
    """`newsbot retry|skip|sent|schedule|history`: the editors' desk operations (the same
    code as the editors' chat), for newsrooms without an editors' chat."""
    import getpass
    import time

    from bot.desk import Desk, Editor, parse_id, parse_when
    from bot.store import Store

    delivery_id = None
    if args.command != "history":
        delivery_id = parse_id(args.id)
        if delivery_id is None:
            raise CLIError(
                f"{args.id[:40]!r} is not a delivery number (see `newsbot status`)", Exit.USAGE
            )
    if args.command == "history" and args.limit < 1:
        raise CLIError("--limit must be 1 or more", Exit.USAGE)
    config = _load(args, resolve_secrets=False)
    at = None
    if args.command == "schedule":
        at = parse_when(" ".join(args.when), config.timezone, time.time())
        if isinstance(at, str):
            raise CLIError(at.replace("/schedule", "newsbot schedule"), Exit.USAGE)
    if args.command == "sent" and args.link and not args.link.startswith(("http://", "https://")):
        raise CLIError("the link must start with https://", Exit.USAGE)
    url = config.file.database
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        raise CLIError(f"no state database at {path} ({_safe_db(url)}): nothing to change")
    name = getpass.getuser()
    editor = Editor(f"cli:{name}", name)

    async def unavailable(_: str) -> str:
        return "not available on the command line"

    async def main() -> int:
        store = Store(url)
        try:
            targets = [t.name for t in config.targets]
            desk = Desk(
                store,
                targets,
                dict.fromkeys(targets, True),
                set(),
                unavailable,
                unavailable,
                lambda: None,
                tz=config.timezone,
            )
            if delivery_id is None:
                reply = await desk.history(args.limit, args.page)
            elif args.command == "retry":
                reply = await desk.retry(editor, delivery_id)
            elif args.command == "skip":
                reply = await desk.skip(editor, delivery_id)
            elif args.command == "sent":
                reply = await desk.mark_sent(editor, delivery_id, args.link)
            else:
                assert isinstance(at, float)
                reply = await desk.schedule(editor, delivery_id, at)
        finally:
            await store.close()
        if not reply.ok:  # refused: one line on stderr, exit 1 (nothing changed)
            raise CLIError(reply.text.replace("\n", " "), Exit.PROBLEMS)
        print(reply.text)
        return 0

    return asyncio.run(main())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsbot",
        description="Posts a newsroom's new articles to its social channels, exactly once.",
        epilog=EXIT_CODES_HELP,
        parents=[_common_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"newsbot {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options(defaults=False)

    def command(
        name: str, func: Callable[[argparse.Namespace], int], summary: str, description: str
    ) -> argparse.ArgumentParser:
        cmd = sub.add_parser(
            name, help=summary, description=description, parents=[common], epilog=EXIT_CODES_HELP
        )
        cmd.set_defaults(func=func)
        return cmd

    run = command(
        "run",
        cmd_run,
        "run the bot: poll the sources, take pushes, post to every target",
        "Run the daemon (polls, push endpoint, dispatcher, editors' chat) until SIGTERM or "
        "Ctrl-C. The first poll of a source records its backlog without posting it.",
    )
    run.add_argument(
        "--once", action="store_true", help="poll every source once, deliver what is due, exit"
    )

    check = command(
        "check-config",
        cmd_check_config,
        "check the configuration and list every mistake; changes nothing",
        "Validate the configuration file and print a summary, or every mistake with its "
        "location. Reads no database and sends nothing.",
    )
    check.add_argument(
        "--online",
        action="store_true",
        help="also ask each platform whether every target and the editors' chat really work "
        "(posts nothing)",
    )

    preview = command(
        "preview",
        cmd_preview,
        "show how each target would post an article; sends nothing",
        "Fetch an article page, extract it and render the post of every target, without "
        "sending anything or touching the state database.",
    )
    preview.add_argument("url", help="the article's URL (http or https)")

    status = command(
        "status",
        cmd_status,
        "recent deliveries, failures, paused targets and sources",
        "Report the state database: deliveries per target, paused targets, the last poll of "
        "each source, deliveries that need attention. Read-only: creates no database.",
    )
    status.add_argument(
        "--limit", type=int, default=15, metavar="N", help="recent deliveries to list (15)"
    )

    for name, summary in (
        ("retry", "send a failed or uncertain delivery again (check the channel first)"),
        ("skip", "never post a delivery that has not been sent"),
        ("sent", "mark an uncertain delivery as posted (you checked the channel)"),
        ("schedule", "post a waiting delivery at a time in the newsroom's zone"),
    ):
        desk_cmd = command(name, cmd_desk, summary, f"The editors' /{name}, recorded as yours.")
        desk_cmd.add_argument("id", help="the delivery number (see `newsbot status`)")
        if name == "sent":
            desk_cmd.add_argument("link", nargs="?", help="the published post's link")
        if name == "schedule":
            desk_cmd.add_argument("when", nargs="+", help="HH:MM or YYYY-MM-DD HH:MM")
    history = command(
        "history", cmd_desk, "the editors' last decisions", "Who decided what, and when."
    )
    history.add_argument(
        "--limit", type=int, default=20, metavar="N", help="decisions a page (20, at most 100)"
    )
    history.add_argument(
        "--page", type=int, default=1, metavar="P", help="page 2: the N decisions before (1)"
    )

    demo = command(
        "demo",
        cmd_demo,
        "run against a bundled sample site and stand-in platforms, no accounts needed",
        "Serve a sample news site and stand-ins of the platforms on 127.0.0.1, publish a "
        "sample article every few seconds and print each post as the platform received it.",
    )
    demo.add_argument(
        "--every", type=float, default=4.0, metavar="SECONDS", help="seconds between articles"
    )
    demo.add_argument("--forever", action="store_true", help="keep running after the samples")
    demo.add_argument("--db", metavar="FILE", help="state database file (default: a temporary one)")

    user = sub.add_parser(
        "user", help="web desk accounts (bot/webdesk)", description="Manage web desk accounts."
    ).add_subparsers(
        dest="user_command", required=True, metavar="ACTION", help="add: add or change an account"
    )
    user_add = user.add_parser(
        "add",
        help="add an account, or set its role and password",
        description="Add a web desk account, or set an existing one's role and password. The "
        "password is read from --password-file, else asked for on the terminal; it is stored "
        "as an argon2 hash.",
        parents=[common],
        epilog=EXIT_CODES_HELP,
    )
    user_add.add_argument("name", help="the account name editors log in with")
    user_add.add_argument(
        "--role",
        choices=["editor", "admin"],
        required=True,
        help="editor: queue, previews, decisions; admin: also pause and resume targets, edit rules",
    )
    user_add.add_argument("--password-file", help="read the password from this file's first line")
    user_add.set_defaults(func=cmd_user_add)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    except Exception as exc:
        if args.debug:
            print(redact(traceback.format_exc()), file=sys.stderr, end="")
        try:
            problem = explain(exc, args)
        except Exception:  # explaining must never add a traceback of its own
            problem = None
        if problem is None:
            line = f"newsbot {args.command}: unexpected error: {type(exc).__name__}: {exc}"
            print(
                redact(line) + " (a bug: run again with --debug for the traceback, report it)",
                file=sys.stderr,
            )
            return Exit.BUG
        print(redact(f"newsbot {args.command}: {problem}"), file=sys.stderr)
        return problem.code


if __name__ == "__main__":
    sys.exit(main())
