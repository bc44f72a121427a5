//! The errors of the ledger-facing operations: one enum per operation, each naming what is
//! wrong.

use vouch_ledger_core::EntryIndex;
use vouch_ledger_core::entry::{EntryKind, EnvelopeError};
use vouch_storage::{AppendError, ProveError, ReadError};

use super::record::EntryError;
use crate::bundle::ParseErrors;
use crate::compiler::CompileErrors;
use crate::request::RequestError;

/// How a bundle is named in a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BundleRef {
    /// By hash (`sha256:…`).
    Hash(String),
    /// The latest published bundle of this name.
    Name(String),
    /// The bundle entry at this ledger index.
    Index(EntryIndex),
}

impl std::fmt::Display for BundleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleRef::Hash(h) => write!(f, "bundle {h}"),
            BundleRef::Name(n) => write!(f, "bundle named {n:?}"),
            BundleRef::Index(i) => write!(f, "bundle at entry {i}"),
        }
    }
}

/// How a decision is named in a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DecisionRef {
    /// By id (`sha256:…`).
    Id(String),
    /// The decision entry at this ledger index.
    Index(EntryIndex),
}

impl std::fmt::Display for DecisionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecisionRef::Id(id) => write!(f, "decision {id}"),
            DecisionRef::Index(i) => write!(f, "decision at entry {i}"),
        }
    }
}

/// Why an entry could not be used as the record it should be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEntry {
    /// The entry is of another kind.
    #[error("entry {index} is a {found} entry, not a {expected} entry")]
    Kind {
        /// The entry.
        index: EntryIndex,
        /// The kind needed.
        expected: EntryKind,
        /// The kind found.
        found: EntryKind,
    },
    /// The payload is not a valid record.
    #[error("entry {index}: {source}")]
    Payload {
        /// The entry.
        index: EntryIndex,
        /// Why.
        source: EntryError,
    },
    /// A bundle entry whose source does not compile to its recorded hash.
    #[error("entry {index}: the bundle source {reason}")]
    Bundle {
        /// The entry.
        index: EntryIndex,
        /// Why.
        reason: String,
    },
}

