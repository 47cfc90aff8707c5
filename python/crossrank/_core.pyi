"""Type stubs and documentation for the Rust extension ``crossrank._core``."""

from os import PathLike
from typing import Any, Callable, Literal, Mapping, Sequence, TypedDict, overload

import numpy as np
import numpy.typing as npt

__version__: str

# Any ordered sequence of two str: a tuple, a list, a row of a 2-D numpy array of str.
Pair = tuple[str, str] | list[str] | Sequence[str]
ActivationName = Literal["sigmoid", "identity", "softmax", "tanh"]

class CrossEncoder:
    """Scores (query, document) pairs with a sequence-classification model.

    Same API and scores as ``sentence_transformers.CrossEncoder``. Supports
    ``BertForSequenceClassification``, ``XLMRobertaForSequenceClassification`` (and
    ``RobertaForSequenceClassification``), ``ElectraForSequenceClassification``,
    ``DistilBertForSequenceClassification`` and ``ModernBertForSequenceClassification``
    checkpoints (safetensors, sharded safetensors or ``pytorch_model.bin``), and decoder
    "yes/no" rerankers (``Qwen3ForCausalLM``, e.g. ``Qwen/Qwen3-Reranker-0.6B``): each pair is
    rendered by the checkpoint's chat template as sentence-transformers 6 does (system =
    instruction, then query and document messages; the model card's format when the
    checkpoint has no such template), truncated at ``max_length`` with the template's end
    kept, and scored ``sigmoid(logit("yes") - logit("no"))`` at the last token (the raw
    difference with ``activation_fn="identity"``). The prompt's beginning (system,
    instruction, query) is computed once per query and reused by its candidates.

    Args:
        model_name_or_path: a local model directory, or a Hugging Face hub id resolved
            through the hub cache (``HF_HUB_CACHE`` / ``HF_HOME``) and downloaded when online.
        max_length: truncation length (tokens, longest-first). Default: the tokenizer's
            ``model_max_length``, capped at the model's position table.
        device: ``"cpu"`` (default, also what None means: crossrank's own engine), or
            ``"cuda"`` / ``"cuda:N"`` in builds with the ``cuda`` cargo feature (candle's
            models on the GPU; not in the PyPI wheels). A device the build lacks raises
            ``ValueError``.
        activation_fn: applied to the logits: ``"sigmoid"``, ``"identity"``, ``"softmax"``,
            ``"tanh"`` or a torch activation module. Default: as sentence-transformers
            (config.json's ``sentence_transformers.activation_fn``, else sigmoid for one
            label and identity otherwise).
        revision: hub revision (branch, tag or commit).
        cache_folder: hub cache directory.
        local_files_only: never download (also ``HF_HUB_OFFLINE=1``).
        max_batch_tokens: cap on padded tokens per batch (sequences x longest length), to
            bound memory on long inputs. Default: no cap beyond ``batch_size``.
        precision: ``"float32"`` (default, also what None means): exact, scores equal
            PyTorch's within 1e-4. ``"int8"``: dynamic int8 quantization of the encoder's linear layers (weights
            per output channel, activations per token, outlier values kept in f32), about
            twice as fast on CPUs with AVX-512 VNNI; scores close to float32 but not equal
            (per-query Spearman >= 0.99 with float32 on real candidates; see
            ``benches/RESULTS.md``). CPU only.
        long_document: pairs longer than ``max_length``. ``"truncate"`` (default, as
            sentence-transformers): one input cut longest-first. ``"first"``, ``"max"``,
            ``"mean"``: the document is split into overlapping windows, each scored as
            ``[CLS] query [SEP] window [SEP]`` (the windows transformers makes with
            ``truncation="only_second", return_overflowing_tokens=True``), and the pair's
            logit is the first window's, the best window's or the windows' mean (before
            the activation). A query that leaves no room for a window longer than
            ``stride`` tokens is scored as one truncated input.
        stride: tokens shared by neighbouring windows (default 64); must be less than
            half of ``max_length``.
        instruction: a decoder reranker's instruction (the system message of its prompt).
            Default: the checkpoint's default prompt (sentence-transformers'
            ``default_prompt_name``), else the template's own (Qwen3-Reranker's "Given a web
            search query, retrieve relevant passages that answer the query"). Encoders raise
            ``ValueError``. For decoders, ``long_document`` other than ``"truncate"``,
            ``compare`` and ``precision="int8"`` raise ``ValueError``.
        truncation: how a pair longer than ``max_length`` is cut (long_document="truncate").
            ``"longest_first"`` (default, as sentence-transformers): tokens come off the longer
            text first. ``"only_second"``: the document is cut; the query only when it alone
            does not fit (transformers' ``truncation="only_second"`` where that applies).
            ``"error"``: ``predict``/``rank`` raise ``ValueError`` naming the first pair that
            does not fit and its length. Decoders always cut the document first.
        cache_size: keep the scores of this many (query, document) pairs in an LRU, so
            scoring a pair again (pagination, retries, an evaluation sweep) is a lookup.
            Thread-safe; off by default (None or 0). The key holds the model's identity
            (source, revision, max_length, precision, truncation), the long-document mode and
            stride, and the pair; logits are cached before the activation. See
            :meth:`cache_info`.

    Raises:
        FileNotFoundError: the model, or a file it needs, does not exist / cannot be fetched.
        ValueError: an unsupported architecture, a broken config/tokenizer/weight file, or
            a bad argument.
    """

    def __init__(
        self,
        model_name_or_path: str | PathLike[str],
        max_length: int | None = None,
        device: str | None = None,
        activation_fn: ActivationName | Callable[..., Any] | None = None,
        revision: str | None = None,
        cache_folder: str | PathLike[str] | None = None,
        local_files_only: bool = False,
        max_batch_tokens: int | None = None,
        precision: Literal["float32", "int8"] | None = None,
        long_document: Literal["truncate", "first", "max", "mean"] = "truncate",
        stride: int = 64,
        instruction: str | None = None,
        truncation: Literal["longest_first", "only_second", "error"] = "longest_first",
        cache_size: int | None = None,
    ) -> None: ...
    def cache_info(self) -> dict[str, int] | None:
        """The score cache's counters ``{"hits", "misses", "maxsize", "currsize"}`` (as
        ``functools.lru_cache`` reports them), or None when the model has no cache."""
    def cache_clear(self) -> None:
        """Empties the score cache and resets its counters."""
    def compare(
        self,
        query: str,
        pairs: Sequence[tuple[str, str]],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> npt.NDArray[np.float64]:
        """For a duo cross-encoder: P(a is more relevant to ``query`` than b) for each
        ``(a, b)``. The input is ``[CLS] query [SEP] a [SEP] b [SEP]`` (the model's own
        special tokens; without truncation exactly the tokenizer's pair encoding of
        ``(query, a + " [SEP] " + b)``); when it does not fit ``max_length`` the query is cut
        to half of it, then the longer document first, so both documents stay in. The
        probability is the sigmoid of the logit (one label) or the second label's softmax
        (two labels, as duoBERT). Raises ``ValueError`` for a model with more labels."""
    @property
    def long_document(self) -> Literal["truncate", "first", "max", "mean"]: ...
    @property
    def stride(self) -> int: ...
    @property
    def truncation(self) -> Literal["longest_first", "only_second", "error"]: ...
    @overload
    def predict(
        self,
        sentences: Pair,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: ActivationName | Callable[..., Any] | None = None,
        apply_softmax: bool = False,
        convert_to_numpy: bool = True,
        return_details: bool = False,
    ) -> float: ...
    @overload
    def predict(
        self,
        sentences: Sequence[Pair],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: ActivationName | Callable[..., Any] | None = None,
        apply_softmax: bool = False,
        convert_to_numpy: bool = True,
        return_details: bool = False,
    ) -> npt.NDArray[np.float32]: ...
    def predict(self, sentences, batch_size=32, show_progress_bar=None, activation_fn=None,
                apply_softmax=False, convert_to_numpy=True, return_details=False):
        """Scores pairs.

        Returns a float32 array of shape ``(n,)`` (one label) or ``(n, num_labels)``, in
        input order; one pair in gives one ``float`` out (a ``(num_labels,)`` array for
        multi-label models). ``convert_to_numpy=False`` gives Python lists.
        ``apply_softmax=True`` applies a softmax over the labels after the activation.
        Pairs are tokenized in parallel, sorted by length and batched; the GIL is released.
        ``return_details=True`` returns ``(scores, details)``: per pair a dict with
        ``num_tokens`` (the input's length before truncation, special tokens included) and
        ``truncated`` (whether the model read fewer tokens), and in long_document modes
        ``window`` (the best-scoring window's index), ``num_windows`` and ``window_span``
        (its ``(start, end)`` in the document's tokens).
        """
    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        return_documents: bool = False,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: ActivationName | Callable[..., Any] | None = None,
        return_details: bool = False,
    ) -> list[dict[str, Any]]:
        """Documents ranked for ``query``, best first: ``[{"corpus_id": int, "score": float,
        "text": str (if return_documents)}]``. Ties keep input order. Single-label models only.
        ``return_details=True`` adds each document's details as :meth:`predict` gives them
        (``num_tokens``, ``truncated``, and the window keys in long_document modes)."""
    async def apredict(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`predict` on the running event loop's default executor (the GIL is released
        while scoring, so the loop keeps serving). ``RuntimeError`` without a running loop."""
    async def arank(self, *args: Any, **kwargs: Any) -> list[dict[str, int | float | str]]:
        """:meth:`rank` on the running event loop's default executor."""
    def tokenize(self, sentences: Sequence[Pair]) -> list[list[int]]:
        """Token ids of each pair as the model sees them (``[CLS] q [SEP] d [SEP]``, truncated)."""
    @property
    def precision(self) -> Literal["float32", "int8"]: ...
    @property
    def max_length(self) -> int: ...
    @property
    def num_labels(self) -> int: ...
    @property
    def activation_fn(self) -> ActivationName:
        """The default activation's name."""
    @property
    def model_name_or_path(self) -> str: ...

