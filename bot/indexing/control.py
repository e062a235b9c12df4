"""The running bot's local control channel: `qwenbot index`, `ask` and `doctor` next to a bot that
holds a local index folder.

A local Chroma folder is single-process (retrieval/store.py), so while `qwenbot run` holds it the
commands hand their work to the bot instead of opening it: over a Unix socket `control.sock` in the
index folder, with a secret in `control.secret` beside it that only its owner can read (0600). Both
are made anew at each start (the bot holds the index lock then, so any found there are a killed bot's)
and removed at shutdown. A socket path is at most about 100 bytes (AF_UNIX): for an index folder deeper
than that, the socket goes into a private folder (0700) of its own under $XDG_RUNTIME_DIR or the temp
folder, and `control.where` in the index folder (0600) names it; a command reads it there.

The protocol is JSON lines. The client sends one request, `{"secret", "op", "args"}`; the bot answers
with lines of its own, the last one `{"exit": status}` or `{"error": "one line"}`. A request without
the right secret is closed unanswered. One thread reads the requests of every connection; a few
workers answer them, so idle connections cost no thread and are closed after _REQUEST_TIMEOUT.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import os
import queue
import secrets
import selectors
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from bot.errors import QwenbotError, user_message
from bot.indexing.job import IndexRequest
from retrieval.config import IndexConfig
from retrieval.errors import IndexLockedError, RetrievalError
from retrieval.models import Hit, SearchFilter
from retrieval.search import IndexInfo, Searcher, SearchService
from retrieval.store import acquire_index_lock

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
SECRET_NAME = "control.secret"
POINTER_NAME = "control.where"  # the socket's path, when it is not in the index folder
_SHORT_PREFIX = "qwenbot-control-"  # the private folder's name starts so (the rest is random)
# macOS allows 104 bytes, Linux 108, the terminating NUL included: one limit for both
_MAX_SOCKET_PATH = 103
_MAX_REQUEST_BYTES = 1024 * 1024  # an index request naming thousands of files fits; anything bigger is not ours
_REQUEST_TIMEOUT = 10.0  # seconds a client has to send its request line
_CONNECT_TIMEOUT = 10.0  # seconds to connect and get an answer started (a job then takes what it takes)
# Requests answered at once: index jobs run one at a time anyway, and searches are short.
_WORKERS = 4
# Connections still sending their request line; beyond this a new one closes the oldest, so silent
# connections can neither pile up nor keep a real request out.
_MAX_PENDING = 32
_POLL = 0.2  # seconds between the reader's checks for shutdown and idle connections

Send = Callable[[dict[str, Any]], None]
# An operation: gets the request's args and a way to send lines back; returns the exit status.
Handler = Callable[[dict[str, Any], Send], int]


class ControlError(QwenbotError):
    """The running bot could not be reached, or refused the request; `str()` says which and why."""


# --- the bot's side ------------------------------------------------------------------------------


@dataclasses.dataclass
class _Pending:
    """A connection whose request line is still coming."""

    deadline: float
    data: bytearray = dataclasses.field(default_factory=bytearray)


class ControlServer:
    """Serves `handlers` (op name -> Handler) on the control socket until `close()`. The caller must
    hold the index lock: that is what makes socket, secret and pointer files found there stale."""

    def __init__(self, index_dir: Path, handlers: Mapping[str, Handler]) -> None:
        self.secret_path = index_dir / SECRET_NAME
        self._pointer = index_dir / POINTER_NAME
        self._handlers = dict(handlers)
        self._secret = secrets.token_hex(32).encode()
        _remove_stale(index_dir)
        self.socket_path = _socket_path(index_dir)
        try:
            self._listener = _listen(self.socket_path)
        except OSError as exc:
            self._remove_files()
            raise ControlError(f"cannot open the control socket {self.socket_path}: {exc.strerror or exc}") from None
        if self.socket_path.parent != index_dir:
            _write_private(self._pointer, str(self.socket_path))
        _write_private(self.secret_path, self._secret.decode())
        self._requests: queue.Queue[tuple[socket.socket, dict[str, Any]] | None] = queue.Queue()
        self._stop = threading.Event()
        # the reader thread's own: connections whose request line is still coming, oldest first
        self._selector = selectors.DefaultSelector()
        self._pending: dict[socket.socket, _Pending] = {}
        self._reader = threading.Thread(target=self._read_requests, name="qwenbot-control", daemon=True)
        # daemon threads: a job in progress does not hold up the process's exit
        self._workers = [
            threading.Thread(target=self._work, name=f"qwenbot-control-{n}", daemon=True) for n in range(_WORKERS)
        ]
        for thread in (self._reader, *self._workers):
            thread.start()

    def close(self) -> None:
        """Takes no more requests; ones being answered finish on their own threads."""
        self._stop.set()
        self._reader.join()
        with suppress(queue.Empty):
            while item := self._requests.get_nowait():  # taken, never started: the client hears nothing
                item[0].close()
        for _ in self._workers:
            self._requests.put(None)
        self._remove_files()

    def _remove_files(self) -> None:
        for path in (self.secret_path, self.socket_path, self._pointer):
            path.unlink(missing_ok=True)
        if self.socket_path.parent.name.startswith(_SHORT_PREFIX):
            with suppress(OSError):
                self.socket_path.parent.rmdir()

    def _read_requests(self) -> None:
        """Accepts connections and reads their request lines, all on this one thread."""
        with self._selector:
            self._selector.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in self._selector.select(_POLL):
                    if key.fileobj is self._listener:
                        self._accept()
                    else:
                        self._receive(key.fileobj)  # type: ignore[arg-type]
                now = time.monotonic()
                for conn in [c for c, p in self._pending.items() if p.deadline < now]:  # silent for too long
                    self._drop(conn).close()
            for conn in list(self._pending):
                self._drop(conn).close()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, say: the next round tries again
                log.warning("control channel: cannot accept a connection: %s", exc)
                return
            if len(self._pending) >= _MAX_PENDING:
                self._drop(next(iter(self._pending))).close()
            conn.setblocking(False)
            self._pending[conn] = _Pending(time.monotonic() + _REQUEST_TIMEOUT)
            self._selector.register(conn, selectors.EVENT_READ)

    def _receive(self, conn: socket.socket) -> None:
        request = self._pending[conn]
        try:
            chunk = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        request.data += chunk
        if chunk and b"\n" not in request.data and len(request.data) <= _MAX_REQUEST_BYTES:
            return  # more to come
        self._drop(conn)
        self._admit(conn, bytes(request.data[:_MAX_REQUEST_BYTES]).split(b"\n", 1)[0])

    def _drop(self, conn: socket.socket) -> socket.socket:
        """No longer waits for `conn`'s request line."""
        self._selector.unregister(conn)
        del self._pending[conn]
        return conn

    def _admit(self, conn: socket.socket, line: bytes) -> None:
        request = _parse(line) or {}
        given = request.get("secret")
        # compared in constant time: the time taken tells nothing about how much of a guess was right
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self._secret):
            log.warning("control channel: refused a request without the right secret")
            conn.close()  # nothing at all is sent back
            return
        conn.setblocking(True)  # an index job takes as long as it takes
        self._requests.put((conn, request))

    def _work(self) -> None:
        while (item := self._requests.get()) is not None:
            conn, request = item
            with conn:
                self._answer(conn, request)

    def _answer(self, conn: socket.socket, request: dict[str, Any]) -> None:
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


