//! Tokenization as Hugging Face does it: `tokenizer.json` with its baked-in padding and
//! truncation replaced by ours (longest-first truncation to `max_length`, no padding:
//! batches are padded later, per batch), or a WordPiece tokenizer built from `vocab.txt`.

use rayon::prelude::*;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    Encoding, PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::error::{Error, Result};
use crate::models::Family;
use crate::source::ModelSource;

pub struct TextTokenizer {
    inner: Tokenizer,
    max_length: usize,
}

impl TextTokenizer {
    pub fn load(source: &ModelSource, family: Family, max_length: usize) -> Result<Self> {
        let mut inner = if let Some(path) = source.file("tokenizer.json")? {
            Tokenizer::from_file(&path)
                .map_err(|e| Error::bad_file(&path, format!("not a valid tokenizer.json: {e}")))?
        } else if family == Family::Bert {
            wordpiece_from_vocab(source)?
        } else {
            return Err(Error::NotFound(format!(
                "model {} has no tokenizer.json (needed for XLM-RoBERTa models)",
                source.describe()
            )));
        };
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::invalid(format!("max_length {max_length}: {e}")))?;
        Ok(Self { inner, max_length })
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn encode_pairs(&self, pairs: &[(&str, &str)]) -> Result<Vec<Encoding>> {
        pairs
            .par_iter()
            .map(|&(a, b)| {
                self.inner
                    .encode_fast((a, b), true)
                    .map_err(|e| Error::Tokenizer(format!("{e} (max_length {})", self.max_length)))
            })
            .collect()
    }

    /// Each pair as overlapping windows over the document (`stride` tokens shared by
    /// neighbours), each `[CLS] query [SEP] window [SEP]` within `max_length`, as
    /// transformers' `truncation="only_second", return_overflowing_tokens=True` makes them.
    /// A pair whose query leaves no room for a window longer than `stride` is one
    /// longest-first truncated input.
    ///
    /// Built here from the query's and the document's tokens: tokenizers 0.23.2's own
    /// overflow handling for pairs (`encode_fast` and `encode` with `OnlySecond`) returns
    /// fewer, differently cut windows than transformers does.
    pub fn encode_pair_windows(
        &self,
        pairs: &[(&str, &str)],
        stride: usize,
    ) -> Result<Vec<Vec<Encoding>>> {
        let mut plain = self.inner.clone();
        plain
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let specials = plain
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(true));
        let tokenizer_error = |e: tokenizers::Error| {
            Error::Tokenizer(format!("{e} (max_length {})", self.max_length))
        };
        pairs
            .par_iter()
            .map(|&(a, b)| {
                let query = plain.encode(a, false).map_err(tokenizer_error)?;
                let budget = self.max_length.saturating_sub(specials + query.len());
                if budget <= stride {
                    return Ok(vec![self
                        .inner
                        .encode_fast((a, b), true)
                        .map_err(tokenizer_error)?]);
                }
                let mut document = plain.encode(b, false).map_err(tokenizer_error)?;
                document.truncate(budget, stride, TruncationDirection::Right);
                let rest = document.take_overflowing();
                std::iter::once(document)
                    .chain(rest)
                    .map(|window| {
                        plain
                            .post_process(query.clone(), Some(window), true)
                            .map_err(tokenizer_error)
                    })
                    .collect()
            })
            .collect()
    }

    /// Duo inputs `[CLS] query [SEP] a [SEP] b [SEP]` (with the model's own special
    /// tokens: `a` and `b` are joined by the separator its pair template puts between two
    /// texts), within `max_length`. Without truncation this equals the tokenizer's pair
    /// encoding of `(query, a + " [SEP] " + b)`. When too long, the query is cut to at most
    /// half of `max_length`, then the longer of `a` and `b` is cut first (longest-first), so
    /// both documents stay in the input.
    pub fn encode_duos(&self, query: &str, pairs: &[(&str, &str)]) -> Result<Vec<Encoding>> {
        let tokenizer_error = |e: tokenizers::Error| {
            Error::Tokenizer(format!("{e} (max_length {})", self.max_length))
        };
        let mut plain = self.inner.clone();
        plain
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let separator = pair_separator(&plain).map_err(tokenizer_error)?;
        let specials = plain
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(true))
            + separator.len();
        let mut query = plain.encode(query, false).map_err(tokenizer_error)?;
        query.truncate(self.max_length / 2, 0, TruncationDirection::Right);
        query.take_overflowing();
        let budget = self
            .max_length
            .checked_sub(specials + query.len())
            .filter(|&b| b >= 2)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "max_length {} leaves no room for two documents",
                    self.max_length
                ))
            })?;
        pairs
            .par_iter()
            .map(|&(a, b)| {
                let mut a = plain.encode(a, false).map_err(tokenizer_error)?;
                let mut b = plain.encode(b, false).map_err(tokenizer_error)?;
                let (keep_a, keep_b) = longest_first(a.len(), b.len(), budget);
                for (doc, keep) in [(&mut a, keep_a), (&mut b, keep_b)] {
                    doc.truncate(keep, 0, TruncationDirection::Right);
                    doc.take_overflowing();
                }
                let second = Encoding::merge([a, separator.clone(), b], false);
                plain
                    .post_process(query.clone(), Some(second), true)
                    .map_err(tokenizer_error)
            })
            .collect()
    }

    pub fn encode_texts(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        texts
            .par_iter()
            .map(|&t| {
                self.inner
                    .encode_fast(t, true)
                    .map_err(|e| Error::Tokenizer(format!("{e} (max_length {})", self.max_length)))
            })
            .collect()
    }
}

