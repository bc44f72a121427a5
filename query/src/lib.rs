//! Vouch's policy query layer: the policy bundle language, its compiled IR, lint and
//! evaluation, overrides and exceptions, and decision records.
//!
//! The flow is `SourceBundle::parse` (strict schema, located errors) → `SourceBundle::lint`
//! (findings with severity and location) → `compile` (IR, canonical bytes, `sha256:` hash, and
//! an execution plan) → `evaluate` (ALLOW, BLOCK or SKIPPED with sorted, structured reasons),
//! and `evaluate_override` for overrides of blocked decisions. `docs/policy.md` is the
//! language reference.
//!
//! ```
//! use vouch_query::{Format, Outcome, Request, SourceBundle, compile, evaluate};
//!
//! let bundle = SourceBundle::parse(
//!     "version: 1\nname: demo\nroles: [Security]\npolicies:\n  - id: prod\n    when: {environment: production}\n    require:\n      approvals: {min: 1, roles: {Security: 1}}\n",
//!     Format::Yaml,
//! )?;
//! let compiled = compile(&bundle)?;
//! let request = Request::from_json(br#"{"subject": "CHG-1", "environment": "production",
//!     "author": "alice", "now": "2025-06-03T10:00:00Z"}"#)?;
//! let evaluation = evaluate(&compiled, &request);
//! assert_eq!(evaluation.outcome, Outcome::Block);
//! assert_eq!(evaluation.reasons[0].message, "needs 1 more approval (1 required, 0 counted)");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Architecture Invariant:** evaluation is a pure function of (compiled bundle, request):
//! no clock, no I/O, no randomness, no dependence on hash-map iteration order. `now` and
//! every fact from the ledger (prior promotions, active exceptions) arrive in the request.
//! This crate opens no files and does not know about storage or gRPC.
#![forbid(unsafe_code)]

pub mod bundle;
mod canonical;
pub mod cel_condition;
pub mod compiler;
pub mod decision;
pub mod document;
pub mod duration;
pub mod evaluation;
mod exception;
pub mod governance;
pub mod ir;
pub mod lint;
pub mod overrides;
pub mod pack;
pub mod request;
mod window;

pub use bundle::{ParseErrors, SourceBundle};
pub use compiler::{CompileErrors, CompiledBundle, compile};
pub use decision::{DecisionRecord, RecordError, Replay};
pub use document::reader::FieldError;
pub use document::{Format, Loc};
pub use evaluation::{
    AppliedException, Evaluation, MatchedPolicy, Obligation, Outcome, PolicyStatus, Reason,
    evaluate,
};
pub use governance::{
    BundleRef, DecideOptions, DecisionQuery, DecisionRef, Governance, GovernanceTerms,
    SimulationOptions, SimulationScope,
};
pub use lint::{Finding, Severity};
pub use overrides::{OverrideOutcome, OverrideRequest, OverrideStatus, evaluate_override};
pub use request::{Context, ExceptionRecord, Request, RequestError};
