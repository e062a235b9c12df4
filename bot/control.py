"""The running bot's local control channel: `qwenbot index`, `ask` and `doctor` next to a bot that
holds a local index folder.

A local Chroma folder is single-process (retrieval/store.py), so while `qwenbot run` holds it the
commands hand their work to the bot instead of opening it: over a Unix socket `control.sock` in the
index folder, with a secret in `control.secret` beside it that only its owner can read (0600). Both
are made anew at each start (the bot holds the index lock then, so any found there are a killed bot's)
and removed at shutdown.

The protocol is JSON lines. The client sends one request, `{"secret", "op", "args"}`; the bot answers
with lines of its own, the last one `{"exit": status}` or `{"error": "one line"}`. A request without
the right secret is closed unanswered.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import os
import secrets
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from bot.errors import QwenbotError, user_message
from bot.indexing import IndexRequest
from retrieval.config import IndexConfig
from retrieval.errors import IndexLockedError, RetrievalError
from retrieval.models import Hit, SearchFilter
from retrieval.search import IndexInfo, Searcher, SearchService
from retrieval.store import acquire_index_lock

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
SECRET_NAME = "control.secret"
_MAX_REQUEST_BYTES = 1024 * 1024  # an index request naming thousands of files fits; anything bigger is not ours
_REQUEST_TIMEOUT = 10.0  # seconds a client has to send its request line
_CONNECT_TIMEOUT = 10.0  # seconds to connect and get an answer started (a job then takes what it takes)

Send = Callable[[dict[str, Any]], None]
# An operation: gets the request's args and a way to send lines back; returns the exit status.
Handler = Callable[[dict[str, Any], Send], int]


class ControlError(QwenbotError):
    """The running bot could not be reached, or refused the request; `str()` says which and why."""


# --- the bot's side ------------------------------------------------------------------------------


class ControlServer:
    """Serves `handlers` (op name -> Handler) on `index_dir/control.sock` until `close()`. The caller
    must hold the index lock: that is what makes socket and secret files found there stale."""

    def __init__(self, index_dir: Path, handlers: Mapping[str, Handler]) -> None:
        self.socket_path = index_dir / SOCKET_NAME
        self.secret_path = index_dir / SECRET_NAME
        self._handlers = dict(handlers)
        self._secret = secrets.token_hex(32).encode()
        self.socket_path.unlink(missing_ok=True)  # a killed bot's
        try:
            self._server = _UnixServer(str(self.socket_path), self._serve)
        except OSError as exc:  # e.g. "AF_UNIX path too long" (about 107 bytes at most)
            raise ControlError(f"cannot open the control socket {self.socket_path}: {exc.strerror or exc}") from None
        os.chmod(self.socket_path, 0o600)
        _write_private(self.secret_path, self._secret.decode())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="qwenbot-control", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Takes no more requests; ones being answered finish on their own threads."""
        self._server.shutdown()
        self._server.server_close()
        self.secret_path.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(_REQUEST_TIMEOUT)
        try:
            with conn.makefile("rb") as reader:
                line = reader.readline(_MAX_REQUEST_BYTES)
        except OSError:
            return
        request = _parse(line) or {}
        given = request.get("secret")
        # compared in constant time: the time taken tells nothing about how much of a guess was right
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self._secret):
            log.warning("control channel: refused a request without the right secret")
            return  # nothing at all is sent back
        conn.settimeout(None)  # an index job takes as long as it takes
        op, args = request.get("op"), request.get("args")
        handler = self._handlers.get(op) if isinstance(op, str) else None
        send = _Sender(conn)
        if handler is None or not isinstance(args, dict):
            send({"error": f"the running bot does not know the request {op!r}: is it an older qwenbot?"})
            return
        try:
            send({"exit": handler(args, send)})
        except (QwenbotError, RetrievalError) as exc:
            send({"error": user_message(exc)})
        except Exception:
            log.exception("control channel: %s request failed", op)
            send({"error": f"the running bot failed on the {op} request: its log has the details"})