class BiEncoder:
    """Embeds texts; same API and embeddings as ``SentenceTransformer.encode``.

    Pooling comes from the model's ``1_Pooling/config.json`` (mean, cls, max or
    mean_sqrt_len; ``pooling=`` overrides), ``max_length`` from ``sentence_bert_config.json``,
    and embeddings are L2-normalized when the model has a ``Normalize`` module or
    ``normalize_embeddings=True``. Other arguments as :class:`CrossEncoder`.
    """

    def __init__(
        self,
        model_name_or_path: str | PathLike[str],
        max_length: int | None = None,
        device: str | None = None,
        pooling: Literal["mean", "cls", "max", "mean_sqrt_len"] | None = None,
        normalize_embeddings: bool = False,
        revision: str | None = None,
        cache_folder: str | PathLike[str] | None = None,
        local_files_only: bool = False,
        max_batch_tokens: int | None = None,
        precision: Literal["float32", "int8"] | None = None,
    ) -> None: ...
    async def aencode(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`encode` on the running event loop's default executor."""
    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        normalize_embeddings: bool | None = None,
        convert_to_numpy: bool = True,
    ) -> npt.NDArray[np.float32]:
        """Embeddings, float32 ``(n, dim)``; one str gives ``(dim,)``.
        ``normalize_embeddings=True`` normalizes even if the model does not."""
    def similarity(self, a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Cosine similarity matrix ``(n, m)``; 1-D inputs count as one row."""
    def tokenize(self, sentences: Sequence[str]) -> list[list[int]]: ...
    def get_sentence_embedding_dimension(self) -> int: ...
    @property
    def precision(self) -> Literal["float32", "int8"]: ...
    @property
    def max_length(self) -> int: ...
    @property
    def pooling(self) -> str: ...
    @property
    def normalize_embeddings(self) -> bool:
        """Whether ``encode`` normalizes by default."""

class Server:
    """A running HTTP server for a reranker and/or an embedding model (see
    :func:`crossrank.serve`): TEI ``/rerank`` ``/embed`` ``/info`` ``/health``, Cohere
    ``/v1/rerank`` (shared with Jina) and ``/v2/rerank``, OpenAI ``/v1/embeddings``,
    ``/metrics``. It serves on its own threads from the moment it is created; concurrent
    requests are batched into the same model calls. ``port=0`` picks a free port."""

    def __init__(
        self,
        model: CrossEncoder | None = None,
        embed_model: BiEncoder | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        batch_size: int = 32,
        max_client_batch_size: int = 1024,
        max_concurrent_requests: int = 512,
        max_body_bytes: int = 8388608,
        request_timeout: float = 300.0,
        api_key: str | None = None,
    ) -> None: ...
    @property
    def port(self) -> int:
        """The port it listens on (the free one it was given with ``port=0``)."""
    @property
    def host(self) -> str: ...
    @property
    def url(self) -> str:
        """``http://host:port``."""
    def wait(self, timeout: float | None = None) -> bool:
        """Waits for the server to stop, at most ``timeout`` seconds (None: until it does);
        True when it has stopped."""
    def shutdown(self) -> None:
        """Stops accepting connections; requests in flight are still answered. Returns at
        once; :meth:`wait` for the end."""

def evaluate(
    qrels: dict[str, dict[str, int]] | str | PathLike[str],
    run: dict[str, dict[str, float]] | str | PathLike[str],
    metrics: str | Sequence[str],
    per_query: bool = False,
) -> dict[str, float] | dict[str, dict[str, float]]:
    """Metrics of ``run`` against ``qrels`` (dicts, or TREC qrels / run files):
    ``{metric: mean over the qrels' queries}``, or ``{metric: {qid: value}}`` with
    ``per_query=True``. See :mod:`crossrank.metrics` for the names and conventions.

    Raises:
        ValueError: an unknown metric name, a cut-off <= 0, a non-finite score, empty
            qrels, or a malformed file line (named).
        TypeError: inputs of the wrong type.
        FileNotFoundError: a file path that does not exist.
    """

Ids = list[str] | npt.NDArray[np.int64]
Hits = tuple[Ids, npt.NDArray[np.float32]]

class BM25:
    """Okapi BM25 with Lucene's idf over a corpus of strings (built in parallel).

    ``score(q, d) = sum over query terms t of idf(t) * tf / (tf + k1 * (1 - b + b * |d| / avgdl))``
    with ``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))``: Lucene's BM25Similarity and
    bm25s' ``method="lucene"`` (tested equal on Cranfield). Repeated query terms count
    each time, as in Lucene.

    Text is lowercased and split into runs of letters and digits (Unicode); then
    ``stopwords`` are dropped and words are stemmed with a Snowball ``stemmer``.

    Args:
        corpus: the documents.
        ids: one unique id per document; ``search`` then returns ids instead of positions.
        k1, b: BM25 parameters (defaults 0.9 and 0.4, Pyserini's for BEIR).
        stopwords: ``None``, a language name (NLTK's list, e.g. ``"english"``) or a list of words.
        stemmer: ``None`` or a Snowball language (``"english"`` is Porter2, also ``"french"``,
            ``"german"``, ...).

    Raises:
        ValueError: an empty corpus, ``k1 < 0``, ``b`` outside [0, 1], ids of the wrong
            count or duplicated, an unknown stemmer or stopword language.
    """

    def __init__(
        self,
        corpus: Sequence[str],
        ids: Sequence[str] | None = None,
        k1: float = 0.9,
        b: float = 0.4,
        stopwords: str | Sequence[str] | None = None,
        stemmer: str | None = None,
    ) -> None: ...
    def tokenize(self, text: str) -> list[str]:
        """The terms BM25 indexes for ``text``."""
    def search(self, query: str, top_k: int = 10) -> Hits:
        """The ``top_k`` best documents, best first (equal scores: corpus order), as
        ``(ids or positions, float32 scores)``. Only documents sharing a term with the query
        are returned: an empty query or one with no known term gives empty arrays."""
    def search_batch(self, queries: Sequence[str], top_k: int = 10, show_progress_bar: bool | None = None) -> list[Hits]:
        """``search`` for each query, in parallel with the GIL released."""
    def score(self, query: str, documents: Sequence[str]) -> npt.NDArray[np.float32]:
        """BM25 scores of any texts for ``query`` with the corpus' statistics (idf, average
        length); a term the corpus never saw has df = 0. For hybrid re-ranking."""
    def save(self, path: str | PathLike[str]) -> None: ...
    @staticmethod
    def load(path: str | PathLike[str]) -> BM25:
        """Raises ``FileNotFoundError`` for a missing file, ``ValueError`` for one that is not an index."""
    @property
    def k1(self) -> float: ...
    @property
    def b(self) -> float: ...
    @property
    def ids(self) -> list[str] | None: ...
    @property
    def vocabulary_size(self) -> int: ...
    def __len__(self) -> int: ...

class DenseIndex:
    """Exact top-k search over an ``(n, dim)`` float32 matrix of embeddings.

    A C-contiguous float32 array is read in place (no copy; do not modify it afterwards);
    anything else is converted once. Search is one matrix product per block of rows, in
    parallel with the GIL released.

    Args:
        embeddings: ``(n, dim)`` array-like.
        ids: one unique id per row; ``search`` then returns ids instead of positions.
        metric: ``"cosine"`` (a zero vector scores 0) or ``"dot"``.

    Raises:
        ValueError: non-finite values, a bad shape, bad ids, an unknown metric.
    """

    def __init__(
        self,
        embeddings: npt.ArrayLike,
        ids: Sequence[str] | None = None,
        metric: Literal["cosine", "dot"] = "cosine",
    ) -> None: ...
    def search(self, query_embeddings: npt.NDArray[Any], top_k: int = 10) -> Hits | list[Hits]:
        """Top ``top_k`` rows, best first (equal scores: row order): one ``(ids, scores)``
        for a 1-D query, a list of them for a 2-D ``(q, dim)`` array."""
    def add(self, embeddings: npt.ArrayLike, ids: Sequence[str] | None = None) -> None:
        """Append rows (with ids exactly when the index has ids). The index then owns a copy."""
    def save(self, path: str | PathLike[str]) -> None: ...
    @staticmethod
    def load(path: str | PathLike[str]) -> DenseIndex: ...
    @property
    def embeddings(self) -> npt.NDArray[np.float32]: ...
    @property
    def ids(self) -> list[str] | None: ...
    @property
    def metric(self) -> Literal["cosine", "dot"]: ...
    @property
    def dim(self) -> int: ...
    def __len__(self) -> int: ...

Run = dict[Any, float] | tuple[Sequence[Any], Sequence[float]]

class RuntimeInfo(TypedDict):
    version: str
    arch: str
    cpu_features: list[str]
    f32_kernel: Literal["avx512", "avx2", "generic"]
    int8_kernel: Literal["avx512vnni", "avxvnni", "avx2", "neon-dotprod", "portable"]
    int8_ffn_output: Literal["int8x2", "float32"]
    int8_fast: bool
    isa_cap: str | None
    threads: int

def runtime_info() -> RuntimeInfo:
    """What the CPU engine runs here: the CPU features it saw, the kernels it chose for
    float32 and int8 (``CROSSRANK_ISA=scalar|dotprod|avx2|avxvnni|avx512`` caps the choice), whether
    ``precision="int8"`` has a fast kernel (without one it warns and runs float32), how an
    int8 model keeps its FFN output projections (``"int8x2"``: two int8 terms per weight,
    with the VNNI and dotprod kernels; ``"float32"`` with the AVX2 one), and the number
    of threads."""

def reciprocal_rank_fusion(runs: Sequence[Run], k: float = 60.0, weights: Sequence[float] | None = None) -> dict[Any, float]:
    """``{id: sum_i weights[i] / (k + rank_i(id))}``, best first. See :mod:`crossrank.fusion`."""

def weighted_sum_fusion(runs: Sequence[Run], weights: Sequence[float] | None = None) -> dict[Any, float]:
    """``{id: sum_i weights[i] * minmax_i(score)}``, best first. See :mod:`crossrank.fusion`."""

# Re-ranking numerics (used by crossrank.reranking; importable from crossrank.reranking).

Normalization = Literal["minmax", "zscore", "sigmoid", "rank", "none"]

def normalize_scores(scores: Sequence[float], method: Normalization) -> npt.NDArray[np.float64]:
    """One query's scores for one signal, normalized per query. Raises ``ValueError`` for an
    unknown method or a NaN/infinite score."""

def combine_signals(
    names: Sequence[str],
    values: Sequence[Sequence[float]],
    weights: Sequence[float],
    normalizations: Sequence[str],
    fusion_name: Literal["weighted", "rrf"] = "weighted",
    k: float = 60.0,
) -> tuple[npt.NDArray[np.float64], list[npt.NDArray[np.float64]], list[npt.NDArray[np.float64]]]:
    """``(scores, normalized, contributions)``: per signal (``values[s][doc]``) the
    normalized values and each one's contribution to the fused score."""

def fit_weights(
    queries: Sequence[tuple[Sequence[str], Sequence[Sequence[float]], Mapping[str, int]]],
    metric: str,
    initial: Sequence[float],
    normalizations: Sequence[str],
    fusion_name: Literal["weighted", "rrf"] = "weighted",
    k: float = 60.0,
    max_rounds: int = 25,
    first_step: float = 0.01,
    num_steps: int = 7,
) -> dict[str, Any]:
    """Coordinate ascent (RankLib style) on ``metric`` (e.g. ``"ndcg@10"``) over non-negative
    weights summing to 1: ``{"weights", "score", "initial_score", "rounds"}``."""

class Calibrator:
    """Maps scores to probabilities of relevance: ``"temperature"`` (sigmoid(s / T), keeps
    the score's zero) or ``"platt"`` (sigmoid(a * s + b)), fitted by maximum likelihood."""

    @staticmethod
    def fit(scores: Sequence[float], labels: Sequence[float], method: Literal["temperature", "platt"] = "temperature") -> Calibrator:
        """Labels are 0 or 1; both must occur. Raises ``ValueError`` otherwise, or when
        temperature scaling would need scores that decrease with relevance."""
    def transform(self, scores: Sequence[float]) -> npt.NDArray[np.float64]: ...
    @property
    def method(self) -> Literal["temperature", "platt"]: ...
    @property
    def params(self) -> dict[str, float]:
        """``{"temperature": T}`` or ``{"a": a, "b": b}``."""

def suggest_threshold(scores: Sequence[float], labels: Sequence[float], target: str = "f1") -> dict[str, float]:
    """``{"threshold", "precision", "recall", "f1"}`` for ``target`` = ``"f1"`` (best F1),
    ``"precision>=X"`` (lowest threshold reaching precision X) or ``"recall>=X"``."""

def expected_calibration_error(probabilities: Sequence[float], labels: Sequence[float], bins: int = 10) -> float:
    """Equal-width-bin ECE: sum over bins of |mean probability - fraction relevant| x bin share."""

def aggregate_preferences(preferences: npt.NDArray[np.float64], aggregation: Literal["sum", "copeland"] = "sum") -> npt.NDArray[np.float64]:
    """One score per document from an (n, n) float64 matrix of P(row more relevant than
    column) (diagonal ignored): ``"sum"`` of each row (duoBERT) or ``"copeland"`` (wins minus
    losses). Raises ``ValueError`` for a non-square matrix or a value outside [0, 1]."""

def sort_by_preference(n: int, before: Callable[[int, int], bool]) -> tuple[list[int], int]:
    """``(order, comparisons)``: ``range(n)`` sorted by ``before(a, b)`` ("a goes first")
    with a stable merge sort (at most n ceil(log2 n) - 2^ceil(log2 n) + 1 calls).
    Exceptions raised by ``before`` propagate; a non-bool answer raises ``TypeError``."""

def check_weights(weights: Sequence[tuple[str, float]]) -> None:
    """``ValueError`` unless every weight is finite and >= 0 and one is above 0 (the rule
    every weighted combination in crossrank shares); the message names the weight."""

class ModelSignals:
    """The model signals of a hybrid re-rank (what :class:`crossrank.HybridReranker` uses):
    a cross-encoder's scores, BM25 scores and a bi-encoder's cosine similarities for one
    query's candidates, computed side by side in Rust with the GIL released.

    Args:
        cross_encoder: scores (query, document) pairs with its default activation.
        bi_encoder: cosine of the query's and each document's embedding.
        bm25: ``True``: BM25 with the candidate set's own statistics (k1 0.9, b 0.4);
            a :class:`BM25` index: its corpus' statistics (``BM25.score``).
        batch_size: sequences per forward pass of either model.
    """

    def __init__(
        self,
        cross_encoder: CrossEncoder | None = None,
        bi_encoder: BiEncoder | None = None,
        bm25: bool | BM25 | None = None,
        batch_size: int = 32,
    ) -> None: ...
    @property
    def names(self) -> list[str]:
        """The configured signals: ``"cross_encoder"``, ``"bm25"``, ``"bi_encoder"``, in that order."""
    def compute(
        self,
        query: str,
        documents: Sequence[str],
        embeddings: npt.NDArray[np.float32] | None = None,
        show_progress_bar: bool | None = None,
    ) -> dict[str, npt.NDArray[np.float64]]:
        """Each configured signal's raw values for ``documents``. ``embeddings``: the
        documents' embeddings, float32 ``(len(documents), dim)``, when the caller already
        has them (a :class:`DenseIndex`, a vector store): the bi-encoder then embeds only
        the query. Ctrl-C stops it (``KeyboardInterrupt``)."""

Scores = Sequence[float] | npt.NDArray[np.floating]

class HybridReranker:
    """The Rust core of :class:`crossrank.HybridReranker` (use that): gathers every signal
    of one query's candidates and fuses them, in one call with the GIL released.

    Args:
        weights: ``(name, normalization, weight)`` for every signal, in the order results
            list them.
        cross_encoder, bi_encoder, bm25: the model signals, as in :class:`ModelSignals`.
        scorers: ``(name, f(query, documents) -> scores)``: signals computed by Python
            callables, called back under the GIL.
        given: names of the signals whose values each call passes (``given=``).
        fusion: ``"weighted"`` or ``"rrf"`` (with constant ``k``).
        batch_size: sequences per forward pass of the models.
    """

    def __init__(
        self,
        weights: Sequence[tuple[str, str, float]],
        cross_encoder: CrossEncoder | None = None,
        bi_encoder: BiEncoder | None = None,
        bm25: bool | BM25 | None = None,
        scorers: Sequence[tuple[str, Callable[[str, list[str]], Scores]]] = ...,
        given: Sequence[str] = ...,
        fusion: Literal["weighted", "weighted_sum", "rrf"] = "weighted",
        k: float = 60.0,
        batch_size: int = 32,
    ) -> None: ...
    @property
    def names(self) -> list[str]:
        """The signals' names, in the order results list them."""
    def signals(
        self,
        query: str,
        documents: Sequence[str],
        embeddings: npt.NDArray[np.float32] | None = None,
        given: Mapping[str, Sequence[float]] | None = None,
    ) -> dict[str, npt.NDArray[np.float64]]:
        """``{name: float64 array}``: each signal's raw values for ``documents``.
        ``embeddings``: the documents' embeddings, so the bi-encoder embeds only the query;
        ``given``: ``{name: values}`` of the given signals. Ctrl-C stops it."""
    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        embeddings: npt.NDArray[np.float32] | None = None,
        given: Mapping[str, Sequence[float]] | None = None,
    ) -> tuple[
        dict[str, npt.NDArray[np.float64]],
        npt.NDArray[np.float64],
        list[npt.NDArray[np.float64]],
        list[npt.NDArray[np.float64]],
    ]:
        """``(raw, scores, normalized, contributions)``: the signals as in :meth:`signals`,
        the fused scores, and per signal (in :attr:`names` order) the normalized values and
        weight x normalized."""

