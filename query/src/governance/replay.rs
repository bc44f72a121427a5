//! Replaying a recorded decision from its stored snapshots, and reporting every difference.
//!
//! The bundle is recompiled from the source text in the bundle entry the decision names by
//! index, and its hash is compared with the hash the decision recorded; the request snapshot
//! (context included) is evaluated again; the result is compared member by member with the
//! recorded evaluation. The decision id is recomputed from the record too, so a record that
//! was altered after its id was taken is reported even when the evaluation still agrees.

use std::fmt;

use vouch_ledger_core::EntryIndex;

use super::record::{BundleEntry, DecisionEntry, EntryError};
use crate::bundle::SourceBundle;
use crate::compiler::{CompiledBundle, compile};
use crate::evaluation::{Evaluation, Outcome, Reason, evaluate};

/// One way a replay differs from the record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Difference {
    /// The record no longer hashes to the id stored with it.
    DecisionId {
        /// The id stored in the entry.
        stored: String,
        /// The id of the record as it is now.
        computed: String,
    },
    /// The bundle entry cannot be read or compiled, so nothing could be re-evaluated.
    BundleUnavailable {
        /// Why.
        reason: String,
    },
    /// The bundle entry's own hash member does not match its source.
    BundleEntryHash {
        /// The hash stored in the bundle entry.
        stored: String,
        /// The hash its source compiles to.
        recompiled: String,
    },
    /// The bundle at the recorded index is not the bundle the decision was made with.
    BundleHash {
        /// The hash the decision recorded.
        recorded: String,
        /// The hash the bundle entry's source compiles to.
        recompiled: String,
    },
    /// The outcome differs.
    Outcome {
        /// As recorded.
        recorded: Outcome,
        /// As replayed.
        replayed: Outcome,
    },
    /// A recorded reason that the replay does not give.
    ReasonMissing(Reason),
    /// A reason the replay gives that was not recorded.
    ReasonAdded(Reason),
    /// Another member of the evaluation differs.
    Member {
        /// The member: `bundle`, `matched_policies`, `obligations`, `applied_exceptions`,
        /// `errors`, `overlays`, or `reasons` (the same reasons in another order).
        member: &'static str,
        /// Its recorded canonical JSON.
        recorded: String,
        /// Its replayed canonical JSON.
        replayed: String,
    },
}

impl Difference {
    /// A stable kebab-case name of the kind of difference.
    pub fn kind(&self) -> &'static str {
        match self {
            Difference::DecisionId { .. } => "decision-id",
            Difference::BundleUnavailable { .. } => "bundle-unavailable",
            Difference::BundleEntryHash { .. } => "bundle-entry-hash",
            Difference::BundleHash { .. } => "bundle-hash",
            Difference::Outcome { .. } => "outcome",
            Difference::ReasonMissing(_) => "reason-missing",
            Difference::ReasonAdded(_) => "reason-added",
            Difference::Member { .. } => "member",
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::DecisionId { stored, computed } => write!(
                f,
                "the record hashes to {computed}, not to its stored id {stored}"
            ),
            Difference::BundleUnavailable { reason } => {
                write!(f, "the bundle cannot be re-evaluated: {reason}")
            }
            Difference::BundleEntryHash { stored, recompiled } => write!(
                f,
                "the bundle entry says hash {stored}, but its source compiles to {recompiled}"
            ),
            Difference::BundleHash {
                recorded,
                recompiled,
            } => write!(
                f,
                "the decision was made with bundle {recorded}, but the bundle entry compiles to {recompiled}"
            ),
            Difference::Outcome { recorded, replayed } => {
                write!(f, "outcome: recorded {recorded}, replayed {replayed}")
            }
            Difference::ReasonMissing(r) => write!(f, "reason recorded, not replayed: {r}"),
            Difference::ReasonAdded(r) => write!(f, "reason replayed, not recorded: {r}"),
            Difference::Member {
                member,
                recorded,
                replayed,
            } => write!(f, "{member}: recorded {recorded}, replayed {replayed}"),
        }
    }
}

/// The result of replaying one decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayReport {
    /// The decision entry's index.
    pub index: EntryIndex,
    /// The decision id as stored.
    pub id: String,
    /// The bundle entry's index, as recorded.
    pub bundle_index: EntryIndex,
    /// The bundle hash, as recorded.
    pub bundle_hash: String,
    /// The recorded evaluation.
    pub recorded: Evaluation,
    /// The replayed evaluation, when the bundle could be compiled.
    pub replayed: Option<Evaluation>,
    /// Every difference, in the order of the variants of [`Difference`]; empty when the
    /// replay reproduces the record byte for byte.
    pub differences: Vec<Difference>,
}

