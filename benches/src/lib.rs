//! Shared parts of Vouch's benchmarks.
//!
//! It will hold: workload generators and reporting shared by the criterion suites in
//! `benches/benches/` and the `vouch bench` load generator.
#![forbid(unsafe_code)]
