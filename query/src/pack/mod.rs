//! Proof packs: one recorded decision with everything an auditor needs to check it offline.
//!
//! A `vouch.proof-pack.v1` document (specified byte for byte in `docs/proofs.md`, "Proof
//! packs") holds the exact envelope bytes of a decision entry, of the policy bundle entry it
//! was made with, of the exception entries in its request snapshot's context and of the
//! override entries recorded for it; each entry's inclusion proof against one signed
//! checkpoint; that checkpoint's note; a consistency proof from it to the latest checkpoint
//! and the latest checkpoint's note; and the ledger's verifier keys (listed for reference,
//! never trusted).
//!
//! [`ProofPack::parse`] reads a document strictly and [`ProofPack::to_json`] writes one;
//! [`verify`] checks a pack against the verifier keys the auditor trusts and stops at the
//! first check that fails, naming it ([`PackCheck`]). Every member of a pack is either checked
//! against signed data or rebuilt from it: nothing in a pack is taken on trust except the keys
//! the caller passes. `Governance::export_pack` assembles packs from a ledger.
//!
//! This module does no I/O: the CLI reads the file, a fuzz target can feed it bytes.

mod document;
mod verify;

use vouch_ledger_core::note::Verifier;
use vouch_ledger_core::{EntryIndex, Hash, HashAlg};

pub use document::PackFormatError;
pub use verify::{
    Check, CheckFailure, PackCheck, SignedCheckpoint, VerifiedOverride, VerifiedPack, verify,
};

/// The `format` of a proof pack.
pub const FORMAT: &str = "vouch.proof-pack.v1";
/// The largest proof pack document read or written: 32 MiB.
pub const MAX_PACK_BYTES: usize = 32 << 20;
/// The most override entries a pack holds.
pub const MAX_PACK_OVERRIDES: usize = 256;
/// The most exception entries a pack holds: as many as a request's context may carry.
pub const MAX_PACK_EXCEPTIONS: usize = crate::request::limits::MAX_EXCEPTIONS;
/// The most verifier keys a pack lists.
pub const MAX_VERIFIER_KEYS: usize = 16;
/// The longest inclusion path read: a tree of fewer than 2^64 entries needs at most 64.
pub const MAX_INCLUSION_PATH: usize = 64;
/// The longest consistency path read.
pub const MAX_CONSISTENCY_PATH: usize = 128;
/// The longest checkpoint note read, as the storage engine's limit.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

/// One ledger entry in a pack: its exact envelope bytes and its inclusion proof against the
/// pack's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackEntry {
    /// The entry's index.
    pub index: EntryIndex,
    /// Its leaf hash, `H(0x00 ‖ leaf_bytes)`.
    pub leaf_hash: Hash,
    /// The exact v1 envelope.
    pub leaf_bytes: Vec<u8>,
    /// The RFC 9162 inclusion path, leaf to root, in the tree of the pack's checkpoint.
    pub inclusion_path: Vec<Hash>,
}

/// A `vouch.proof-pack.v1` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPack {
    /// The ledger's checkpoint origin.
    pub origin: String,
    /// The ledger's hash function.
    pub hash: HashAlg,
    /// The decision id: `sha256:` of the decision record's canonical JSON.
    pub decision_id: String,
    /// The request snapshot, context included, as canonical JSON: a readable copy of the one
    /// inside the decision record.
    pub request: Vec<u8>,
    /// The decision entry.
    pub decision: PackEntry,
    /// The policy bundle entry the decision was made with.
    pub bundle: PackEntry,
    /// The exception entries of the snapshot's `context.exceptions`, by index.
    pub exceptions: Vec<PackEntry>,
    /// The override entries recorded for the decision within the checkpoint, by index.
    pub overrides: Vec<PackEntry>,
    /// The signed checkpoint note every inclusion proof leads to.
    pub checkpoint: String,
    /// The latest signed checkpoint note when the pack was made.
    pub latest_checkpoint: String,
    /// The RFC 9162 consistency path from `checkpoint` to `latest_checkpoint`.
    pub consistency_path: Vec<Hash>,
    /// The keys that signed the two checkpoints, for reference only.
    pub verifier_keys: Vec<Verifier>,
}
