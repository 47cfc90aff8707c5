"""The ``crossrank`` command line: evaluate a pipeline on a BEIR dataset, or re-rank
candidates read as JSON lines.

    crossrank eval DATA_DIR --stages bm25,dense,hybrid,ce --ce-model M --json out.json
    crossrank rerank --model M < candidates.jsonl > reranked.jsonl
    crossrank serve --model M [--embed-model E] --port 8080
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

STAGES = ("bm25", "dense", "hybrid", "ce")


def _csv(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {n}")
    return n


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=_positive, default=32, help="pairs or texts per batch (default 32)")
    p.add_argument("--max-length", type=_positive, default=None,
                   help="truncate inputs to this many tokens (default: the model's)")
    p.add_argument("--precision", choices=["float32", "int8"], default="float32",
                   help="float32 (exact, default) or int8 (about 2x faster, close scores)")
    p.add_argument("--local-files-only", action="store_true",
                   help="never download models from the Hugging Face hub")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crossrank", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="store_true",
                        help="print the version and exit (with --verbose: the CPU features and kernels in use)")
    parser.add_argument("--verbose", action="store_true", help="with --version: the runtime details")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    ev = commands.add_parser(
        "eval", help="evaluate retrieval and re-ranking stages on a BEIR-layout dataset",
        description="Run each stage on every judged query of DATA_DIR and print the metrics per stage "
                    "with latency; stages: bm25 (Okapi BM25), dense (bi-encoder, exact cosine), "
                    "hybrid (fusion of bm25 and dense), ce (cross-encoder re-ranking of the last "
                    "retrieval stage's top DEPTH).")
    ev.add_argument("data_dir", type=Path, metavar="DATA_DIR",
                    help="directory with corpus.jsonl, queries.jsonl and qrels.tsv (or qrels/SPLIT.tsv)")
    ev.add_argument("--stages", type=_csv, default=["bm25", "dense", "hybrid"],
                    help=f"comma-separated stages, in order, from {', '.join(STAGES)} (default bm25,dense,hybrid)")
    ev.add_argument("--dense-model", default="sentence-transformers/all-MiniLM-L6-v2",
                    help="bi-encoder for the dense stage: hub id or directory (default all-MiniLM-L6-v2)")
    ev.add_argument("--ce-model", default=None, help="cross-encoder for the ce stage: hub id or directory")
    ev.add_argument("--depth", type=_positive, default=100,
                    help="documents per query each stage returns / the ce stage re-ranks (default 100)")
    ev.add_argument("--metrics", type=_csv, default=["ndcg@10", "mrr@10", "map@100", "recall@100"],
                    help="comma-separated metrics (default ndcg@10,mrr@10,map@100,recall@100)")
    ev.add_argument("--json", type=Path, default=None, metavar="OUT",
                    help='write {"stages": [{"name", "metrics", "ms_per_query", ...}]} to OUT')
    ev.add_argument("--plot", type=Path, default=None, metavar="OUT.png",
                    help="draw the stages' ms/query against nDCG@10 (or the first metric) to OUT.png "
                         "(needs pip install 'crossrank[plot]')")
    ev.add_argument("--split", default="test", help="qrels/SPLIT.tsv when there is no qrels.tsv (default test)")
    ev.add_argument("--k1", type=float, default=0.9, help="BM25 k1 (default 0.9)")
    ev.add_argument("--b", type=float, default=0.4, help="BM25 b (default 0.4)")
    ev.add_argument("--stopwords", default=None, help='BM25 stopword list, e.g. "english" (default none)')
    ev.add_argument("--stemmer", default=None, help='BM25 Snowball stemmer, e.g. "english" (default none)')
    ev.add_argument("--fusion", choices=["rrf", "weighted"], default="rrf",
                    help="hybrid fusion: reciprocal rank fusion (k=60, default) or weighted min-max sum")
    ev.add_argument("--baseline", default=None,
                    help="stage the others are compared with (paired randomization test); default: the first")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    _model_options(ev)

    rr = commands.add_parser(
        "rerank", help="re-rank candidates read as JSON lines from stdin",
        description='Read one JSON object per line from stdin: {"query": str, "documents": [str, ...], '
                    '"ids": [...] (optional)}; write one per line to stdout with "ids" and "scores", '
                    "best first (ids default to the documents' positions). Other fields (such as a "
                    'query id) are copied through; "documents" are dropped unless --return-documents.')
    rr.add_argument("--model", required=True, help="cross-encoder: hub id or directory")
    rr.add_argument("--top-k", type=_positive, default=None, help="keep only the best K per query")
    rr.add_argument("--return-documents", action="store_true", help="also write the documents, best first")
    rr.add_argument("--progress", action="store_true", help="a progress bar (per query) on stderr")
    _model_options(rr)

    sv = commands.add_parser(
        "serve", help="serve a reranker and/or an embedding model over HTTP (TEI, Cohere, Jina, OpenAI APIs)",
        description="Serve MODEL (cross-encoder) at POST /rerank (TEI), /v1/rerank (Cohere v1, Jina), /v2/rerank "
                    "(Cohere v2) and EMBED_MODEL (bi-encoder) at POST /embed (TEI), /v1/embeddings (OpenAI); "
                    "GET /health, /info, /metrics (Prometheus). Concurrent requests are batched together. "
                    "Ctrl-C or SIGTERM stops it after answering the requests in flight.")
    sv.add_argument("--model", default=None, help="cross-encoder to serve: hub id or directory")
    sv.add_argument("--embed-model", default=None, help="bi-encoder to serve: hub id or directory")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    sv.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: a free port, printed)")
    sv.add_argument("--max-batch-tokens", type=_positive, default=None,
                    help="padded tokens per model batch (default: batch-size sequences of any length)")
    sv.add_argument("--max-client-batch-size", type=_positive, default=1024,
                    help="documents or texts one request may send; more is answered 413 (default 1024)")
    sv.add_argument("--max-concurrent-requests", type=_positive, default=512,
                    help="requests queued or running at once; more are answered 429 (default 512)")
    sv.add_argument("--max-body-bytes", type=_positive, default=8 * 1024 * 1024,
                    help="largest request body; larger is answered 413 (default 8 MiB)")
    sv.add_argument("--request-timeout", type=float, default=300.0,
                    help="seconds before an unanswered request gets a 503 (default 300)")
    sv.add_argument("--api-key", default=None,
                    help="require Authorization: Bearer KEY on every route but /health (default: no key)")
    sv.add_argument("--long-document", default="truncate", choices=["truncate", "first", "max", "mean"],
                    help="the reranker's long-document mode (default truncate)")
    _model_options(sv)
    return parser


def _eval(args: argparse.Namespace) -> int:
    from crossrank import BiEncoder, CrossEncoder
    from crossrank.datasets import load_beir
    from crossrank.evaluation import BM25Stage, DenseStage, FusionStage, RerankStage, evaluate

    unknown = [s for s in args.stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; choose from {', '.join(STAGES)}")
    if "hybrid" in args.stages and not {"bm25", "dense"} <= set(args.stages[: args.stages.index("hybrid")]):
        raise ValueError("the hybrid stage fuses bm25 and dense: list both before it")
    if "ce" in args.stages:
        if args.ce_model is None:
            raise ValueError("the ce stage needs --ce-model")
        if args.stages.index("ce") == 0:
            raise ValueError("the ce stage re-ranks an earlier stage: list a retrieval stage before it")
    data = load_beir(args.data_dir, split=args.split)
    model_kwargs = dict(max_length=args.max_length, precision=args.precision, local_files_only=args.local_files_only)
    pipeline = []
    for stage in args.stages:
        if stage == "bm25":
            pipeline.append(BM25Stage(k1=args.k1, b=args.b, stopwords=args.stopwords, stemmer=args.stemmer))
        elif stage == "dense":
            pipeline.append(DenseStage(BiEncoder(args.dense_model, **model_kwargs), batch_size=args.batch_size))
        elif stage == "hybrid":
            pipeline.append(FusionStage(["bm25", "dense"], method=args.fusion))
        else:
            pipeline.append(RerankStage(CrossEncoder(args.ce_model, **model_kwargs), name="ce",
                                        batch_size=args.batch_size))
    result = evaluate(pipeline, data, metrics=args.metrics, depth=args.depth, show_progress_bar=not args.no_progress)
    print(result)
    baseline = args.baseline or args.stages[0]
    for stage in result.stages:
        if stage.name == baseline:
            continue
        changes = result.compare(baseline, stage.name)
        print(f"{stage.name} vs {baseline}: " + ", ".join(
            f"{m} {c['delta']:+.4f} (p={c['p_value']:.3g}, {c['better']} better / {c['worse']} worse)"
            for m, c in changes.items()))
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if args.plot:
        metric = "ndcg@10" if "ndcg@10" in result.metrics else result.metrics[0]
        result.plot(args.plot, metric=metric)
        print(f"trade-off chart: {args.plot}")
    return 0


def _rerank(args: argparse.Namespace, stdin=None, stdout=None) -> int:
    from crossrank import CrossEncoder

    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    ce = CrossEncoder(args.model, max_length=args.max_length, precision=args.precision,
                      local_files_only=args.local_files_only)
    bar = None
    if args.progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="rerank", unit="query", file=sys.stderr)
    for number, line in enumerate(stdin, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"stdin line {number}: not valid JSON ({e.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("query"), str):
            raise ValueError(f'stdin line {number}: expected an object with a "query" string')
        documents = item.get("documents")
        if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
            raise ValueError(f'stdin line {number}: "documents" must be a list of strings')
        ids = item.get("ids", list(range(len(documents))))
        if not isinstance(ids, list) or len(ids) != len(documents):
            raise ValueError(f'stdin line {number}: "ids" must be a list with one id per document')
        ranked = ce.rank(item["query"], documents, top_k=args.top_k, batch_size=args.batch_size) if documents else []
        out = {k: v for k, v in item.items() if k not in ("documents", "ids")}
        out["ids"] = [ids[r["corpus_id"]] for r in ranked]
        out["scores"] = [r["score"] for r in ranked]
        if args.return_documents:
            out["documents"] = [documents[r["corpus_id"]] for r in ranked]
        stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        stdout.flush()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return 0


def _serve(args: argparse.Namespace) -> int:
    from crossrank import BiEncoder, CrossEncoder
    from crossrank.server import _serve_until_signal, serve

    if args.model is None and args.embed_model is None:
        raise ValueError("serve needs --model (a cross-encoder) or --embed-model (a bi-encoder), or both")
    common = dict(max_length=args.max_length, precision=args.precision, local_files_only=args.local_files_only,
                  max_batch_tokens=args.max_batch_tokens)
    reranker = CrossEncoder(args.model, long_document=args.long_document, **common) if args.model else None
    embedder = BiEncoder(args.embed_model, **common) if args.embed_model else None
    server = serve(reranker, embedder, host=args.host, port=args.port, batch_size=args.batch_size,
                   max_client_batch_size=args.max_client_batch_size,
                   max_concurrent_requests=args.max_concurrent_requests, max_body_bytes=args.max_body_bytes,
                   request_timeout=args.request_timeout, api_key=args.api_key, block=False)
    print(f"crossrank serving on {server.url}", flush=True)
    _serve_until_signal(server)
    print("crossrank server stopped", flush=True)
    return 0


def _version(verbose: bool) -> int:
    from crossrank import __version__, runtime_info

    print(f"crossrank {__version__}")
    if verbose:
        for key, value in runtime_info().items():
            if isinstance(value, list):
                value = " ".join(value) or "-"
            print(f"  {key}: {value if value is not None else '-'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        return _version(args.verbose)
    if args.command is None:
        parser.error("a COMMAND is required (eval, rerank or serve), or --version")
    run = {"eval": _eval, "rerank": _rerank, "serve": _serve}[args.command]
    try:
        return run(args)
    except (ValueError, TypeError, FileNotFoundError, OSError) as e:
        print(f"crossrank {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
