//! The change or release request that a bundle is evaluated against, and its strict JSON form.
//!
//! A request says what is changing (subject, environment, transition, repository, branch,
//! service, tier, risk, change type), who is involved (author, co-authors, requester,
//! releaser, approvals with roles), what was produced (evidence, checks, artifact), when
//! (`now`: evaluation never reads a clock) and, for out-of-window changes, the emergency
//! record. Its `context` holds facts the server injects from the ledger before evaluating —
//! prior promotions and active exceptions — so that evaluation stays a pure function and the
//! whole input can be recorded as one snapshot and replayed.
//!
//! Parsing is strict: unknown fields, wrong types, malformed timestamps and oversized input
//! are errors with path, line and column. See `docs/policy.md` for the schema.

// Reader code uses the same short names throughout: `r` reader, `f` fields, `n` node, `p` path.
#![allow(clippy::many_single_char_names)]
// `Option<Option<T>>` is "absent" (Some(None)) versus "error already recorded" (None).
#![allow(clippy::option_option)]

use std::collections::BTreeMap;
use std::fmt;

use globset::{Glob, GlobBuilder, GlobMatcher};
use jiff::Timestamp;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

mod fast;
mod named;

pub(crate) use fast::Embedded as EmbeddedRequest;
pub use named::Named;

use crate::canonical;
use crate::document::reader::{FieldError, Fields, Reader, child, item};
use crate::document::{Format, Loc, Node, NodeKind, json, quote_for_message};

/// Size limits of a request. Inputs beyond them are rejected, never truncated.
pub mod limits {
    /// Largest request JSON, in bytes.
    pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
    /// Longest string anywhere in a request, in bytes.
    pub const MAX_STRING_BYTES: usize = 4096;
    /// Most approvals.
    pub const MAX_APPROVALS: usize = 64;
    /// Most roles on one approver.
    pub const MAX_ROLES: usize = 16;
    /// Most co-authors.
    pub const MAX_CO_AUTHORS: usize = 16;
    /// Most evidence entries.
    pub const MAX_EVIDENCE: usize = 64;
    /// Most strings in one list-valued evidence entry.
    pub const MAX_EVIDENCE_LIST: usize = 64;
    /// Most check results.
    pub const MAX_CHECKS: usize = 128;
    /// Most labels.
    pub const MAX_LABELS: usize = 32;
    /// Most follow-up actions in an emergency record.
    pub const MAX_FOLLOW_UPS: usize = 32;
    /// Most prior promotions in the context.
    pub const MAX_PROMOTIONS: usize = 256;
    /// Most active exceptions in the context.
    pub const MAX_EXCEPTIONS: usize = 32;
    /// Most entries in one exception's lists (requirements, scope patterns, approvers).
    pub const MAX_EXCEPTION_LIST: usize = 32;
}

use limits::{
    MAX_APPROVALS, MAX_CHECKS, MAX_CO_AUTHORS, MAX_EVIDENCE, MAX_EVIDENCE_LIST, MAX_EXCEPTION_LIST,
    MAX_EXCEPTIONS, MAX_FOLLOW_UPS, MAX_LABELS, MAX_PROMOTIONS, MAX_REQUEST_BYTES, MAX_ROLES,
    MAX_STRING_BYTES,
};

/// The only request `version` this build reads (the field is optional).
pub const REQUEST_VERSION: i64 = 1;

/// A request field that `when` matchers, overlays, exception scopes and vocabularies refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// Target environment.
    Environment,
    /// The step, e.g. `staging->production` or `merge`.
    Transition,
    /// Repository, e.g. `acme/payments`.
    Repository,
    /// Source branch.
    Branch,
    /// Service name.
    Service,
    /// Release or service tier.
    Tier,
    /// Risk label.
    Risk,
    /// Kind of change, e.g. `code`, `config`, `feature-flag`.
    ChangeType,
}

impl Field {
    /// All fields, in the order used in the IR and in messages.
    pub const ALL: [Field; 8] = [
        Field::Environment,
        Field::Transition,
        Field::Repository,
        Field::Branch,
        Field::Service,
        Field::Tier,
        Field::Risk,
        Field::ChangeType,
    ];

    /// The field's name in bundles and requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Environment => "environment",
            Field::Transition => "transition",
            Field::Repository => "repository",
            Field::Branch => "branch",
            Field::Service => "service",
            Field::Tier => "tier",
            Field::Risk => "risk",
            Field::ChangeType => "change_type",
        }
    }

    /// The field named `name`.
    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| f.as_str() == name)
    }
}

/// Which gate an approval was given at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalKind {
    /// Code review approval on the pull request.
    Pr,
    /// Approval at the production (or other deployment) gate.
    Production,
}

/// One approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// Who approved (an identity as the server authenticated it).
    pub approver: String,
    /// The approver's roles at approval time, sorted and without duplicates.
    pub roles: Vec<String>,
    /// The gate.
    pub kind: ApprovalKind,
    /// When.
    #[serde(serialize_with = "canonical::timestamp")]
    pub at: Timestamp,
    /// The approver's rationale, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
}

/// One evidence value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EvidenceValue {
    /// A reference or text (ticket id, URL, digest, plan).
    Text(String),
    /// A count or measure (e.g. number of critical findings).
    Number(i64),
    /// A yes/no fact (e.g. signature verified).
    Flag(bool),
    /// Several references.
    List(Vec<String>),
}

