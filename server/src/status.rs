//! The one place where errors become gRPC statuses.
//!
//! | code | when |
//! | --- | --- |
//! | `INVALID_ARGUMENT` | a malformed request; the message names the field (`entry.payload`, `entries[3].idempotency_key`, `leaf_hash`, `old_size`), or the limit and the value for limits |
//! | `NOT_FOUND` | no such ledger, no checkpoint at that size, no entry with that leaf hash |
//! | `ALREADY_EXISTS` | a ledger name taken; an idempotency key used before for other contents |
//! | `OUT_OF_RANGE` | an index or tree size beyond the ledger's current size (may succeed later) |
//! | `FAILED_PRECONDITION` | a poisoned ledger (refuses appends until restarted), a ledger without the leaf-hash index, no checkpoint signed yet |
//! | `RESOURCE_EXHAUSTED` | a request message over `limits.max_message_bytes`, too many open streams, a full disk |
//! | `UNAVAILABLE` | the server is shutting down or the ledger is closed; a write that failed and was rolled back (retry with the same idempotency key) |
//! | `DATA_LOSS` | corruption found on disk; the message names the file and byte offset |
//! | `INTERNAL` | anything else (an I/O error on a read, a failed task); logged with details |
//!
//! The policy service's errors follow the same table: a bundle source, request, override or
//! exception that does not follow its schema is `INVALID_ARGUMENT` naming the field and every
//! error with its line and column; an unknown bundle or decision is `NOT_FOUND`; an
//! idempotency key or exception id used before for other contents is `ALREADY_EXISTS`; an
//! entry of the policy layer that cannot be read as its record (written around the policy
//! layer) is `FAILED_PRECONDITION`.
//!
//! Authentication errors (`UNAUTHENTICATED`, `PERMISSION_DENIED`) come from [`crate::auth`].

use tonic::Status;
use vouch_ledger_core::entry::EnvelopeError;
use vouch_ledger_core::proof::ProofError;
use vouch_storage::{
    AppendError, CheckpointError, Corruption, IoFailure, OpenError, ProveError, ReadError,
};

use vouch_query::governance::{
    BundleError, DecideError, EvaluateError, ExceptionError, ExportPackError, GetDecisionError,
    InvalidEntry, ListBundlesError, OverrideError, PublishError, QueryError, ReplayError,
    SimulateError,
};
use vouch_query::{CompileErrors, ParseErrors, RequestError};

use crate::registry::{CreateError, LookupError};

/// A conversion to the gRPC status a client sees.
pub trait IntoStatus {
    /// The status, with a message that says what went wrong and, for bad input, which field.
    fn into_status(self) -> Status;
}

/// A malformed request field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InputError {
    /// The field path in the request, such as `entries[2].payload`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl InputError {
    /// A bad field.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl IntoStatus for InputError {
    fn into_status(self) -> Status {
        Status::invalid_argument(self.to_string())
    }
}

/// A request over a configured limit: `INVALID_ARGUMENT` naming the field, the limit's
/// configuration key, its value and the request's value.
pub fn over_limit(field: &str, limit: &str, max: usize, got: usize) -> Status {
    Status::invalid_argument(format!(
        "{field}: {got} is over the server's limit {limit} = {max}"
    ))
}

/// Too many streaming calls open on the server.
pub fn too_many_streams(max: usize) -> Status {
    Status::resource_exhausted(format!(
        "too many open streams: the server's limit limits.max_open_streams = {max} is reached; retry later"
    ))
}

/// The server is shutting down.
pub fn shutting_down() -> Status {
    Status::unavailable("the server is shutting down")
}

/// A background task failed (a panic in a blocking read).
pub fn task_failed(e: &tokio::task::JoinError) -> Status {
    tracing::error!(error = %e, "request task failed");
    Status::internal(format!("request task failed: {e}"))
}

fn data_loss(c: &Corruption) -> Status {
    tracing::error!(corruption = %c, "corruption detected while serving a request");
    Status::data_loss(format!(
        "corrupted: {c}; run `vouch verify-ledger` and restore from backup if it fails"
    ))
}

fn io_internal(e: &IoFailure) -> Status {
    if e.is_disk_full() {
        tracing::error!(error = %e, "disk full");
        return Status::resource_exhausted(format!("disk full: {e}"));
    }
    tracing::error!(error = %e, "I/O error");
    Status::internal(e.to_string())
}

