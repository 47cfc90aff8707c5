//! A decoder reranker's inputs (Qwen3-Reranker, and the "yes"/"no" rerankers that
//! sentence-transformers 6 loads as a `CrossEncoder` with a `LogitScore` module).
//!
//! Each (query, document) pair becomes a chat as sentence-transformers builds it: an
//! optional system message carrying the instruction, then a "query" and a "document"
//! message. The checkpoint's chat template renders it; the text is tokenized without
//! added special tokens (the template wrote them) and truncated as sentence-transformers
//! does: the tokens are cut at `max_length` and the template's closing tokens, at whose
//! last position the score is read, are written back over the end. So the document is
//! cut first, then the query, never the closing part.
//!
//! Where the checkpoint has no template for query/document chats (Qwen3-Reranker as first
//! published carries the general Qwen3 chat template), the model card's format is used
//! ([`QWEN3_RERANKER_TEMPLATE`]).
//!
//! Each encoding marks its tokens before the document with type id 0 and the rest with
//! 1: the decoder engine computes the keys and values of a beginning that several pairs
//! share once (`score::cpu::qwen3`). The mark is only a hint; the engine shares by ids.

use minijinja::{Environment, ErrorKind};
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use tokenizers::{Encoding, Token, Tokenizer};

use crate::error::{Error, Result};
use crate::model::source::ModelSource;
use crate::model::tokenize::{prefix_at_token, resolve_max_length};

/// The instruction of Qwen3-Reranker's model card, used when neither the caller nor the
/// checkpoint gives one.
pub const DEFAULT_INSTRUCTION: &str =
    "Given a web search query, retrieve relevant passages that answer the query";

/// Qwen3-Reranker's published input format (its model card's `format_instruction` between
/// the card's prefix and suffix), as a chat template over sentence-transformers' messages:
/// the system message is the instruction.
const QWEN3_RERANKER_TEMPLATE: &str = concat!(
    r#"{%- set ns = namespace(instruction=default_instruction, query="", document="") -%}"#,
    r#"{%- for m in messages -%}"#,
    r#"{%- if m.role == "system" -%}{%- set ns.instruction = m.content -%}"#,
    r#"{%- elif m.role == "query" -%}{%- set ns.query = m.content -%}"#,
    r#"{%- elif m.role == "document" -%}{%- set ns.document = m.content -%}{%- endif -%}"#,
    r#"{%- endfor -%}"#,
    r#"{{- "<|im_start|>system\nJudge whether the Document meets the requirements based on "#,
    r#"the Query and the Instruct provided. Note that the answer can only be \"yes\" or "#,
    r#"\"no\".<|im_end|>\n<|im_start|>user\n<Instruct>: " ~ ns.instruction ~ "\n<Query>: " "#,
    r#"~ ns.query ~ "\n<Document>: " ~ ns.document ~ "<|im_end|>\n<|im_start|>assistant\n"#,
    r#"<think>\n\n</think>\n\n" -}}"#,
);

/// Stands for the document while finding where it starts in a rendered prompt.
const DOCUMENT_MARK: &str = "\u{E000}crossrank-document\u{E000}";
const QUERY_MARK: &str = "\u{E000}crossrank-query\u{E000}";

/// The vocabulary ids whose next-token logits give the score: `logit(yes) - logit(no)`,
/// or `logit(yes)` alone when there is no "no" token (sentence-transformers' `LogitScore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YesNoTokens {
    pub yes: u32,
    pub no: Option<u32>,
}

/// What sentence-transformers' files and the tokenizer's config say about the prompt.
struct Settings {
    template: Option<String>,
    /// Template variables: the special tokens and the checkpoint's chat-template kwargs.
    context: Map<String, Value>,
    instruction: Option<String>,
    max_seq_length: Option<usize>,
    tokens: Option<YesNoTokens>,
}

pub struct PromptTokenizer {
    tokenizer: Tokenizer,
    env: Environment<'static>,
    context: Map<String, Value>,
    instruction: Option<String>,
    /// The template's closing tokens, restored over the end of a truncated input.
    suffix: Vec<u32>,
    max_length: usize,
    tokens: YesNoTokens,
}