impl EvidenceValue {
    /// Whether the value counts as present: non-blank text, a non-empty list with a non-blank
    /// entry, or any number or flag.
    pub fn is_present(&self) -> bool {
        match self {
            EvidenceValue::Text(s) => !s.trim().is_empty(),
            EvidenceValue::List(v) => v.iter().any(|s| !s.trim().is_empty()),
            EvidenceValue::Number(_) | EvidenceValue::Flag(_) => true,
        }
    }
}

/// The status of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Ran and passed.
    Passed,
    /// Ran and failed.
    Failed,
    /// Not applicable (needs a rationale, and a policy that allows it).
    Na,
    /// Not finished.
    Pending,
}

/// One check result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// The status.
    pub status: CheckStatus,
    /// Why the check is not applicable (or any note).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    /// Link to the run or report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The artifact being released or promoted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Artifact {
    /// Release version, e.g. `1.4.2`.
    pub version: String,
    /// Source commit.
    pub commit: String,
    /// Content digest, e.g. `sha256:…`.
    pub digest: String,
}

/// The emergency-change record that permits a change outside its window.
///
/// Every field is optional when parsing so that an incomplete record is reported by the
/// policy ("emergency record is missing `rollback_plan`") instead of rejecting the request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EmergencyRecord {
    /// Emergency change id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why the change cannot wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who approved the emergency change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// The emergency approver's roles, sorted and without duplicates.
    pub approver_roles: Vec<String>,
    /// What the change touches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// How to roll back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_plan: Option<String>,
    /// Follow-up actions (forward-ports, post-incident review, …).
    pub follow_ups: Vec<String>,
}

/// A prior promotion of an artifact, injected by the server from the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Promotion {
    /// Environment promoted to.
    pub environment: String,
    /// Version promoted.
    pub version: String,
    /// Its commit.
    pub commit: String,
    /// Its digest.
    pub digest: String,
    /// When.
    #[serde(serialize_with = "canonical::timestamp")]
    pub at: Timestamp,
    /// The decision that allowed it, if recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
}

/// Temporary (expires) or permanent (re-reviewed) exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExceptionKind {
    /// Has an expiry and a remediation plan.
    Temporary,
    /// Has compensating controls and a re-review date.
    Permanent,
}

/// Someone who approved an exception.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExceptionApprover {
    /// Identity.
    pub approver: String,
    /// Roles, sorted and without duplicates.
    pub roles: Vec<String>,
}

/// Glob patterns per request field that an exception is limited to (absent field: any value).
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub(crate) patterns: Vec<(Field, Vec<(String, GlobMatcher)>)>,
}

impl Scope {
    /// Whether the request's fields are all within the scope.
    pub fn contains(&self, request: &Request) -> bool {
        self.patterns.iter().all(|(field, globs)| {
            request
                .field(*field)
                .is_some_and(|v| globs.iter().any(|(_, g)| g.is_match(v)))
        })
    }
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        let strip = |s: &Scope| -> Vec<(Field, Vec<String>)> {
            s.patterns
                .iter()
                .map(|(f, g)| (*f, g.iter().map(|(p, _)| p.clone()).collect()))
                .collect()
        };
        strip(self) == strip(other)
    }
}

impl Eq for Scope {}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.patterns.len()))?;
        for (field, globs) in &self.patterns {
            let patterns: Vec<&str> = globs.iter().map(|(p, _)| p.as_str()).collect();
            map.serialize_entry(field.as_str(), &patterns)?;
        }
        map.end()
    }
}

/// An exception record, injected by the server from the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExceptionRecord {
    /// Unique, immutable id.
    pub id: String,
    /// The policy it waives requirements of.
    pub policy: String,
    /// Requirement selectors it waives (`window`, `checks.sast`, …); empty: all of them.
    pub requirements: Vec<String>,
    /// Temporary or permanent.
    pub kind: ExceptionKind,
    /// Role accountable for closing it.
    pub owner_role: String,
    /// Where it applies.
    pub scope: Scope,
    /// Risk assessment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<String>,
    /// Expiry (temporary exceptions).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "canonical::opt_timestamp"
    )]
    pub expires_at: Option<Timestamp>,
    /// Plan to return to compliance (temporary exceptions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation_plan: Option<String>,
    /// Controls that compensate (permanent exceptions).
    pub compensating_controls: Vec<String>,
    /// When it must be reconsidered (permanent exceptions).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "canonical::opt_timestamp"
    )]
    pub review_by: Option<Timestamp>,
    /// Who asked for it.
    pub author: String,
    /// Who approved it.
    pub approvers: Vec<ExceptionApprover>,
}

/// Facts the server injects before evaluating.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Context {
    /// Prior promotions relevant to the request's artifact (same version or same digest).
    pub promotions: Vec<Promotion>,
    /// Exceptions active for the request's scope.
    pub exceptions: Vec<ExceptionRecord>,
}

/// A validated request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Request {
    pub(crate) subject: String,
    pub(crate) environment: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) transition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) risk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) change_type: Option<String>,
    pub(crate) author: String,
    pub(crate) co_authors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) requester: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) releaser: Option<String>,
    pub(crate) approvals: Vec<Approval>,
    pub(crate) evidence: Named<EvidenceValue>,
    pub(crate) checks: Named<CheckResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) artifact: Option<Artifact>,
    pub(crate) labels: Named<String>,
    #[serde(serialize_with = "canonical::timestamp")]
    pub(crate) now: Timestamp,
    /// Boxed: most requests have none, and simulation keeps many requests in memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) emergency: Option<Box<EmergencyRecord>>,
    pub(crate) context: Context,
}

