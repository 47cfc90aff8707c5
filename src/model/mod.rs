//! Loading a checkpoint, whichever engine runs it: where it comes from (a directory or
//! the Hugging Face hub), its `config.json`, its weights and their names, its tokenizer,
//! the device and the numeric precision asked for.

pub(crate) mod checkpoint;
pub(crate) mod config;
pub(crate) mod device;
pub(crate) mod names;
pub mod precision;
pub mod source;
pub(crate) mod tokenize;
pub(crate) mod weights;
