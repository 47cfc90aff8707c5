//! The Hugging Face weight names of a BERT-style encoder and of its classification
//! heads, written once: the CPU engine, candle's reference model and the trainer load
//! them (and the trainer saves them) by these names.

/// The embeddings block and its tables.
pub const EMBEDDINGS: &str = "embeddings";
pub const WORD_EMBEDDINGS: &str = "word_embeddings";
pub const POSITION_EMBEDDINGS: &str = "position_embeddings";
pub const TOKEN_TYPE_EMBEDDINGS: &str = "token_type_embeddings";
/// A LayerNorm inside a block (embeddings, attention output, layer output).
pub const LAYER_NORM: &str = "LayerNorm";

/// Encoder layer `i`.
pub fn layer(i: usize) -> String {
    format!("encoder.layer.{i}")
}

/// In a layer: the self-attention projections, under `SELF_ATTENTION`.
pub const SELF_ATTENTION: &str = "attention.self";
pub const QUERY: &str = "query";
pub const KEY: &str = "key";
pub const VALUE: &str = "value";
/// In a layer: attention output projection and its LayerNorm, feed-forward input and
/// output projections and the layer's final LayerNorm.
pub const ATTENTION_OUTPUT: &str = "attention.output.dense";
pub const ATTENTION_NORM: &str = "attention.output.LayerNorm";
pub const INTERMEDIATE: &str = "intermediate.dense";
pub const OUTPUT: &str = "output.dense";
pub const OUTPUT_NORM: &str = "output.LayerNorm";

/// `BertForSequenceClassification`'s head: the pooler (dense + tanh on [CLS]) lives
/// under the encoder, the output projection at the root.
pub const BERT_POOLER: &str = "pooler.dense";
pub const BERT_CLASSIFIER: &str = "classifier";
/// `(XLM-)RobertaForSequenceClassification`'s head, both at the root.
pub const ROBERTA_HEAD_DENSE: &str = "classifier.dense";
pub const ROBERTA_HEAD_OUT: &str = "classifier.out_proj";

/// The word embeddings' full name under an encoder prefix (`""`: a bare encoder).
pub fn word_embeddings(prefix: &str) -> String {
    let name = format!("{EMBEDDINGS}.{WORD_EMBEDDINGS}.weight");
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}.{name}")
    }
}
