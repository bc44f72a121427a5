//! Fixed-size record files read through memory maps: `offsets.dat` and the Merkle node files.
//!
//! This is the only module of the engine with `unsafe` code. One writer (the ledger's
//! sequencer) appends records with positional writes; any number of readers copy records out
//! of a read-only memory map. The file grows ahead of its records in 1 MiB steps (space is
//! reserved with `fallocate`, so writes below the reserved length cannot fail for lack of
//! space), and the map is replaced whenever the file grows.
//!
//! Soundness rests on one rule, kept by the callers: a record is read only after it was
//! written and published (the ledger's size is stored with `Release` after the writes and
//! loaded with `Acquire` before the reads), and a published record is never written again.
//! Readers never form a reference to mapped memory; they copy published bytes out through a
//! raw pointer, so bytes the writer is changing elsewhere in the file are never observed.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use memmap2::Mmap;

use crate::error::IoFailure;
use crate::frame::FILE_HEADER_LEN;
use crate::vfs::VfsFile;

/// The step in which record files grow.
const GROW_STEP: u64 = 1 << 20;

/// A file of fixed-size records after a 32-byte header.
#[derive(Debug)]
pub(crate) struct RecordFile<const N: usize> {
    /// The path, for error messages.
    path: PathBuf,
    file: Arc<dyn VfsFile>,
    /// The current read map and the file length it covers.
    map: RwLock<Arc<Mapping>>,
}

#[derive(Debug)]
struct Mapping {
    map: Option<Mmap>,
    /// The file's length (reserved space) when the map was made.
    len: u64,
}

impl<const N: usize> RecordFile<N> {
    /// Wraps an open file whose header has been checked (or written) by the caller.
    pub(crate) fn new(path: &Path, file: Arc<dyn VfsFile>) -> Result<Self, IoFailure> {
        let this = Self {
            path: path.to_path_buf(),
            file,
            map: RwLock::new(Arc::new(Mapping { map: None, len: 0 })),
        };
        this.remap()?;
        Ok(this)
    }

    /// The path of the file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn offset_of(index: u64) -> u64 {
        (FILE_HEADER_LEN as u64).saturating_add(index.saturating_mul(N as u64))
    }

    fn remap(&self) -> Result<(), IoFailure> {
        let len = self
            .file
            .len()
            .map_err(|e| IoFailure::new(&self.path, "stat", e))?;
        // SAFETY: the map is read only through `read`, which copies bytes of published
        // records only (see the module documentation); the engine never truncates this file
        // below published records while it is open, and it holds the ledger's exclusive lock
        // so no other process writes it.
        let map = unsafe { Mmap::map(self.file.std_file()) }
            .map_err(|e| IoFailure::new(&self.path, "mmap", e))?;
        let mut guard = self
            .map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = Arc::new(Mapping {
            map: Some(map),
            len,
        });
        Ok(())
    }

    /// Makes sure records `0..count` fit in the file, growing it (and the map) if needed.
    pub(crate) fn reserve(&self, count: u64) -> Result<(), IoFailure> {
        let needed = Self::offset_of(count);
        let current = self.mapping().len;
        if needed <= current {
            return Ok(());
        }
        let target = needed.div_ceil(GROW_STEP).saturating_mul(GROW_STEP);
        self.file
            .allocate(target)
            .map_err(|e| IoFailure::new(&self.path, "allocate", e))?;
        let actual = self
            .file
            .len()
            .map_err(|e| IoFailure::new(&self.path, "stat", e))?;
        if actual < target {
            // Some file systems reserve without extending; extend explicitly.
            self.file
                .set_len(target)
                .map_err(|e| IoFailure::new(&self.path, "extend", e))?;
        }
        self.remap()
    }

    fn mapping(&self) -> Arc<Mapping> {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Writes consecutive records starting at `first` with one write.
    pub(crate) fn write_many(&self, first: u64, records: &[[u8; N]]) -> Result<(), IoFailure> {
        if records.is_empty() {
            return Ok(());
        }
        self.reserve(first.saturating_add(records.len() as u64))?;
        let bytes = records.as_flattened();
        self.file
            .write_all_at(bytes, Self::offset_of(first))
            .map_err(|e| IoFailure::new(&self.path, "write", e))
    }

    /// Reads record `index`, which the caller knows to be published. Returns `None` if the
    /// file is too short to hold it, which means the file was truncated behind the engine.
    pub(crate) fn read(&self, index: u64) -> Option<[u8; N]> {
        let offset = Self::offset_of(index);
        // Copy under the read lock rather than cloning the `Arc`: two atomic operations less
        // per record, and a proof reads a few dozen records. The lock is only ever held for
        // writing while the file grows.
        let mapping = self
            .map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let map = mapping.map.as_ref()?;
        let end = offset.checked_add(N as u64)?;
        if end > mapping.len || end > map.len() as u64 {
            return None;
        }
        let start = usize::try_from(offset).ok()?;
        let mut out = [0u8; N];
        // SAFETY: `start + N <= map.len()` was checked above, so the source range lies inside
        // the mapping, which the read guard `mapping` keeps alive; the destination is a local
        // array. The bytes belong to a published record, which no one writes any more.
        unsafe {
            std::ptr::copy_nonoverlapping(map.as_ptr().add(start), out.as_mut_ptr(), N);
        }
        Some(out)
    }

    /// Makes the records durable.
    pub(crate) fn sync(&self) -> Result<(), IoFailure> {
        self.file
            .sync_data()
            .map_err(|e| IoFailure::new(&self.path, "fsync", e))
    }
}
