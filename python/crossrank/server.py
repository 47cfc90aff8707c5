"""``crossrank.serve``: run a reranker and/or an embedding model as an HTTP service that
speaks the APIs clients already use.

    >>> import crossrank
    >>> crossrank.serve("cross-encoder/ms-marco-MiniLM-L6-v2", port=8080)   # blocks; Ctrl-C stops

Routes: TEI ``POST /rerank``, ``POST /embed``, ``GET /info``, ``GET /health``; Cohere
``POST /v1/rerank`` (shared with Jina / infinity) and ``POST /v2/rerank``; OpenAI
``POST /v1/embeddings``; ``GET /metrics`` (Prometheus). The server runs in the Rust core
on its own threads (no request touches the GIL) and batches concurrent requests into the
same model calls; its scores equal ``CrossEncoder.predict`` / ``BiEncoder.encode``.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Optional, Union

from crossrank._core import BiEncoder, CrossEncoder, Server

logger = logging.getLogger("crossrank.server")

__all__ = ["Server", "serve"]


def _model(value: Union[str, Any, None], cls: type, options: dict) -> Any:
    if value is None or isinstance(value, cls):
        if value is not None and options:
            raise ValueError(f"model options {sorted(options)} apply to a model name, not to a loaded {cls.__name__}")
        return value
    return cls(value, **options)


def serve(
    model: Union[str, CrossEncoder, None] = None,
    embed_model: Union[str, BiEncoder, None] = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    batch_size: int = 32,
    max_client_batch_size: int = 1024,
    max_concurrent_requests: int = 512,
    max_body_bytes: int = 8 * 1024 * 1024,
    request_timeout: float = 300.0,
    api_key: Optional[str] = None,
    model_kwargs: Optional[dict] = None,
    embed_model_kwargs: Optional[dict] = None,
    block: bool = True,
) -> Server:
    """Serves ``model`` (a cross-encoder: hub id, directory or ``CrossEncoder``) and/or
    ``embed_model`` (a bi-encoder) over HTTP on ``host:port`` (port 0: a free one; see
    ``Server.port``).

    ``model_kwargs`` / ``embed_model_kwargs`` go to ``CrossEncoder(...)`` / ``BiEncoder(...)``
    (``max_length``, ``precision``, ``long_document``, ``max_batch_tokens``, ...).
    ``block=True`` serves until Ctrl-C or SIGTERM, then stops gracefully (requests in flight
    are answered) and returns the stopped server; ``block=False`` returns the running
    ``Server`` at once (call ``shutdown()`` and ``wait()`` to stop it).
    """
    reranker = _model(model, CrossEncoder, dict(model_kwargs or {}))
    embedder = _model(embed_model, BiEncoder, dict(embed_model_kwargs or {}))
    server = Server(
        reranker, embedder, host=host, port=port, batch_size=batch_size,
        max_client_batch_size=max_client_batch_size, max_concurrent_requests=max_concurrent_requests,
        max_body_bytes=max_body_bytes, request_timeout=request_timeout, api_key=api_key,
    )
    logger.info("crossrank serving on %s", server.url)
    if not block:
        return server
    _serve_until_signal(server)
    return server


def _serve_until_signal(server: Server) -> None:
    """Waits in short slices (so Python runs its signal handlers); SIGINT (Ctrl-C) and
    SIGTERM stop the server gracefully."""
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        while not stop.is_set():
            if server.wait(timeout=0.2):
                return
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    logger.info("crossrank server stopping: answering the requests in flight")
    server.shutdown()
    server.wait()