/// Why a bundle could not be resolved (`GetBundle`, and the bundle of a decision).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// No published bundle matches.
    #[error("no {0} was published in this ledger")]
    NotFound(BundleRef),
    /// The entry found is not a valid bundle entry.
    #[error(transparent)]
    Invalid(#[from] InvalidEntry),
    /// The ledger could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Why bundles could not be listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListBundlesError {
    /// The ledger could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Why a bundle could not be published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The text does not follow the bundle schema.
    #[error("{0}")]
    Parse(#[from] ParseErrors),
    /// The bundle has lint errors.
    #[error("{0}")]
    Compile(#[from] CompileErrors),
    /// The bundle's idempotency key is held by an entry that is not this bundle.
    #[error("idempotency key {key:?} is held by entry {index}, which is not this bundle")]
    KeyTaken {
        /// The key.
        key: String,
        /// The entry holding it.
        index: EntryIndex,
    },
    /// The entry could not be built (the source is too large for an entry).
    #[error("the bundle cannot be stored: {0}")]
    Entry(EnvelopeError),
    /// The ledger refused the append.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// The ledger could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The inclusion proof could not be made.
    #[error(transparent)]
    Prove(#[from] ProveError),
}

/// Why a request could not be evaluated (`Evaluate`, a dry run).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvaluateError {
    /// The request does not follow the request schema.
    #[error("{0}")]
    Request(#[from] RequestError),
    /// The bundle could not be resolved.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The request with the injected context is larger than a request may be.
    #[error(
        "the request snapshot with its context is {size} bytes, more than the {max} a request may have"
    )]
    SnapshotTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The ledger could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Why a decision could not be made and recorded (`Decide`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecideError {
    /// The request does not follow the request schema.
    #[error("{0}")]
    Request(#[from] RequestError),
    /// The bundle could not be resolved.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The request with the injected context is larger than a request may be.
    #[error(
        "the request snapshot with its context is {size} bytes, more than the {max} a request may have"
    )]
    SnapshotTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The idempotency key is not a valid key.
    #[error("idempotency key: {0}")]
    InvalidKey(EnvelopeError),
    /// The idempotency key was used before for another request or bundle.
    #[error(
        "idempotency key {key:?} was used by entry {index} for another request; a retry must send the same request"
    )]
    KeyConflict {
        /// The key.
        key: String,
        /// The entry holding it.
        index: EntryIndex,
    },
    /// The ledger refused the append.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// The ledger could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// An entry that should hold the original decision is not one.
    #[error(transparent)]
    Invalid(#[from] InvalidEntry),
    /// The inclusion proof could not be made.
    #[error(transparent)]
    Prove(#[from] ProveError),
}

/// Why a recorded decision could not be read (`GetDecision`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetDecisionError {
    /// No decision has that id, or the index is beyond the ledger.
    #[error("no {0} is recorded in this ledger")]
    NotFound(DecisionRef),
    /// The entry is not a valid decision entry, or its record does not match its id.
    #[error(transparent)]
    Invalid(#[from] InvalidEntry),
    /// The ledger could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The inclusion proof could not be made.
    #[error(transparent)]
    Prove(#[from] ProveError),
}

/// Why an override could not be recorded (`RecordOverride`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OverrideError {
    /// The override request does not follow its schema.
    #[error("{0}")]
    Request(#[from] RequestError),
    /// The decision it names could not be found or read.
    #[error(transparent)]
    Decision(#[from] GetDecisionError),
    /// The decision's bundle could not be loaded.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The idempotency key is not a valid key.
    #[error("idempotency_key: {0}")]
    InvalidKey(EnvelopeError),
    /// The idempotency key was used before for another override request.
    #[error(
        "idempotency key {key:?} was used by entry {index} for another request; a retry must send the same override request"
    )]
    KeyConflict {
        /// The key.
        key: String,
        /// The entry holding it.
        index: EntryIndex,
    },
    /// The ledger refused the append.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// The ledger could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The inclusion proof could not be made.
    #[error(transparent)]
    Prove(#[from] ProveError),
}

/// Why an exception could not be recorded (`RecordException`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExceptionError {
    /// The exception does not follow its schema.
    #[error("{0}")]
    Request(#[from] RequestError),
    /// The id cannot be an idempotency key.
    #[error("id: {0}")]
    InvalidId(EnvelopeError),
    /// An exception with this id was recorded before with other contents.
    #[error(
        "exception {id:?} was recorded before at entry {index} with other contents; exceptions are immutable, record a new one with a new id"
    )]
    Conflict {
        /// The id.
        id: String,
        /// The entry holding it.
        index: EntryIndex,
    },
    /// The ledger refused the append.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// The ledger could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The inclusion proof could not be made.
    #[error(transparent)]
    Prove(#[from] ProveError),
}

/// Why a decision could not be replayed (`Replay`). Differences are not errors: they are
/// reported in the replay report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// No decision has that id, or the index is beyond the ledger.
    #[error("no {0} is recorded in this ledger")]
    NotFound(DecisionRef),
    /// The entry is not a decision entry, or its payload cannot be read at all.
    #[error(transparent)]
    Invalid(#[from] InvalidEntry),
    /// The ledger could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Why a simulation could not run (`Simulate`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulateError {
    /// The candidate text does not follow the bundle schema.
    #[error("{0}")]
    Parse(#[from] ParseErrors),
    /// The candidate has lint errors.
    #[error("{0}")]
    Compile(#[from] CompileErrors),
    /// The range is empty or reversed, or asks for nothing.
    #[error("{0}")]
    InvalidRange(String),
    /// The range holds more decisions than one simulation evaluates.
    #[error(
        "the range holds {found} decisions; a simulation evaluates at most {max}: narrow the range"
    )]
    TooManyDecisions {
        /// Decisions in the range.
        found: u64,
        /// The limit.
        max: u64,
    },
    /// The ledger could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Why a decision query could not be answered (`QueryDecisions`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The time range is reversed.
    #[error("{0}")]
    InvalidRange(String),
    /// A decision entry found is not a valid decision.
    #[error(transparent)]
    Invalid(#[from] InvalidEntry),
    /// The ledger could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// An inclusion proof could not be made.
    #[error(transparent)]
    Prove(#[from] ProveError),
}