class _Sender:
    """Sends JSON lines to a client. When the client is gone (Ctrl-C) the job still runs to its end:
    an index job cut off midway would leave work undone for no reason."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._gone = False

    def __call__(self, message: dict[str, Any]) -> None:
        if self._gone:
            return
        try:
            self._conn.sendall((json.dumps(message) + "\n").encode())
        except OSError:
            self._gone = True
            log.info("control channel: the client left; the request goes on")


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True  # a job in progress does not hold up the process's exit

    def __init__(self, path: str, serve: Callable[[socket.socket], None]) -> None:
        self.serve_connection = serve
        super().__init__(path, _Connection)


class _Connection(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        cast(_UnixServer, self.server).serve_connection(self.request)


def _write_private(path: Path, text: str) -> None:
    """Writes `path` readable by its owner only, replacing it whole (a reader never sees half)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # whatever the umask
        handle.write(text)
    os.replace(tmp, path)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# --- the commands' side ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BotConnection:
    """The way to the bot that holds a local index folder."""

    index_dir: Path
    pid: str  # as the index lock file names it, for messages

    def index(self, request: IndexRequest, out: Callable[[str], None]) -> int:
        """Runs an index job in the bot; its lines go to `out` as it writes them. The exit status."""
        args = dataclasses.asdict(request)
        # the bot runs elsewhere: paths given relative to this shell's folder are made absolute here
        args["paths"] = [str(Path(p).resolve()) for p in request.paths]
        args["remove"] = [str(Path(t).resolve()) if Path(t).exists() else t for t in request.remove]
        status = 0
        for message in self._call("index", args):
            if "line" in message:
                out(str(message["line"]))
            status = int(message.get("exit", status))
        return status

    def stats(self) -> IndexInfo:
        return IndexInfo(**self.fetch("stats", {}))

    def searcher(self, config: IndexConfig) -> RemoteSearcher:
        return RemoteSearcher(config, self)

    def fetch(self, op: str, args: dict[str, Any]) -> Any:
        """The one value the bot answers a read request with (the message named after the request)."""
        [value] = [m[op] for m in self._call(op, args) if op in m]
        return value

    def _call(self, op: str, args: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The bot's answer lines; raises ControlError for an error line or when none come."""
        secret_path, socket_path = self.index_dir / SECRET_NAME, self.index_dir / SOCKET_NAME
        try:
            secret = secret_path.read_text().strip()
        except OSError as exc:
            raise ControlError(self._unreachable(f"cannot read {secret_path}: {exc.strerror or exc}")) from None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(_CONNECT_TIMEOUT)
            try:
                conn.connect(str(socket_path))
                conn.sendall((json.dumps({"secret": secret, "op": op, "args": args}) + "\n").encode())
            except OSError as exc:
                raise ControlError(self._unreachable(f"{socket_path}: {exc.strerror or exc}")) from None
            conn.settimeout(None)
            with conn.makefile("rb") as reader:
                for line in reader:
                    message = _parse(line) or {}
                    if "error" in message:
                        raise ControlError(f"the running bot (pid {self.pid}): {message['error']}")
                    yield message
                    if "exit" in message:
                        return
        raise ControlError(f"the running bot (pid {self.pid}) closed the connection without an answer; see its log")

    def _unreachable(self, why: str) -> str:
        return (
            f"the index in {self.index_dir} is held by process {self.pid}, which takes no requests ({why}): "
            "another `qwenbot index` still running, a bot still starting, or one from before the control "
            "channel. Try again in a moment, or restart the bot"
        )


class RemoteSearcher:
    """Searches through the running bot: what `qwenbot ask` uses while a bot holds the index."""

    def __init__(self, config: IndexConfig, bot: BotConnection) -> None:
        self.config = config
        self._bot = bot

    def search(self, query: str, k: int = 6, filter: SearchFilter | None = None) -> list[Hit]:
        scope = dataclasses.asdict(filter) if filter is not None else None
        hits = self._bot.fetch("search", {"query": query, "k": k, "filter": scope})
        return [Hit(**{**h, "tags": tuple(h["tags"])}) for h in hits]

    def term_idf(self, query: str) -> dict[str, float]:
        idf = self._bot.fetch("term_idf", {"query": query})
        return {str(term): float(value) for term, value in idf.items()}


@contextmanager
def local_or_bot(config: IndexConfig) -> Iterator[BotConnection | None]:
    """None while this process holds the index itself (no bot runs on it, or it uses a Chroma server):
    open it as usual. The running bot's connection while a bot holds the local index folder."""
    try:
        lock = acquire_index_lock(config)
    except IndexLockedError:
        pass
    else:
        with lock:
            yield None
        return
    try:
        pid = (config.index_dir / ".lock").read_text().strip() or "unknown"
    except OSError:
        pid = "unknown"
    yield BotConnection(config.index_dir, pid)


@contextmanager
def open_searcher(config: IndexConfig) -> Iterator[SearchService]:
    """A Searcher over the index, or one that searches through the running bot that holds it."""
    with local_or_bot(config) as bot:
        if bot is not None:
            yield bot.searcher(config)
            return
        with Searcher(config) as searcher:
            yield searcher


def index_info(config: IndexConfig) -> IndexInfo:
    """The index's size and age, read here or through the running bot."""
    with local_or_bot(config) as bot:
        if bot is not None:
            return bot.stats()
        with Searcher(config) as searcher:
            return searcher.stats()


def search_handlers(searcher: Searcher) -> dict[str, Handler]:
    """The bot's read operations over its searcher."""

    def search(args: dict[str, Any], send: Send) -> int:
        scope = args.get("filter")
        flt = SearchFilter(tuple(scope["path_prefixes"]), tuple(scope["tags"])) if scope else None
        hits = searcher.search(str(args["query"]), k=int(args["k"]), filter=flt)
        send({"search": [dataclasses.asdict(h) for h in hits]})
        return 0

    def term_idf(args: dict[str, Any], send: Send) -> int:
        send({"term_idf": searcher.term_idf(str(args["query"]))})
        return 0

    def stats(args: dict[str, Any], send: Send) -> int:
        send({"stats": dataclasses.asdict(searcher.stats())})
        return 0

    return {"search": search, "term_idf": term_idf, "stats": stats}


def index_request(args: dict[str, Any]) -> IndexRequest:
    """An index request as `BotConnection.index` sent it."""
    return IndexRequest(**{**args, "paths": [Path(p) for p in args["paths"]]})
