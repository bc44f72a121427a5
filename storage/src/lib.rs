//! Vouch's purpose-built append-only storage engine.
//!
//! It will hold: segment files with checksummed frames, the single per-ledger sequencer with
//! group commit, the Merkle node store and offsets file, the checkpoint file, crash recovery
//! and the rebuildable secondary indexes.
//!
//! **Architecture Invariant:** storage knows nothing of policies or gRPC; the log is the
//! single source of truth and everything else it keeps can be rebuilt from it.
