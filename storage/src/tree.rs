//! The Merkle node store: one fixed-record file per level `1..=63` under `tree/`.
//!
//! Node `(L, k)` is record `k` of `tree/level-LL.dat`. Level 0 (leaf hashes) is not stored;
//! the ledger recomputes a leaf hash from its entry when a proof needs one. Files are created
//! by the writer when the first node of their level completes, and only ever grow.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use vouch_ledger_core::{Hash, HashAlg, NodeId};

use crate::error::{Corruption, IoFailure, OpenError, ReadError};
use crate::frame::{FILE_HEADER_LEN, FileHeader, HeaderError, TREE_MAGIC};
use crate::mapped::RecordFile;
use crate::vfs::{OpenMode, Vfs};

/// The highest level a node file can have.
pub(crate) const MAX_LEVEL: u8 = 63;

/// The node files of one ledger.
#[derive(Debug)]
pub(crate) struct NodeStore {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    display_dir: PathBuf,
    hash: HashAlg,
    levels: [OnceLock<RecordFile<32>>; 64],
}

/// The file name of a level's node file.
pub(crate) fn level_file_name(level: u8) -> String {
    format!("level-{level:02}.dat")
}

impl NodeStore {
    /// Opens the node files found in `dir`, checking each header. With `create`, the directory
    /// is created if missing.
    pub(crate) fn open(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        display_dir: &Path,
        hash: HashAlg,
        mode: OpenMode,
    ) -> Result<Self, OpenError> {
        let store = Self {
            vfs,
            dir: dir.to_path_buf(),
            display_dir: display_dir.to_path_buf(),
            hash,
            levels: std::array::from_fn(|_| OnceLock::new()),
        };
        if !store.vfs.exists(dir) {
            if mode == OpenMode::Read {
                return Ok(store);
            }
            store
                .vfs
                .create_dir_all(dir)
                .map_err(|e| IoFailure::new(display_dir, "create", e))?;
        }
        let names = store
            .vfs
            .read_dir(dir)
            .map_err(|e| IoFailure::new(display_dir, "list", e))?;
        for name in names {
            let level = name
                .strip_prefix("level-")
                .and_then(|r| r.strip_suffix(".dat"))
                .and_then(|d| d.parse::<u8>().ok())
                .filter(|l| (1..=MAX_LEVEL).contains(l) && level_file_name(*l) == name);
            let Some(level) = level else {
                return Err(OpenError::Corrupted(Corruption::file(
                    display_dir.join(&name),
                    "unexpected file in the node directory",
                )));
            };
            let file_mode = if mode == OpenMode::Read {
                OpenMode::Read
            } else {
                OpenMode::ReadWrite
            };
            let path = dir.join(&name);
            let display = display_dir.join(&name);
            let file = store
                .vfs
                .open(&path, file_mode)
                .map_err(|e| IoFailure::new(&display, "open", e))?;
            let mut buf = [0u8; FILE_HEADER_LEN];
            match file.read_exact_at(&mut buf, 0) {
                // A crash or a failed write while the file was being created (the header is
                // short, or zeros where the file kept its size but not the bytes): it holds no
                // node, so its level is not loaded (the writer writes its header again when
                // the level is first needed; a level the index head needs is then missing).
                Ok(()) if buf.iter().all(|b| *b == 0) => continue,
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => continue,
                Err(e) => return Err(IoFailure::new(&display, "read header", e).into()),
            }
            let header = FileHeader::decode(&buf, TREE_MAGIC).map_err(|e| match e {
                HeaderError::Version(v) => OpenError::UnsupportedFormat {
                    file: display.clone(),
                    found: u64::from(v),
                    supported: u64::from(crate::frame::FORMAT_VERSION),
                },
                other => OpenError::Corrupted(Corruption::at(&display, 0, other.to_string())),
            })?;
            if header.hash != hash || header.byte11 != level {
                return Err(OpenError::Corrupted(Corruption::at(
                    &display,
                    10,
                    format!(
                        "header names hash {} level {}, expected hash {hash} level {level}",
                        header.hash, header.byte11
                    ),
                )));
            }
            let rf = RecordFile::new(&display, file)?;
            let _ = store.levels[usize::from(level)].set(rf);
        }
        Ok(store)
    }