/// Why a request was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The input is larger than [`limits::MAX_REQUEST_BYTES`].
    #[error("request too large: {size} bytes (at most {max})")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The input is not UTF-8 or not JSON.
    #[error("invalid JSON: {0}")]
    Syntax(FieldError),
    /// The JSON does not follow the request schema.
    #[error("{}", join_errors(.0))]
    Schema(Vec<FieldError>),
}

fn join_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Request {
    /// Parses and validates a request from JSON bytes.
    ///
    /// # Errors
    ///
    /// [`RequestError::TooLarge`] beyond [`limits::MAX_REQUEST_BYTES`];
    /// [`RequestError::Syntax`] for invalid UTF-8 or JSON; [`RequestError::Schema`] with every
    /// schema violation (unknown field, wrong type, missing field, limit exceeded, malformed
    /// timestamp or glob), each located.
    pub fn from_json(bytes: &[u8]) -> Result<Request, RequestError> {
        match fast::read(bytes) {
            Some(request) => Ok(request),
            None => Request::from_json_strict(bytes),
        }
    }

    /// [`Request::from_json`] through the located document tree only: what the fast reader
    /// (`request/fast.rs`) falls back to, and what it is checked against.
    pub(crate) fn from_json_strict(bytes: &[u8]) -> Result<Request, RequestError> {
        let root = parse_root(bytes)?;
        let mut r = Reader::new(Format::Json, MAX_STRING_BYTES);
        let request = read_request(&mut r, &root);
        finish(r, request, root.loc)
    }

    /// The request as canonical JSON (see `docs/policy.md`): the snapshot a decision records.
    pub fn canonical_json(&self) -> Vec<u8> {
        canonical::to_vec(self)
    }

    /// `sha256:<hex>` of [`Request::canonical_json`].
    pub fn hash(&self) -> String {
        canonical::sha256_tagged(&self.canonical_json())
    }

    /// Replaces the server-injected context (prior promotions, active exceptions).
    pub fn set_context(&mut self, context: Context) {
        self.context = context;
    }

    /// The server-injected context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The value of a matchable field, if present.
    pub fn field(&self, field: Field) -> Option<&str> {
        match field {
            Field::Environment => Some(&self.environment),
            Field::Transition => self.transition.as_deref(),
            Field::Repository => self.repository.as_deref(),
            Field::Branch => self.branch.as_deref(),
            Field::Service => self.service.as_deref(),
            Field::Tier => self.tier.as_deref(),
            Field::Risk => self.risk.as_deref(),
            Field::ChangeType => self.change_type.as_deref(),
        }
    }

    /// The subject (change or ticket id).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The evaluation time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The author.
    pub fn author(&self) -> &str {
        &self.author
    }

    /// Whether `who` is the author or a co-author.
    pub fn is_author(&self, who: &str) -> bool {
        self.author == who || self.co_authors.iter().any(|a| a == who)
    }

    /// The requester, if any.
    pub fn requester(&self) -> Option<&str> {
        self.requester.as_deref()
    }

    /// The releaser, if any.
    pub fn releaser(&self) -> Option<&str> {
        self.releaser.as_deref()
    }

    /// The approvals, in request order.
    pub fn approvals(&self) -> &[Approval] {
        &self.approvals
    }

    /// The artifact, if the request names one.
    pub fn artifact(&self) -> Option<&Artifact> {
        self.artifact.as_ref()
    }
}

impl ExceptionRecord {
    /// Parses one exception record (the object described in `docs/policy.md`) from JSON bytes.
    ///
    /// # Errors
    ///
    /// As [`Request::from_json`]: size, syntax, and located schema errors.
    pub fn from_json(bytes: &[u8]) -> Result<ExceptionRecord, RequestError> {
        let root = parse_root(bytes)?;
        let mut r = Reader::new(Format::Json, MAX_STRING_BYTES);
        let exception = read_exception(&mut r, &root, "");
        finish(r, exception, root.loc)
    }

    /// The record as canonical JSON: what an exception entry stores.
    pub fn canonical_json(&self) -> Vec<u8> {
        canonical::to_vec(self)
    }
}

impl Context {
    /// Parses a context object (`{"promotions": [...], "exceptions": [...]}`) from JSON bytes.
    ///
    /// # Errors
    ///
    /// As [`Request::from_json`].
    pub fn from_json(bytes: &[u8]) -> Result<Context, RequestError> {
        let root = parse_root(bytes)?;
        let mut r = Reader::new(Format::Json, MAX_STRING_BYTES);
        let context = read_context(&mut r, &root, "");
        finish(r, context, root.loc)
    }
}

