//! Shared parts of Vouch's benchmarks.
//!
//! It holds workload generators shared by the criterion suites in `benches/benches/` and the
//! `storage-bench` and `baselines` binaries, and the peers the `baselines` binary compares
//! Vouch with ([`baseline`]). The load generator itself is `vouch bench`
//! (`vouch_server::cli::bench`).
#![forbid(unsafe_code)]

pub mod baseline;
pub mod workload;