class MultiStage:
    """The Rust core of :class:`crossrank.MultiStage` (use that): a cascade of scorers,
    run with the GIL released.

    Args:
        stages: ``(model, top_n, label)``: a :class:`CrossEncoder`, :class:`BiEncoder` or
            callable ``f(query, documents) -> scores`` (called back under the GIL), how many
            of the previous stage's best it re-scores, and its name in timings and messages.
        batch_size: sequences per forward pass of the models.
    """

    def __init__(
        self,
        stages: Sequence[tuple[CrossEncoder | BiEncoder | Callable[[str, list[str]], Scores], int, str]],
        batch_size: int = 32,
    ) -> None: ...
    def cascade(
        self, query: str, documents: Sequence[str]
    ) -> tuple[list[int], list[tuple[float, int] | None], dict[str, float]]:
        """``(order, scored, timings)``: every document position best first; per document
        ``(score, stage)`` of the last stage that scored it, or ``None``; seconds per stage.
        Ctrl-C stops it."""

class PairwiseReranker:
    """The Rust core of :class:`crossrank.PairwiseReranker` (use that).

    Args:
        comparator: a duo :class:`CrossEncoder` (``compare``, GIL released) or a callable
            ``f(query, a, b) -> P(a > b)`` called back under the GIL.
        method: ``"allpairs"`` (aggregated by ``aggregation``) or ``"sort"``.
        aggregation: ``"sum"`` or ``"copeland"``.
        both_orders: with ``"sort"``, ask each decision in both orders and average.
        batch_size: pairs per forward pass of a duo cross-encoder.
        label: the comparator's name in messages.
    """

    def __init__(
        self,
        comparator: CrossEncoder | Callable[[str, str, str], float],
        method: Literal["allpairs", "sort"] = "allpairs",
        aggregation: Literal["sum", "copeland"] = "sum",
        both_orders: bool = True,
        batch_size: int = 32,
        label: str = "comparator",
    ) -> None: ...
    def scores(self, query: str, documents: Sequence[str]) -> tuple[npt.NDArray[np.float64], int]:
        """``(scores, comparisons)``: one score per document (all pairs: the aggregation;
        sort: ``n - position``) and the comparator evaluations. Ctrl-C stops it."""