fn parse_root(bytes: &[u8]) -> Result<Node, RequestError> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge {
            size: bytes.len(),
            max: MAX_REQUEST_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        RequestError::Syntax(FieldError {
            loc: Loc::new(1, 1),
            path: String::new(),
            message: format!("not UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        })
    })?;
    json::parse(text).map_err(|e| {
        RequestError::Syntax(FieldError {
            loc: e.loc,
            path: String::new(),
            message: e.message,
        })
    })
}

fn finish<T>(r: Reader, value: Option<T>, loc: Loc) -> Result<T, RequestError> {
    match value {
        Some(v) if r.errors.is_empty() => Ok(v),
        _ => {
            let mut errors = r.errors;
            if errors.is_empty() {
                errors.push(FieldError {
                    loc,
                    path: String::new(),
                    message: "invalid request".to_owned(),
                });
            }
            errors.sort();
            errors.dedup();
            Err(RequestError::Schema(errors))
        }
    }
}

const REQUEST_FIELDS: &[&str] = &[
    "version",
    "subject",
    "environment",
    "transition",
    "repository",
    "branch",
    "service",
    "tier",
    "risk",
    "change_type",
    "author",
    "co_authors",
    "requester",
    "releaser",
    "approvals",
    "evidence",
    "checks",
    "artifact",
    "labels",
    "now",
    "emergency",
    "context",
];

/// The value of optional field `name`; JSON `null` counts as absent.
fn present<'n>(f: &Fields<'n>, name: &str) -> Option<&'n Node> {
    f.get(name).filter(|n| !matches!(n.kind, NodeKind::Null))
}

fn req_name(r: &mut Reader, f: &Fields<'_>, name: &str) -> Option<String> {
    let n = f.required(r, name)?;
    r.name(n, &f.path_of(name)).map(|t| t.value)
}

/// An optional name: `Some(None)` when absent, `None` after an error.
fn opt_name(r: &mut Reader, f: &Fields<'_>, name: &str) -> Option<Option<String>> {
    match present(f, name) {
        None => Some(None),
        Some(n) => r.name(n, &f.path_of(name)).map(|t| Some(t.value)),
    }
}

/// An optional free text: `Some(None)` when absent, `None` after an error.
fn opt_text(r: &mut Reader, f: &Fields<'_>, name: &str) -> Option<Option<String>> {
    match present(f, name) {
        None => Some(None),
        Some(n) => r.string(n, &f.path_of(name)).map(|t| Some(t.value)),
    }
}

/// An RFC 3339 timestamp with an offset (`Z` or `±hh:mm`), if `s` is one.
pub(crate) fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let shaped = s.len() >= 20 && !s.contains('[') && s.as_bytes().get(10) == Some(&b'T');
    if !shaped {
        return None;
    }
    s.parse::<Timestamp>().ok()
}

/// Reads an RFC 3339 timestamp with an offset (`Z` or `±hh:mm`).
pub(crate) fn timestamp(r: &mut Reader, node: &Node, path: &str) -> Option<Timestamp> {
    let t = r.string(node, path)?;
    let ts = parse_timestamp(&t.value);
    if ts.is_none() {
        r.error(
            path,
            node.loc,
            format!(
                "expected an RFC 3339 timestamp with offset, e.g. \"2025-06-03T10:15:00Z\", got {}",
                quote_for_message(&t.value)
            ),
        );
    }
    ts
}

fn req_timestamp(r: &mut Reader, f: &Fields<'_>, name: &str) -> Option<Timestamp> {
    let n = f.required(r, name)?;
    timestamp(r, n, &f.path_of(name))
}

fn opt_timestamp(r: &mut Reader, f: &Fields<'_>, name: &str) -> Option<Option<Timestamp>> {
    match present(f, name) {
        None => Some(None),
        Some(n) => timestamp(r, n, &f.path_of(name)).map(Some),
    }
}

/// A list of names, sorted and deduplicated (for role sets).
fn name_set(r: &mut Reader, node: &Node, path: &str, max: usize) -> Option<Vec<String>> {
    let items = r.bounded_list(node, path, max)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, n) in items.iter().enumerate() {
        match r.name(n, &item(path, i)) {
            Some(t) => out.push(t.value),
            None => ok = false,
        }
    }
    out.sort();
    out.dedup();
    ok.then_some(out)
}

fn opt_name_set(r: &mut Reader, f: &Fields<'_>, name: &str, max: usize) -> Option<Vec<String>> {
    match present(f, name) {
        None => Some(Vec::new()),
        Some(n) => name_set(r, n, &f.path_of(name), max),
    }
}

