//! Secondary indexes: terms extracted from entries, kept in sled, always rebuildable.
//!
//! A term is a (namespace, value) pair pointing at an entry. Storage extracts two kinds
//! itself (idempotency keys, and leaf hashes when the ledger has the leaf-hash index); the
//! layers above add their own through a [`TermExtractor`], which must be a pure function of
//! the entry's bytes so that the index can be rebuilt from the log at any time.
//!
//! Keys are `namespace (1) ‖ value length (2, BE) ‖ value ‖ entry index (8, BE)`, with empty
//! values; big-endian makes sled's key order the numeric order of indexes. The key
//! `0x00 ‖ "watermark"` holds how many entries are indexed and the extractor's version, and is
//! written in the same atomic batch as the terms it covers.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use vouch_ledger_core::EntryIndex;
use vouch_ledger_core::entry::EntryView;

use crate::error::{Corruption, IoFailure, ReadError};

/// Namespace of idempotency keys.
pub const NS_IDEMPOTENCY_KEY: u8 = 1;
/// Storage's own index rules, version 1: idempotency keys only (leaf hashes have their own
/// index, see [`crate::leafidx`]). Part of the watermark's version, so a change rebuilds sled.
const BUILTIN_RULES_VERSION: u64 = 1;
/// The first namespace available to a [`TermExtractor`].
pub const FIRST_CUSTOM_NAMESPACE: u8 = 16;

const WATERMARK_KEY: &[u8] = b"\x00watermark";
/// The longest term value that is indexed; longer values are cut to this length, and every
/// hit is re-checked against the entry by the layer that asked.
pub const MAX_TERM_LEN: usize = 1024;

/// One index term of an entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Term {
    /// The namespace, at least [`FIRST_CUSTOM_NAMESPACE`] for terms from an extractor.
    pub namespace: u8,
    /// The value.
    pub value: Vec<u8>,
}

/// Extracts index terms from entries, for the layers above storage.
pub trait TermExtractor: Send + Sync + fmt::Debug {
    /// The version of the extraction rules; a change makes the engine rebuild the index.
    fn version(&self) -> u64;
    /// Appends the entry's terms to `out`. Must depend on nothing but the entry.
    fn terms(&self, entry: &EntryView<'_>, out: &mut Vec<Term>);
}

/// An extractor that adds no terms.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTerms;

impl TermExtractor for NoTerms {
    fn version(&self) -> u64 {
        0
    }

