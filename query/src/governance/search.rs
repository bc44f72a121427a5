//! Decision queries: by subject, outcome, policy, environment and time, with pagination,
//! "as of" a time, and inclusion proofs.
//!
//! Time bounds refer to the time the ledger recorded a decision (the entry's timestamp,
//! assigned by the server), never to the client-supplied `now`. A query reads the index
//! terms of its most selective filter (subject, then policy, environment, outcome, else all
//! decisions), re-checks every filter against each entry it finds, and returns decisions in
//! ledger order after the cursor. With `as_of`, only entries recorded at or before that time
//! count, and each subject contributes only its latest decision then: "what was decided for
//! this subject as of T", with the overrides recorded by T.

use std::collections::BTreeMap;
use std::sync::Arc;

use vouch_ledger_core::entry::{Entry, EntryKind, Timestamp as LedgerTimestamp};
use vouch_ledger_core::{EntryIndex, Hash};
use vouch_storage::{Corruption, Ledger, ReadError, StoredCheckpoint};

use super::Proof;
use super::context::all_hits;
use super::error::{GetDecisionError, InvalidEntry, QueryError};
use super::record::{DecisionEntry, EntryError, OverrideEntry};
use super::summary::{self, DecisionSummary};
use super::terms::{
    NS_ENVIRONMENT, NS_KIND, NS_OUTCOME, NS_OVERRIDE_DECISION, NS_POLICY, NS_SUBJECT, outcome_name,
};
use crate::decision::DecisionRecord;
use crate::evaluation::{Outcome, Reason};
use crate::overrides::OverrideStatus;

/// The most decisions one page holds.
pub const MAX_PAGE: usize = 1000;

/// An override recorded for a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverrideSummary {
    /// The override entry's index.
    pub index: EntryIndex,
    /// When it was recorded.
    pub timestamp: LedgerTimestamp,
    /// Granted or denied.
    pub status: OverrideStatus,
    /// Who approved it.
    pub approver: String,
    /// Until when it applies (when granted).
    pub expires_at: Option<jiff::Timestamp>,
    /// The blocking policies it covers.
    pub policies: Vec<String>,
    /// Its idempotency key.
    pub idempotency_key: String,
    /// Why it was denied.
    pub reasons: Vec<Reason>,
}

/// A decision as recorded in the ledger.
#[derive(Clone, Debug)]
pub struct RecordedDecision {
    /// The decision id.
    pub id: String,
    /// The entry's index.
    pub index: EntryIndex,
    /// When the ledger recorded it.
    pub timestamp: LedgerTimestamp,
    /// The entry's leaf hash.
    pub leaf_hash: Hash,
    /// The index of the bundle entry it was made with.
    pub bundle_index: EntryIndex,
    /// The record: bundle hash, request snapshot, evaluation.
    pub record: DecisionRecord,
    /// The record's canonical JSON as stored, whose SHA-256 is the id.
    pub record_json: Vec<u8>,
    /// Overrides recorded for it, in ledger order (for an `as_of` query, those recorded by
    /// then).
    pub overrides: Vec<OverrideSummary>,
    /// Its inclusion proof, when asked for and a checkpoint covers it.
    pub proof: Option<Proof>,
}

impl RecordedDecision {
    /// The granted override in force at `at`, if any: the last one recorded whose expiry is
    /// after `at`.
    pub fn override_in_force(&self, at: jiff::Timestamp) -> Option<&OverrideSummary> {
        self.overrides
            .iter()
            .rev()
            .find(|o| o.status == OverrideStatus::Granted && o.expires_at.is_some_and(|e| e > at))
    }
}

/// A decision query. Every filter that is set must hold.
#[derive(Clone, Debug)]
pub struct DecisionQuery {
    /// The request's subject (change or ticket id).
    pub subject: Option<String>,
    /// The outcome.
    pub outcome: Option<Outcome>,
    /// A policy that matched the request.
    pub policy: Option<String>,
    /// The request's environment.
    pub environment: Option<String>,
    /// Recorded at or after.
    pub since: Option<jiff::Timestamp>,
    /// Recorded at or before.
    pub until: Option<jiff::Timestamp>,
    /// The state as of this time: see the module documentation.
    pub as_of: Option<jiff::Timestamp>,
    /// The cursor: only entries after this index.
    pub after: Option<EntryIndex>,
    /// The most results (1 to [`MAX_PAGE`]).
    pub limit: usize,
    /// Attach inclusion proofs against the latest checkpoint.
    pub with_proof: bool,
}

impl Default for DecisionQuery {
    fn default() -> Self {
        DecisionQuery {
            subject: None,
            outcome: None,
            policy: None,
            environment: None,
            since: None,
            until: None,
            as_of: None,
            after: None,
            limit: 100,
            with_proof: false,
        }
    }
}