    /// The node file of `level`, if it exists.
    fn level(&self, level: u8) -> Option<&RecordFile<32>> {
        self.levels.get(usize::from(level)).and_then(OnceLock::get)
    }

    /// The file of `level`, created (header written and synced, directory synced) if missing.
    /// Only the writer calls this.
    fn level_or_create(&self, level: u8) -> Result<&RecordFile<32>, IoFailure> {
        if let Some(rf) = self.level(level) {
            return Ok(rf);
        }
        let name = level_file_name(level);
        let path = self.dir.join(&name);
        let display = self.display_dir.join(&name);
        // A file that exists although its level is not loaded is what an earlier failed
        // creation left behind (every file present at open is loaded, and the ledger's lock
        // keeps other writers out): write its header again.
        let file = match self.vfs.open(&path, OpenMode::CreateNew) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.vfs.open(&path, OpenMode::ReadWrite)
            }
            other => other,
        }
        .map_err(|e| IoFailure::new(&display, "create", e))?;
        let header = FileHeader {
            magic: TREE_MAGIC,
            hash: self.hash,
            byte11: level,
            word: 0,
        };
        file.write_all_at(&header.encode(), 0)
            .map_err(|e| IoFailure::new(&display, "write", e))?;
        file.sync_data()
            .map_err(|e| IoFailure::new(&display, "fsync", e))?;
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| IoFailure::new(&self.display_dir, "fsync", e))?;
        let rf = RecordFile::new(&display, file)?;
        let _ = self.levels[usize::from(level)].set(rf);
        self.level(level)
            .ok_or_else(|| IoFailure::new(&display, "open", std::io::Error::other("lost")))
    }

    /// Reads a stored node (level ≥ 1) that the caller knows to be complete.
    pub(crate) fn get(&self, id: NodeId) -> Result<Hash, ReadError> {
        let Some(rf) = self.level(id.level) else {
            return Err(ReadError::Corrupted(Corruption::file(
                self.display_dir.join(level_file_name(id.level)),
                format!("missing: {id} should be stored"),
            )));
        };
        rf.read(id.index).map(Hash).ok_or_else(|| {
            ReadError::Corrupted(Corruption::at(
                rf.path(),
                (FILE_HEADER_LEN as u64).saturating_add(id.index.saturating_mul(32)),
                format!("the file ends before {id}"),
            ))
        })
    }

    /// Reserves space for the nodes of a tree of `size` leaves, so that writing them cannot
    /// fail for lack of space.
    pub(crate) fn reserve(&self, size: u64) -> Result<(), IoFailure> {
        let mut level = 1u8;
        while level <= MAX_LEVEL && (size >> level) > 0 {
            self.level_or_create(level)?.reserve(size >> level)?;
            level += 1;
        }
        Ok(())
    }

    /// Writes completed nodes. `nodes` must be sorted by (level, index); nodes of one level
    /// must be consecutive. Level-0 nodes are skipped.
    pub(crate) fn write_sorted(&self, nodes: &[(NodeId, Hash)]) -> Result<(), IoFailure> {
        let mut run: Vec<[u8; 32]> = Vec::new();
        let mut i = 0;
        while i < nodes.len() {
            let (first, _) = nodes[i];
            let mut j = i;
            run.clear();
            while j < nodes.len()
                && nodes[j].0.level == first.level
                && nodes[j].0.index == first.index + (j - i) as u64
            {
                run.push(nodes[j].1.0);
                j += 1;
            }
            if first.level > 0 {
                self.level_or_create(first.level)?
                    .write_many(first.index, &run)?;
            }
            i = j;
        }
        Ok(())
    }

    /// Makes every node file durable.
    pub(crate) fn sync(&self) -> Result<(), IoFailure> {
        for rf in self.levels.iter().filter_map(OnceLock::get) {
            rf.sync()?;
        }
        Ok(())
    }

    /// The display path of a level's file.
    pub(crate) fn level_path(&self, level: u8) -> PathBuf {
        self.display_dir.join(level_file_name(level))
    }
}