class Trainer:
    """The training core behind :class:`crossrank.train.CrossEncoderTrainer` (use that):
    one optimizer step per call, with the schedule sized for ``num_examples`` examples."""

    def __init__(
        self,
        base: str | PathLike[str],
        num_examples: int,
        num_labels: int | None = None,
        max_length: int | None = None,
        learning_rate: float = 2e-5,
        batch_size: int = 16,
        epochs: int = 1,
        warmup_ratio: float = 0.1,
        weight_decay: float = 0.01,
        max_grad_norm: float | None = 1.0,
        seed: int = 0,
        loss: Literal["bce", "listwise", "kl", "margin_mse"] = "bce",
        dropout: float | None = None,
        revision: str | None = None,
        cache_folder: str | PathLike[str] | None = None,
        local_files_only: bool = False,
    ) -> None:
        """``dropout``: probability on the hidden states during steps (``None``: the base's
        ``hidden_dropout_prob``; ``0.0``: none). ``logits`` never drops."""
    def train_step_pairs(self, pairs: Sequence[tuple[str, str]], labels: Sequence[float]) -> dict[str, float]:
        """One step of binary cross-entropy: ``{"loss", "grad_norm", "learning_rate"}``."""
    def train_step_groups(self, groups: Sequence[tuple[str, Sequence[str]]]) -> dict[str, float]:
        """One step of the listwise softmax loss over ``(query, [positive, negatives...])``."""
    def train_step_distill(self, groups: Sequence[tuple[str, Sequence[str], Sequence[float]]]) -> dict[str, float]:
        """One step of a distillation loss (``"kl"`` or ``"margin_mse"``) over ``(query,
        [documents], [teacher scores])``, the margins taken from the first document."""
    def logits(self, pairs: Sequence[tuple[str, str]]) -> npt.NDArray[np.float32]: ...
    def save(self, path: str | PathLike[str], overwrite: bool = False) -> None:
        """A Hugging Face checkpoint directory; ``ValueError`` if it exists and not ``overwrite``."""
    @property
    def steps_done(self) -> int: ...
    @property
    def max_length(self) -> int: ...
    @property
    def dropout(self) -> float: ...
    @property
    def num_labels(self) -> int: ...
