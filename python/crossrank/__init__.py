"""crossrank: fast re-ranking for retrieval pipelines, with a Rust core.

>>> from crossrank import CrossEncoder
>>> ce = CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")
>>> ce.rank("what is BM25?", ["BM25 is a ranking function", "Paris is in France"])
"""

from crossrank import datasets, evaluation, fusion, metrics, reranking, retrieval
from crossrank._core import BM25, BiEncoder, Calibrator, CrossEncoder, DenseIndex, __version__, runtime_info
from crossrank.reranking import HybridReranker, MultiStage, PairwiseReranker
from crossrank.retrieval import DenseRetriever, HybridRetriever
from crossrank.server import Server, serve

__all__ = [
    "BM25", "BiEncoder", "Calibrator", "CrossEncoder", "DenseIndex", "DenseRetriever", "HybridReranker",
    "HybridRetriever", "MultiStage", "PairwiseReranker", "datasets", "evaluation", "fusion", "metrics", "reranking",
    "retrieval", "Server", "serve",
    "__version__", "runtime_info",
]