fn envelope_field(e: &EnvelopeError) -> &'static str {
    match e {
        EnvelopeError::EmptyIdempotencyKey
        | EnvelopeError::IdempotencyKeyTooLong(_)
        | EnvelopeError::IdempotencyKeyNotUtf8(_)
        | EnvelopeError::IdempotencyKeyControl { .. } => "idempotency_key",
        EnvelopeError::ContentTypeTooLong(_) | EnvelopeError::ContentTypeNotPrintable { .. } => {
            "content_type"
        }
        EnvelopeError::PayloadTooLarge(_) => "payload",
        _ => "entry",
    }
}

/// The input error for an entry field that breaks an envelope rule; `prefix` is the entry's
/// path in the request (`entry`, `entries[3]`).
pub fn envelope_input(prefix: &str, e: &EnvelopeError) -> InputError {
    InputError::new(format!("{prefix}.{}", envelope_field(e)), e.to_string())
}

impl IntoStatus for AppendError {
    fn into_status(self) -> Status {
        match self {
            AppendError::InvalidEntry(e) => envelope_input("entry", &e).into_status(),
            AppendError::IdempotencyConflict { .. } => Status::already_exists(self.to_string()),
            AppendError::DuplicateKeyInBatch(_) => {
                Status::invalid_argument(format!("entries: {self}"))
            }
            AppendError::EmptyBatch => {
                Status::invalid_argument("entries: the batch is empty; send at least one entry")
            }
            AppendError::BatchTooLarge { got, limit } => {
                over_limit("entries", "limits.max_batch_entries", limit, got)
            }
            AppendError::Poisoned(_) => {
                tracing::error!(error = %self, "append refused: ledger poisoned");
                Status::failed_precondition(format!(
                    "{self}; restart the server after fixing the cause"
                ))
            }
            AppendError::Io(e) if e.is_disk_full() => {
                tracing::error!(error = %e, "disk full: append rolled back");
                Status::resource_exhausted(format!(
                    "disk full: {e}; the append was rolled back: retry with the same idempotency key once there is space"
                ))
            }
            AppendError::Io(e) => {
                tracing::error!(error = %e, "append rolled back");
                Status::unavailable(format!(
                    "append failed and was rolled back ({e}); retry with the same idempotency key"
                ))
            }
            AppendError::Closed => {
                Status::unavailable("the ledger is closed: the server is shutting down")
            }
            AppendError::NoCheckpoint(ref e) => {
                let code = e.clone().into_status().code();
                Status::new(
                    code,
                    format!(
                        "{self}; append the same entries again with their idempotency keys to get them with a checkpoint"
                    ),
                )
            }
            other => {
                tracing::error!(error = %other, "append failed");
                Status::internal(other.to_string())
            }
        }
    }
}

impl IntoStatus for ReadError {
    fn into_status(self) -> Status {
        match self {
            ReadError::OutOfRange { index, size } => Status::out_of_range(format!(
                "index: entry {index} does not exist yet; the ledger holds {size} entries"
            )),
            ReadError::Io(e) => io_internal(&e),
            ReadError::Corrupted(c) => data_loss(&c),
            other => {
                tracing::error!(error = %other, "read failed");
                Status::internal(other.to_string())
            }
        }
    }
}

impl IntoStatus for ProveError {
    fn into_status(self) -> Status {
        match self {
            ProveError::InvalidRequest(e) => {
                let field = match e {
                    ProofError::IndexOutOfRange { .. } => "index",
                    _ => "old_size",
                };
                Status::invalid_argument(format!("{field}: {e}"))
            }
            ProveError::SizeBeyondLedger { requested, size } => Status::out_of_range(format!(
                "tree_size: {requested} is beyond the ledger's size {size}"
            )),
            ProveError::Read(r) => r.into_status(),
            ProveError::SelfCheck(c) => data_loss(&c),
            other => {
                tracing::error!(error = %other, "proof failed");
                Status::internal(other.to_string())
            }
        }
    }
}

impl IntoStatus for CheckpointError {
    fn into_status(self) -> Status {
        match self {
            CheckpointError::Poisoned(_) => Status::failed_precondition(format!(
                "{self}; restart the server after fixing the cause"
            )),
            CheckpointError::Io(e) => io_internal(&e),
            CheckpointError::Inconsistent(c) => data_loss(&c),
            CheckpointError::Closed => {
                Status::unavailable("the ledger is closed: the server is shutting down")
            }
            other => Status::internal(other.to_string()),
        }
    }
}

