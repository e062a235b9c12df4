"""An OpenAI-compatible /v1/embeddings server for tests: a recording proxy in front of a real server
(llama.cpp's), or answering itself with a local model's vectors (another model under the same name).

    with EmbeddingProxy(upstream=llama_url) as proxy:
        ... QWENBOT_EMBEDDING_URL=proxy.url ...
        proxy.inputs  # every text the client sent, in order
        proxy.down_after = 3  # the 4th embeddings request on finds the server gone (connection closed)

`served`: the model ids GET /models lists and POST accepts; another model gets vLLM's 404 answer.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np

from support.servers import POLL_INTERVAL, FakeHTTPServer


class EmbeddingProxy:
    def __init__(
        self,
        upstream: str | None = None,
        embed: Callable[[list[str]], np.ndarray] | None = None,
        served: Sequence[str] | None = None,
    ) -> None:
        assert (upstream is None) != (embed is None), "either a real server to forward to, or a local model"
        self.upstream = upstream
        self.embed = embed
        self.served = list(served) if served is not None else None
        self.inputs: list[str] = []
        self.requests = 0  # POSTs to /embeddings
        self.down_after: int | None = None  # that many embeddings requests answered, then none
        self._lock = threading.Lock()
        self._httpd = FakeHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.block_on_close = False
        self._httpd.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(POLL_INTERVAL,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> EmbeddingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def admit(self, texts: list[str]) -> bool:
        """Records an embeddings request; False once the server is 'down'."""
        with self._lock:
            if self.down_after is not None and self.requests >= self.down_after:
                return False
            self.requests += 1
            self.inputs.extend(texts)
            return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def proxy(self) -> EmbeddingProxy:
        return self.server.proxy  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        proxy = self.proxy
        if proxy.served is not None or proxy.upstream is None:
            data = [{"id": m, "object": "model", "owned_by": "test"} for m in proxy.served or []]
            self._json(200, {"object": "list", "data": data})
        else:
            self._forward(None)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        proxy = self.proxy
        texts = body["input"] if isinstance(body.get("input"), list) else [body.get("input")]
        if not proxy.admit(texts):
            self.close_connection = True  # as a server that died: the connection closes, no answer
            return
        if proxy.served is not None and body.get("model") not in proxy.served:
            message = f"The model `{body.get('model')}` does not exist."  # vLLM's words
            self._json(404, {"object": "error", "message": message, "type": "NotFoundError", "code": 404})
        elif proxy.embed is not None:
            rows = proxy.embed(texts)
            data = [{"object": "embedding", "index": i, "embedding": r.tolist()} for i, r in enumerate(rows)]
            self._json(200, {"object": "list", "data": data, "model": body.get("model")})
        else:
            self._forward(body)

    def _forward(self, body: dict[str, Any] | None) -> None:
        assert self.proxy.upstream is not None
        base = self.proxy.upstream.rstrip("/").removesuffix("/v1")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + self.path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as response:
            self._raw(response.status, response.read())

    def _json(self, status: int, payload: Any) -> None:
        self._raw(status, json.dumps(payload).encode())

    def _raw(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
