//! The file format of saved indexes: 8 magic bytes naming the kind and format version, then
//! the postcard encoding of the index's serde value.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

pub fn encode<T: Serialize>(magic: &[u8; 8], value: &T, what: &str) -> Result<Vec<u8>> {
    let mut bytes = magic.to_vec();
    let body = postcard::to_stdvec(value)
        .map_err(|e| Error::invalid(format!("cannot encode the {what}: {e}")))?;
    bytes.extend(body);
    Ok(bytes)
}

/// `origin` names the source (a path, or "<pickle>") in errors.
pub fn decode<T: DeserializeOwned>(
    magic: &[u8; 8],
    bytes: &[u8],
    origin: &Path,
    what: &str,
) -> Result<T> {
    if !bytes.starts_with(magic) {
        return Err(Error::bad_file(
            origin,
            format!("not a crossrank {what} (bad header)"),
        ));
    }
    postcard::from_bytes(&bytes[magic.len()..])
        .map_err(|e| Error::bad_file(origin, format!("corrupt {what}: {e}")))
}

pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes)?;
    Ok(())
}

pub fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(format!("no {what} at {}", path.display())),
        _ => Error::Io(e),
    })
}