impl IntoStatus for LookupError {
    fn into_status(self) -> Status {
        match self {
            LookupError::InvalidName(_) => Status::invalid_argument(format!("ledger: {self}")),
            LookupError::NotFound(_) => {
                Status::not_found(format!("ledger: {self}; ListLedgers shows the ledgers"))
            }
        }
    }
}

impl IntoStatus for CreateError {
    fn into_status(self) -> Status {
        match self {
            CreateError::InvalidName(_) => Status::invalid_argument(format!("name: {self}")),
            CreateError::InvalidOrigin(_) => Status::invalid_argument(format!("origin: {self}")),
            CreateError::AlreadyExists(_) => Status::already_exists(format!("name: {self}")),
            CreateError::Storage(OpenError::Corrupted(c)) => data_loss(&c),
            CreateError::Storage(OpenError::Io(e)) => io_internal(&e),
            other => {
                tracing::error!(error = %other, "creating a ledger failed");
                Status::internal(other.to_string())
            }
        }
    }
}

/// `INVALID_ARGUMENT` for a bundle source that does not parse, with every error located.
fn parse_errors(field: &str, e: &ParseErrors) -> Status {
    Status::invalid_argument(format!("{field}: the bundle does not parse:\n{e}"))
}

/// `INVALID_ARGUMENT` for a bundle with lint errors, with every error located.
fn compile_errors(field: &str, e: &CompileErrors) -> Status {
    Status::invalid_argument(format!(
        "{field}: the bundle has lint errors (see LintBundle):\n{e}"
    ))
}

/// `INVALID_ARGUMENT` for a body that does not follow its schema, with every error located.
fn request_error(field: &str, e: &RequestError) -> Status {
    Status::invalid_argument(format!("{field}: {e}"))
}

/// `FAILED_PRECONDITION` for an entry that is not the record it should be.
fn invalid_entry(e: &InvalidEntry) -> Status {
    tracing::error!(error = %e, "a policy-layer entry cannot be read as its record");
    Status::failed_precondition(format!(
        "{e}; the entry was not written by the policy service (replay the decisions that use it to see the differences)"
    ))
}

impl IntoStatus for BundleError {
    fn into_status(self) -> Status {
        match self {
            BundleError::NotFound(_) => Status::not_found(format!("bundle: {self}")),
            BundleError::Invalid(e) => invalid_entry(&e),
            BundleError::Read(e) => e.into_status(),
            other => Status::internal(other.to_string()),
        }
    }
}

impl IntoStatus for ListBundlesError {
    fn into_status(self) -> Status {
        match self {
            ListBundlesError::Read(e) => e.into_status(),
            other => Status::internal(other.to_string()),
        }
    }
}

impl IntoStatus for PublishError {
    fn into_status(self) -> Status {
        match self {
            PublishError::Parse(e) => parse_errors("source", &e),
            PublishError::Compile(e) => compile_errors("source", &e),
            PublishError::KeyTaken { .. } => Status::already_exists(self.to_string()),
            PublishError::Entry(_) => Status::invalid_argument(format!("source: {self}")),
            PublishError::Append(e) => e.into_status(),
            PublishError::Read(e) => e.into_status(),
            PublishError::Prove(e) => e.into_status(),
            other => Status::internal(other.to_string()),
        }
    }
}

impl IntoStatus for EvaluateError {
    fn into_status(self) -> Status {
        match self {
            EvaluateError::Request(e) => request_error("request_json", &e),
            EvaluateError::Bundle(e) => e.into_status(),
            EvaluateError::SnapshotTooLarge { .. } => {
                Status::invalid_argument(format!("request_json: {self}"))
            }
            EvaluateError::Read(e) => e.into_status(),
            other => Status::internal(other.to_string()),
        }
    }
}

impl IntoStatus for DecideError {
    fn into_status(self) -> Status {
        match self {
            DecideError::Request(e) => request_error("request_json", &e),
            DecideError::Bundle(e) => e.into_status(),
            DecideError::SnapshotTooLarge { .. } => {
                Status::invalid_argument(format!("request_json: {self}"))
            }
            DecideError::InvalidKey(_) => Status::invalid_argument(self.to_string()),
            DecideError::KeyConflict { .. } => {
                Status::already_exists(format!("idempotency_key: {self}"))
            }
            DecideError::Append(e) => e.into_status(),
            DecideError::Read(e) => e.into_status(),
            DecideError::Invalid(e) => invalid_entry(&e),
            DecideError::Prove(e) => e.into_status(),
            other => Status::internal(other.to_string()),
        }
    }
}

