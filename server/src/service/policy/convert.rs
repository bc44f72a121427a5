//! Conversions between the policy service's protobuf messages and the policy layer's types.

use tonic::Status;
use vouch_ledger_core::EntryIndex;
use vouch_query::FieldError;
use vouch_query::governance::{
    BundleListing, BundleRef, DecisionRef, Difference, OverrideSummary, Proof, PublishedBundle,
    RecordedDecision, ReplayReport, SimulatedChange, SimulationReport,
};
use vouch_query::{Finding, Format, Outcome, OverrideStatus, Reason};

use crate::convert;
use crate::proto::v1 as pb;
use crate::status::{InputError, IntoStatus as _};

/// The format a request asks for; unspecified detects it from the text.
///
/// # Errors
///
/// `INVALID_ARGUMENT` on `field` for a value the proto does not define.
pub fn format_from_proto(value: i32, text: &str, field: &str) -> Result<Format, Status> {
    match pb::BundleFormat::try_from(value) {
        Ok(pb::BundleFormat::Unspecified) => Ok(Format::detect(text)),
        Ok(pb::BundleFormat::Yaml) => Ok(Format::Yaml),
        Ok(pb::BundleFormat::Json) => Ok(Format::Json),
        Err(_) => Err(InputError::new(
            field,
            format!("unknown bundle format {value}; use BUNDLE_FORMAT_YAML or BUNDLE_FORMAT_JSON"),
        )
        .into_status()),
    }
}

/// The proto value of a format.
pub fn format_to_proto(format: Format) -> pb::BundleFormat {
    match format {
        Format::Yaml => pb::BundleFormat::Yaml,
        Format::Json => pb::BundleFormat::Json,
    }
}

/// The proto value of an outcome.
pub fn outcome_to_proto(outcome: Outcome) -> pb::Outcome {
    match outcome {
        Outcome::Allow => pb::Outcome::Allow,
        Outcome::Block => pb::Outcome::Block,
        Outcome::Skipped => pb::Outcome::Skipped,
    }
}

/// The outcome a query asks for; unspecified is any.
///
/// # Errors
///
/// `INVALID_ARGUMENT` on `field` for a value the proto does not define.
pub fn outcome_from_proto(value: i32, field: &str) -> Result<Option<Outcome>, Status> {
    match pb::Outcome::try_from(value) {
        Ok(pb::Outcome::Unspecified) => Ok(None),
        Ok(pb::Outcome::Allow) => Ok(Some(Outcome::Allow)),
        Ok(pb::Outcome::Block) => Ok(Some(Outcome::Block)),
        Ok(pb::Outcome::Skipped) => Ok(Some(Outcome::Skipped)),
        Err(_) => Err(InputError::new(field, format!("unknown outcome {value}")).into_status()),
    }
}

/// The proto value of an override status.
pub fn override_status_to_proto(status: OverrideStatus) -> pb::OverrideStatus {
    match status {
        OverrideStatus::Granted => pb::OverrideStatus::Granted,
        OverrideStatus::Denied => pb::OverrideStatus::Denied,
    }
}

/// A bundle reference from a request.
///
/// # Errors
///
/// `INVALID_ARGUMENT` on `field` when it is missing or empty.
pub fn bundle_ref(bundle: Option<pb::BundleRef>, field: &str) -> Result<BundleRef, Status> {
    let missing = || InputError::new(field, "name the bundle by hash, name or index").into_status();
    match bundle.and_then(|b| b.r#ref).ok_or_else(missing)? {
        pb::bundle_ref::Ref::Hash(h) if !h.is_empty() => Ok(BundleRef::Hash(h)),
        pb::bundle_ref::Ref::Name(n) if !n.is_empty() => Ok(BundleRef::Name(n)),
        pb::bundle_ref::Ref::Index(i) => Ok(BundleRef::Index(EntryIndex(i))),
        _ => Err(missing()),
    }
}

/// A decision reference from a request.
///
/// # Errors
///
/// `INVALID_ARGUMENT` on `field` when it is missing or empty.
pub fn decision_ref(decision: Option<pb::DecisionRef>, field: &str) -> Result<DecisionRef, Status> {
    let missing = || InputError::new(field, "name the decision by id or index").into_status();
    match decision.and_then(|d| d.r#ref).ok_or_else(missing)? {
        pb::decision_ref::Ref::Id(id) if !id.is_empty() => Ok(DecisionRef::Id(id)),
        pb::decision_ref::Ref::Index(i) => Ok(DecisionRef::Index(EntryIndex(i))),
        pb::decision_ref::Ref::Id(_) => Err(missing()),
    }
}

