"""Re-ranking LangChain retrieval with crossrank.

An InMemoryVectorStore over Cranfield abstracts, embedded with crossrank's BiEncoder
(all-MiniLM-L6-v2), retrieves 20 candidates for a query; CrossRankReranker re-scores them
with a cross-encoder and keeps the best 5, each with metadata["relevance_score"].
Everything runs locally: no LLM is called.

    pip install 'crossrank[langchain]'
    python examples/langchain_rerank.py [--limit 300]

The cross-encoder here is the test fixture (MiniLM plus a seeded random head, since no
trained cross-encoder is reachable offline), so its order shows the plumbing, not
relevance. Swap in a trained one (e.g. a local copy of cross-encoder/ms-marco-MiniLM-L6-v2)
for real re-ranking.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "cranfield"
sys.path.insert(0, str(ROOT / "scripts"))

QUERY = "what are the effects of heat transfer on boundary layer flow"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=300, help="documents indexed (default 300)")
    args = parser.parse_args()

    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    from crossrank import CrossEncoder
    from crossrank.integrations.langchain import CrossRankEmbeddings, CrossRankReranker

    import fixtures

    # The fixture models: the real all-MiniLM-L6-v2 bi-encoder and the seeded cross-encoder
    # (fetched / built into .cache/ on first use).
    minilm, ce = fixtures.ensure_default_fixtures()

    # One Document per Cranfield abstract, with its Cranfield id as metadata.
    with open(DATA / "corpus.jsonl", encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f if line.strip()][: args.limit]
    documents = [Document(page_content=d["text"], metadata={"id": d["_id"]}) for d in corpus]

    # The vector store embeds with crossrank's BiEncoder (normalized vectors, so the store's
    # cosine similarity is a dot product).
    store = InMemoryVectorStore(CrossRankEmbeddings(minilm))
    store.add_documents(documents)
    retriever = store.as_retriever(search_kwargs={"k": 20})
    retrieved = retriever.invoke(QUERY)
    print(f"query: {QUERY}")
    print(f"indexed {len(documents)} documents; retrieved {len(retrieved)} by cosine similarity, best 5:")
    for doc in retrieved[:5]:
        print(f"  doc {doc.metadata['id']:>5}  {doc.page_content[:70]}")

    # Re-rank the 20 candidates with the cross-encoder and keep the best 5. In a chain this
    # compressor goes into ContextualCompressionRetriever(base_compressor=reranker,
    # base_retriever=retriever) (langchain-classic), which does exactly this call.
    reranker = CrossRankReranker(CrossEncoder(ce), top_n=5)
    reranked = reranker.compress_documents(retrieved, QUERY)
    print("re-ranked by the cross-encoder, top 5:")
    for rank, doc in enumerate(reranked, 1):
        print(f"  {rank}. doc {doc.metadata['id']:>5}  relevance_score={doc.metadata['relevance_score']:.6f}  "
              f"{doc.page_content[:60]}")


if __name__ == "__main__":
    main()