/// `BertTokenizerFast` as transformers builds it from a `vocab.txt`.
/// The special tokens the tokenizer's pair template puts between the two texts
/// (`[SEP]` for BERT, `</s></s>` for XLM-RoBERTa), found by post-processing a probe pair
/// and locating the two texts' tokens in it (sequence ids are not set on every template).
fn pair_separator(tokenizer: &Tokenizer) -> tokenizers::Result<Encoding> {
    let first = tokenizer.encode("a", false)?;
    let second = tokenizer.encode("b", false)?;
    let (a, b) = (first.get_ids().to_vec(), second.get_ids().to_vec());
    let probe = tokenizer.post_process(first, Some(second), true)?;
    let ids = probe.get_ids();
    let find = |needle: &[u32], from: usize| {
        (from..=ids.len().saturating_sub(needle.len())).find(|&i| ids[i..].starts_with(needle))
    };
    let end_of_first = find(&a, 0).map(|i| i + a.len());
    let start_of_second = end_of_first.and_then(|end| find(&b, end));
    let (Some(end), Some(start)) = (end_of_first, start_of_second) else {
        return Err("cannot find the separator in the tokenizer's pair template".into());
    };
    let tokens = (end..start)
        .map(|i| tokenizers::Token::new(ids[i], probe.get_tokens()[i].clone(), (0, 0)))
        .collect();
    Ok(Encoding::from_tokens(tokens, 0))
}

/// How many tokens of two texts of lengths `a` and `b` to keep within `budget`, cutting
/// the longer one first, with tokenizers' `LongestFirst` rounding (when both are cut, the
/// longer one, or `b` on a tie, keeps the odd token).
fn longest_first(a: usize, b: usize, budget: usize) -> (usize, usize) {
    let (short, long) = (a.min(b), a.max(b));
    let (short, long) = if short + long <= budget {
        (short, long)
    } else if short <= budget / 2 {
        (short, budget - short)
    } else {
        (budget / 2, budget - budget / 2)
    };
    if a > b {
        (long, short)
    } else {
        (short, long)
    }
}

fn wordpiece_from_vocab(source: &ModelSource) -> Result<Tokenizer> {
    let vocab_path = source.file("vocab.txt")?.ok_or_else(|| {
        Error::NotFound(format!(
            "model {} has neither tokenizer.json nor vocab.txt",
            source.describe()
        ))
    })?;
    let config = source
        .json("tokenizer_config.json")?
        .map(|(_, v)| v)
        .unwrap_or_default();
    let flag =
        |key: &str, default: bool| config.get(key).and_then(|v| v.as_bool()).unwrap_or(default);
    let lowercase = flag("do_lower_case", true);
    let chinese = flag("tokenize_chinese_chars", true);
    let strip_accents = config.get("strip_accents").and_then(|v| v.as_bool());
    let token = |key: &str, default: &str| {
        config
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or(default)
            .to_string()
    };
    let (unk, cls, sep) = (
        token("unk_token", "[UNK]"),
        token("cls_token", "[CLS]"),
        token("sep_token", "[SEP]"),
    );

    let vocab_str = vocab_path.to_string_lossy().to_string();
    let model = WordPiece::from_file(&vocab_str)
        .unk_token(unk)
        .build()
        .map_err(|e| Error::bad_file(&vocab_path, format!("not a valid vocab.txt: {e}")))?;
    let id = |t: &str| {
        model_token_id(&model, t)
            .ok_or_else(|| Error::bad_file(&vocab_path, format!("vocabulary has no {t} token")))
    };
    let (cls_id, sep_id) = (id(&cls)?, id(&sep)?);
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(
            true,
            chinese,
            strip_accents,
            lowercase,
        )))
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_post_processor(Some(BertProcessing::new((sep, sep_id), (cls, cls_id))));
    tokenizer.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
    Ok(tokenizer)
}

fn model_token_id(model: &WordPiece, token: &str) -> Option<u32> {
    use tokenizers::Model;
    model.token_to_id(token)
}

/// The effective `max_length`, as sentence-transformers resolves it: the argument, else
/// `preferred` (a sentence-transformers config value), else the tokenizer's
/// `model_max_length`; never beyond the position table (`limit`).
pub fn resolve_max_length(
    source: &ModelSource,
    requested: Option<usize>,
    preferred: Option<usize>,
    limit: usize,
) -> Result<usize> {
    if let Some(n) = requested {
        if n < 2 {
            return Err(Error::invalid(format!(
                "max_length must be at least 2, got {n}"
            )));
        }
        if n > limit {
            return Err(Error::invalid(format!(
                "max_length {n} exceeds the model's position table: at most {limit} tokens"
            )));
        }
        return Ok(n);
    }
    let from_tokenizer = source
        .json("tokenizer_config.json")?
        .and_then(|(_, v)| v.get("model_max_length").and_then(|n| n.as_f64()))
        .filter(|n| *n >= 2.0 && *n < 1e9)
        .map(|n| n as usize);
    Ok(preferred.or(from_tokenizer).unwrap_or(limit).min(limit))
}