/// One page of results.
#[derive(Clone, Debug)]
pub struct DecisionPage {
    /// The decisions, in ledger order.
    pub decisions: Vec<RecordedDecision>,
    /// The cursor of the next page, when this one is full.
    pub next: Option<EntryIndex>,
    /// The checkpoint the proofs lead to, when proofs were asked for.
    pub checkpoint: Option<Arc<StoredCheckpoint>>,
}

/// A ledger timestamp from a `jiff` one (before the epoch: `None`).
pub(crate) fn ledger_time(t: jiff::Timestamp) -> Option<LedgerTimestamp> {
    u64::try_from(t.as_nanosecond())
        .ok()
        .map(LedgerTimestamp::from_unix_nanos)
}

/// The first index recorded at or after `since`.
pub(crate) fn first_at_or_after(
    ledger: &Ledger,
    since: jiff::Timestamp,
) -> Result<EntryIndex, ReadError> {
    let Some(t) = ledger_time(since) else {
        return Ok(EntryIndex(0));
    };
    let Some(before) = t.as_unix_nanos().checked_sub(1) else {
        return Ok(EntryIndex(0));
    };
    Ok(EntryIndex(
        ledger
            .index_at_time(LedgerTimestamp::from_unix_nanos(before))?
            .map_or(0, |i| i.0 + 1),
    ))
}

/// One past the last index recorded at or before `until`.
pub(crate) fn end_at(ledger: &Ledger, until: jiff::Timestamp) -> Result<EntryIndex, ReadError> {
    let Some(t) = ledger_time(until) else {
        return Ok(EntryIndex(0));
    };
    Ok(EntryIndex(ledger.index_at_time(t)?.map_or(0, |i| i.0 + 1)))
}

/// Reads the decision at `index` strictly, with the overrides recorded before `end`.
pub(crate) fn read_decision(
    ledger: &Ledger,
    index: EntryIndex,
    end: Option<EntryIndex>,
) -> Result<RecordedDecision, GetDecisionError> {
    let raw = ledger.get_raw(index)?;
    let leaf_hash = ledger.hash_alg().leaf_hash(&raw);
    let entry = Entry::decode(&raw).map_err(|e| {
        ReadError::Corrupted(Corruption::file(
            ledger.dir(),
            format!("entry {index} read back is not a valid envelope: {e}"),
        ))
    })?;
    if entry.kind != EntryKind::Decision {
        return Err(InvalidEntry::Kind {
            index,
            expected: EntryKind::Decision,
            found: entry.kind,
        }
        .into());
    }
    let invalid = |source| InvalidEntry::Payload { index, source };
    let decision = DecisionEntry::from_json(&entry.payload).map_err(invalid)?;
    let computed = decision.record.id();
    if computed != decision.id {
        return Err(invalid(EntryError::Record(format!(
            "the record hashes to {computed}, not to its stored id {}",
            decision.id
        )))
        .into());
    }
    let record_json = DecisionEntry::record_bytes(&entry.payload)
        .map_err(invalid)?
        .to_vec();
    let overrides = overrides_of(ledger, &decision.id, end)?;
    Ok(RecordedDecision {
        id: decision.id,
        index,
        timestamp: entry.timestamp,
        leaf_hash,
        bundle_index: decision.bundle_index,
        record: decision.record,
        record_json,
        overrides,
        proof: None,
    })
}

/// The overrides recorded for decision `id` before `end`.
fn overrides_of(
    ledger: &Ledger,
    id: &str,
    end: Option<EntryIndex>,
) -> Result<Vec<OverrideSummary>, ReadError> {
    let mut out = Vec::new();
    for index in all_hits(ledger, NS_OVERRIDE_DECISION, id.as_bytes(), end)? {
        let entry = ledger.get(index)?;
        if entry.kind != EntryKind::Override {
            continue;
        }
        let Ok(o) = OverrideEntry::from_json(&entry.payload) else {
            continue;
        };
        if o.outcome.decision != id {
            continue;
        }
        out.push(OverrideSummary {
            index,
            timestamp: entry.timestamp,
            status: o.outcome.status,
            approver: o.outcome.approver,
            expires_at: o.outcome.expires_at,
            policies: o.outcome.policies,
            idempotency_key: o.outcome.idempotency_key,
            reasons: o.outcome.reasons,
        });
    }
    Ok(out)
}

/// Whether a decision summary passes every filter of `q`.
fn passes(d: &DecisionSummary, q: &DecisionQuery) -> bool {
    let r = &d.record.request;
    let e = &d.record.evaluation;
    q.subject.as_ref().is_none_or(|s| *s == r.subject)
        && q.environment.as_ref().is_none_or(|s| *s == r.environment)
        && q.outcome.is_none_or(|o| o == e.outcome)
        && q.policy
            .as_ref()
            .is_none_or(|p| e.matched_policies.iter().any(|m| m.policy == *p))
}

