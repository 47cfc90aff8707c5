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
use crate::model::checkpoint::Family;
use crate::model::config::Config;
use crate::model::source::ModelSource;

/// How a pair longer than `max_length` is cut (`CrossEncoder(truncation=...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Truncation {
    /// Tokens come off the longer text first (transformers' and sentence-transformers'
    /// default).
    #[default]
    LongestFirst,
    /// The document is cut; the query only when it alone does not fit.
    OnlySecond,
    /// A pair that does not fit is an error (checked by the caller, which knows the pair's
    /// index); pairs that fit are never cut.
    Error,
}

impl std::str::FromStr for Truncation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "longest_first" => Ok(Self::LongestFirst),
            "only_second" => Ok(Self::OnlySecond),
            "error" => Ok(Self::Error),
            _ => Err(Error::invalid(format!(
                "unknown truncation {s:?}; expected \"longest_first\", \"only_second\" or \"error\""
            ))),
        }
    }
}

impl Truncation {
    pub fn name(self) -> &'static str {
        match self {
            Self::LongestFirst => "longest_first",
            Self::OnlySecond => "only_second",
            Self::Error => "error",
        }
    }

    /// Tokens kept of texts of `a` and `b` tokens sharing `budget`.
    fn split(self, a: usize, b: usize, budget: usize) -> (usize, usize) {
        match self {
            Self::LongestFirst | Self::Error => longest_first(a, b, budget),
            Self::OnlySecond if a <= budget => (a, b.min(budget - a)),
            Self::OnlySecond => (budget, 0),
        }
    }
}

pub struct TextTokenizer {
    /// Truncates single texts to `max_length`.
    inner: Tokenizer,
    /// The same tokenizer without truncation: pairs, windows and duo inputs are cut here
    /// (see [`longest_first`]) and then post-processed.
    plain: Tokenizer,
    max_length: usize,
    /// How pairs are cut.
    truncation: Truncation,
}

