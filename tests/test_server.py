"""`crossrank serve`: the HTTP server speaks TEI, Cohere (v1, v2), Jina and OpenAI to their
real clients, and answers each with exactly what the library computes in-process.

Servers run as `crossrank serve` subprocesses on 127.0.0.1 with a free port (port 0, the URL
read from the first line of stdout), started and stopped by the fixtures; every request loop
is bounded. The reranker is the tiny 2-layer fixture (fast), the embedder all-MiniLM-L6-v2.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cohere
import httpx
import numpy as np
import openai
import pytest
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.cohere_rerank import CohereRerank
from tokenizers import Tokenizer

import crossrank

import fixtures

KEY = "test-key-123"
MAX_LENGTH = 128
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def rerank_dir() -> Path:
    return fixtures.ensure_tinybert()


@pytest.fixture(scope="module")
def reranker(rerank_dir):
    return crossrank.CrossEncoder(str(rerank_dir), max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def embedder(minilm_dir):
    return crossrank.BiEncoder(str(minilm_dir), max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def corpus(cranfield) -> tuple[list[str], list[str]]:
    queries, docs = cranfield
    return [q["text"] for q in queries[:40]], [d["text"] for d in docs[:400]]


class ServerProcess:
    """A `crossrank serve` subprocess; `url` once it listens."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crossrank", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline()
        match = re.search(r"serving on (http://\S+)", line)
        if not match:
            self.proc.kill()
            raise AssertionError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.url = match.group(1)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def _serve(*args: str):
    server = ServerProcess(*args)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(rerank_dir, minilm_dir):
    yield from _serve("--model", str(rerank_dir), "--embed-model", str(minilm_dir), "--max-length", str(MAX_LENGTH),
                      "--api-key", KEY, "--max-client-batch-size", "64", "--max-body-bytes", "200000")


@pytest.fixture()
def client(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=TIMEOUT) as c:
        yield c
    # Whatever the test did, the server is still up.
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200


