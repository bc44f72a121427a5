//! Vouch's policy query layer.
//!
//! It will hold: the policy bundle language (YAML/JSON) and its compiled IR, lint,
//! evaluation, overrides and exceptions, decision records, replay, simulation and decision
//! queries.
//!
//! **Architecture Invariant:** evaluation is a pure function of (compiled bundle, request);
//! this crate opens no files directly and reaches the ledger only through `vouch-storage`.
#![forbid(unsafe_code)]

pub mod bundle;
mod canonical;
pub mod cel_condition;
pub mod compiler;
pub mod document;
pub mod duration;
pub mod evaluation;
mod exception;
pub mod ir;
pub mod lint;
pub mod request;
mod window;