pub(crate) fn query(ledger: &Ledger, q: &DecisionQuery) -> Result<DecisionPage, QueryError> {
    if let (Some(s), Some(u)) = (q.since, q.until)
        && s > u
    {
        return Err(QueryError::InvalidRange(format!(
            "since {s} is after until {u}"
        )));
    }
    let limit = q.limit.clamp(1, MAX_PAGE);
    let start = match q.since {
        Some(s) => first_at_or_after(ledger, s)?,
        None => EntryIndex(0),
    };
    let mut end = EntryIndex(ledger.size().0);
    for bound in [q.until, q.as_of].into_iter().flatten() {
        end = end.min(end_at(ledger, bound)?);
    }
    let outcome_value;
    let (namespace, value): (u8, &[u8]) = if let Some(s) = &q.subject {
        (NS_SUBJECT, s.as_bytes())
    } else if let Some(p) = &q.policy {
        (NS_POLICY, p.as_bytes())
    } else if let Some(e) = &q.environment {
        (NS_ENVIRONMENT, e.as_bytes())
    } else if let Some(o) = q.outcome {
        outcome_value = outcome_name(o);
        (NS_OUTCOME, outcome_value.as_bytes())
    } else {
        (NS_KIND, b"decision")
    };
    let summary_of = |index: EntryIndex| -> Result<Option<DecisionSummary>, ReadError> {
        let entry = ledger.get(index)?;
        if entry.kind != EntryKind::Decision {
            return Ok(None);
        }
        Ok(summary::read::<DecisionSummary>(&entry.payload).filter(|d| passes(d, q)))
    };
    let mut indexes: Vec<EntryIndex> = Vec::new();
    let mut next = None;
    if q.as_of.is_some() {
        // The latest decision of each subject in [start, end).
        let mut latest: BTreeMap<String, EntryIndex> = BTreeMap::new();
        let first = start.0.checked_sub(1).map(EntryIndex);
        for index in hits_in(ledger, namespace, value, first, end)? {
            if let Some(d) = summary_of(index)? {
                latest.insert(d.record.request.subject, index);
            }
        }
        let mut all: Vec<EntryIndex> = latest
            .into_values()
            .filter(|i| q.after.is_none_or(|a| *i > a))
            .collect();
        all.sort_unstable();
        if all.len() > limit {
            all.truncate(limit);
            next = all.last().copied();
        }
        indexes = all;
    } else {
        let mut after = start.0.checked_sub(1).map(EntryIndex);
        if let Some(a) = q.after {
            after = Some(after.map_or(a, |b| b.max(a)));
        }
        'pages: loop {
            let hits = ledger.lookup_term(namespace, value, after, 256)?;
            let full = hits.len() == 256;
            for index in hits {
                if index >= end {
                    break 'pages;
                }
                after = Some(index);
                if summary_of(index)?.is_some() {
                    indexes.push(index);
                    if indexes.len() == limit {
                        next = Some(index);
                        break 'pages;
                    }
                }
            }
            if !full {
                break;
            }
        }
    }
    let checkpoint = if q.with_proof {
        ledger.latest_checkpoint()
    } else {
        None
    };
    let overrides_end = q.as_of.map(|_| end);
    let mut decisions = Vec::with_capacity(indexes.len());
    for index in indexes {
        let mut d = match read_decision(ledger, index, overrides_end) {
            Ok(d) => d,
            Err(GetDecisionError::Invalid(e)) => return Err(e.into()),
            Err(GetDecisionError::Read(e)) => return Err(e.into()),
            Err(GetDecisionError::Prove(e)) => return Err(e.into()),
            Err(GetDecisionError::NotFound(_)) => continue,
        };
        if let Some(cp) = &checkpoint
            && cp.size().contains(index)
        {
            d.proof = Some(Proof {
                checkpoint: cp.clone(),
                proof: ledger.inclusion_proof(index, cp.size())?,
                leaf_hash: ledger.leaf_hash(index)?,
            });
        }
        decisions.push(d);
    }
    Ok(DecisionPage {
        decisions,
        next,
        checkpoint,
    })
}

/// The entries holding a term after `after` and below `end`.
fn hits_in(
    ledger: &Ledger,
    namespace: u8,
    value: &[u8],
    mut after: Option<EntryIndex>,
    end: EntryIndex,
) -> Result<Vec<EntryIndex>, ReadError> {
    let mut out = Vec::new();
    loop {
        let hits = ledger.lookup_term(namespace, value, after, 1024)?;
        let full = hits.len() == 1024;
        for index in hits {
            if index >= end {
                return Ok(out);
            }
            after = Some(index);
            out.push(index);
        }
        if !full {
            return Ok(out);
        }
    }
}
