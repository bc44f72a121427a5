//! Support code for Vouch's workspace-level integration tests.
//!
//! It will hold: helpers that start the real `vouch` server on `127.0.0.1:0` and connect the
//! generated gRPC client; the tests themselves live in `tests/tests/`.
#![forbid(unsafe_code)]
