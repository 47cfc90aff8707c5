"""crossrank: fast re-ranking for retrieval pipelines, with a Rust core.

>>> from crossrank import CrossEncoder
>>> ce = CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")
>>> ce.rank("what is BM25?", ["BM25 is a ranking function", "Paris is in France"])
"""

from crossrank import metrics
from crossrank._core import BiEncoder, CrossEncoder, __version__

__all__ = ["BiEncoder", "CrossEncoder", "metrics", "__version__"]