impl IntoStatus for GetDecisionError {
    fn into_status(self) -> Status {
        match self {
            GetDecisionError::NotFound(_) => Status::not_found(format!("decision: {self}")),
            GetDecisionError::Invalid(e) => invalid_entry(&e),
            GetDecisionError::Read(e) => e.into_status(),
            GetDecisionError::Prove(e) => e.into_status(),
            other => Status::internal(other.to_string()),
        }
    }
}

impl IntoStatus for OverrideError {
    fn into_status(self) -> Status {
        match self {
            OverrideError::Request(e) => request_error("override_json", &e),
            OverrideError::Decision(GetDecisionError::NotFound(_)) => {
                Status::not_found(format!("override_json.decision: {self}"))
            }
            OverrideError::Decision(e) => e.into_status(),
            OverrideError::Bundle(e) => e.into_status(),
            OverrideError::InvalidKey(_) => {
                Status::invalid_argument(format!("override_json.{self}"))
            }
            OverrideError::KeyConflict { .. } => {
                Status::already_exists(format!("override_json.idempotency_key: {self}"))
            }
            OverrideError::Append(e) => e.into_status(),
            OverrideError::Read(e) => e.into_status(),
            OverrideError::Prove(e) => e.into_status(),
            other => Status::internal(other.to_string()),
        }
    }
}

impl IntoStatus for ExceptionError {
    fn into_status(self) -> Status {
        match self {
            ExceptionError::Request(e) => request_error("exception_json", &e),
            ExceptionError::InvalidId(_) => {
                Status::invalid_argument(format!("exception_json.{self}"))
            }
            ExceptionError::Conflict { .. } => {
                Status::already_exists(format!("exception_json.id: {self}"))
            }
            ExceptionError::Append(e) => e.into_status(),
            ExceptionError::Read(e) => e.into_status(),
            ExceptionError::Prove(e) => e.into_status(),
            other => Status::internal(other.to_string()),
        }
    }
}

impl IntoStatus for ReplayError {
    fn into_status(self) -> Status {
        match self {
            ReplayError::NotFound(_) => Status::not_found(format!("decision: {self}")),
            ReplayError::Invalid(e) => invalid_entry(&e),
            ReplayError::Read(e) => e.into_status(),
            other => Status::internal(other.to_string()),
        }
    }
}

impl IntoStatus for SimulateError {
    fn into_status(self) -> Status {
        match self {
            SimulateError::Parse(e) => parse_errors("source", &e),
            SimulateError::Compile(e) => compile_errors("source", &e),
            SimulateError::InvalidRange(_) | SimulateError::TooManyDecisions { .. } => {
                Status::invalid_argument(self.to_string())
            }
            SimulateError::Read(e) => e.into_status(),
            other => Status::internal(other.to_string()),
        }
    }
}

impl IntoStatus for ExportPackError {
    fn into_status(self) -> Status {
        match self {
            ExportPackError::NotFound(_) => Status::not_found(format!("decision: {self}")),
            ExportPackError::Invalid(e) => invalid_entry(&e),
            ExportPackError::ContextException { .. } => {
                tracing::error!(error = %self, "a decision's context cannot be exported");
                Status::failed_precondition(self.to_string())
            }
            ExportPackError::SizeBeyondLedger { .. } => {
                Status::out_of_range(format!("tree_size: {self}"))
            }
            ExportPackError::NoCheckpointAt(_) => Status::not_found(format!("tree_size: {self}")),
            ExportPackError::CheckpointTooOld { .. } => {
                Status::invalid_argument(format!("tree_size: {self}"))
            }
            ExportPackError::TooManyOverrides { .. } | ExportPackError::TooLarge { .. } => {
                Status::failed_precondition(self.to_string())
            }
            ExportPackError::SelfCheck(_) => {
                tracing::error!(error = %self, "an exported proof pack does not verify");
                Status::failed_precondition(format!(
                    "{self}; the entries were not all written by the policy service (see `vouch replay` of the decision and `vouch verify-ledger`)"
                ))
            }
            ExportPackError::Checkpoint(e) => e.into_status(),
            ExportPackError::Read(e) => e.into_status(),
            ExportPackError::Prove(e) => e.into_status(),
            other => Status::internal(other.to_string()),
        }
    }
}

