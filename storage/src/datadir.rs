//! The data directory: a marker file and one directory per ledger.
//!
//! [`DataDir`] creates, lists and opens ledgers. A ledger is created in a temporary directory
//! (`ledgers/.creating-<name>`, a name no ledger can have) and renamed into place, so a crash
//! during creation leaves either no ledger or a complete one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vouch_ledger_core::HashAlg;
use vouch_ledger_core::note::{Signer, Verifier};

use crate::error::{IoFailure, OpenError};
use crate::ledger::{Ledger, LedgerOptions};
use crate::meta::{KeyRecord, LEDGER_FORMAT, LedgerMeta, valid_ledger_name};
use crate::segment::Segment;
use crate::vfs::{RealVfs, Vfs};

/// How a new ledger is set up. Fixed for the ledger's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    /// The hash function.
    pub hash: HashAlg,
    /// The checkpoint origin line; it should be unique to this ledger.
    pub origin: String,
    /// Index every entry by its leaf hash, so proofs can be asked for by leaf hash.
    pub leaf_hash_index: bool,
}

/// An open data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    vfs: Arc<dyn Vfs>,
}

impl DataDir {
    /// Opens a data directory, creating it (and its marker) if it does not exist or is empty.
    ///
    /// # Errors
    ///
    /// [`OpenError::UnsupportedFormat`] for a directory of a newer format; I/O errors;
    /// a non-empty directory without a marker is [`OpenError::Corrupted`].
    pub fn open(root: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(root, Arc::new(RealVfs))
    }

    /// Like [`DataDir::open`], through the given file system.
    ///
    /// # Errors
    ///
    /// As [`DataDir::open`].
    pub fn open_with(root: impl AsRef<Path>, vfs: Arc<dyn Vfs>) -> Result<Self, OpenError> {
        let root = root.as_ref().to_path_buf();
        let display = Path::new(".");
        if !vfs.exists(&root) {
            vfs.create_dir_all(&root)
                .map_err(|e| IoFailure::new(&root, "create", e))?;
        }
        let marker = root.join(crate::meta::MARKER_FILE);
        if !vfs.exists(&marker) {
            let names = vfs
                .read_dir(&root)
                .map_err(|e| IoFailure::new(&root, "list", e))?;
            // What a crash while the directory was being set up can leave: an empty `ledgers`
            // directory and the marker's temporary file. Setting up again replaces both.
            let marker_tmp = format!("{}.tmp", crate::meta::MARKER_FILE);
            let interrupted_setup = names.iter().all(|n| {
                *n == marker_tmp
                    || (n == "ledgers" && vfs.read_dir(&root.join(n)).is_ok_and(|l| l.is_empty()))
            });
            if !interrupted_setup {
                return Err(OpenError::Corrupted(crate::error::Corruption::file(
                    &root,
                    format!(
                        "the directory is not empty but has no {} marker: not a Vouch data directory",
                        crate::meta::MARKER_FILE
                    ),
                )));
            }
            vfs.create_dir_all(&root.join("ledgers"))
                .map_err(|e| IoFailure::new(display, "create", e))?;
            crate::meta::write_marker(&*vfs, &root)?;
        }
        crate::meta::check_marker(&*vfs, &root)?;
        let ledgers = root.join("ledgers");
        if !vfs.exists(&ledgers) {
            vfs.create_dir_all(&ledgers)
                .map_err(|e| IoFailure::new("ledgers", "create", e))?;
        }
        Ok(Self { root, vfs })
    }