/// An optional RFC 3339 time from a request (empty: none).
///
/// # Errors
///
/// `INVALID_ARGUMENT` on `field` for text that is not an RFC 3339 time.
pub fn time(text: &str, field: &str) -> Result<Option<jiff::Timestamp>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|e| {
        InputError::new(
            field,
            format!("{text:?} is not an RFC 3339 time such as 2025-06-03T10:00:00Z ({e})"),
        )
        .into_status()
    })
}

/// A finding of a lint.
pub fn finding_to_proto(f: &Finding) -> pb::Finding {
    pb::Finding {
        line: f.loc.line,
        column: f.loc.column,
        severity: f.severity.to_string(),
        code: f.code.to_owned(),
        path: f.path.clone(),
        message: f.message.clone(),
    }
}

/// A parse error, as a finding with code `parse`.
pub fn parse_error_to_proto(e: &FieldError) -> pb::Finding {
    pb::Finding {
        line: e.loc.line,
        column: e.loc.column,
        severity: "error".to_owned(),
        code: "parse".to_owned(),
        path: e.path.clone(),
        message: e.message.clone(),
    }
}

/// A reason.
pub fn reason_to_proto(r: &Reason) -> pb::Reason {
    pb::Reason {
        policy: r.policy.clone().unwrap_or_default(),
        requirement: r.requirement.clone(),
        code: r.code.clone(),
        message: r.message.clone(),
    }
}

/// Reasons.
pub fn reasons_to_proto(reasons: &[Reason]) -> Vec<pb::Reason> {
    reasons.iter().map(reason_to_proto).collect()
}

/// Text of canonical JSON bytes (always UTF-8).
pub fn json_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A proof with its checkpoint, as the proof message and the checkpoint message.
pub fn proof_to_proto(proof: &Proof) -> (pb::SignedCheckpoint, pb::InclusionProof) {
    (
        convert::checkpoint_to_proto(&proof.checkpoint),
        convert::inclusion_to_proto(&proof.proof, &proof.leaf_hash, Some(&proof.checkpoint)),
    )
}

/// A published bundle.
pub fn bundle_to_proto(b: &PublishedBundle) -> pb::Bundle {
    pb::Bundle {
        hash: b.entry.hash.clone(),
        name: b.entry.name.clone(),
        index: b.index.0,
        timestamp_unix_nanos: b.timestamp.as_unix_nanos(),
        format: format_to_proto(b.entry.format).into(),
        source: b.entry.source.clone(),
        ir_json: json_text(b.compiled.canonical_bytes()),
        policies: b.compiled.policy_ids().map(str::to_owned).collect(),
    }
}

/// A line of a bundle listing.
pub fn bundle_summary_to_proto(b: &BundleListing) -> pb::BundleSummary {
    pb::BundleSummary {
        hash: b.hash.clone(),
        name: b.name.clone(),
        index: b.index.0,
        timestamp_unix_nanos: b.timestamp.as_unix_nanos(),
        format: format_to_proto(b.format).into(),
    }
}

/// An override recorded for a decision.
pub fn override_summary_to_proto(o: &OverrideSummary) -> pb::OverrideSummary {
    pb::OverrideSummary {
        index: o.index.0,
        timestamp_unix_nanos: o.timestamp.as_unix_nanos(),
        status: override_status_to_proto(o.status).into(),
        approver: o.approver.clone(),
        expires_at: o.expires_at.map(|t| t.to_string()).unwrap_or_default(),
        policies: o.policies.clone(),
        idempotency_key: o.idempotency_key.clone(),
        reasons: reasons_to_proto(&o.reasons),
    }
}

