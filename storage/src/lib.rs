//! Vouch's purpose-built append-only storage engine.
//!
//! A [`DataDir`] holds named ledgers. Each [`Ledger`] is an append-only log of entry
//! envelopes in checksummed segment files, a Merkle node store and an offsets file derived
//! from it, signed checkpoints in their own file, and secondary indexes in sled. One
//! sequencer thread per ledger commits appends in groups (write, fsync, acknowledge); reads
//! and proofs run concurrently. The formats and the crash analysis are in `docs/format.md`.
//!
//! **Architecture Invariant:** storage knows nothing of policies or gRPC; the segment files
//! are the single source of truth and everything else it keeps can be rebuilt from them.
//!
//! **Architecture Invariant:** an entry is acknowledged only after its bytes are durable (in
//! the default durability mode), and recovery never truncates anything but the active
//! segment's torn tail.

mod checkpoints;
mod datadir;
pub mod error;
mod frame;
mod head;
pub mod leafidx;
mod ledger;
mod mapped;
mod meta;
mod recovery;
mod segment;
mod sequencer;
pub mod stats;
pub mod terms;
mod tree;
pub mod verify;
pub mod vfs;

pub use checkpoints::StoredCheckpoint;
pub use datadir::{DataDir, LedgerConfig};
pub use error::{
    AppendError, CheckpointError, Corruption, IoFailure, OpenError, ProveError, ReadError,
};
pub use leafidx::LeafIndexStatus;
pub use ledger::{
    AppendOutcome, AppendTicket, CheckpointCadence, Clock, Durability, Ledger, LedgerOptions,
    Receipt, SystemClock,
};
pub use meta::{KeyRecord, LedgerMeta, valid_ledger_name};
pub use stats::{LedgerStats, StatsSnapshot};
pub use terms::{NoTerms, Term, TermExtractor};
pub use verify::{VerifyError, VerifyProgress, VerifyReport, verify_ledger_dir};