def _ranked(scores) -> list[int]:
    """Indices best first, ties in input order (as the server and `rank` sort)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


# ---------------------------------------------------------------------------------------
# TEI

def test_tei_rerank_equals_predict(client, reranker, corpus):
    queries, docs = corpus
    query, texts = queries[0], docs[:20]
    expected = reranker.predict([(query, t) for t in texts])
    body = client.post("/rerank", json={"query": query, "texts": texts, "return_text": True}).json()
    assert [r["index"] for r in body] == _ranked(expected)
    for r in body:
        assert r["score"] == pytest.approx(float(expected[r["index"]]), abs=1e-6)
        assert r["text"] == texts[r["index"]]
    raw = client.post("/rerank", json={"query": query, "texts": texts, "raw_scores": True}).json()
    logits = reranker.predict([(query, t) for t in texts], activation_fn="identity")
    assert {r["index"]: r["score"] for r in raw} == pytest.approx(dict(enumerate(map(float, logits))), abs=1e-5)
    assert "text" not in raw[0]


def test_tei_truncate_false_refuses_long_inputs(client, reranker, corpus):
    queries, docs = corpus
    long_doc = " ".join(docs[:5])
    assert len(reranker.tokenize([(queries[0], long_doc)])[0]) == MAX_LENGTH
    response = client.post("/rerank", json={"query": queries[0], "texts": ["short", long_doc], "truncate": False})
    assert response.status_code == 413
    assert response.json()["error_type"] == "Validation"
    assert re.search(r"document 1 has \d+ tokens, more than the model's max_length 128", response.json()["error"])
    # Truncation is the default, as for CrossEncoder.predict.
    ok = client.post("/rerank", json={"query": queries[0], "texts": ["short", long_doc]})
    assert ok.status_code == 200
    expected = reranker.predict([(queries[0], "short"), (queries[0], long_doc)])
    assert {r["index"]: r["score"] for r in ok.json()} == pytest.approx(dict(enumerate(map(float, expected))), abs=1e-6)


def test_tei_embed_equals_encode(client, embedder, corpus):
    _, docs = corpus
    texts = docs[:10]
    body = client.post("/embed", json={"inputs": texts}).json()
    np.testing.assert_allclose(np.array(body), embedder.encode(texts, normalize_embeddings=True), atol=1e-6)
    one = client.post("/embed", json={"inputs": texts[0]}).json()
    np.testing.assert_allclose(np.array(one[0]), embedder.encode(texts[0], normalize_embeddings=True), atol=1e-6)


def test_info_and_health(client, server, rerank_dir):
    info = client.get("/info").json()
    assert info["model_id"] == str(rerank_dir)
    assert "reranker" in info["model_type"]
    assert info["max_input_length"] == MAX_LENGTH
    assert info["max_client_batch_size"] == 64
    assert [m["model_type"].keys() for m in info["models"]] == [{"reranker": 0}.keys(), {"embedding": 0}.keys()]
    # /health needs no key; everything else does.
    assert httpx.get(server.url + "/health").status_code == 200


# ---------------------------------------------------------------------------------------
# Cohere, Jina, OpenAI and the framework adapters

def test_cohere_v2_sdk(server, reranker, corpus):
    queries, docs = corpus
    query, documents = queries[1], docs[20:45]
    co = cohere.ClientV2(api_key=KEY, base_url=server.url)
    response = co.rerank(model="crossrank", query=query, documents=documents, top_n=5)
    expected = reranker.rank(query, documents, top_k=5)
    assert [r.index for r in response.results] == [e["corpus_id"] for e in expected]
    assert [r.relevance_score for r in response.results] == pytest.approx([e["score"] for e in expected], abs=1e-6)
    assert response.id


def test_cohere_v2_max_tokens_per_doc_cuts_documents(server, reranker, rerank_dir, corpus):
    tokenizer = Tokenizer.from_file(str(rerank_dir / "tokenizer.json"))
    queries, docs = corpus
    query, documents = queries[2], docs[:6]
    co = cohere.ClientV2(api_key=KEY, base_url=server.url)
    response = co.rerank(model="crossrank", query=query, documents=documents, max_tokens_per_doc=7)
    cut = [d[: tokenizer.encode(d, add_special_tokens=False).offsets[6][1]] for d in documents]
    expected = reranker.predict([(query, d) for d in cut])
    assert {r.index: r.relevance_score for r in response.results} == pytest.approx(
        dict(enumerate(map(float, expected))), abs=1e-6)
    uncut = reranker.predict([(query, d) for d in documents])
    assert not np.allclose(expected, uncut, atol=1e-4)


def test_cohere_v1_sdk_with_document_objects(server, reranker, corpus):
    queries, docs = corpus
    query, documents = queries[3], docs[50:60]
    co = cohere.Client(api_key=KEY, base_url=server.url)
    response = co.rerank(query=query, documents=[{"text": d} for d in documents], top_n=3, return_documents=True)
    expected = reranker.rank(query, documents, top_k=3)
    assert [r.index for r in response.results] == [e["corpus_id"] for e in expected]
    assert [r.relevance_score for r in response.results] == pytest.approx([e["score"] for e in expected], abs=1e-6)
    assert [r.document.text for r in response.results] == [documents[e["corpus_id"]] for e in expected]


def test_jina_shape(client, reranker, rerank_dir, corpus):
    queries, docs = corpus
    query, documents = queries[4], docs[60:68]
    body = client.post("/v1/rerank", json={"model": "jina-reranker-v2", "query": query, "documents": documents,
                                           "top_n": 4, "return_documents": True}).json()
    expected = reranker.rank(query, documents, top_k=4)
    assert body["model"] == "jina-reranker-v2"
    assert [r["index"] for r in body["results"]] == [e["corpus_id"] for e in expected]
    assert [r["document"] for r in body["results"]] == [{"text": documents[e["corpus_id"]]} for e in expected]
    tokens = sum(len(ids) for ids in reranker.tokenize([(query, d) for d in documents]))
    assert body["usage"]["total_tokens"] == tokens
    # Without return_documents (the default): no text.
    plain = client.post("/v1/rerank", json={"query": query, "documents": documents}).json()
    assert "document" not in plain["results"][0] and len(plain["results"]) == len(documents)


def test_openai_sdk_embeddings(server, embedder, corpus):
    _, docs = corpus
    texts = docs[100:108]
    client = openai.OpenAI(api_key=KEY, base_url=server.url + "/v1")
    expected = embedder.encode(texts)
    # The SDK asks for base64 by default and decodes it.
    response = client.embeddings.create(model="minilm", input=texts)
    np.testing.assert_allclose(np.array([d.embedding for d in response.data]), expected, atol=1e-6)
    assert [d.index for d in response.data] == list(range(len(texts)))
    assert response.usage.prompt_tokens == sum(len(ids) for ids in embedder.tokenize(texts))
    floats = client.embeddings.create(model="minilm", input=texts[0], encoding_format="float")
    np.testing.assert_allclose(floats.data[0].embedding, expected[0], atol=1e-6)


def test_openai_base64_is_little_endian_float32(client, embedder):
    body = client.post("/v1/embeddings", json={"input": ["hello"], "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, embedder.encode("hello"), atol=1e-6)


def test_llama_index_cohere_rerank(server, reranker, corpus):
    queries, docs = corpus
    query, documents = queries[5], docs[120:135]
    nodes = [NodeWithScore(node=TextNode(text=d, id_=str(i)), score=0.0) for i, d in enumerate(documents)]
    postprocessor = CohereRerank(top_n=4, model="crossrank", api_key=KEY, base_url=server.url, max_retries=0)
    out = postprocessor.postprocess_nodes(nodes, QueryBundle(query))
    expected = reranker.rank(query, documents, top_k=4)
    assert [n.node.id_ for n in out] == [str(e["corpus_id"]) for e in expected]
    assert [n.score for n in out] == pytest.approx([e["score"] for e in expected], abs=1e-6)


# ---------------------------------------------------------------------------------------
# Dynamic batching

def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{want}}} not in /metrics")


def test_concurrent_clients_get_their_own_scores_batched_together(server, reranker, corpus):
    queries, docs = corpus
    # 16 clients x 20 requests, each its own query and documents (1 to 12 of them).
    requests = [[(queries[(c * 20 + r) % len(queries)], docs[(c * 37 + r * 11 + k) % len(docs)])
                 for k in range(1 + (c + r) % 12)] for c in range(16) for r in range(20)]
    expected = [reranker.predict(pairs) for pairs in requests]
    headers = {"Authorization": f"Bearer {KEY}"}

    def client_run(c: int) -> list[tuple[int, dict]]:
        out = []
        with httpx.Client(base_url=server.url, headers=headers, timeout=TIMEOUT) as http:
            for r in range(20):
                i = c * 20 + r
                query = requests[i][0][0]
                body = http.post("/rerank", json={"query": query, "texts": [d for _, d in requests[i]]})
                assert body.status_code == 200, body.text
                out.append((i, {x["index"]: x["score"] for x in body.json()}))
        return out

    with ThreadPoolExecutor(16) as pool:
        answers = [a for chunk in pool.map(client_run, range(16)) for a in chunk]
    assert len(answers) == 320
    for i, scores in answers:
        assert scores == pytest.approx(dict(enumerate(map(float, expected[i]))), abs=1e-5), f"request {i}"
    metrics = httpx.get(server.url + "/metrics", headers=headers).text
    calls = _metric(metrics, "crossrank_batch_requests_count", model="rerank")
    single = _metric(metrics, "crossrank_batch_requests_bucket", model="rerank", le="1.0")
    assert single < calls, "no model call held pairs from more than one request"
    assert _metric(metrics, "crossrank_requests_total", route="/rerank", status="200") >= 320


# ---------------------------------------------------------------------------------------
# Faults: each answered with its status code in the dialect's shape; the server stays up
# (the `client` fixture checks /health after every test).

@pytest.mark.parametrize("path, payload, status, shape", [
    ("/rerank", b"{not json", 400, "tei"),
    ("/v1/rerank", b"{not json", 400, "cohere"),
    ("/v1/embeddings", b"[1, 2", 400, "openai"),
    ("/rerank", {"query": "q", "texts": "not a list"}, 422, "tei"),
    ("/rerank", {"query": 5, "texts": ["a"]}, 422, "tei"),
    ("/v2/rerank", {"query": "q", "documents": [1, 2]}, 400, "cohere"),
    ("/v2/rerank", {"query": "q", "documents": [{"title": "no text"}]}, 400, "cohere"),
    ("/v2/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, 400, "cohere"),
    ("/v1/embeddings", {"input": [[1, 2, 3]]}, 400, "openai"),
    ("/v1/embeddings", {"input": "x", "dimensions": 7}, 400, "openai"),
    ("/rerank", {"query": "q", "texts": []}, 400, "tei"),
    ("/v1/rerank", {"query": "q", "documents": []}, 400, "cohere"),
    ("/embed", {"inputs": []}, 400, "tei"),
    ("/rerank", {"query": "q", "texts": ["d"] * 65}, 413, "tei"),
    ("/v2/rerank", {"query": "q", "documents": ["d"] * 65}, 413, "cohere"),
    ("/v1/embeddings", {"input": ["d"] * 65}, 413, "openai"),
    ("/rerank", {"query": "q", "texts": ["x" * 250_000]}, 413, "tei"),
    ("/v1/rerank", {"query": "q", "documents": ["x" * 250_000]}, 413, "cohere"),
    ("/no/such/route", {}, 404, "tei"),
])
def test_bad_requests(client, path, payload, status, shape):
    if isinstance(payload, bytes):
        response = client.post(path, content=payload, headers={"content-type": "application/json"})
    else:
        response = client.post(path, json=payload)
    assert response.status_code == status, response.text
    body = response.json()
    if shape == "tei":
        assert set(body) == {"error", "error_type"} and body["error"]
    elif shape == "cohere":
        assert set(body) == {"message"} and body["message"]
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["message"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
@pytest.mark.parametrize("path, shape", [("/rerank", "error"), ("/v2/rerank", "message"), ("/metrics", "error")])
def test_api_key_required(server, headers, path, shape):
    with httpx.Client(base_url=server.url, headers=headers, timeout=TIMEOUT) as http:
        response = http.post(path, json={"query": "q", "texts": ["a"], "documents": ["a"]}) if path != "/metrics" \
            else http.get(path)
    assert response.status_code == 401
    assert shape in response.json()
    assert httpx.get(server.url + "/health").status_code == 200


def test_openai_sdk_wrong_key_raises_authentication_error(server):
    client = openai.OpenAI(api_key="wrong", base_url=server.url + "/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="API key"):
        client.embeddings.create(model="m", input="x")


def test_client_disconnecting_mid_request(client, server, reranker, corpus):
    queries, docs = corpus
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    body = json.dumps({"query": queries[6], "texts": docs[:64]}).encode()
    for _ in range(3):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        # Closed before the answer; the next request is answered with its own scores.
        texts = docs[200:203]
        answer = client.post("/rerank", json={"query": queries[7], "texts": texts}).json()
        expected = reranker.predict([(queries[7], t) for t in texts])
        assert {r["index"]: r["score"] for r in answer} == pytest.approx(
            dict(enumerate(map(float, expected))), abs=1e-6)


def test_queue_full_is_429_and_timeout_is_503(rerank_dir, corpus):
    queries, docs = corpus
    texts = docs[:64]
    server = ServerProcess("--model", str(rerank_dir), "--max-length", "512", "--max-concurrent-requests", "1")
    try:
        url = server.url + "/rerank"
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(
                lambda _: httpx.post(url, json={"query": queries[8], "texts": texts}, timeout=TIMEOUT), range(8)))
        statuses = sorted(r.status_code for r in responses)
        assert 200 in statuses and 429 in statuses and set(statuses) <= {200, 429}, statuses
        refused = next(r for r in responses if r.status_code == 429)
        assert refused.json()["error_type"] == "Overloaded"
        expected = crossrank.CrossEncoder(str(rerank_dir), max_length=512).predict([(queries[8], t) for t in texts])
        for r in responses:
            if r.status_code == 200:
                assert {x["index"]: x["score"] for x in r.json()} == pytest.approx(
                    dict(enumerate(map(float, expected))), abs=1e-6)
        assert httpx.get(server.url + "/health").status_code == 200
    finally:
        server.stop()
    server = ServerProcess("--model", str(rerank_dir), "--request-timeout", "0.001")
    try:
        response = httpx.post(server.url + "/v2/rerank", json={"query": "q", "documents": texts}, timeout=TIMEOUT)
        assert response.status_code == 503
        assert "not answered within" in response.json()["message"]
        assert httpx.get(server.url + "/health").status_code == 200
    finally:
        server.stop()


def test_sigterm_during_load_answers_requests_in_flight(rerank_dir, corpus):
    queries, docs = corpus
    server = ServerProcess("--model", str(rerank_dir), "--max-length", "512")
    reference = crossrank.CrossEncoder(str(rerank_dir), max_length=512)
    started = threading.Barrier(5)

    def post(i):
        texts = docs[i * 50: i * 50 + 50]
        started.wait()
        response = httpx.post(server.url + "/rerank", json={"query": queries[i], "texts": texts}, timeout=TIMEOUT)
        return i, texts, response

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(post, i) for i in range(4)]
        started.wait()
        time.sleep(0.3)  # the requests are in flight
        server.proc.send_signal(signal.SIGTERM)
        results = [f.result() for f in futures]
    assert server.proc.wait(timeout=60) == 0
    assert "crossrank server stopped" in server.proc.stdout.read()
    for i, texts, response in results:
        assert response.status_code == 200, response.text
        expected = reference.predict([(queries[i], t) for t in texts])
        assert {x["index"]: x["score"] for x in response.json()} == pytest.approx(
            dict(enumerate(map(float, expected))), abs=1e-5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health", timeout=5)


# ---------------------------------------------------------------------------------------
# From Python

def test_serve_from_python_without_blocking(reranker, corpus):
    queries, docs = corpus
    server = crossrank.serve(reranker, port=0, block=False)
    try:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
        body = httpx.post(server.url + "/rerank", json={"query": queries[0], "texts": docs[:3]}, timeout=TIMEOUT).json()
        expected = reranker.predict([(queries[0], d) for d in docs[:3]])
        assert [r["index"] for r in body] == _ranked(expected)
        # No embedding model: the embedding routes say so.
        missing = httpx.post(server.url + "/v1/embeddings", json={"input": "x"}, timeout=TIMEOUT)
        assert missing.status_code == 404 and "--embed-model" in missing.json()["error"]["message"]
    finally:
        server.shutdown()
    assert server.wait(timeout=30)


def test_serve_bad_arguments(reranker, ce_multilabel_dir):
    with pytest.raises(ValueError, match="needs a reranker"):
        crossrank.serve(None, None, port=0, block=False)
    with pytest.raises(ValueError, match="port must be"):
        crossrank.serve(reranker, port=70000, block=False)
    with pytest.raises(ValueError, match="max_concurrent_requests must be"):
        crossrank.serve(reranker, port=0, max_concurrent_requests=0, block=False)
    with pytest.raises(ValueError, match="one output label"):
        crossrank.serve(crossrank.CrossEncoder(str(ce_multilabel_dir)), port=0, block=False)
    with pytest.raises(ValueError, match="model options"):
        crossrank.serve(reranker, port=0, model_kwargs={"max_length": 64}, block=False)
    server = crossrank.serve(reranker, port=0, block=False)
    try:
        with pytest.raises(OSError, match="cannot listen on 127.0.0.1"):
            crossrank.serve(reranker, port=server.port, block=False)
    finally:
        server.shutdown()
        server.wait(timeout=30)


def test_cli_serve_needs_a_model():
    proc = subprocess.run([sys.executable, "-m", "crossrank", "serve"], capture_output=True, text=True, timeout=60,
                          env={**os.environ})
    assert proc.returncode == 2
    assert "serve needs --model" in proc.stderr
