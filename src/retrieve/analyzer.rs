//! How BM25 turns text into terms: Unicode lowercase, split into runs of letters and digits
//! (with their combining marks, so that Devanagari and the like stay whole words),
//! optionally drop stopwords (NLTK's lists, `stop-words` crate) and stem (Snowball,
//! `rust-stemmers`). The same analyzer is used for documents and queries.

use std::collections::HashSet;

use rust_stemmers::{Algorithm, Stemmer};
use serde::{Deserialize, Serialize};
use unicode_categories::UnicodeCategories;

use crate::{Error, Result};

/// Snowball stemmer names and the ISO 639-1 code of NLTK's stopword list for that language.
const LANGUAGES: &[(&str, Algorithm, &str)] = &[
    ("arabic", Algorithm::Arabic, "ar"),
    ("danish", Algorithm::Danish, "da"),
    ("dutch", Algorithm::Dutch, "nl"),
    ("english", Algorithm::English, "en"),
    ("finnish", Algorithm::Finnish, "fi"),
    ("french", Algorithm::French, "fr"),
    ("german", Algorithm::German, "de"),
    ("greek", Algorithm::Greek, "el"),
    ("hungarian", Algorithm::Hungarian, "hu"),
    ("italian", Algorithm::Italian, "it"),
    ("norwegian", Algorithm::Norwegian, "no"),
    ("portuguese", Algorithm::Portuguese, "pt"),
    ("romanian", Algorithm::Romanian, "ro"),
    ("russian", Algorithm::Russian, "ru"),
    ("spanish", Algorithm::Spanish, "es"),
    ("swedish", Algorithm::Swedish, "sv"),
    ("tamil", Algorithm::Tamil, "ta"),
    ("turkish", Algorithm::Turkish, "tr"),
];

/// The stemmer and stopword-list code of a language name, or an error listing the names.
fn language(name: &str, what: &str) -> Result<(Algorithm, &'static str)> {
    LANGUAGES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, algorithm, code)| (*algorithm, *code))
        .ok_or_else(|| {
            Error::invalid(format!(
                "unknown {what} language {name:?}; available: {}",
                language_names()
            ))
        })
}

fn language_names() -> String {
    LANGUAGES
        .iter()
        .map(|(name, _, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an analyzer does, in a form that can be saved with an index and rebuilt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalyzerConfig {
    /// Words dropped after lowercasing (compared before stemming).
    pub stopwords: Vec<String>,
    /// Snowball stemmer language (`"english"` is Porter2), or none.
    pub stemmer: Option<String>,
}

impl AnalyzerConfig {
    /// NLTK's stopword list for a language name such as `"english"`.
    pub fn stopword_list(language_name: &str) -> Result<Vec<String>> {
        let (_, code) = language(language_name, "stopword")?;
        let words = stop_words::lookup(code)
            .ok_or_else(|| Error::invalid(format!("no stopword list for {language_name:?}")))?;
        Ok(words.iter().map(|w| w.to_string()).collect())
    }
}

pub struct Analyzer {
    config: AnalyzerConfig,
    stopwords: HashSet<String>,
    stemmer: Option<Stemmer>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("stopwords", &self.stopwords.len())
            .field("stemmer", &self.config.stemmer)
            .finish()
    }
}

impl Analyzer {
    pub fn new(config: AnalyzerConfig) -> Result<Self> {
        let stemmer = match &config.stemmer {
            None => None,
            Some(name) => {
                let (algorithm, _) = language(name, "stemmer")?;
                Some(Stemmer::create(algorithm))
            }
        };
        let stopwords = config.stopwords.iter().map(|w| w.to_lowercase()).collect();
        Ok(Self {
            config,
            stopwords,
            stemmer,
        })
    }

    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// The terms of `text`, in order (repeats kept: they are term frequencies).
    pub fn terms(&self, text: &str) -> Vec<String> {
        text.split(|c: char| !(c.is_alphanumeric() || c.is_mark()))
            .filter(|word| !word.is_empty())
            .map(str::to_lowercase)
            .filter(|word| !self.stopwords.contains(word))
            .map(|word| match &self.stemmer {
                Some(stemmer) => stemmer.stem(&word).into_owned(),
                None => word,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lowercases_stems_and_drops_stopwords() {
        let plain = Analyzer::new(AnalyzerConfig::default()).unwrap();
        assert_eq!(
            plain.terms("The Flow-fields of Mach 2.5; ÉCOLE"),
            ["the", "flow", "fields", "of", "mach", "2", "5", "école"]
        );
        let config = AnalyzerConfig {
            stopwords: AnalyzerConfig::stopword_list("english").unwrap(),
            stemmer: Some("english".into()),
        };
        let full = Analyzer::new(config).unwrap();
        assert_eq!(
            full.terms("The flow fields of the wings"),
            ["flow", "field", "wing"]
        );
    }

    #[test]
    fn combining_marks_stay_in_their_word() {
        let plain = Analyzer::new(AnalyzerConfig::default()).unwrap();
        assert_eq!(plain.terms("हिन्दी भाषा"), ["हिन्दी", "भाषा"]);
        assert_eq!(
            plain.terms("cafe\u{301} au lait"),
            ["cafe\u{301}", "au", "lait"]
        );
    }

    #[test]
    fn unknown_languages_are_errors() {
        let bad = AnalyzerConfig {
            stemmer: Some("klingon".into()),
            ..Default::default()
        };
        assert!(Analyzer::new(bad)
            .unwrap_err()
            .to_string()
            .contains("english"));
        assert!(AnalyzerConfig::stopword_list("klingon").is_err());
    }
}