    /// The directory's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The names of the ledgers, sorted.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn ledger_names(&self) -> Result<Vec<String>, OpenError> {
        let dir = self.root.join("ledgers");
        let names = self
            .vfs
            .read_dir(&dir)
            .map_err(|e| IoFailure::new("ledgers", "list", e))?;
        Ok(names
            .into_iter()
            .filter(|n| valid_ledger_name(n) && self.vfs.exists(&dir.join(n).join("ledger.json")))
            .collect())
    }

    /// Whether a ledger of that name exists.
    pub fn has_ledger(&self, name: &str) -> bool {
        valid_ledger_name(name)
            && self
                .vfs
                .exists(&self.root.join("ledgers").join(name).join("ledger.json"))
    }

    /// A ledger's metadata.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotFound`], corruption, I/O errors.
    pub fn ledger_meta(&self, name: &str) -> Result<LedgerMeta, OpenError> {
        if !self.has_ledger(name) {
            return Err(OpenError::NotFound(name.to_owned()));
        }
        LedgerMeta::read(&*self.vfs, &self.root.join("ledgers").join(name), name)
    }

    /// Creates a ledger whose checkpoints are signed by the key of `verifier`.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidName`], [`OpenError::AlreadyExists`], I/O errors.
    pub fn create_ledger(
        &self,
        name: &str,
        config: &LedgerConfig,
        verifier: &Verifier,
        created_unix_ns: u64,
    ) -> Result<LedgerMeta, OpenError> {
        if !valid_ledger_name(name) {
            return Err(OpenError::InvalidName(name.to_owned()));
        }
        if config.origin.is_empty() || config.origin.chars().any(char::is_control) {
            return Err(OpenError::InvalidOptions(format!(
                "checkpoint origin {:?} must be non-empty text without control characters",
                config.origin
            )));
        }
        let ledgers = self.root.join("ledgers");
        let dir = ledgers.join(name);
        if self.vfs.exists(&dir) {
            return Err(OpenError::AlreadyExists(name.to_owned()));
        }
        let tmp = ledgers.join(format!(".creating-{name}"));
        let display = PathBuf::from("ledgers").join(format!(".creating-{name}"));
        if self.vfs.exists(&tmp) {
            self.vfs
                .remove_dir_all(&tmp)
                .map_err(|e| IoFailure::new(&display, "remove", e))?;
        }
        self.vfs
            .create_dir_all(&tmp.join("segments"))
            .map_err(|e| IoFailure::new(&display, "create", e))?;
        let meta = LedgerMeta {
            format: LEDGER_FORMAT,
            name: name.to_owned(),
            hash: config.hash,
            origin: config.origin.clone(),
            created_unix_ns,
            leaf_hash_index: config.leaf_hash_index,
            keys: vec![KeyRecord {
                vkey: verifier.to_string(),
                from_size: 0,
            }],
        };
        meta.write(&*self.vfs, &tmp)?;
        Segment::create(
            &*self.vfs,
            &tmp.join("segments"),
            &display.join("segments"),
            0,
            config.hash,
        )?;
        self.vfs
            .sync_dir(&tmp.join("segments"))
            .map_err(|e| IoFailure::new(&display, "fsync", e))?;
        self.vfs
            .sync_dir(&tmp)
            .map_err(|e| IoFailure::new(&display, "fsync", e))?;
        self.vfs
            .rename(&tmp, &dir)
            .map_err(|e| IoFailure::new(&display, "rename", e))?;
        self.vfs
            .sync_dir(&ledgers)
            .map_err(|e| IoFailure::new("ledgers", "fsync", e))?;
        Ok(meta)
    }

    /// Opens a ledger for reading and appending, recovering it if it crashed.
    ///
    /// # Errors
    ///
    /// [`OpenError`] naming what is wrong: unknown ledger, a signing key that is not the
    /// ledger's, a ledger open elsewhere, corruption (file and offset), a newer format.
    pub fn open_ledger(
        &self,
        name: &str,
        signer: Signer,
        options: LedgerOptions,
    ) -> Result<Ledger, OpenError> {
        let options = LedgerOptions {
            vfs: self.vfs.clone(),
            ..options
        };
        crate::recovery::open_ledger(&self.root, &self.vfs, name, signer, &options)
    }
}
