//! Errors of the storage engine, one enum per public operation.
//!
//! I/O failures, corruption, unsupported formats and a poisoned ledger are kept apart so a
//! caller (and the gRPC boundary) can answer each the right way. Corruption always names the
//! file, the byte offset where known, and what was wrong.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use vouch_ledger_core::entry::EnvelopeError;
use vouch_ledger_core::proof::ProofError;
use vouch_ledger_core::{EntryIndex, TreeSize};

/// Where corruption was found and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The file, relative to the data directory where possible.
    pub file: PathBuf,
    /// The byte offset within the file, when one applies.
    pub offset: Option<u64>,
    /// What was wrong, in words.
    pub reason: String,
}

impl Corruption {
    /// Corruption at a byte offset of a file.
    pub fn at(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            offset: Some(offset),
            reason: reason.into(),
        }
    }

    /// Corruption of a file as a whole.
    pub fn file(file: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            offset: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(off) => write!(f, "{} at byte {off}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

/// An I/O error with the file and the operation it happened in.
#[derive(Debug, Clone)]
pub struct IoFailure {
    /// The file or directory.
    pub path: PathBuf,
    /// The operation: "write", "fsync", "open", ...
    pub op: &'static str,
    /// The operating system's error, shared so that one failure can be reported to every
    /// caller of a group commit.
    pub source: Arc<io::Error>,
}

impl IoFailure {
    pub(crate) fn new(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        Self {
            path: path.into(),
            op,
            source: Arc::new(source),
        }
    }

    /// Whether the failure was the disk running out of space.
    pub fn is_disk_full(&self) -> bool {
        self.source.kind() == io::ErrorKind::StorageFull
            || self.source.raw_os_error() == Some(28 /* ENOSPC */)
    }
}

impl fmt::Display for IoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} failed: {}",
            self.op,
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for IoFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// Why a data directory or a ledger could not be opened or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] IoFailure),
    /// A file is corrupt.
    #[error("corrupted: {0}")]
    Corrupted(Corruption),
    /// A file was written by a newer (or unknown) format version.
    #[error(
        "{file}: format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedFormat {
        /// The file.
        file: PathBuf,
        /// The version found in the file.
        found: u64,
        /// The version this build supports.
        supported: u64,
    },
    /// A ledger name that is not allowed.
    #[error(
        "invalid ledger name {0:?}: use 1 to 64 of a-z, 0-9, '-', '_', '.', starting with a letter or digit"
    )]
    InvalidName(String),
    /// No ledger of that name.
    #[error("no ledger named {0:?}")]
    NotFound(String),
    /// A ledger of that name exists already.
    #[error("a ledger named {0:?} exists already")]
    AlreadyExists(String),
    /// Another process holds the ledger open.
    #[error("{0} is locked: the ledger is open in another process")]
    Locked(PathBuf),
    /// The signing key given does not belong to the ledger.
    #[error("the signing key's verifier key {given} is not the ledger's current key {expected}")]
    KeyMismatch {
        /// The ledger's current verifier key.
        expected: String,
        /// The verifier key of the signing key given.
        given: String,
    },
    /// The secondary index could not be opened or rebuilt.
    #[error("secondary index: {0}")]
    Index(String),
    /// Strict mode found an integrity error while verifying the ledger on open.
    #[error("verification on open failed: {0}")]
    Verify(#[from] crate::verify::VerifyError),
    /// The options are inconsistent.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
}

/// Why an append was refused. Nothing was appended.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The entry's fields break the envelope's rules.
    #[error("invalid entry: {0}")]
    InvalidEntry(#[from] EnvelopeError),
    /// The idempotency key was used before for an entry with other contents.
    #[error("idempotency key {key:?} was already used for entry {index} with different contents")]
    IdempotencyConflict {
        /// The key.
        key: String,
        /// The entry that holds it.
        index: EntryIndex,
    },
    /// A batch uses the same idempotency key twice.
    #[error("idempotency key {0:?} appears more than once in the batch")]
    DuplicateKeyInBatch(String),
    /// An empty batch.
    #[error("the batch is empty")]
    EmptyBatch,
    /// A batch over the engine's limit.
    #[error("the batch holds {got} entries; the limit is {limit}")]
    BatchTooLarge {
        /// Entries in the batch.
        got: usize,
        /// The limit.
        limit: usize,
    },
    /// An earlier write or fsync failed; the ledger refuses appends until reopened.
    #[error(
        "the ledger is poisoned and refuses appends until it is reopened (cause: {0}); reads still work"
    )]
    Poisoned(String),
    /// The write failed and was rolled back; the ledger keeps working.
    #[error("append failed and was rolled back: {0}")]
    Io(IoFailure),
    /// The entries were appended and acknowledged as durable, but the checkpoint the caller
    /// waited for could not be made. Appending them again with their idempotency keys
    /// returns them once a checkpoint can be made.
    #[error("the entries were appended, but no checkpoint could be made to cover them: {0}")]
    NoCheckpoint(CheckpointError),
    /// The ledger is closed.
    #[error("the ledger is closed")]
    Closed,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The index is not below the ledger's size.
    #[error("entry {index} does not exist: the ledger holds {size} entries")]
    OutOfRange {
        /// The index asked for.
        index: EntryIndex,
        /// The ledger's size.
        size: TreeSize,
    },
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] IoFailure),
    /// A file is corrupt.
    #[error("corrupted: {0}")]
    Corrupted(Corruption),
}

/// Why a proof could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProveError {
    /// The indexes or sizes asked for make no proof (for example an index beyond the size).
    #[error("{0}")]
    InvalidRequest(#[from] ProofError),
    /// A size beyond the ledger's current size.
    #[error("tree size {requested} is beyond the ledger's size {size}")]
    SizeBeyondLedger {
        /// The size asked for.
        requested: TreeSize,
        /// The ledger's size.
        size: TreeSize,
    },
    /// Reading the nodes or entries failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The proof did not verify against the trusted root before it left the engine.
    #[error("corrupted: {0}")]
    SelfCheck(Corruption),
}

/// Why a checkpoint could not be made.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The ledger is poisoned.
    #[error("the ledger is poisoned (cause: {0})")]
    Poisoned(String),
    /// Writing the checkpoint failed.
    #[error(transparent)]
    Io(IoFailure),
    /// The new checkpoint would not be consistent with the previous one (a corrupt node store).
    #[error("corrupted: {0}")]
    Inconsistent(Corruption),
    /// The ledger is closed.
    #[error("the ledger is closed")]
    Closed,
}
