//! Where a model's files come from: a local directory, or a Hugging Face hub repository
//! resolved through the standard hub cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`) and downloaded when online.

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};

use crate::error::{Error, Result};

/// How to resolve a hub id. Mirrors the arguments of sentence-transformers.
#[derive(Clone, Debug, Default)]
pub struct HubOptions {
    pub revision: Option<String>,
    pub cache_folder: Option<PathBuf>,
    pub local_files_only: bool,
}

#[derive(Debug)]
pub enum ModelSource {
    Local(PathBuf),
    Hub {
        repo_id: String,
        revision: String,
        cache_dir: PathBuf,
        offline: bool,
    },
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// The hub cache directory, following huggingface_hub's precedence.
pub fn default_cache_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("HF_HUB_CACHE") {
        return PathBuf::from(dir);
    }
    if let Ok(home) = std::env::var("HF_HOME") {
        return PathBuf::from(home).join("hub");
    }
    Cache::from_env().path().clone()
}

/// A hub id is `name` or `owner/name` made of the characters the hub allows.
fn looks_like_hub_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    !s.is_empty()
        && parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

impl ModelSource {
    pub fn resolve(name_or_path: &str, options: &HubOptions) -> Result<Self> {
        let path = Path::new(name_or_path);
        if path.is_dir() {
            return Ok(ModelSource::Local(path.to_path_buf()));
        }
        if path.exists() {
            return Err(Error::invalid(format!(
                "{name_or_path:?} is a file; expected a model directory or a Hugging Face hub id"
            )));
        }
        if !looks_like_hub_id(name_or_path) {
            return Err(Error::NotFound(format!(
                "model directory {name_or_path:?} does not exist (and it is not a valid hub id)"
            )));
        }
        Ok(ModelSource::Hub {
            repo_id: name_or_path.to_string(),
            revision: options
                .revision
                .clone()
                .unwrap_or_else(|| "main".to_string()),
            cache_dir: options
                .cache_folder
                .clone()
                .unwrap_or_else(default_cache_dir),
            offline: options.local_files_only || env_flag("HF_HUB_OFFLINE"),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            ModelSource::Local(dir) => dir.display().to_string(),
            ModelSource::Hub {
                repo_id, revision, ..
            } => format!("{repo_id}@{revision}"),
        }
    }

    /// The local path of `filename`, downloading it if needed; `None` when the model
    /// does not have that file.
    pub fn file(&self, filename: &str) -> Result<Option<PathBuf>> {
        match self {
            ModelSource::Local(dir) => {
                let path = dir.join(filename);
                Ok(path.is_file().then_some(path))
            }
            ModelSource::Hub {
                repo_id,
                revision,
                cache_dir,
                offline,
            } => {
                let repo = Repo::with_revision(repo_id.clone(), RepoType::Model, revision.clone());
                let cache = Cache::new(cache_dir.clone());
                if let Some(path) = cache.repo(repo.clone()).get(filename) {
                    return Ok(Some(path));
                }
                if *offline {
                    return if cache_dir.join(repo.folder_name()).is_dir() {
                        Ok(None)
                    } else {
                        Err(Error::NotFound(format!(
                            "model {repo_id:?} is not in the Hugging Face cache at {} and \
                             downloads are disabled (local_files_only=True or HF_HUB_OFFLINE=1)",
                            cache_dir.display()
                        )))
                    };
                }
                download(repo, cache, filename, repo_id, cache_dir)
            }
        }
    }

    /// Like [`file`](Self::file) but the file must exist.
    pub fn required(&self, filename: &str) -> Result<PathBuf> {
        self.file(filename)?.ok_or_else(|| {
            Error::NotFound(format!(
                "model {} has no file {filename:?}",
                self.describe()
            ))
        })
    }

    /// Reads an optional JSON file.
    pub fn json(&self, filename: &str) -> Result<Option<(PathBuf, serde_json::Value)>> {
        match self.file(filename)? {
            None => Ok(None),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| Error::bad_file(&path, e))?;
                let value = serde_json::from_str(&text)
                    .map_err(|e| Error::bad_file(&path, format!("not valid JSON: {e}")))?;
                Ok(Some((path, value)))
            }
        }
    }
}

fn download(
    repo: Repo,
    cache: Cache,
    filename: &str,
    repo_id: &str,
    cache_dir: &Path,
) -> Result<Option<PathBuf>> {
    let api = hf_hub::api::sync::ApiBuilder::from_cache(cache)
        .with_progress(false)
        .with_retries(1)
        .build()
        .map_err(|e| Error::NotFound(format!("cannot reach the Hugging Face hub: {e}")))?;
    match api.repo(repo).get(filename) {
        Ok(path) => Ok(Some(path)),
        Err(hf_hub::api::sync::ApiError::RequestError(err))
            if matches!(*err, ureq::Error::Status(404, _)) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::NotFound(format!(
            "could not download {filename:?} of model {repo_id:?} from the Hugging Face hub ({e}), \
             and it is not in the cache at {}",
            cache_dir.display()
        ))),
    }
}
