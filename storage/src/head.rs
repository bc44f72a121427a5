//! `index.head`: how far the derived files (offsets and Merkle nodes) are complete and durable.
//!
//! A standard 32-byte file header with magic `VOUCHHED` whose 8-byte word is the covered tree
//! size. It is replaced atomically, and only after the files it vouches for were synced.

use std::path::Path;

use vouch_ledger_core::HashAlg;

use crate::error::{Corruption, IoFailure, OpenError};
use crate::frame::{FileHeader, HEAD_MAGIC, HeaderError};
use crate::meta::write_atomic;
use crate::vfs::Vfs;

/// Name of the head file.
pub(crate) const HEAD_FILE: &str = "index.head";

/// Reads the covered size, or `None` if there is no head (or it is unreadable, in which case
/// the derived files are rebuilt from the log; the reason is returned for the log).
pub(crate) fn read(
    vfs: &dyn Vfs,
    dir: &Path,
    display: &Path,
    hash: HashAlg,
) -> Result<Result<u64, String>, OpenError> {
    let path = dir.join(HEAD_FILE);
    if !vfs.exists(&path) {
        return Ok(Err("no index head".into()));
    }
    let bytes = vfs
        .read(&path)
        .map_err(|e| IoFailure::new(display, "read", e))?;
    match FileHeader::decode(&bytes, HEAD_MAGIC) {
        Ok(h) if h.hash == hash && bytes.len() == 32 => Ok(Ok(h.word)),
        Ok(_) => Ok(Err(format!(
            "{}: wrong hash id or length",
            display.display()
        ))),
        Err(HeaderError::Version(v)) => Err(OpenError::UnsupportedFormat {
            file: display.to_path_buf(),
            found: u64::from(v),
            supported: u64::from(crate::frame::FORMAT_VERSION),
        }),
        Err(e) => Ok(Err(Corruption::at(display, 0, e.to_string()).to_string())),
    }
}

/// Removes a temporary head left by a crash during its replacement. Only the writer calls
/// this; the offline verifier never writes.
pub(crate) fn remove_stale_tmp(vfs: &dyn Vfs, dir: &Path, display: &Path) -> Result<(), IoFailure> {
    let tmp = dir.join(format!("{HEAD_FILE}.tmp"));
    if vfs.exists(&tmp) {
        vfs.remove_file(&tmp)
            .map_err(|e| IoFailure::new(display, "remove stale temporary", e))?;
    }
    Ok(())
}

/// Replaces the head with one covering `covered` entries.
pub(crate) fn write(
    vfs: &dyn Vfs,
    dir: &Path,
    hash: HashAlg,
    covered: u64,
) -> Result<(), IoFailure> {
    let header = FileHeader {
        magic: HEAD_MAGIC,
        hash,
        byte11: 0,
        word: covered,
    };
    write_atomic(vfs, &dir.join(HEAD_FILE), &header.encode())
}
