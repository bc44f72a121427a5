//! The gRPC services of the `vouch.v1` package.
//!
//! Each service converts requests with [`crate::convert`], calls the storage engine or the
//! policy layer, and maps errors with [`crate::status`]. Authentication and
//! metrics are done once for all of them by [`crate::middleware`].

pub mod ledger;
pub mod policy;

pub use ledger::LedgerService;
pub use policy::PolicyService;
