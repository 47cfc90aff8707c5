//! Saving a trained model as a standard Hugging Face checkpoint directory:
//! `model.safetensors` with transformers' `BertForSequenceClassification` tensor names,
//! `config.json`, and the base model's tokenizer files. transformers'
//! `AutoModelForSequenceClassification`, sentence-transformers' `CrossEncoder` and
//! crossrank's `CrossEncoder` all load it.
//!
//! The directory is written under a temporary name next to the target and renamed into
//! place at the end, so a crash or a full disk never leaves a half-written checkpoint at
//! the target path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use candle_core::Tensor;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// Tokenizer files copied from the base model when it has them.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// The base model's config.json turned into a `BertForSequenceClassification` config with
/// `num_labels` labels; everything else (sizes, eps, vocabulary...) is kept as it was.
/// transformers derives `num_labels` from `id2label`, so that is what is written; a base
/// `id2label` of the right size keeps its names.
pub fn classifier_config(base: &Value, num_labels: usize) -> Result<Value> {
    let Value::Object(base) = base else {
        return Err(Error::invalid("the base config.json is not a JSON object"));
    };
    let mut config: Map<String, Value> = base.clone();
    config.insert(
        "architectures".into(),
        json!(["BertForSequenceClassification"]),
    );
    config.entry("model_type").or_insert_with(|| json!("bert"));
    let kept = config
        .get("id2label")
        .and_then(Value::as_object)
        .filter(|m| {
            m.len() == num_labels
                && (0..num_labels).all(|i| m.get(&i.to_string()).is_some_and(Value::is_string))
        })
        .cloned();
    let id2label = kept.unwrap_or_else(|| {
        (0..num_labels)
            .map(|i| (i.to_string(), json!(format!("LABEL_{i}"))))
            .collect()
    });
    let label2id: Map<String, Value> = id2label
        .iter()
        .filter_map(|(id, label)| {
            let id: u64 = id.parse().ok()?;
            Some((label.as_str()?.to_string(), json!(id)))
        })
        .collect();
    config.insert("id2label".into(), Value::Object(id2label));
    config.insert("label2id".into(), Value::Object(label2id));
    // A stale num_labels next to id2label would contradict it.
    config.remove("num_labels");
    Ok(Value::Object(config))
}

/// What goes into the directory.
pub struct CheckpointContents<'a> {
    /// (transformers name, weight), written in this order.
    pub tensors: &'a [(String, Tensor)],
    pub config: &'a Value,
    /// (file name in the checkpoint, where to copy it from).
    pub files: &'a [(String, PathBuf)],
}

/// Writes `contents` to `dir`. An existing `dir` is an error unless `overwrite`, and is
/// then replaced only once the new checkpoint is complete.
pub fn save(dir: &Path, overwrite: bool, contents: &CheckpointContents) -> Result<()> {
    let existing = std::fs::symlink_metadata(dir).ok();
    if let Some(meta) = &existing {
        if !overwrite {
            return Err(Error::invalid(format!(
                "output directory {} already exists; pass overwrite=true to replace it",
                dir.display()
            )));
        }
        if !meta.is_dir() {
            return Err(Error::invalid(format!(
                "{} exists and is not a directory; not replacing it",
                dir.display()
            )));
        }
    }
    let name = dir
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{} names no directory", dir.display())))?
        .to_string_lossy()
        .to_string();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;

    let staging = Staging::create(&parent, &name)?;
    write_contents(&staging.path, contents)?;
    if existing.is_some() {
        // Move the old directory aside, the new one in, then delete the old one; if the
        // second rename fails, put the old one back.
        let old = sibling(&parent, &name, "replaced");
        std::fs::rename(dir, &old)?;
        if let Err(e) = std::fs::rename(&staging.path, dir) {
            let _ = std::fs::rename(&old, dir);
            return Err(e.into());
        }
        // The new checkpoint is in place; a leftover old copy is only clutter.
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&staging.path, dir)?;
    }
    staging.done();
    Ok(())
}