impl PromptTokenizer {
    /// `limit`: the model's position table; `requested`: the caller's `max_length`;
    /// `instruction`: the caller's, else the checkpoint's default prompt, else the
    /// template's own default.
    pub fn load(
        source: &ModelSource,
        limit: usize,
        requested: Option<usize>,
        instruction: Option<&str>,
    ) -> Result<Self> {
        let path = source.required("tokenizer.json")?;
        let mut tokenizer = Tokenizer::from_file(&path)
            .map_err(|e| Error::bad_file(&path, format!("not a valid tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let settings = Settings::load(source, &tokenizer)?;
        let tokens = settings.tokens.ok_or_else(|| {
            Error::invalid(format!(
                "the tokenizer of {} has no \"yes\" and \"no\" tokens, which a decoder \
                 reranker's score is read from, and the checkpoint names no others \
                 (sentence-transformers' LogitScore config)",
                source.describe()
            ))
        })?;
        let mut prompts = Self {
            tokenizer,
            env: environment(
                settings
                    .template
                    .as_deref()
                    .unwrap_or(QWEN3_RERANKER_TEMPLATE),
            )?,
            context: settings.context,
            instruction: instruction.map(str::to_string).or(settings.instruction),
            suffix: Vec::new(),
            max_length: resolve_max_length(source, requested, settings.max_seq_length, limit)?,
            tokens,
        };
        if settings.template.is_some() && !prompts.renders_pairs() {
            // A general chat template (system/user/assistant only) would drop the query
            // or the document: use the family's published format instead.
            prompts.env = environment(QWEN3_RERANKER_TEMPLATE)?;
        }
        prompts.suffix = prompts.closing_tokens()?;
        prompts.check_fits()?;
        Ok(prompts)
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn tokens(&self) -> YesNoTokens {
        self.tokens
    }

    /// The chat of one pair, as sentence-transformers builds it.
    fn messages(&self, query: &str, document: &str) -> Value {
        let mut messages = Vec::with_capacity(3);
        if let Some(instruction) = &self.instruction {
            messages.push(json!({"role": "system", "content": instruction}));
        }
        messages.push(json!({"role": "query", "content": query}));
        messages.push(json!({"role": "document", "content": document}));
        Value::Array(messages)
    }

    fn render(&self, query: &str, document: &str) -> Result<String> {
        let mut context = self.context.clone();
        context.insert("messages".into(), self.messages(query, document));
        self.env
            .get_template("chat")
            .and_then(|t| t.render(&context))
            .map_err(|e| Error::invalid(format!("the chat template failed to render: {e:#}")))
    }

    fn ids(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec())
    }

    /// Whether the template puts both the query and the document into the prompt.
    fn renders_pairs(&self) -> bool {
        self.render(QUERY_MARK, DOCUMENT_MARK)
            .is_ok_and(|text| text.contains(QUERY_MARK) && text.contains(DOCUMENT_MARK))
    }

    /// The tokens every prompt ends with, found as sentence-transformers finds them: the
    /// longest common token suffix of two renders with different contents, trusted only
    /// when the renders differ.
    fn closing_tokens(&self) -> Result<Vec<u32>> {
        let first = self.ids(&self.render("0", "0")?)?;
        let second = self.ids(&self.render("1 2 3 4", "1 2 3 4")?)?;
        let common = first
            .iter()
            .rev()
            .zip(second.iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        Ok(if common > 0 && common < first.len().min(second.len()) {
            first[first.len() - common..].to_vec()
        } else {
            Vec::new()
        })
    }

    /// The template with an empty query and document must leave room within `max_length`.
    fn check_fits(&self) -> Result<()> {
        let empty = self.ids(&self.render("", "")?)?.len();
        if empty > self.max_length {
            return Err(Error::invalid(format!(
                "the prompt template takes {empty} tokens with an empty query and document, \
                 more than max_length {}; raise max_length or shorten the instruction",
                self.max_length
            )));
        }
        Ok(())
    }

    /// Where the document starts in `rendered` (a byte offset), if the template copies
    /// the document verbatim after a beginning that does not depend on it.
    fn document_start(&self, query: &str, rendered: &str) -> Option<usize> {
        let marked = self.render(query, DOCUMENT_MARK).ok()?;
        let start = marked.find(DOCUMENT_MARK)?;
        rendered.starts_with(&marked[..start]).then_some(start)
    }

    /// One pair's input: rendered, tokenized, truncated with the closing tokens restored;
    /// type id 0 on the tokens before the document.
    fn encode_pair(&self, query: &str, document: &str) -> Result<Encoding> {
        let rendered = self.render(query, document)?;
        let encoding = self
            .tokenizer
            .encode(rendered.as_str(), false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let start = self.document_start(query, &rendered);
        let mut ids = encoding.get_ids().to_vec();
        let mut types: Vec<u32> = encoding
            .get_offsets()
            .iter()
            .map(|&(_, end)| u32::from(start.is_none_or(|s| end > s)))
            .collect();
        if ids.len() >= self.max_length {
            ids.truncate(self.max_length);
            types.truncate(self.max_length);
            let keep = self.suffix.len().min(ids.len());
            let at = ids.len() - keep;
            ids[at..].copy_from_slice(&self.suffix[self.suffix.len() - keep..]);
            types[at..].fill(1);
        }
        if ids.is_empty() {
            return Err(Error::invalid("a prompt rendered to no tokens"));
        }
        let tokens = ids
            .iter()
            .map(|&id| Token::new(id, String::new(), (0, 0)))
            .collect();
        let mut out = Encoding::from_tokens(tokens, 0);
        out.set_type_ids(types);
        Ok(out)
    }

    /// Tokens one pair's prompt takes before truncation.
    pub fn untruncated_pair_length(&self, query: &str, document: &str) -> Result<usize> {
        Ok(self.ids(&self.render(query, document)?)?.len())
    }

    /// The longest prefix of `text` that is at most `max_tokens` of its tokens.
    pub fn prefix_of_tokens<'a>(&self, text: &'a str, max_tokens: usize) -> Result<&'a str> {
        // `encode` (not `encode_fast`): the cut needs the tokens' byte offsets.
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(prefix_at_token(text, &encoding, max_tokens))
    }

    pub fn encode_pairs(&self, pairs: &[(&str, &str)]) -> Result<Vec<Encoding>> {
        pairs
            .par_iter()
            .map(|&(q, d)| self.encode_pair(q, d))
            .collect()
    }
}

/// An environment holding `template` as "chat", with what transformers' renderer offers:
/// blocks trimmed as jinja2 with `trim_blocks` / `lstrip_blocks`, `raise_exception`,
/// Python's string methods.
fn environment(template: &str) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |message: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        },
    );
    env.add_global("default_instruction", DEFAULT_INSTRUCTION);
    env.add_template_owned("chat", template.to_string())
        .map_err(|e| Error::invalid(format!("the chat template does not parse: {e:#}")))?;
    Ok(env)
}

