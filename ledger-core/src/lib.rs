//! Vouch's data model and cryptographic core.
//!
//! This crate holds everything an auditor needs to check a Vouch ledger and nothing else:
//! the entry envelope (the byte-exact leaf encoding), RFC 6962/9162 Merkle hashing over
//! BLAKE3 or SHA-256, index math for proofs, proof assembly and verification, C2SP
//! tlog-checkpoints and C2SP signed notes with Ed25519.
//!
//! **Architecture Invariant:** this crate does no I/O and no async, and never panics on
//! bytes it did not produce itself.
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod entry;
pub mod hash;
pub mod index;
pub mod merkle;
pub mod note;
pub mod proof;

pub use checkpoint::{Checkpoint, CheckpointError, OpenCheckpointError, open_checkpoint};
pub use entry::{Entry, EntryDraft, EntryKind, EntryView, EnvelopeError, Timestamp};
pub use hash::{Hash, HashAlg};
pub use index::{EntryIndex, NodeId, TreeSize};
pub use merkle::{Frontier, MemoryTree, root_from_leaf_hashes};
pub use note::{KeyId, NoteError, Signer, VerifiedNote, Verifier, Verifiers};
pub use proof::{
    ConsistencyProof, InclusionProof, NodeSource, ProofPlan, VerifyError, verify_consistency,
    verify_inclusion,
};