def _listen(path: Path) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(64)
    except OSError:
        listener.close()
        raise
    listener.setblocking(False)
    return listener


def _socket_path(index_dir: Path) -> Path:
    """control.sock in the index folder when its path fits a socket address; else in a new private
    folder (mkdtemp: 0700, a name nobody could have taken before) under the user's runtime folder."""
    path = index_dir / SOCKET_NAME
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    runtime = os.environ.get("XDG_RUNTIME_DIR") or ""
    base = runtime if os.path.isdir(runtime) else tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix=_SHORT_PREFIX, dir=base)) / SOCKET_NAME


def _remove_stale(index_dir: Path) -> None:
    """What a killed bot left: its socket (and the private folder it was in), secret and pointer."""
    (index_dir / SOCKET_NAME).unlink(missing_ok=True)
    with suppress(OSError):
        stale = Path((index_dir / POINTER_NAME).read_text().strip())
        if stale.name == SOCKET_NAME and stale.parent.name.startswith(_SHORT_PREFIX):
            stale.unlink(missing_ok=True)
            stale.parent.rmdir()
    (index_dir / POINTER_NAME).unlink(missing_ok=True)


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
        return self.job("index", args, out)

    def job(self, op: str, args: dict[str, Any], out: Callable[[str], None]) -> int:
        """Runs the job `op` (index, sync) in the bot; its lines go to `out` as it writes them. The exit
        status."""
        status = 0
        for message in self._call(op, args):
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
        with suppress(FileNotFoundError):  # the socket is elsewhere: the index folder's path is too long
            socket_path = Path((self.index_dir / POINTER_NAME).read_text().strip())
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


@dataclasses.dataclass(frozen=True)
class BotSettings:
    """How the running bot's settings (SHARED_WITH_BOT) compare with this terminal's."""

    pid: str
    differing: list[tuple[str, str, str]]  # (variable, the bot's value, this terminal's)

    def line(self) -> str:
        shown = "; ".join(f"{name} is {theirs} there, {ours} here" for name, theirs, ours in self.differing)
        return (
            f"the running bot (pid {self.pid}) runs with other settings than this terminal ({shown}): "
            "restart the bot to use them (it reads its settings only at start)"
        )


def compare_with_bot(config: IndexConfig, ours: Mapping[str, str]) -> BotSettings | None:
    """The running bot's settings next to `ours` (Settings.shared_with_bot()); None when no bot
    answers on this local index."""
    if config.chroma_host or not (config.index_dir / SECRET_NAME).exists():
        return None
    bot = BotConnection(config.index_dir, _holder(config.index_dir))
    try:
        theirs = bot.fetch("settings", {})
    except ControlError:  # no bot listens (a killed one's files), or one from before this request
        return None
    return BotSettings(bot.pid, [(n, str(theirs[n]), v) for n, v in ours.items() if str(theirs.get(n, v)) != v])


def settings_handlers(shared_with_bot: Sequence[tuple[str, str]]) -> dict[str, Handler]:
    """The bot's answer to `compare_with_bot`."""
    shared = dict(shared_with_bot)

    def send_settings(args: dict[str, Any], send: Send) -> int:
        send({"settings": shared})
        return 0

    return {"settings": send_settings}


def _holder(index_dir: Path) -> str:
    """The pid the index lock file names, for messages."""
    try:
        return (index_dir / ".lock").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


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
    yield BotConnection(config.index_dir, _holder(config.index_dir))


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
        flt = SearchFilter(**{key: tuple(values) for key, values in scope.items()}) if scope else None
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
