//! Reads a checkpoint's tensors into memory: `model.safetensors`, sharded safetensors
//! (`model.safetensors.index.json`) or `pytorch_model.bin`, in that order of preference.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::model::source::ModelSource;

pub type TensorMap = HashMap<String, Tensor>;

pub fn load_weights(source: &ModelSource) -> Result<TensorMap> {
    let mut tensors = if let Some(path) = source.file("model.safetensors")? {
        read_safetensors(&path)?
    } else if let Some((index_path, index)) = source.json("model.safetensors.index.json")? {
        let shards: BTreeSet<String> = index
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::bad_file(&index_path, "has no \"weight_map\" object"))?
            .values()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let mut all = TensorMap::new();
        for shard in shards {
            all.extend(read_safetensors(&source.required(&shard)?)?);
        }
        all
    } else if let Some(path) = source.file("pytorch_model.bin")? {
        candle_core::pickle::read_all(&path)
            .map_err(|e| Error::bad_file(&path, format!("cannot read PyTorch weights: {e}")))?
            .into_iter()
            .collect()
    } else {
        return Err(Error::NotFound(format!(
            "model {} has no weights: looked for model.safetensors, \
             model.safetensors.index.json and pytorch_model.bin",
            source.describe()
        )));
    };
    rename_legacy_layer_norm(&mut tensors);
    Ok(tensors)
}

fn read_safetensors(path: &Path) -> Result<TensorMap> {
    // Read into memory rather than mmap: no `unsafe`, and the file can change afterwards.
    let bytes = std::fs::read(path).map_err(|e| Error::bad_file(path, e))?;
    candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| Error::bad_file(path, format!("not a valid safetensors file: {e}")))
}

/// Old TensorFlow-converted BERT checkpoints name LayerNorm parameters gamma/beta;
/// transformers renames them on load, so do we.
fn rename_legacy_layer_norm(tensors: &mut TensorMap) {
    let legacy: Vec<String> = tensors
        .keys()
        .filter(|k| k.ends_with("LayerNorm.gamma") || k.ends_with("LayerNorm.beta"))
        .cloned()
        .collect();
    for old in legacy {
        if let Some(t) = tensors.remove(&old) {
            let new = old
                .replace("LayerNorm.gamma", "LayerNorm.weight")
                .replace("LayerNorm.beta", "LayerNorm.bias");
            tensors.insert(new, t);
        }
    }
}