/// A recorded decision.
pub fn decision_to_proto(d: &RecordedDecision) -> pb::Decision {
    let evaluation = &d.record.evaluation;
    let request = &d.record.request;
    pb::Decision {
        decision_id: d.id.clone(),
        index: d.index.0,
        timestamp_unix_nanos: d.timestamp.as_unix_nanos(),
        leaf_hash: d.leaf_hash.0.to_vec(),
        subject: request.subject().to_owned(),
        environment: request
            .field(vouch_query::request::Field::Environment)
            .unwrap_or_default()
            .to_owned(),
        outcome: outcome_to_proto(evaluation.outcome).into(),
        reasons: reasons_to_proto(&evaluation.reasons),
        bundle_hash: d.record.bundle.clone(),
        bundle_index: d.bundle_index.0,
        record_json: json_text(&d.record_json),
        overrides: d.overrides.iter().map(override_summary_to_proto).collect(),
        inclusion_proof: d.proof.as_ref().map(|p| proof_to_proto(p).1),
    }
}

/// A difference found by a replay.
pub fn difference_to_proto(d: &Difference) -> pb::Difference {
    let (recorded, replayed) = match d {
        Difference::Outcome { recorded, replayed } => (recorded.to_string(), replayed.to_string()),
        Difference::ReasonMissing(r) => (r.to_string(), String::new()),
        Difference::ReasonAdded(r) => (String::new(), r.to_string()),
        Difference::Member {
            recorded, replayed, ..
        } => (recorded.clone(), replayed.clone()),
        Difference::BundleHash {
            recorded,
            recompiled,
        } => (recorded.clone(), recompiled.clone()),
        Difference::BundleEntryHash { stored, recompiled } => (stored.clone(), recompiled.clone()),
        Difference::DecisionId { stored, computed } => (stored.clone(), computed.clone()),
        _ => (String::new(), String::new()),
    };
    pb::Difference {
        kind: d.kind().to_owned(),
        message: d.to_string(),
        recorded,
        replayed,
    }
}

/// A replay report.
pub fn replay_to_proto(r: &ReplayReport) -> pb::ReplayResponse {
    pb::ReplayResponse {
        decision_id: r.id.clone(),
        index: r.index.0,
        matches: r.matches(),
        bundle_hash: r.bundle_hash.clone(),
        bundle_index: r.bundle_index.0,
        recorded_outcome: outcome_to_proto(r.recorded.outcome).into(),
        replayed_outcome: r
            .replayed
            .as_ref()
            .map_or(pb::Outcome::Unspecified, |e| outcome_to_proto(e.outcome))
            .into(),
        differences: r.differences.iter().map(difference_to_proto).collect(),
        recorded_evaluation_json: json_text(&r.recorded.canonical_json()),
        replayed_evaluation_json: r
            .replayed
            .as_ref()
            .map(|e| json_text(&e.canonical_json()))
            .unwrap_or_default(),
    }
}

fn change_to_proto(c: &SimulatedChange) -> pb::SimulatedChange {
    pb::SimulatedChange {
        index: c.index.0,
        decision_id: c.decision.clone(),
        subject: c.subject.clone(),
        before: outcome_to_proto(c.before).into(),
        after: outcome_to_proto(c.after).into(),
        reasons: reasons_to_proto(&c.reasons),
    }
}

/// A simulation report.
pub fn simulation_to_proto(r: &SimulationReport) -> pb::SimulateResponse {
    let counts = |c: vouch_query::governance::OutcomeCounts| pb::OutcomeCounts {
        allow: c.allow,
        block: c.block,
        skipped: c.skipped,
    };
    pb::SimulateResponse {
        candidate_hash: r.candidate.clone(),
        evaluated: r.evaluated,
        first_index: r.first_index.map(|i| i.0),
        last_index: r.last_index.map(|i| i.0),
        unchanged: r.unchanged,
        would_newly_block: r.would_newly_block,
        would_unblock: r.would_unblock,
        other_changes: r.other_changes,
        delta: r.delta,
        before: Some(counts(r.before)),
        after: Some(counts(r.after)),
        by_policy: r
            .by_policy
            .iter()
            .map(|p| pb::PolicyImpact {
                policy: p.policy.clone(),
                matched_before: p.matched_before,
                matched_after: p.matched_after,
                blocked_before: p.blocked_before,
                blocked_after: p.blocked_after,
                newly_blocked: p.newly_blocked,
                unblocked: p.unblocked,
            })
            .collect(),
        newly_blocked: r.newly_blocked.iter().map(change_to_proto).collect(),
        unblocked: r.unblocked.iter().map(change_to_proto).collect(),
        unreadable: r.unreadable,
    }
}