impl ReplayReport {
    /// Whether the replay reproduced the decision exactly.
    pub fn matches(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Replays a decision from the payloads of its entry and of its bundle entry (or the reason
/// the bundle entry is unavailable). Pure: this is what [`super::Governance::replay`] runs
/// on the ledger's entries, and what an auditor can run on exported ones.
///
/// # Errors
///
/// [`EntryError`] if the decision payload cannot be read at all.
pub fn replay_entries(
    index: EntryIndex,
    decision_payload: &[u8],
    bundle_payload: Result<&[u8], &str>,
) -> Result<ReplayReport, EntryError> {
    let decision = DecisionEntry::from_json(decision_payload)?;
    Ok(replay(index, &decision, bundle_payload))
}

/// Replays with the bundle entry of the decision read from `bundle_payload`.
pub(crate) fn replay(
    index: EntryIndex,
    decision: &DecisionEntry,
    bundle_payload: Result<&[u8], &str>,
) -> ReplayReport {
    let compiled = bundle_payload
        .map_err(str::to_owned)
        .and_then(|payload| {
            BundleEntry::from_json(payload).map_err(|e| format!("the bundle entry: {e}"))
        })
        .and_then(|entry| {
            let source = SourceBundle::parse(&entry.source, entry.format)
                .map_err(|e| format!("the bundle source does not parse: {e}"))?;
            let compiled =
                compile(&source).map_err(|e| format!("the bundle does not compile: {e}"))?;
            Ok((entry, compiled))
        });
    replay_with(
        index,
        decision,
        compiled
            .as_ref()
            .map(|(e, c)| (e, c))
            .map_err(String::as_str),
    )
}

/// Replays with a bundle entry already read and compiled (or the reason there is none).
pub(crate) fn replay_with(
    index: EntryIndex,
    decision: &DecisionEntry,
    bundle: Result<(&BundleEntry, &CompiledBundle), &str>,
) -> ReplayReport {
    let record = &decision.record;
    let mut differences = Vec::new();
    let computed = record.id();
    if computed != decision.id {
        differences.push(Difference::DecisionId {
            stored: decision.id.clone(),
            computed,
        });
    }
    let replayed = match bundle {
        Err(reason) => {
            differences.push(Difference::BundleUnavailable {
                reason: reason.to_owned(),
            });
            None
        }
        Ok((entry, compiled)) => {
            if entry.hash != compiled.hash() {
                differences.push(Difference::BundleEntryHash {
                    stored: entry.hash.clone(),
                    recompiled: compiled.hash().to_owned(),
                });
            }
            if record.bundle != compiled.hash() {
                differences.push(Difference::BundleHash {
                    recorded: record.bundle.clone(),
                    recompiled: compiled.hash().to_owned(),
                });
            }
            let replayed = evaluate(compiled, &record.request);
            compare(&record.evaluation, &replayed, &mut differences);
            Some(replayed)
        }
    };
    ReplayReport {
        index,
        id: decision.id.clone(),
        bundle_index: decision.bundle_index,
        bundle_hash: record.bundle.clone(),
        recorded: record.evaluation.clone(),
        replayed,
        differences,
    }
}

fn compare(recorded: &Evaluation, replayed: &Evaluation, out: &mut Vec<Difference>) {
    let start = out.len();
    if recorded.outcome != replayed.outcome {
        out.push(Difference::Outcome {
            recorded: recorded.outcome,
            replayed: replayed.outcome,
        });
    }
    for r in &recorded.reasons {
        if !replayed.reasons.contains(r) {
            out.push(Difference::ReasonMissing(r.clone()));
        }
    }
    for r in &replayed.reasons {
        if !recorded.reasons.contains(r) {
            out.push(Difference::ReasonAdded(r.clone()));
        }
    }
    member(out, "bundle", &recorded.bundle, &replayed.bundle);
    member(
        out,
        "matched_policies",
        &recorded.matched_policies,
        &replayed.matched_policies,
    );
    member(
        out,
        "obligations",
        &recorded.obligations,
        &replayed.obligations,
    );
    member(
        out,
        "applied_exceptions",
        &recorded.applied_exceptions,
        &replayed.applied_exceptions,
    );
    member(out, "errors", &recorded.errors, &replayed.errors);
    member(out, "overlays", &recorded.overlays, &replayed.overlays);
    // Reasons in another order (they are sorted when evaluated) would escape the checks
    // above; the canonical bytes catch anything else.
    if out.len() == start && recorded.canonical_json() != replayed.canonical_json() {
        member(out, "reasons", &recorded.reasons, &replayed.reasons);
    }
}

/// Records a [`Difference::Member`] when the canonical JSON of `a` and `b` differ.
fn member<T: serde::Serialize>(out: &mut Vec<Difference>, name: &'static str, a: &T, b: &T) {
    let a = String::from_utf8_lossy(&crate::canonical::to_vec(a)).into_owned();
    let b = String::from_utf8_lossy(&crate::canonical::to_vec(b)).into_owned();
    if a != b {
        out.push(Difference::Member {
            member: name,
            recorded: a,
            replayed: b,
        });
    }
}
