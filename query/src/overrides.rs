//! Overrides: a separate, approved request to let a blocked decision through for a while.
//!
//! [`evaluate_override`] is pure, like evaluation. An override is granted only when every
//! rule below holds; otherwise it is denied with every failed rule as a reason:
//!
//! - it names the decision by id, and the decision was made with this bundle and is a BLOCK;
//! - every reason of the decision belongs to a policy with an `overrides` block (reasons
//!   about the request as a whole, like an unknown vocabulary value, cannot be overridden);
//! - the approver holds one of each such policy's `allowed_roles`;
//! - the approver is neither the override requester, nor an author, nor the requester of
//!   the original change;
//! - the justification is not blank when any policy requires one;
//! - the expiry is after `now` and no further from `now` than the smallest `max_duration`;
//! - `now` is not before the decision's `now`.
//!
//! The idempotency key is carried into the outcome so that the server can store an override
//! once however often it is retried.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::canonical::timestamp_text;
use crate::compiler::CompiledBundle;
use crate::decision::DecisionRecord;
use crate::document::reader::{Reader, item};
use crate::document::{Format, json};
use crate::evaluation::{Memo, Outcome, Params, Reason};
use crate::request::{RequestError, limits};

/// A request to override a blocked decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OverrideRequest {
    /// Id of the decision record (`sha256:…`).
    pub decision: String,
    /// Who asks for the override.
    pub requester: String,
    /// Who approves it.
    pub approver: String,
    /// The approver's roles, sorted and without duplicates.
    pub approver_roles: Vec<String>,
    /// Why.
    pub justification: String,
    /// When the override stops applying.
    #[serde(serialize_with = "crate::canonical::timestamp")]
    pub expires_at: Timestamp,
    /// Client-chosen key that makes retries safe.
    pub idempotency_key: String,
    /// Evaluation time.
    #[serde(serialize_with = "crate::canonical::timestamp")]
    pub now: Timestamp,
}

/// Granted or denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverrideStatus {
    /// The override applies until `expires_at`.
    Granted,
    /// Not granted; see the reasons.
    Denied,
}

/// The result of [`evaluate_override`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideOutcome {
    /// Granted or denied.
    pub status: OverrideStatus,
    /// The decision overridden.
    pub decision: String,
    /// The policies whose blocks the override covers, sorted.
    pub policies: Vec<String>,
    /// Who approved.
    pub approver: String,
    /// Until when (when granted).
    #[serde(
        serialize_with = "crate::canonical::opt_timestamp",
        deserialize_with = "crate::canonical::deserialize_opt_timestamp"
    )]
    pub expires_at: Option<Timestamp>,
    /// The request's idempotency key.
    pub idempotency_key: String,
    /// Why it was denied, sorted like evaluation reasons; empty when granted.
    pub reasons: Vec<Reason>,
}

impl OverrideOutcome {
    /// The outcome as canonical JSON.
    pub fn canonical_json(&self) -> Vec<u8> {
        crate::canonical::to_vec(self)
    }
}

