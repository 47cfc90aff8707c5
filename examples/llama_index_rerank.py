"""Re-ranking LlamaIndex retrieval with crossrank.

A VectorStoreIndex over Cranfield abstracts, embedded with crossrank's BiEncoder
(all-MiniLM-L6-v2), retrieves 20 candidates for a query; CrossRankRerank re-scores them
with a cross-encoder and keeps the best 5. Everything runs locally: no LLM is called.

    pip install 'crossrank[llama-index]'
    python examples/llama_index_rerank.py [--limit 300] [--query "..."] [--top-n 5]

The cross-encoder here is the test fixture (MiniLM plus a seeded random head, since no
trained cross-encoder is reachable offline), so its order shows the plumbing, not
relevance. Pass --model with a trained one (e.g. a local copy of
cross-encoder/ms-marco-MiniLM-L6-v2) for real re-ranking.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "cranfield"
sys.path.insert(0, str(ROOT / "scripts"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=300, help="documents indexed (default 300)")
    parser.add_argument("--query", default="what are the effects of heat transfer on boundary layer flow",
                        help="the question to retrieve for")
    parser.add_argument("--top-n", type=int, default=5, help="nodes kept after re-ranking")
    parser.add_argument("--model", default=None, help="cross-encoder id or directory (default: the fixture)")
    args = parser.parse_args()

    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode

    from crossrank.integrations.llama_index import CrossRankEmbedding, CrossRankRerank

    import fixtures

    # The fixture models: the real all-MiniLM-L6-v2 bi-encoder and the seeded cross-encoder
    # (fetched / built into .cache/ on first use).
    minilm, ce = fixtures.ensure_default_fixtures()

    # One TextNode per Cranfield abstract, its id kept as metadata. The id is left out of the
    # text the embedding and the reranker see (MetadataMode.EMBED): it is bookkeeping.
    with open(DATA / "corpus.jsonl", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f if line.strip()][: args.limit]
    nodes = [TextNode(text=d["text"], id_=f"cranfield-{d['_id']}", metadata={"id": d["_id"]},
                      excluded_embed_metadata_keys=["id"]) for d in docs]

    # The index embeds with crossrank's BiEncoder. Passing embed_model explicitly keeps
    # LlamaIndex from reaching for its OpenAI default.
    index = VectorStoreIndex(nodes, embed_model=CrossRankEmbedding(minilm))
    retriever = index.as_retriever(similarity_top_k=20)
    retrieved = retriever.retrieve(args.query)
    print(f"query: {args.query}")
    print(f"indexed {len(nodes)} documents; retrieved {len(retrieved)} by cosine similarity, best 5:")
    for n in retrieved[:5]:
        print(f"  doc {n.node.metadata['id']:>5}  cosine={n.score:.4f}  {n.node.get_content()[:70]}")

    # Re-rank the 20 candidates with the cross-encoder; the retriever's cosine stays in
    # metadata["retrieval_score"]. In a query engine this is
    # index.as_query_engine(similarity_top_k=20, node_postprocessors=[reranker], llm=...).
    reranker = CrossRankRerank(model=args.model or ce, top_n=args.top_n, keep_retrieval_score=True)
    reranked = reranker.postprocess_nodes(retrieved, query_str=args.query)
    print(f"re-ranked by {reranker.model_name}, top {args.top_n}:")
    for rank, n in enumerate(reranked, 1):
        print(f"  {rank}. doc {n.node.metadata['id']:>5}  score={n.score:.6f}  "
              f"retrieval={n.node.metadata['retrieval_score']:.4f}  {n.node.get_content()[:60]}")


if __name__ == "__main__":
    main()
