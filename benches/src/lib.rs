//! Shared parts of Vouch's benchmarks.
//!
//! It holds workload generators and reporting shared by the criterion suites in
//! `benches/benches/`, the `storage-bench` binary and the `vouch bench` load generator.
#![forbid(unsafe_code)]

pub mod workload;