fn write_contents(dir: &Path, contents: &CheckpointContents) -> Result<()> {
    let weights = dir.join("model.safetensors");
    // transformers checks the "format" metadata of safetensors files it loads.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let tensors: Vec<(&str, &Tensor)> = contents
        .tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t))
        .collect();
    safetensors::serialize_to_file(tensors, Some(metadata), &weights)
        .map_err(|e| Error::bad_file(&weights, format!("cannot write: {e}")))?;
    let config = serde_json::to_string_pretty(contents.config)
        .map_err(|e| Error::invalid(format!("cannot serialise config.json: {e}")))?;
    std::fs::write(dir.join("config.json"), config + "\n")?;
    for (name, from) in contents.files {
        std::fs::copy(from, dir.join(name)).map_err(|e| Error::bad_file(from, e))?;
    }
    Ok(())
}

/// A path next to the target that no other save uses: process id and clock.
fn sibling(parent: &Path, name: &str, what: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    parent.join(format!(".{name}.{what}-{}-{nanos}", std::process::id()))
}

/// The temporary directory being written; removed on drop unless renamed into place.
struct Staging {
    path: PathBuf,
    keep: bool,
}

impl Staging {
    fn create(parent: &Path, name: &str) -> Result<Self> {
        let path = sibling(parent, name, "partial");
        std::fs::create_dir(&path)?;
        Ok(Self { path, keep: false })
    }

    fn done(mut self) {
        self.keep = true;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn contents_with(value: f32) -> (Vec<(String, Tensor)>, Value) {
        let t = Tensor::from_slice(&[value, 2.0], 2, &Device::Cpu).unwrap();
        (
            vec![("classifier.bias".into(), t)],
            json!({"model_type": "bert"}),
        )
    }

    #[test]
    fn config_gets_architecture_and_consistent_labels() {
        let base = json!({"architectures": ["BertModel"], "hidden_size": 8, "num_labels": 3});
        let c = classifier_config(&base, 1).unwrap();
        assert_eq!(c["architectures"], json!(["BertForSequenceClassification"]));
        assert_eq!(c["id2label"], json!({"0": "LABEL_0"}));
        assert_eq!(c["label2id"], json!({"LABEL_0": 0}));
        assert_eq!(c["hidden_size"], 8);
        assert!(c.get("num_labels").is_none());
        // Names of a matching id2label survive.
        let named = json!({"id2label": {"0": "irrelevant", "1": "relevant"}});
        let c = classifier_config(&named, 2).unwrap();
        assert_eq!(c["label2id"], json!({"irrelevant": 0, "relevant": 1}));
        assert!(classifier_config(&json!([1]), 1).is_err());
    }

    #[test]
    fn refuses_existing_directory_unless_overwrite_and_replaces_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let (tensors, config) = contents_with(1.0);
        let contents = CheckpointContents {
            tensors: &tensors,
            config: &config,
            files: &[],
        };
        save(&dir, false, &contents).unwrap();
        std::fs::write(dir.join("stale.txt"), "old").unwrap();

        let err = save(&dir, false, &contents).unwrap_err().to_string();
        assert!(
            err.contains("already exists") && err.contains("overwrite"),
            "{err}"
        );

        let (tensors2, _) = contents_with(5.0);
        let contents2 = CheckpointContents {
            tensors: &tensors2,
            config: &config,
            files: &[],
        };
        save(&dir, true, &contents2).unwrap();
        assert!(
            !dir.join("stale.txt").exists(),
            "overwrite replaces the directory"
        );
        let loaded =
            candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
        assert_eq!(
            loaded["classifier.bias"].to_vec1::<f32>().unwrap(),
            vec![5.0, 2.0]
        );
        // Nothing temporary is left next to it.
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, vec!["out".to_string()]);
    }

    #[test]
    fn failed_write_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let (tensors, config) = contents_with(1.0);
        let missing = [("vocab.txt".to_string(), tmp.path().join("no-such-file"))];
        let contents = CheckpointContents {
            tensors: &tensors,
            config: &config,
            files: &missing,
        };
        assert!(save(&dir, false, &contents).is_err());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

        let file = tmp.path().join("a-file");
        std::fs::write(&file, "x").unwrap();
        let ok = CheckpointContents {
            tensors: &tensors,
            config: &config,
            files: &[],
        };
        assert!(save(&file, true, &ok)
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
    }
}
