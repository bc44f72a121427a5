//! Support code for Vouch's workspace-level integration tests.
//!
//! The tests live in `tests/tests/`: `server.rs` is one test binary that starts the real
//! server on `127.0.0.1:0` and drives it with the generated gRPC client; its helpers (start a
//! server, connect a client, verify proofs with ledger-core) are in `tests/tests/server/`.
#![forbid(unsafe_code)]