/// A list of non-empty texts, in order.
fn text_list(r: &mut Reader, f: &Fields<'_>, name: &str, max: usize) -> Option<Vec<String>> {
    let Some(node) = present(f, name) else {
        return Some(Vec::new());
    };
    let path = f.path_of(name);
    let items = r.bounded_list(node, &path, max)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, n) in items.iter().enumerate() {
        match r.non_empty_string(n, &item(&path, i)) {
            Some(t) => out.push(t.value),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_request(r: &mut Reader, root: &Node) -> Option<Request> {
    let f = r.fields(root, "", REQUEST_FIELDS)?;
    if let Some(n) = present(&f, "version")
        && let Some(v) = r.int(n, "version")
        && v != REQUEST_VERSION
    {
        r.error(
            "version",
            n.loc,
            format!("unsupported request version {v}; this build reads version {REQUEST_VERSION}"),
        );
        return None;
    }
    let subject = req_name(r, &f, "subject");
    let environment = req_name(r, &f, "environment");
    let transition = opt_name(r, &f, "transition");
    let repository = opt_name(r, &f, "repository");
    let branch = opt_name(r, &f, "branch");
    let service = opt_name(r, &f, "service");
    let tier = opt_name(r, &f, "tier");
    let risk = opt_name(r, &f, "risk");
    let change_type = opt_name(r, &f, "change_type");
    let author = req_name(r, &f, "author");
    let co_authors = opt_name_set(r, &f, "co_authors", MAX_CO_AUTHORS);
    let requester = opt_name(r, &f, "requester");
    let releaser = opt_name(r, &f, "releaser");
    let approvals = match present(&f, "approvals") {
        None => Some(Vec::new()),
        Some(n) => read_approvals(r, n, "approvals"),
    };
    let evidence = match present(&f, "evidence") {
        None => Some(BTreeMap::new()),
        Some(n) => read_evidence(r, n, "evidence"),
    };
    let checks = match present(&f, "checks") {
        None => Some(BTreeMap::new()),
        Some(n) => read_checks(r, n, "checks"),
    };
    let artifact = match present(&f, "artifact") {
        None => Some(None),
        Some(n) => read_artifact(r, n, "artifact").map(Some),
    };
    let labels = match present(&f, "labels") {
        None => Some(BTreeMap::new()),
        Some(n) => read_labels(r, n, "labels"),
    };
    let now = req_timestamp(r, &f, "now");
    let emergency = match present(&f, "emergency") {
        None => Some(None),
        Some(n) => read_emergency(r, n, "emergency").map(|e| Some(Box::new(e))),
    };
    let context = match present(&f, "context") {
        None => Some(Context::default()),
        Some(n) => read_context(r, n, "context"),
    };
    Some(Request {
        subject: subject?,
        environment: environment?,
        transition: transition?,
        repository: repository?,
        branch: branch?,
        service: service?,
        tier: tier?,
        risk: risk?,
        change_type: change_type?,
        author: author?,
        co_authors: co_authors?,
        requester: requester?,
        releaser: releaser?,
        approvals: approvals?,
        evidence: evidence?.into(),
        checks: checks?.into(),
        artifact: artifact?,
        labels: labels?.into(),
        now: now?,
        emergency: emergency?,
        context: context?,
    })
}

fn read_approvals(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<Approval>> {
    let items = r.bounded_list(node, path, MAX_APPROVALS)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, n) in items.iter().enumerate() {
        let p = item(path, i);
        let approval = (|| {
            let f = r.fields(n, &p, &["approver", "roles", "kind", "at", "rationale"])?;
            let approver = req_name(r, &f, "approver");
            let roles = opt_name_set(r, &f, "roles", MAX_ROLES);
            let kind = f.required(r, "kind").and_then(|k| {
                r.choice(k, &f.path_of("kind"), &["pr", "production"])
                    .map(|s| {
                        if s == "pr" {
                            ApprovalKind::Pr
                        } else {
                            ApprovalKind::Production
                        }
                    })
            });
            let at = req_timestamp(r, &f, "at");
            let rationale = opt_text(r, &f, "rationale");
            Some(Approval {
                approver: approver?,
                roles: roles?,
                kind: kind?,
                at: at?,
                rationale: rationale?,
            })
        })();
        match approval {
            Some(a) => out.push(a),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_evidence(
    r: &mut Reader,
    node: &Node,
    path: &str,
) -> Option<BTreeMap<String, EvidenceValue>> {
    let entries = r.entries(node, path)?;
    if entries.len() > MAX_EVIDENCE {
        r.error(
            path,
            node.loc,
            format!(
                "too many evidence entries: {} (at most {MAX_EVIDENCE})",
                entries.len()
            ),
        );
        return None;
    }
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let p = child(path, &k.name);
        if let Some(problem) = crate::document::reader::name_problem(&k.name) {
            r.error(&p, k.loc, problem);
            ok = false;
            continue;
        }
        let value = match &v.kind {
            NodeKind::Str(_) => r.string(v, &p).map(|t| EvidenceValue::Text(t.value)),
            NodeKind::Int(i) => Some(EvidenceValue::Number(*i)),
            NodeKind::Bool(b) => Some(EvidenceValue::Flag(*b)),
            NodeKind::Seq(items) => {
                if items.len() > MAX_EVIDENCE_LIST {
                    r.error(
                        &p,
                        v.loc,
                        format!(
                            "too many items: {} (at most {MAX_EVIDENCE_LIST})",
                            items.len()
                        ),
                    );
                    None
                } else {
                    let mut list = Vec::with_capacity(items.len());
                    let mut item_ok = true;
                    for (i, it) in items.iter().enumerate() {
                        match r.string(it, &item(&p, i)) {
                            Some(t) => list.push(t.value),
                            None => item_ok = false,
                        }
                    }
                    item_ok.then_some(EvidenceValue::List(list))
                }
            }
            _ => {
                r.expected(
                    &p,
                    v,
                    "a string, an integer, a boolean or a list of strings",
                );
                None
            }
        };
        match value {
            Some(value) => {
                out.insert(k.name.clone(), value);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_checks(r: &mut Reader, node: &Node, path: &str) -> Option<BTreeMap<String, CheckResult>> {
    let entries = r.entries(node, path)?;
    if entries.len() > MAX_CHECKS {
        r.error(
            path,
            node.loc,
            format!("too many checks: {} (at most {MAX_CHECKS})", entries.len()),
        );
        return None;
    }
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let p = child(path, &k.name);
        let result = (|| {
            if let Some(problem) = crate::document::reader::name_problem(&k.name) {
                r.error(&p, k.loc, problem);
                return None;
            }
            let f = r.fields(v, &p, &["status", "rationale", "url"])?;
            let status = f.required(r, "status").and_then(|s| {
                let c = r.choice(
                    s,
                    &f.path_of("status"),
                    &["passed", "failed", "na", "pending"],
                )?;
                Some(match c {
                    "passed" => CheckStatus::Passed,
                    "failed" => CheckStatus::Failed,
                    "na" => CheckStatus::Na,
                    _ => CheckStatus::Pending,
                })
            });
            let rationale = opt_text(r, &f, "rationale");
            let url = opt_text(r, &f, "url");
            Some(CheckResult {
                status: status?,
                rationale: rationale?,
                url: url?,
            })
        })();
        match result {
            Some(c) => {
                out.insert(k.name.clone(), c);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_artifact(r: &mut Reader, node: &Node, path: &str) -> Option<Artifact> {
    let f = r.fields(node, path, &["version", "commit", "digest"])?;
    let version = req_name(r, &f, "version");
    let commit = req_name(r, &f, "commit");
    let digest = req_name(r, &f, "digest");
    Some(Artifact {
        version: version?,
        commit: commit?,
        digest: digest?,
    })
}

fn read_labels(r: &mut Reader, node: &Node, path: &str) -> Option<BTreeMap<String, String>> {
    let entries = r.entries(node, path)?;
    if entries.len() > MAX_LABELS {
        r.error(
            path,
            node.loc,
            format!("too many labels: {} (at most {MAX_LABELS})", entries.len()),
        );
        return None;
    }
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let p = child(path, &k.name);
        if let Some(problem) = crate::document::reader::name_problem(&k.name) {
            r.error(&p, k.loc, problem);
            ok = false;
            continue;
        }
        match r.string(v, &p) {
            Some(t) => {
                out.insert(k.name.clone(), t.value);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_emergency(r: &mut Reader, node: &Node, path: &str) -> Option<EmergencyRecord> {
    let f = r.fields(
        node,
        path,
        &[
            "id",
            "reason",
            "approver",
            "approver_roles",
            "scope",
            "rollback_plan",
            "follow_ups",
        ],
    )?;
    let id = opt_name(r, &f, "id");
    let reason = opt_text(r, &f, "reason");
    let approver = opt_name(r, &f, "approver");
    let approver_roles = opt_name_set(r, &f, "approver_roles", MAX_ROLES);
    let scope = opt_text(r, &f, "scope");
    let rollback_plan = opt_text(r, &f, "rollback_plan");
    let follow_ups = text_list(r, &f, "follow_ups", MAX_FOLLOW_UPS);
    Some(EmergencyRecord {
        id: id?,
        reason: reason?,
        approver: approver?,
        approver_roles: approver_roles?,
        scope: scope?,
        rollback_plan: rollback_plan?,
        follow_ups: follow_ups?,
    })
}

fn read_context(r: &mut Reader, node: &Node, path: &str) -> Option<Context> {
    let f = r.fields(node, path, &["promotions", "exceptions"])?;
    let promotions = match present(&f, "promotions") {
        None => Some(Vec::new()),
        Some(n) => {
            let p = f.path_of("promotions");
            r.bounded_list(n, &p, MAX_PROMOTIONS).and_then(|items| {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, it) in items.iter().enumerate() {
                    match read_promotion(r, it, &item(&p, i)) {
                        Some(x) => out.push(x),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            })
        }
    };
    let exceptions = match present(&f, "exceptions") {
        None => Some(Vec::new()),
        Some(n) => {
            let p = f.path_of("exceptions");
            r.bounded_list(n, &p, MAX_EXCEPTIONS).and_then(|items| {
                let mut out: Vec<ExceptionRecord> = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, it) in items.iter().enumerate() {
                    let ip = item(&p, i);
                    match read_exception(r, it, &ip) {
                        Some(x) if out.iter().any(|e| e.id == x.id) => {
                            r.error(
                                &ip,
                                it.loc,
                                format!("duplicate exception id {}", quote_for_message(&x.id)),
                            );
                            ok = false;
                        }
                        Some(x) => out.push(x),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            })
        }
    };
    Some(Context {
        promotions: promotions?,
        exceptions: exceptions?,
    })
}

fn read_promotion(r: &mut Reader, node: &Node, path: &str) -> Option<Promotion> {
    let f = r.fields(
        node,
        path,
        &[
            "environment",
            "version",
            "commit",
            "digest",
            "at",
            "decision",
        ],
    )?;
    let environment = req_name(r, &f, "environment");
    let version = req_name(r, &f, "version");
    let commit = req_name(r, &f, "commit");
    let digest = req_name(r, &f, "digest");
    let at = req_timestamp(r, &f, "at");
    let decision = opt_name(r, &f, "decision");
    Some(Promotion {
        environment: environment?,
        version: version?,
        commit: commit?,
        digest: digest?,
        at: at?,
        decision: decision?,
    })
}

const EXCEPTION_FIELDS: &[&str] = &[
    "id",
    "policy",
    "requirements",
    "kind",
    "owner_role",
    "scope",
    "risk",
    "expires_at",
    "remediation_plan",
    "compensating_controls",
    "review_by",
    "author",
    "approvers",
];

fn read_exception(r: &mut Reader, node: &Node, path: &str) -> Option<ExceptionRecord> {
    let f = r.fields(node, path, EXCEPTION_FIELDS)?;
    let id = req_name(r, &f, "id");
    let policy = req_name(r, &f, "policy");
    let requirements = opt_name_set(r, &f, "requirements", MAX_EXCEPTION_LIST);
    let kind = f.required(r, "kind").and_then(|k| {
        r.choice(k, &f.path_of("kind"), &["temporary", "permanent"])
            .map(|s| {
                if s == "temporary" {
                    ExceptionKind::Temporary
                } else {
                    ExceptionKind::Permanent
                }
            })
    });
    let owner_role = req_name(r, &f, "owner_role");
    let scope = match present(&f, "scope") {
        None => Some(Scope::default()),
        Some(n) => read_scope(r, n, &f.path_of("scope")),
    };
    let risk = opt_text(r, &f, "risk");
    let expires_at = opt_timestamp(r, &f, "expires_at");
    let remediation_plan = opt_text(r, &f, "remediation_plan");
    let compensating_controls = text_list(r, &f, "compensating_controls", MAX_EXCEPTION_LIST);
    let review_by = opt_timestamp(r, &f, "review_by");
    let author = req_name(r, &f, "author");
    let approvers = match present(&f, "approvers") {
        None => Some(Vec::new()),
        Some(n) => {
            let p = f.path_of("approvers");
            r.bounded_list(n, &p, MAX_EXCEPTION_LIST).and_then(|items| {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, it) in items.iter().enumerate() {
                    let ip = item(&p, i);
                    let a = (|| {
                        let af = r.fields(it, &ip, &["approver", "roles"])?;
                        let approver = req_name(r, &af, "approver");
                        let roles = opt_name_set(r, &af, "roles", MAX_ROLES);
                        Some(ExceptionApprover {
                            approver: approver?,
                            roles: roles?,
                        })
                    })();
                    match a {
                        Some(a) => out.push(a),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            })
        }
    };
    Some(ExceptionRecord {
        id: id?,
        policy: policy?,
        requirements: requirements?,
        kind: kind?,
        owner_role: owner_role?,
        scope: scope?,
        risk: risk?,
        expires_at: expires_at?,
        remediation_plan: remediation_plan?,
        compensating_controls: compensating_controls?,
        review_by: review_by?,
        author: author?,
        approvers: approvers?,
    })
}

/// Builds a glob the way bundles do: `*` and `?` stop at `/`, `**` crosses it, `\\` escapes.
pub(crate) fn build_glob(pattern: &str) -> Result<Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| e.kind().to_string())
}

/// Compiles a glob for matching single values (see [`build_glob`]).
pub(crate) fn compile_glob(pattern: &str) -> Result<GlobMatcher, String> {
    build_glob(pattern).map(|g| g.compile_matcher())
}

fn read_scope(r: &mut Reader, node: &Node, path: &str) -> Option<Scope> {
    let known: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
    let f = r.fields(node, path, &known)?;
    let mut patterns = Vec::new();
    let mut ok = true;
    for field in Field::ALL {
        let Some(n) = present(&f, field.as_str()) else {
            continue;
        };
        let p = f.path_of(field.as_str());
        let Some(list) = name_set(r, n, &p, MAX_EXCEPTION_LIST) else {
            ok = false;
            continue;
        };
        let mut globs = Vec::with_capacity(list.len());
        for pattern in list {
            match compile_glob(&pattern) {
                Ok(g) => globs.push((pattern, g)),
                Err(e) => {
                    r.error(
                        &p,
                        n.loc,
                        format!("invalid glob {}: {e}", quote_for_message(&pattern)),
                    );
                    ok = false;
                }
            }
        }
        patterns.push((field, globs));
    }
    ok.then_some(Scope { patterns })
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"subject": "CHG-1", "environment": "production", "author": "alice",
        "now": "2025-06-03T10:15:00Z"}"#;

    fn schema_errors(json: &str) -> Vec<String> {
        match Request::from_json(json.as_bytes()) {
            Err(RequestError::Schema(errors)) => errors.iter().map(ToString::to_string).collect(),
            other => panic!("expected schema errors, got {other:?}"),
        }
    }

    #[test]
    fn a_minimal_request_parses() {
        let r = Request::from_json(MINIMAL.as_bytes()).unwrap();
        assert_eq!(r.subject(), "CHG-1");
        assert_eq!(r.field(Field::Environment), Some("production"));
        assert_eq!(r.field(Field::Branch), None);
        assert_eq!(
            String::from_utf8(r.canonical_json()).unwrap(),
            r#"{"approvals":[],"author":"alice","checks":{},"co_authors":[],"context":{"exceptions":[],"promotions":[]},"environment":"production","evidence":{},"labels":{},"now":"2025-06-03T10:15:00Z","subject":"CHG-1"}"#
        );
    }

    #[test]
    fn canonical_json_round_trips() {
        let json = r#"{"subject": "CHG-1", "environment": "production", "author": "alice",
            "now": "2025-06-03T12:15:00+02:00", "branch": "release/1.4",
            "approvals": [{"approver": "bob", "roles": ["Security", "QA", "QA"], "kind": "pr",
                           "at": "2025-06-02T09:00:00Z", "rationale": "ok"}],
            "evidence": {"ticket": "ABC-1", "critical": 0, "signed": true, "sbom": ["a", "b"]},
            "checks": {"lint": {"status": "passed"}, "dast": {"status": "na", "rationale": "internal"}},
            "artifact": {"version": "1.4.2", "commit": "abc", "digest": "sha256:00"},
            "emergency": {"reason": "outage", "follow_ups": ["forward-port"]},
            "context": {"promotions": [{"environment": "staging", "version": "1.4.2", "commit": "abc",
                        "digest": "sha256:00", "at": "2025-06-01T00:00:00Z"}],
                        "exceptions": [{"id": "EXC-1", "policy": "p", "kind": "temporary",
                        "owner_role": "EngineeringManager", "author": "alice",
                        "scope": {"repository": ["acme/*"]}, "expires_at": "2025-07-01T00:00:00Z",
                        "approvers": [{"approver": "carol"}]}]}}"#;
        let r = Request::from_json(json.as_bytes()).unwrap();
        assert_eq!(r.approvals()[0].roles, vec!["QA", "Security"]);
        let canonical = r.canonical_json();
        let again = Request::from_json(&canonical).unwrap();
        assert_eq!(again, r);
        assert_eq!(again.canonical_json(), canonical);
        assert!(
            String::from_utf8(canonical)
                .unwrap()
                .contains(r#""now":"2025-06-03T10:15:00Z""#)
        );
    }

    #[test]
    fn schema_errors_are_located_and_complete() {
        let errors = schema_errors(
            r#"{"subject": "CHG-1", "environment": 7, "author": "alice", "now": "yesterday",
 "approvals": [{"approver": "bob", "kind": "prod", "at": "2025-06-02T09:00:00Z"}],
 "checks": {"lint": {"status": "ok"}}, "colour": "blue"}"#,
        );
        assert_eq!(
            errors,
            vec![
                "environment: expected a string, got 7 (line 1, column 37)",
                "now: expected an RFC 3339 timestamp with offset, e.g. \"2025-06-03T10:15:00Z\", got \"yesterday\" (line 1, column 66)",
                "approvals[0].kind: expected one of \"pr\", \"production\", got \"prod\" (line 2, column 44)",
                "checks.lint.status: expected one of \"passed\", \"failed\", \"na\", \"pending\", got \"ok\" (line 3, column 32)",
                "colour: unknown field \"colour\"; expected one of: version, subject, environment, transition, repository, branch, service, tier, risk, change_type, author, co_authors, requester, releaser, approvals, evidence, checks, artifact, labels, now, emergency, context (line 3, column 40)",
            ]
        );
    }

    #[test]
    fn limits_are_enforced() {
        let approvals: Vec<String> = (0..=MAX_APPROVALS)
            .map(|i| {
                format!(r#"{{"approver": "a{i}", "kind": "pr", "at": "2025-06-02T09:00:00Z"}}"#)
            })
            .collect();
        let json = format!(
            r#"{{"subject": "c", "environment": "e", "author": "a", "now": "2025-06-03T10:15:00Z", "approvals": [{}]}}"#,
            approvals.join(",")
        );
        assert_eq!(
            schema_errors(&json),
            vec![format!(
                "approvals: too many items: 65 (at most 64) (line 1, column 97)"
            )]
        );
        let big = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(
            Request::from_json(&big),
            Err(RequestError::TooLarge {
                size: MAX_REQUEST_BYTES + 1,
                max: MAX_REQUEST_BYTES
            })
        );
        let long = format!(
            r#"{{"subject": "{}", "environment": "e", "author": "a", "now": "2025-06-03T10:15:00Z"}}"#,
            "x".repeat(MAX_STRING_BYTES + 1)
        );
        assert_eq!(
            schema_errors(&long),
            vec!["subject: string too long: 4097 bytes (at most 4096) (line 1, column 13)"]
        );
    }

    #[test]
    fn missing_fields_and_bad_json_are_reported() {
        assert_eq!(
            schema_errors(r#"{"subject": "c"}"#),
            vec![
                "missing required field \"author\" (line 1, column 1)",
                "missing required field \"environment\" (line 1, column 1)",
                "missing required field \"now\" (line 1, column 1)",
            ]
        );
        let Err(RequestError::Syntax(e)) = Request::from_json(b"{\"subject\": }") else {
            panic!("expected a syntax error")
        };
        assert_eq!(e.to_string(), "expected a JSON value (line 1, column 13)");
        assert!(matches!(
            Request::from_json(&[0xff, 0xfe]),
            Err(RequestError::Syntax(_))
        ));
    }

    #[test]
    fn scopes_match_globs_per_field() {
        let json = r#"{"promotions": [], "exceptions": [{"id": "E", "policy": "p", "kind": "permanent",
            "owner_role": "R", "author": "a", "scope": {"repository": ["acme/*"], "environment": ["production"]}}]}"#;
        let ctx = Context::from_json(json.as_bytes()).unwrap();
        let scope = &ctx.exceptions[0].scope;
        let mut req = Request::from_json(MINIMAL.as_bytes()).unwrap();
        assert!(!scope.contains(&req), "repository absent");
        req.repository = Some("acme/payments".into());
        assert!(scope.contains(&req));
        req.repository = Some("acme/payments/sub".into());
        assert!(!scope.contains(&req), "* does not cross /");
    }
}
