//! Vouch's gRPC server and command-line tool.
//!
//! The `vouch.v1` tonic services, authentication, configuration, metrics, and the `vouch`
//! binary's subcommands (server, client, offline verification, benchmarks).
//!
//! **Architecture Invariant:** only this crate knows tonic and protobuf; it converts to and
//! from the library crates' types at its boundary, and maps their errors to gRPC status codes
//! in one place.
#![forbid(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod connection;
pub mod convert;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod middleware;
pub mod proof_file;
pub mod proto;
pub mod registry;
pub mod server;
pub mod service;
pub mod status;