impl TextTokenizer {
    /// A model's tokenizer, truncating at `requested` tokens; else at `preferred` (e.g.
    /// sentence-transformers' `max_seq_length`), else at the tokenizer's `model_max_length`;
    /// never past the family's position table for `config`.
    pub fn for_model(
        source: &ModelSource,
        family: Family,
        config: &Config,
        requested: Option<usize>,
        preferred: Option<usize>,
    ) -> Result<Self> {
        let limit = family.max_tokens(config);
        Self::load(
            source,
            family,
            resolve_max_length(source, requested, preferred, limit)?,
        )
    }

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
        let mut plain = inner.clone();
        plain
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(Self {
            inner,
            plain,
            max_length,
            truncation: Truncation::LongestFirst,
        })
    }

    /// Pairs cut by `truncation` instead of longest-first.
    pub fn with_truncation(mut self, truncation: Truncation) -> Self {
        self.truncation = truncation;
        self
    }

    fn error(&self, e: tokenizers::Error) -> Error {
        Error::Tokenizer(format!("{e} (max_length {})", self.max_length))
    }

    /// One text's tokens, without special tokens or truncation.
    fn encode_piece(&self, text: &str) -> Result<Encoding> {
        self.plain
            .encode_fast(text, false)
            .map_err(|e| self.error(e))
    }

    /// The tokens of two texts, cut to share `budget` by `rule`.
    fn encode_cut_pair(
        &self,
        a: &str,
        b: &str,
        budget: usize,
        rule: Truncation,
    ) -> Result<(Encoding, Encoding)> {
        let mut a = self.encode_piece(a)?;
        let mut b = self.encode_piece(b)?;
        let (keep_a, keep_b) = rule.split(a.len(), b.len(), budget);
        for (text, keep) in [(&mut a, keep_a), (&mut b, keep_b)] {
            text.truncate(keep, 0, TruncationDirection::Right);
            text.take_overflowing();
        }
        Ok((a, b))
    }

    /// Special tokens the tokenizer adds around one text (`pair` false) or two.
    fn added_tokens(&self, pair: bool) -> usize {
        self.plain
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(pair))
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// `[CLS] a [SEP] b [SEP]` inputs within `max_length`, cut longest-first (or as
    /// [`with_truncation`](Self::with_truncation) says).
    ///
    /// The tokenizers crate's own pair truncation (0.23.2) hands the odd token of an odd
    /// budget to the shorter text when both texts must be cut; the tokenizers that
    /// transformers and sentence-transformers call give it to the longer one. So the two
    /// texts are encoded alone, cut here by [`longest_first`] (the reference's rule), and
    /// then post-processed: token ids equal the Hugging Face batch call's in every case.
    pub fn encode_pairs(&self, pairs: &[(&str, &str)]) -> Result<Vec<Encoding>> {
        let budget = self.pair_budget()?;
        pairs
            .par_iter()
            .map(|&(a, b)| self.encode_pair(a, b, budget))
            .collect()
    }

    /// Tokens left for the two texts of a pair once the special tokens are placed.
    fn pair_budget(&self) -> Result<usize> {
        let specials = self.added_tokens(true);
        self.max_length.checked_sub(specials).ok_or_else(|| {
            Error::invalid(format!(
                "max_length {} is shorter than the {specials} special tokens of a pair",
                self.max_length
            ))
        })
    }

    fn encode_pair(&self, a: &str, b: &str, budget: usize) -> Result<Encoding> {
        let (a, b) = self.encode_cut_pair(a, b, budget, self.truncation)?;
        self.plain
            .post_process(a, Some(b), true)
            .map_err(|e| self.error(e))
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
        let pair_budget = self.pair_budget()?;
        pairs
            .par_iter()
            .map(|&(a, b)| {
                let query = self.encode_piece(a)?;
                let budget = pair_budget.saturating_sub(query.len());
                if budget <= stride {
                    return Ok(vec![self.encode_pair(a, b, pair_budget)?]);
                }
                let mut document = self.encode_piece(b)?;
                document.truncate(budget, stride, TruncationDirection::Right);
                let rest = document.take_overflowing();
                std::iter::once(document)
                    .chain(rest)
                    .map(|window| {
                        self.plain
                            .post_process(query.clone(), Some(window), true)
                            .map_err(|e| self.error(e))
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
        let separator = pair_separator(&self.plain).map_err(|e| self.error(e))?;
        let specials = self.added_tokens(true) + separator.len();
        let mut query = self.encode_piece(query)?;
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
                let (a, b) = self.encode_cut_pair(a, b, budget, Truncation::LongestFirst)?;
                let second = Encoding::merge([a, separator.clone(), b], false);
                self.plain
                    .post_process(query.clone(), Some(second), true)
                    .map_err(|e| self.error(e))
            })
            .collect()
    }

    /// Tokens `[CLS] a [SEP] b [SEP]` takes before truncation.
    pub fn untruncated_pair_length(&self, a: &str, b: &str) -> Result<usize> {
        Ok(self.encode_piece(a)?.len() + self.encode_piece(b)?.len() + self.added_tokens(true))
    }

    /// Tokens one text takes with its special tokens, before truncation.
    pub fn untruncated_text_length(&self, text: &str) -> Result<usize> {
        Ok(self.encode_piece(text)?.len() + self.added_tokens(false))
    }

    /// The longest prefix of `text` that is at most `max_tokens` of its tokens (no special
    /// tokens), cut at a token boundary.
    pub fn prefix_of_tokens<'a>(&self, text: &'a str, max_tokens: usize) -> Result<&'a str> {
        // `encode` (not `encode_fast`): the cut needs the tokens' byte offsets.
        let encoding = self.plain.encode(text, false).map_err(|e| self.error(e))?;
        Ok(prefix_at_token(text, &encoding, max_tokens))
    }

    pub fn encode_texts(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        texts
            .par_iter()
            .map(|&t| self.inner.encode_fast(t, true).map_err(|e| self.error(e)))
            .collect()
    }
}

/// `text` cut after its `max_tokens`-th token (`encoding`: its tokens, byte offsets).
pub(crate) fn prefix_at_token<'a>(
    text: &'a str,
    encoding: &Encoding,
    max_tokens: usize,
) -> &'a str {
    if encoding.len() <= max_tokens {
        return text;
    }
    let end = match max_tokens {
        0 => 0,
        n => encoding.get_offsets()[n - 1].1,
    };
    // Offsets are byte offsets on char boundaries; `get` keeps a malformed one from panicking.
    text.get(..end).unwrap_or(text)
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
/// the longer one first, as Hugging Face tokenizers' `LongestFirst` does it for
/// transformers: when both are cut, each keeps half the budget and the longer one (`b`
/// on a tie) keeps the odd token.
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
pub(crate) fn resolve_max_length(
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
