//! The Hugging Face weight names of the BERT-style encoders (BERT, XLM-R, ELECTRA,
//! DistilBERT) and of their classification heads, written once: the CPU engine, candle's reference model and the trainer load
//! them (and the trainer saves them) by these names.

/// The embeddings block and its tables.
pub const EMBEDDINGS: &str = "embeddings";
pub const WORD_EMBEDDINGS: &str = "word_embeddings";
pub const POSITION_EMBEDDINGS: &str = "position_embeddings";
pub const TOKEN_TYPE_EMBEDDINGS: &str = "token_type_embeddings";
/// A LayerNorm inside a block (embeddings, attention output, layer output).
pub const LAYER_NORM: &str = "LayerNorm";

/// Where a BERT-style encoder keeps its layers' weights. BERT, XLM-R and ELECTRA use
/// [`BERT_LAYOUT`]; DistilBERT the same structure under other names ([`DISTILBERT_LAYOUT`]).
#[derive(Debug)]
pub struct Layout {
    /// The token-type table in the embeddings block; `None`: the model has none.
    pub token_type_embeddings: Option<&'static str>,
    /// Layer `i` is `{layers}.{i}`.
    pub layers: &'static str,
    /// In a layer: the self-attention projections, the attention output projection and
    /// its LayerNorm, the feed-forward input and output projections and the layer's
    /// final LayerNorm.
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub attention_output: &'static str,
    pub attention_norm: &'static str,
    pub intermediate: &'static str,
    pub output: &'static str,
    pub output_norm: &'static str,
}

impl Layout {
    /// Encoder layer `i`.
    pub fn layer(&self, i: usize) -> String {
        format!("{}.{i}", self.layers)
    }
}

pub const BERT_LAYOUT: Layout = Layout {
    token_type_embeddings: Some(TOKEN_TYPE_EMBEDDINGS),
    layers: "encoder.layer",
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attention_output: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    intermediate: "intermediate.dense",
    output: "output.dense",
    output_norm: "output.LayerNorm",
};

pub const DISTILBERT_LAYOUT: Layout = Layout {
    token_type_embeddings: None,
    layers: "transformer.layer",
    query: "attention.q_lin",
    key: "attention.k_lin",
    value: "attention.v_lin",
    attention_output: "attention.out_lin",
    attention_norm: "sa_layer_norm",
    intermediate: "ffn.lin1",
    output: "ffn.lin2",
    output_norm: "output_layer_norm",
};

/// ELECTRA's projection from the embedding size to the hidden size, beside the
/// embeddings (present only when the two differ).
pub const EMBEDDINGS_PROJECT: &str = "embeddings_project";

/// `BertForSequenceClassification`'s head: the pooler (dense + tanh on [CLS]) lives
/// under the encoder, the output projection at the root.
pub const BERT_POOLER: &str = "pooler.dense";
pub const BERT_CLASSIFIER: &str = "classifier";
/// `(XLM-)RobertaForSequenceClassification`'s and `ElectraForSequenceClassification`'s
/// head, both at the root.
pub const ROBERTA_HEAD_DENSE: &str = "classifier.dense";
pub const ROBERTA_HEAD_OUT: &str = "classifier.out_proj";
/// `DistilBertForSequenceClassification`'s head, both at the root.
pub const DISTILBERT_PRE_CLASSIFIER: &str = "pre_classifier";
pub const DISTILBERT_CLASSIFIER: &str = "classifier";

/// `name` under an encoder prefix (`""`: a bare encoder).
pub fn under(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The word embeddings of a BERT-style encoder and of ModernBERT, under the encoder.
pub const BERT_WORD_EMBEDDINGS: &str = "embeddings.word_embeddings.weight";
pub const MODERNBERT_WORD_EMBEDDINGS: &str = "embeddings.tok_embeddings.weight";
pub const QWEN3_WORD_EMBEDDINGS: &str = "embed_tokens.weight";

/// ModernBERT's weights under its encoder (`model.` in a classifier).
pub mod modernbert {
    pub const EMBEDDINGS: &str = "embeddings.tok_embeddings";
    pub const EMBEDDINGS_NORM: &str = "embeddings.norm";
    /// Layer `i` is `layers.{i}`; layer 0 has no attention norm (the embeddings' norm
    /// precedes it).
    pub fn layer(i: usize) -> String {
        format!("layers.{i}")
    }
    pub const ATTENTION_NORM: &str = "attn_norm";
    pub const QKV: &str = "attn.Wqkv";
    pub const ATTENTION_OUTPUT: &str = "attn.Wo";
    pub const MLP_NORM: &str = "mlp_norm";
    /// The GeGLU input projection: the activation's input and the gate, side by side.
    pub const MLP_INPUT: &str = "mlp.Wi";
    pub const MLP_OUTPUT: &str = "mlp.Wo";
    pub const FINAL_NORM: &str = "final_norm";
    /// `ModernBertForSequenceClassification`'s head, at the root: dense, activation,
    /// norm, then the classifier.
    pub const HEAD_DENSE: &str = "head.dense";
    pub const HEAD_NORM: &str = "head.norm";
    pub const CLASSIFIER: &str = "classifier";
}

/// A Qwen3 decoder's weights under `model.`, and its language-model head at the root.
pub mod qwen3 {
    pub const EMBEDDINGS: &str = "embed_tokens";
    /// Layer `i` is `layers.{i}`.
    pub fn layer(i: usize) -> String {
        format!("layers.{i}")
    }
    pub const INPUT_NORM: &str = "input_layernorm";
    pub const QUERY: &str = "self_attn.q_proj";
    pub const KEY: &str = "self_attn.k_proj";
    pub const VALUE: &str = "self_attn.v_proj";
    /// RMSNorms over each head's query / key (Qwen3's addition to Qwen2).
    pub const QUERY_NORM: &str = "self_attn.q_norm";
    pub const KEY_NORM: &str = "self_attn.k_norm";
    pub const ATTENTION_OUTPUT: &str = "self_attn.o_proj";
    pub const MLP_NORM: &str = "post_attention_layernorm";
    pub const GATE: &str = "mlp.gate_proj";
    pub const UP: &str = "mlp.up_proj";
    pub const DOWN: &str = "mlp.down_proj";
    pub const FINAL_NORM: &str = "norm";
    /// The language-model head, at the root (absent when tied to the embeddings).
    pub const LM_HEAD: &str = "lm_head";
}
