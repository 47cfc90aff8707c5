"""Type stubs and documentation for the Rust extension ``crossrank._core``."""

from os import PathLike
from typing import Any, Callable, Literal, Sequence, overload

import numpy as np
import numpy.typing as npt

__version__: str

Pair = tuple[str, str] | list[str]
ActivationName = Literal["sigmoid", "identity", "softmax", "tanh"]

class CrossEncoder:
    """Scores (query, document) pairs with a sequence-classification model.

    Same API and scores as ``sentence_transformers.CrossEncoder``. Supports
    ``BertForSequenceClassification`` and ``XLMRobertaForSequenceClassification``
    checkpoints (safetensors, sharded safetensors or ``pytorch_model.bin``).

    Args:
        model_name_or_path: a local model directory, or a Hugging Face hub id resolved
            through the hub cache (``HF_HUB_CACHE`` / ``HF_HOME``) and downloaded when online.
        max_length: truncation length (tokens, longest-first). Default: the tokenizer's
            ``model_max_length``, capped at the model's position table.
        device: ``"cpu"`` (crossrank's own engine), or ``"cuda"`` / ``"cuda:N"`` in builds
            with the ``cuda`` cargo feature (candle's models on the GPU; not in the PyPI
            wheels). A device the build lacks raises ``ValueError``.
        activation_fn: applied to the logits: ``"sigmoid"``, ``"identity"``, ``"softmax"``,
            ``"tanh"`` or a torch activation module. Default: as sentence-transformers
            (config.json's ``sentence_transformers.activation_fn``, else sigmoid for one
            label and identity otherwise).
        revision: hub revision (branch, tag or commit).
        cache_folder: hub cache directory.
        local_files_only: never download (also ``HF_HUB_OFFLINE=1``).
        max_batch_tokens: cap on padded tokens per batch (sequences x longest length), to
            bound memory on long inputs. Default: no cap beyond ``batch_size``.
        precision: ``"float32"`` (default): exact, scores equal PyTorch's within 1e-4.
            ``"int8"``: dynamic int8 quantization of the encoder's linear layers (weights
            per output channel, activations per token, outlier values kept in f32), about
            twice as fast on CPUs with AVX-512 VNNI; scores close to float32 but not equal
            (per-query Spearman >= 0.99 with float32 on real candidates; see
            ``benches/RESULTS.md``). CPU only.

    Raises:
        FileNotFoundError: the model, or a file it needs, does not exist / cannot be fetched.
        ValueError: an unsupported architecture, a broken config/tokenizer/weight file, or
            a bad argument.
    """

    def __init__(
        self,
        model_name_or_path: str | PathLike[str],
        max_length: int | None = None,
        device: str | None = "cpu",
        activation_fn: ActivationName | Callable[..., Any] | None = None,
        revision: str | None = None,
        cache_folder: str | PathLike[str] | None = None,
        local_files_only: bool = False,
        max_batch_tokens: int | None = None,
        precision: Literal["float32", "int8"] = "float32",
    ) -> None: ...
    @overload
    def predict(
        self,
        sentences: Pair,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: ActivationName | Callable[..., Any] | None = None,
        apply_softmax: bool = False,
        convert_to_numpy: bool = True,
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
    ) -> npt.NDArray[np.float32]: ...
    def predict(self, sentences, batch_size=32, show_progress_bar=None, activation_fn=None,
                apply_softmax=False, convert_to_numpy=True):
        """Scores pairs.

        Returns a float32 array of shape ``(n,)`` (one label) or ``(n, num_labels)``, in
        input order; one pair in gives one ``float`` out (a ``(num_labels,)`` array for
        multi-label models). ``convert_to_numpy=False`` gives Python lists.
        ``apply_softmax=True`` applies a softmax over the labels after the activation.
        Pairs are tokenized in parallel, sorted by length and batched; the GIL is released.
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
    ) -> list[dict[str, int | float | str]]:
        """Documents ranked for ``query``, best first: ``[{"corpus_id": int, "score": float,
        "text": str (if return_documents)}]``. Ties keep input order. Single-label models only."""
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
        device: str | None = "cpu",
        pooling: Literal["mean", "cls", "max", "mean_sqrt_len"] | None = None,
        normalize_embeddings: bool = False,
        revision: str | None = None,
        cache_folder: str | PathLike[str] | None = None,
        local_files_only: bool = False,
        max_batch_tokens: int | None = None,
        precision: Literal["float32", "int8"] = "float32",
    ) -> None: ...
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