impl Settings {
    fn load(source: &ModelSource, tokenizer: &Tokenizer) -> Result<Self> {
        let tokenizer_config = source.json("tokenizer_config.json")?.map(|(_, v)| v);
        let mut context = Map::new();
        context.insert("add_generation_prompt".into(), Value::Bool(false));
        for name in ["bos_token", "eos_token", "pad_token", "unk_token"] {
            let token = tokenizer_config.as_ref().and_then(|c| c.get(name));
            // A special token is a string or an AddedToken object with its "content".
            if let Some(text) =
                token.and_then(|t| t.as_str().or_else(|| t.get("content")?.as_str()))
            {
                context.insert(name.into(), Value::String(text.into()));
            }
        }
        let template = match source.file("chat_template.jinja")? {
            Some(path) => {
                Some(std::fs::read_to_string(&path).map_err(|e| Error::bad_file(&path, e))?)
            }
            None => tokenizer_config
                .as_ref()
                .and_then(|c| stored_template(c.get("chat_template")?)),
        };
        let st_module = source.json("sentence_bert_config.json")?.map(|(_, v)| v);
        let max_seq_length = st_module
            .as_ref()
            .and_then(|c| c.get("max_seq_length")?.as_u64())
            .map(|n| n as usize);
        // The kwargs sentence-transformers passes to apply_chat_template (size kwargs and
        // its own `restore_suffix` flag do not reach the template).
        if let Some(kwargs) = st_module
            .as_ref()
            .and_then(|c| c.pointer("/processing_kwargs/chat_template")?.as_object())
        {
            for (key, value) in kwargs {
                if !matches!(
                    key.as_str(),
                    "padding" | "truncation" | "max_length" | "return_tensors" | "restore_suffix"
                ) {
                    context.insert(key.clone(), value.clone());
                }
            }
        }
        let instruction = source
            .json("config_sentence_transformers.json")?
            .and_then(|(_, c)| {
                let name = c.get("default_prompt_name")?.as_str()?;
                Some(c.get("prompts")?.get(name)?.as_str()?.to_string())
            });
        Ok(Self {
            template,
            context,
            instruction,
            max_seq_length,
            tokens: yes_no_tokens(source, tokenizer)?,
        })
    }
}

/// `tokenizer_config.json`'s `chat_template`: a string, or named templates of which
/// transformers uses "default".
fn stored_template(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Array(named) => named
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template")?.as_str())
            .map(str::to_string),
        _ => None,
    }
}

/// The true/false token ids of the checkpoint's `LogitScore` module (modules.json), else
/// the tokenizer's "yes" and "no" (sentence-transformers' default).
fn yes_no_tokens(source: &ModelSource, tokenizer: &Tokenizer) -> Result<Option<YesNoTokens>> {
    let module_dir = source.json("modules.json")?.and_then(|(_, modules)| {
        modules.as_array()?.iter().find_map(|m| {
            let kind = m.get("type")?.as_str()?;
            kind.ends_with("LogitScore")
                .then(|| m.get("path")?.as_str().map(str::to_string))?
        })
    });
    if let Some(dir) = module_dir {
        let file = format!("{}/config.json", dir.trim_end_matches('/'));
        if let Some((path, config)) = source.json(&file)? {
            let id = |key: &str| config.get(key).and_then(Value::as_u64).map(|n| n as u32);
            let yes = id("true_token_id").ok_or_else(|| {
                Error::bad_file(&path, "the LogitScore config has no true_token_id")
            })?;
            return Ok(Some(YesNoTokens {
                yes,
                no: id("false_token_id"),
            }));
        }
    }
    Ok(
        match (tokenizer.token_to_id("yes"), tokenizer.token_to_id("no")) {
            (Some(yes), Some(no)) => Some(YesNoTokens { yes, no: Some(no) }),
            _ => None,
        },
    )
}