impl OverrideRequest {
    /// Parses an override request from JSON.
    ///
    /// # Errors
    ///
    /// As [`crate::request::Request::from_json`]: size, syntax, and located schema errors.
    pub fn from_json(bytes: &[u8]) -> Result<OverrideRequest, RequestError> {
        if bytes.len() > limits::MAX_REQUEST_BYTES {
            return Err(RequestError::TooLarge {
                size: bytes.len(),
                max: limits::MAX_REQUEST_BYTES,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            RequestError::Syntax(crate::document::reader::FieldError {
                loc: crate::document::Loc::new(1, 1),
                path: String::new(),
                message: format!("not UTF-8 (invalid byte at offset {})", e.valid_up_to()),
            })
        })?;
        let root = json::parse(text).map_err(|e| {
            RequestError::Syntax(crate::document::reader::FieldError {
                loc: e.loc,
                path: String::new(),
                message: e.message,
            })
        })?;
        let mut r = Reader::new(Format::Json, limits::MAX_STRING_BYTES);
        let parsed = (|| {
            let f = r.fields(
                &root,
                "",
                &[
                    "decision",
                    "requester",
                    "approver",
                    "approver_roles",
                    "justification",
                    "expires_at",
                    "idempotency_key",
                    "now",
                ],
            )?;
            let name = |r: &mut Reader, key: &str| {
                f.required(r, key)
                    .and_then(|n| r.name(n, key))
                    .map(|t| t.value)
            };
            let decision = name(&mut r, "decision");
            let requester = name(&mut r, "requester");
            let approver = name(&mut r, "approver");
            let idempotency_key = name(&mut r, "idempotency_key");
            let justification = match f.get("justification") {
                None => Some(String::new()),
                Some(n) => r.string(n, "justification").map(|t| t.value),
            };
            let approver_roles = match f.get("approver_roles") {
                None => Some(Vec::new()),
                Some(n) => r
                    .bounded_list(n, "approver_roles", limits::MAX_ROLES)
                    .and_then(|items| {
                        let mut roles = Vec::new();
                        let mut ok = true;
                        for (i, it) in items.iter().enumerate() {
                            match r.name(it, &item("approver_roles", i)) {
                                Some(t) => roles.push(t.value),
                                None => ok = false,
                            }
                        }
                        roles.sort();
                        roles.dedup();
                        ok.then_some(roles)
                    }),
            };
            let time = |r: &mut Reader, key: &str| {
                let n = f.required(r, key)?;
                crate::request::timestamp(r, n, key)
            };
            let expires_at = time(&mut r, "expires_at");
            let now = time(&mut r, "now");
            Some(OverrideRequest {
                decision: decision?,
                requester: requester?,
                approver: approver?,
                approver_roles: approver_roles?,
                justification: justification?,
                expires_at: expires_at?,
                idempotency_key: idempotency_key?,
                now: now?,
            })
        })();
        match parsed {
            Some(o) if r.errors.is_empty() => Ok(o),
            _ => {
                let mut errors = r.errors;
                errors.sort();
                errors.dedup();
                Err(RequestError::Schema(errors))
            }
        }
    }
}

/// Decides an override of `record` (made with `bundle`) as asked by `request`.
pub fn evaluate_override(
    bundle: &CompiledBundle,
    record: &DecisionRecord,
    request: &OverrideRequest,
) -> OverrideOutcome {
    let mut reasons: Vec<Reason> = Vec::new();
    let mut deny = |policy: Option<&str>, requirement: &str, code: &str, message: String| {
        reasons.push(Reason {
            policy: policy.map(str::to_owned),
            requirement: requirement.to_owned(),
            code: code.to_owned(),
            message,
        });
    };
    let record_id = record.id();
    if request.decision != record_id {
        deny(
            None,
            "decision",
            "decision-mismatch",
            format!(
                "the override names decision {}, not {record_id}",
                request.decision
            ),
        );
    }
    if record.bundle != bundle.hash() {
        deny(
            None,
            "bundle",
            "bundle-mismatch",
            format!(
                "the decision was made with bundle {}, not {}",
                record.bundle,
                bundle.hash()
            ),
        );
    }
    if record.evaluation.outcome != Outcome::Block {
        deny(
            None,
            "decision",
            "not-blocked",
            format!(
                "the decision is {}, not BLOCK: there is nothing to override",
                record.evaluation.outcome
            ),
        );
    }
    let original = &record.request;
    let blocking: BTreeSet<&str> = record
        .evaluation
        .reasons
        .iter()
        .filter_map(|r| r.policy.as_deref())
        .collect();
    for r in record
        .evaluation
        .reasons
        .iter()
        .filter(|r| r.policy.is_none())
    {
        deny(
            None,
            &r.requirement,
            "not-overridable",
            format!("{} cannot be overridden: {}", r.requirement, r.message),
        );
    }
    let mut memo = Memo::new(bundle);
    let params = Params::resolve(bundle, original, &mut memo);
    let mut justification_required = false;
    let mut max_seconds: Option<i64> = None;
    for id in &blocking {
        let Some(policy) = bundle.policies.iter().find(|p| p.id == *id) else {
            deny(
                Some(id),
                "overrides",
                "override-not-permitted",
                format!("policy {id} is not in this bundle"),
            );
            continue;
        };
        let Some(o) = &policy.overrides else {
            deny(
                Some(id),
                "overrides",
                "override-not-permitted",
                format!("policy {id} does not permit overrides"),
            );
            continue;
        };
        if !o
            .allowed_roles
            .iter()
            .any(|role| request.approver_roles.contains(role))
        {
            deny(
                Some(id),
                "overrides.allowed_roles",
                "approver-role-not-allowed",
                format!(
                    "{} holds none of the roles allowed to override policy {id}: {}",
                    request.approver,
                    o.allowed_roles.join(", ")
                ),
            );
        }
        justification_required |= o.require_justification;
        if let Some(max) = o.max_duration.as_ref().and_then(|m| params.duration(m)) {
            max_seconds = Some(max_seconds.map_or(max.seconds(), |m| m.min(max.seconds())));
        }
    }
    let who = request.approver.as_str();
    if who == request.requester {
        deny(
            None,
            "overrides.approver",
            "override-self-approved",
            format!("{who} asked for the override and cannot approve it"),
        );
    }
    if original.is_author(who) {
        deny(
            None,
            "overrides.approver",
            "override-author-approved",
            format!("{who} authored the change and cannot approve its override"),
        );
    }
    if original.requester() == Some(who) {
        deny(
            None,
            "overrides.approver",
            "override-requester-approved",
            format!("{who} requested the change and cannot approve its override"),
        );
    }
    if justification_required && request.justification.trim().is_empty() {
        deny(
            None,
            "overrides.justification",
            "justification-missing",
            "a justification is required".to_owned(),
        );
    }
    if request.expires_at <= request.now {
        deny(
            None,
            "overrides.expires_at",
            "expiry-not-in-future",
            format!(
                "the override expires at {}, not after now",
                timestamp_text(request.expires_at)
            ),
        );
    } else if let Some(max) = max_seconds {
        let span = request
            .expires_at
            .as_second()
            .saturating_sub(request.now.as_second());
        if span > max {
            let shown = crate::duration::Duration::from_seconds(max)
                .map_or_else(|| format!("{max}s"), |d| d.to_string());
            deny(
                None,
                "overrides.max_duration",
                "expiry-too-long",
                format!("the override lasts longer than the allowed {shown}"),
            );
        }
    }
    if request.now < original.now() {
        deny(
            None,
            "overrides.now",
            "before-decision",
            "the override is dated before the decision".to_owned(),
        );
    }
    reasons.sort();
    reasons.dedup();
    let granted = reasons.is_empty();
    OverrideOutcome {
        status: if granted {
            OverrideStatus::Granted
        } else {
            OverrideStatus::Denied
        },
        decision: request.decision.clone(),
        policies: blocking.iter().map(|s| (*s).to_owned()).collect(),
        approver: request.approver.clone(),
        expires_at: granted.then_some(request.expires_at),
        idempotency_key: request.idempotency_key.clone(),
        reasons,
    }
}