impl IntoStatus for QueryError {
    fn into_status(self) -> Status {
        match self {
            QueryError::InvalidRange(_) => Status::invalid_argument(self.to_string()),
            QueryError::Invalid(e) => invalid_entry(&e),
            QueryError::Read(e) => e.into_status(),
            QueryError::Prove(e) => e.into_status(),
            other => Status::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;
    use vouch_ledger_core::{EntryIndex, TreeSize};

    use super::*;

    #[test]
    fn codes_follow_the_table() {
        let cases = [
            (AppendError::EmptyBatch.into_status(), Code::InvalidArgument),
            (
                AppendError::Poisoned("fsync failed".into()).into_status(),
                Code::FailedPrecondition,
            ),
            (AppendError::Closed.into_status(), Code::Unavailable),
            (
                AppendError::NoCheckpoint(CheckpointError::Poisoned("fsync failed".into()))
                    .into_status(),
                Code::FailedPrecondition,
            ),
            (
                AppendError::IdempotencyConflict {
                    key: "k".into(),
                    index: EntryIndex(3),
                }
                .into_status(),
                Code::AlreadyExists,
            ),
            (
                ReadError::OutOfRange {
                    index: EntryIndex(9),
                    size: TreeSize(3),
                }
                .into_status(),
                Code::OutOfRange,
            ),
            (
                ReadError::Corrupted(Corruption::at("segments/0.seg", 77, "bad crc")).into_status(),
                Code::DataLoss,
            ),
            (
                ProveError::InvalidRequest(ProofError::OldSizeZero).into_status(),
                Code::InvalidArgument,
            ),
            (
                LookupError::NotFound("x".into()).into_status(),
                Code::NotFound,
            ),
            (
                CreateError::AlreadyExists("x".into()).into_status(),
                Code::AlreadyExists,
            ),
        ];
        for (status, code) in cases {
            assert_eq!(status.code(), code, "{}", status.message());
        }
    }

    #[test]
    fn policy_errors_follow_the_table() {
        use vouch_query::governance::{BundleRef, DecisionRef};
        let key = DecideError::KeyConflict {
            key: "k".into(),
            index: EntryIndex(4),
        }
        .into_status();
        assert_eq!(key.code(), Code::AlreadyExists);
        assert!(
            key.message().starts_with("idempotency_key:"),
            "{}",
            key.message()
        );
        let missing = BundleError::NotFound(BundleRef::Name("x".into())).into_status();
        assert_eq!(missing.code(), Code::NotFound);
        let missing = ReplayError::NotFound(DecisionRef::Index(EntryIndex(9))).into_status();
        assert_eq!(missing.code(), Code::NotFound);
        let parse = vouch_query::SourceBundle::parse(
            "version: 1\nname: x\npolicies: 3\n",
            vouch_query::Format::Yaml,
        )
        .unwrap_err();
        let s = PublishError::Parse(parse).into_status();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(
            s.message().starts_with("source: the bundle does not parse"),
            "{}",
            s.message()
        );
        assert!(
            s.message().contains("(line 3, column 11)"),
            "{}",
            s.message()
        );
        let request = vouch_query::Request::from_json(b"{}").unwrap_err();
        let s = DecideError::Request(request).into_status();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().starts_with("request_json: "), "{}", s.message());
        let s = ExceptionError::Conflict {
            id: "E".into(),
            index: EntryIndex(1),
        }
        .into_status();
        assert_eq!(s.code(), Code::AlreadyExists);
        let s = QueryError::InvalidRange("since after until".into()).into_status();
        assert_eq!(s.code(), Code::InvalidArgument);
    }

    #[test]
    fn corruption_names_file_and_offset() {
        let s = ReadError::Corrupted(Corruption::at("segments/0.seg", 77, "bad crc")).into_status();
        assert!(
            s.message().contains("segments/0.seg at byte 77"),
            "{}",
            s.message()
        );
    }

    #[test]
    fn limits_name_the_limit_and_values() {
        let s = AppendError::BatchTooLarge { got: 11, limit: 10 }.into_status();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(
            s.message().contains("limits.max_batch_entries = 10"),
            "{}",
            s.message()
        );
        assert!(s.message().contains("11"), "{}", s.message());
    }
}
