//! Integration tests of the gRPC server: the real server started with
//! `vouch_server::server::start` on `127.0.0.1:0` in a temporary data directory, driven with
//! the generated client.

#[path = "server/api.rs"]
mod api;
#[path = "server/auth.rs"]
mod auth;
#[path = "server/faults.rs"]
mod faults;
#[path = "server/hostile.rs"]
mod hostile;
#[path = "server/limits.rs"]
mod limits;
#[path = "server/nomutation.rs"]
mod nomutation;
#[path = "server/operations.rs"]
mod operations;
#[path = "server/pack.rs"]
mod pack;
#[path = "server/policy.rs"]
mod policy;
#[path = "server/raw.rs"]
mod raw;
/// The storage suite's fault-injecting file system, which the server can write through.
#[path = "../../storage/tests/support/mod.rs"]
mod storage_support;
#[path = "server/support.rs"]
mod support;
#[path = "server/tls.rs"]
mod tls;