    fn terms(&self, _entry: &EntryView<'_>, _out: &mut Vec<Term>) {}
}

/// The sled database of one ledger.
///
/// The handle can be replaced while the ledger is open ([`TermIndex::reopen`]): once sled
/// fails a write (a full disk), it refuses every later write until it is opened again.
#[derive(Debug)]
pub(crate) struct TermIndex {
    /// `None` only while [`TermIndex::reopen`] runs, or after it failed.
    db: RwLock<Option<sled::Db>>,
    path: PathBuf,
    display: PathBuf,
}
/// The state recorded in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watermark {
    pub(crate) indexed: u64,
    pub(crate) version: u64,
}

fn key_prefix(namespace: u8, value: &[u8]) -> Vec<u8> {
    let value = &value[..value.len().min(MAX_TERM_LEN)];
    let mut k = Vec::with_capacity(3 + value.len() + 8);
    k.push(namespace);
    k.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
    k.extend_from_slice(value);
    k
}

fn term_key(namespace: u8, value: &[u8], index: u64) -> Vec<u8> {
    let mut k = key_prefix(namespace, value);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// Waits (a few seconds at most) until no open file holds sled's lock on its database.
///
/// sled releases its lock only when its last background job lets go of the file, a moment
/// after its handle is dropped; a ledger closed and reopened at once in one process would find
/// the lock still taken, take the index for damaged, and delete and rebuild it under the old
/// instance. The ledger's own `LOCK` keeps other processes out, so the wait is short.
fn wait_for_release(path: &Path) {
    let Ok(db) = std::fs::File::open(path.join("db")) else {
        return;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Err(std::fs::TryLockError::WouldBlock) = db.try_lock() {
        if std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The version recorded in the watermark: the extractor's version with storage's own rules
/// in the top byte (`extractor version XOR (1 << 56)`), so that a change to either rebuilds
/// the index.
pub(crate) fn rules_version(extractor: &dyn TermExtractor) -> u64 {
    extractor.version() ^ (BUILTIN_RULES_VERSION << 56)
}

/// The built-in and extracted terms of an entry.
pub(crate) fn entry_terms(
    entry: &EntryView<'_>,
    extractor: &dyn TermExtractor,
    out: &mut Vec<Term>,
) {
    if let Some(key) = entry.idempotency_key() {
        out.push(Term {
            namespace: NS_IDEMPOTENCY_KEY,
            value: key.as_bytes().to_vec(),
        });
    }
    let start = out.len();
    extractor.terms(entry, out);
    // An extractor may not write into storage's own namespaces.
    let mut i = start;
    while i < out.len() {
        if out[i].namespace < FIRST_CUSTOM_NAMESPACE {
            out.swap_remove(i);
        } else {
            i += 1;
        }
    }
}

impl TermIndex {
    /// Opens (or creates) the database. `Err` means sled could not open it.
    pub(crate) fn open(path: &Path, display: &Path) -> Result<Self, String> {
        let db = Self::open_db(path, display)?;
        Ok(Self {
            db: RwLock::new(Some(db)),
            path: path.to_path_buf(),
            display: display.to_path_buf(),
        })
    }

    fn open_db(path: &Path, display: &Path) -> Result<sled::Db, String> {
        wait_for_release(path);
        sled::Config::new()
            .path(path)
            .cache_capacity(32 << 20)
            .flush_every_ms(Some(500))
            .open()
            .map_err(|e| format!("{}: {e}", display.display()))
    }

    /// Closes the database and opens it again: sled then reads back what it had made durable
    /// and forgets a failed write. The caller must catch the index up to the log afterwards
    /// (the watermark says from where). On `Err` the index stays closed until the next try.
    pub(crate) fn reopen(&self) -> Result<(), String> {
        let slot = || {
            self.db
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        // Drop the old handle first: sled holds a lock on its files until the last one goes.
        // Readers meanwhile get an error at once rather than wait for the open.
        let old = slot().take();
        drop(old);
        let db = Self::open_db(&self.path, &self.display)?;
        *slot() = Some(db);
        Ok(())
    }

    /// The current handle (sled's handles are reference-counted clones of one database).
    fn db(&self) -> Result<sled::Db, String> {
        self.db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                format!(
                    "{}: the secondary index is closed after a failed write and is reopened with the next append",
                    self.display.display()
                )
            })
    }

    /// The recorded watermark, or `None` for an empty or unreadable one.
    pub(crate) fn watermark(&self) -> Result<Option<Watermark>, String> {
        let v = self
            .db()?
            .get(WATERMARK_KEY)
            .map_err(|e| format!("{}: {e}", self.display.display()))?;
        Ok(v.and_then(|v| {
            let b: [u8; 16] = v.as_ref().try_into().ok()?;
            let (a, c) = b.split_at(8);
            Some(Watermark {
                indexed: u64::from_le_bytes(a.try_into().ok()?),
                version: u64::from_le_bytes(c.try_into().ok()?),
            })
        }))
    }

    /// Removes everything.
    pub(crate) fn clear(&self) -> Result<(), String> {
        self.db()?
            .clear()
            .map_err(|e| format!("{}: {e}", self.display.display()))
    }

    /// Writes the terms of entries `first..first + terms.len()` and the new watermark in one
    /// atomic batch. A failure keeps the operating system's error (a full disk is
    /// [`IoFailure::is_disk_full`]).
    pub(crate) fn apply(
        &self,
        first: u64,
        terms: &[Vec<Term>],
        version: u64,
    ) -> Result<(), IoFailure> {
        let db = self
            .db()
            .map_err(|e| IoFailure::new(&self.display, "write", io::Error::other(e)))?;
        let mut batch = sled::Batch::default();
        for (i, entry_terms) in terms.iter().enumerate() {
            let index = first + i as u64;
            for t in entry_terms {
                batch.insert(term_key(t.namespace, &t.value, index), &[] as &[u8]);
            }
        }
        let mut wm = [0u8; 16];
        wm[..8].copy_from_slice(&(first + terms.len() as u64).to_le_bytes());
        wm[8..].copy_from_slice(&version.to_le_bytes());
        batch.insert(WATERMARK_KEY, &wm[..]);
        db.apply_batch(batch).map_err(|e| match e {
            sled::Error::Io(io) => IoFailure::new(&self.display, "write", io),
            other => IoFailure::new(&self.display, "write", io::Error::other(other.to_string())),
        })
    }

    /// Entries holding the term, in index order, starting after `after`, at most `limit`.
    pub(crate) fn lookup(
        &self,
        namespace: u8,
        value: &[u8],
        after: Option<EntryIndex>,
        limit: usize,
    ) -> Result<Vec<EntryIndex>, ReadError> {
        let prefix = key_prefix(namespace, value);
        let start = match after {
            Some(a) => {
                let mut k = prefix.clone();
                k.extend_from_slice(&a.0.saturating_add(1).to_be_bytes());
                if a.0 == u64::MAX {
                    return Ok(Vec::new());
                }
                k
            }
            None => prefix.clone(),
        };
        let db = self.db().map_err(|e| {
            ReadError::Io(IoFailure::new(&self.display, "read", io::Error::other(e)))
        })?;
        let mut out = Vec::new();
        for item in db.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item.map_err(|e| {
                ReadError::Corrupted(Corruption::file(&self.display, e.to_string()))
            })?;
            if !k.starts_with(&prefix) || k.len() != prefix.len() + 8 {
                if k.starts_with(&prefix) {
                    continue;
                }
                break;
            }
            let mut idx = [0u8; 8];
            idx.copy_from_slice(&k[prefix.len()..]);
            out.push(EntryIndex(u64::from_be_bytes(idx)));
        }
        Ok(out)
    }

    /// Flushes to disk.
    pub(crate) fn flush(&self) -> Result<(), String> {
        self.db()?
            .flush()
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", self.display.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_in_index_order_and_paginate() {
        let dir = tempfile::tempdir().unwrap();
        let idx = TermIndex::open(&dir.path().join("sled"), Path::new("sled")).unwrap();
        let t = |v: &[u8]| Term {
            namespace: 20,
            value: v.to_vec(),
        };
        let terms = vec![
            vec![t(b"a")],
            vec![t(b"b")],
            vec![t(b"a"), t(b"ab")],
            vec![],
            vec![t(b"a")],
        ];
        idx.apply(254, &terms, 7).unwrap();
        let got = idx.lookup(20, b"a", None, 10).unwrap();
        assert_eq!(got, vec![EntryIndex(254), EntryIndex(256), EntryIndex(258)]);
        let page = idx.lookup(20, b"a", Some(EntryIndex(254)), 1).unwrap();
        assert_eq!(page, vec![EntryIndex(256)]);
        assert_eq!(
            idx.lookup(20, b"ab", None, 10).unwrap(),
            vec![EntryIndex(256)]
        );
        assert_eq!(idx.lookup(21, b"a", None, 10).unwrap(), vec![]);
        assert_eq!(
            idx.watermark().unwrap(),
            Some(Watermark {
                indexed: 259,
                version: 7
            })
        );
    }
}
