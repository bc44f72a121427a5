//! The data directory marker (`VOUCH-FORMAT`) and each ledger's `ledger.json`.
//!
//! Both are small files replaced atomically (temporary file, fsync, rename, directory fsync).
//! Parsing is strict: unknown fields, a wrong format number or a name that does not match the
//! directory are errors that name the file.

use std::path::Path;

use serde::{Deserialize, Serialize};
use vouch_ledger_core::HashAlg;

use crate::error::{Corruption, IoFailure, OpenError};
use crate::vfs::{OpenMode, Vfs};

/// The data directory format this build reads and writes.
pub const DATA_DIR_FORMAT: u64 = 1;
/// The ledger format this build reads and writes.
pub const LEDGER_FORMAT: u64 = 1;
/// Name of the data directory marker file.
pub const MARKER_FILE: &str = "VOUCH-FORMAT";
/// Name of a ledger's metadata file.
pub const LEDGER_FILE: &str = "ledger.json";

const MARKER_TEXT_PREFIX: &str = "vouch data directory\nformat ";

/// Whether `name` is an acceptable ledger name: 1 to 64 of `a-z 0-9 - _ .`, starting with a
/// letter or digit.
pub fn valid_ledger_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(b))
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, directory fsync.
pub(crate) fn write_atomic(vfs: &dyn Vfs, path: &Path, bytes: &[u8]) -> Result<(), IoFailure> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    if vfs.exists(tmp) {
        vfs.remove_file(tmp)
            .map_err(|e| IoFailure::new(tmp, "remove", e))?;
    }
    let f = vfs
        .open(tmp, OpenMode::CreateNew)
        .map_err(|e| IoFailure::new(tmp, "create", e))?;
    f.write_all_at(bytes, 0)
        .map_err(|e| IoFailure::new(tmp, "write", e))?;
    f.sync_data().map_err(|e| IoFailure::new(tmp, "fsync", e))?;
    drop(f);
    vfs.rename(tmp, path)
        .map_err(|e| IoFailure::new(path, "rename", e))?;
    vfs.sync_dir(dir)
        .map_err(|e| IoFailure::new(dir, "fsync", e))
}

/// Writes the data directory marker.
pub(crate) fn write_marker(vfs: &dyn Vfs, root: &Path) -> Result<(), IoFailure> {
    let text = format!("{MARKER_TEXT_PREFIX}{DATA_DIR_FORMAT}\n");
    write_atomic(vfs, &root.join(MARKER_FILE), text.as_bytes())
}

/// Reads and checks the data directory marker.
pub(crate) fn check_marker(vfs: &dyn Vfs, root: &Path) -> Result<(), OpenError> {
    let path = root.join(MARKER_FILE);
    let bytes = vfs
        .read(&path)
        .map_err(|e| IoFailure::new(&path, "read", e))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| OpenError::Corrupted(Corruption::file(MARKER_FILE, "not UTF-8 text")))?;
    let version = text
        .strip_prefix(MARKER_TEXT_PREFIX)
        .and_then(|rest| rest.strip_suffix('\n'))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            OpenError::Corrupted(Corruption::file(
                MARKER_FILE,
                "not a Vouch data directory marker (expected \"vouch data directory\\nformat N\\n\")",
            ))
        })?;
    if version != DATA_DIR_FORMAT {
        return Err(OpenError::UnsupportedFormat {
            file: MARKER_FILE.into(),
            found: version,
            supported: DATA_DIR_FORMAT,
        });
    }
    Ok(())
}

/// A checkpoint signing key of a ledger, and the first tree size it signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// The C2SP verifier key string.
    pub vkey: String,
    /// The tree size of the first checkpoint this key may sign.
    pub from_size: u64,
}

/// The contents of `ledger.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerMeta {
    /// The ledger format version.
    pub format: u64,
    /// The ledger name; equals its directory name.
    pub name: String,
    /// The hash function, fixed at creation.
    #[serde(with = "hash_alg_name")]
    pub hash: HashAlg,
    /// The checkpoint origin line.
    pub origin: String,
    /// Creation time, Unix nanoseconds.
    pub created_unix_ns: u64,
    /// Whether entries are indexed by leaf hash.
    pub leaf_hash_index: bool,
    /// Signing keys, oldest first; the last one signs new checkpoints.
    pub keys: Vec<KeyRecord>,
}

mod hash_alg_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use vouch_ledger_core::HashAlg;

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `serialize_with` passes a reference
    pub(super) fn serialize<S: Serializer>(alg: &HashAlg, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(alg.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HashAlg, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl LedgerMeta {
    /// Reads and checks `ledger.json` in `dir`, whose directory name is `name`.
    pub(crate) fn read(vfs: &dyn Vfs, dir: &Path, name: &str) -> Result<Self, OpenError> {
        #[derive(Deserialize)]
        struct FormatOnly {
            format: u64,
        }
        let path = dir.join(LEDGER_FILE);
        let display = Path::new("ledgers").join(name).join(LEDGER_FILE);
        let bytes = vfs
            .read(&path)
            .map_err(|e| IoFailure::new(&display, "read", e))?;
        let format: FormatOnly = serde_json::from_slice(&bytes).map_err(|e| {
            OpenError::Corrupted(Corruption::file(&display, format!("invalid JSON: {e}")))
        })?;
        if format.format != LEDGER_FORMAT {
            return Err(OpenError::UnsupportedFormat {
                file: display,
                found: format.format,
                supported: LEDGER_FORMAT,
            });
        }
        let meta: LedgerMeta = serde_json::from_slice(&bytes).map_err(|e| {
            OpenError::Corrupted(Corruption::file(&display, format!("invalid contents: {e}")))
        })?;
        if meta.name != name {
            return Err(OpenError::Corrupted(Corruption::file(
                &display,
                format!(
                    "names ledger {:?} but lives in directory {name:?}",
                    meta.name
                ),
            )));
        }
        if meta.keys.is_empty() {
            return Err(OpenError::Corrupted(Corruption::file(
                &display,
                "lists no signing key",
            )));
        }
        Ok(meta)
    }

    /// Writes `ledger.json` atomically.
    pub(crate) fn write(&self, vfs: &dyn Vfs, dir: &Path) -> Result<(), IoFailure> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        write_atomic(vfs, &dir.join(LEDGER_FILE), &bytes)
    }

    /// The verifier key that signs new checkpoints.
    pub fn current_vkey(&self) -> &str {
        self.keys.last().map_or("", |k| k.vkey.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_names() {
        for ok in ["default", "a", "prod-eu.1", "x_y", "0abc"] {
            assert!(valid_ledger_name(ok), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in ["", "-a", ".", "..", "A", "a/b", "a b", "é", long.as_str()] {
            assert!(!valid_ledger_name(bad), "{bad}");
        }
    }
}
