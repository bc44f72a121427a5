//! Simulation: a candidate bundle evaluated over recorded decisions, compared with what was
//! decided.
//!
//! Each recorded decision's request snapshot (with the context it was decided with) is
//! evaluated with the candidate. A decision that was not BLOCK and would be BLOCK is "newly
//! blocked"; one that was BLOCK and would not be is "unblocked"; `delta` is the change in the
//! number of BLOCKs. Per policy, the report counts the decisions it matched and blocked (had
//! a reason attributed to it) before and after, and how many it newly blocks or no longer
//! blocks.
//!
//! The decisions are read sequentially from the segments (the index only says where they
//! are), split into contiguous runs, one per thread. Only the members needed are read from
//! each payload: the recorded outcome, matched policies and reasons, and the request
//! snapshot, which is validated as a request before it is evaluated.
//!
//! Recorded decisions never change, so what was read from them is kept in a
//! [`SimulationCache`] (bounded; the oldest decisions leave first): the next simulation over
//! the same decisions reads neither the index nor the segments for them again, and only
//! evaluates. Reading and parsing a recorded decision costs more than evaluating it.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use vouch_ledger_core::EntryIndex;
use vouch_ledger_core::entry::{EntryKind, EntryView};
use vouch_storage::{Ledger, ReadError};

use super::context::all_hits;
use super::error::SimulateError;
use super::search::{end_at, first_at_or_after};
use super::summary::{self, BundleSummary, EvaluationSummary, SimulationDecision, SimulationView};
use super::terms::{NS_BUNDLE_NAME, NS_KIND};
use crate::compiler::CompiledBundle;
use crate::evaluation::{Evaluation, Outcome, Reason, evaluate};
use crate::request::Request;
use crate::request::limits::MAX_REQUEST_BYTES;

/// The most decisions one simulation evaluates.
pub const MAX_SIMULATED_DECISIONS: u64 = 1_000_000;

/// The most parsed decisions a [`SimulationCache`] keeps by default.
pub const DEFAULT_CACHED_DECISIONS: usize = 200_000;

/// What simulation reads from a recorded decision.
#[derive(Debug)]
pub(crate) struct Parsed {
    id: String,
    bundle_index: u64,
    request: Request,
    outcome: Outcome,
    /// Matched policy ids, as recorded.
    matched: Vec<Arc<str>>,
    /// Policies with a reason, as recorded, sorted and without duplicates.
    blocked: Vec<Arc<str>>,
}

/// Policy ids, each kept once: the decisions one thread reads name the same few policies,
/// and every cached decision keeps its matched and blocked ones.
#[derive(Debug, Default)]
struct PolicyIds(HashSet<Arc<str>>);

impl PolicyIds {
    fn intern(&mut self, id: String) -> Arc<str> {
        if let Some(known) = self.0.get(id.as_str()) {
            return known.clone();
        }
        let id: Arc<str> = id.into();
        self.0.insert(id.clone());
        id
    }
}

impl Parsed {
    /// Reads a decision payload, `None` if it is not one or its request snapshot is not a
    /// valid request.
    ///
    /// The payload is read in one pass, the snapshot with the fast request reader
    /// ([`SimulationDecision`]); if that fails, it is read as before: the summary with the
    /// snapshot's bytes, which [`Request::from_json`] then reads (and which the strict reader
    /// reads if the fast one does not accept them). Both answer the same wherever the one
    /// pass answers, since it deserializes the snapshot exactly as the fast reader does.
    fn read_payload(payload: &[u8], ids: &mut PolicyIds) -> Option<Parsed> {
        if payload.len() <= MAX_REQUEST_BYTES
            && let Some(d) = summary::read::<SimulationDecision>(payload)
        {
            return Some(Parsed::new(
                d.id,
                d.bundle_index,
                d.record.request.0,
                d.record.evaluation,
                ids,
            ));
        }
        Parsed::read_in_two_passes(payload, ids)
    }

    /// What [`Parsed::read_payload`] falls back to.
    fn read_in_two_passes(payload: &[u8], ids: &mut PolicyIds) -> Option<Parsed> {
        let view = summary::read::<SimulationView<'_>>(payload)?;
        let request = Request::from_json(view.record.request.get().as_bytes()).ok()?;
        Some(Parsed::new(
            view.id,
            view.bundle_index,
            request,
            view.record.evaluation,
            ids,
        ))
    }

    fn new(
        id: String,
        bundle_index: u64,
        request: Request,
        evaluation: EvaluationSummary,
        ids: &mut PolicyIds,
    ) -> Parsed {
        let mut blocked: Vec<Arc<str>> = evaluation
            .reasons
            .into_iter()
            .filter_map(|r| r.policy)
            .map(|p| ids.intern(p))
            .collect();
        blocked.dedup();
        Parsed {
            id,
            bundle_index,
            request,
            outcome: evaluation.outcome,
            matched: evaluation
                .matched_policies
                .into_iter()
                .map(|m| ids.intern(m.policy))
                .collect(),
            blocked,
        }
    }
}

/// The decision entries found so far, in index order, and the last index term read.
#[derive(Debug, Default)]
struct KnownDecisions {
    indexes: Vec<u64>,
    last: Option<EntryIndex>,
}

/// What simulations keep between runs: the decision entries found through the index, and
/// the parsed decisions (at most `capacity`; the lowest indexes are dropped first).
#[derive(Debug)]
pub struct SimulationCache {
    capacity: usize,
    known: Mutex<KnownDecisions>,
    parsed: Mutex<BTreeMap<u64, Arc<Parsed>>>,
}

impl Default for SimulationCache {
    fn default() -> Self {
        SimulationCache::new(DEFAULT_CACHED_DECISIONS)
    }
}

impl SimulationCache {
    /// A cache keeping at most `capacity` parsed decisions (0 keeps none).
    pub fn new(capacity: usize) -> SimulationCache {
        SimulationCache {
            capacity,
            known: Mutex::new(KnownDecisions::default()),
            parsed: Mutex::new(BTreeMap::new()),
        }
    }

    /// How many parsed decisions it holds.
    pub fn len(&self) -> usize {
        lock(&self.parsed).len()
    }

    /// Whether it holds no parsed decision.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The decision entries of the ledger, reading only the index terms added since the
    /// last call.
    fn decision_indexes(&self, ledger: &Ledger) -> Result<Vec<u64>, ReadError> {
        let mut known = lock(&self.known);
        loop {
            let hits = ledger.lookup_term(NS_KIND, b"decision", known.last, 4096)?;
            let full = hits.len() == 4096;
            for index in hits {
                known.last = Some(index);
                known.indexes.push(index.0);
            }
            if !full {
                break;
            }
        }
        Ok(known.indexes.clone())
    }

    fn insert(&self, fresh: Vec<(u64, Arc<Parsed>)>) {
        if self.capacity == 0 {
            return;
        }
        let mut parsed = lock(&self.parsed);
        parsed.extend(fresh);
        while parsed.len() > self.capacity {
            parsed.pop_first();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Which recorded decisions a simulation evaluates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimulationScope {
    /// The last `n` recorded decisions.
    Last(u64),
    /// The decisions recorded in a time range (bounds inclusive; absent: unbounded).
    Range {
        /// Recorded at or after.
        since: Option<jiff::Timestamp>,
        /// Recorded at or before.
        until: Option<jiff::Timestamp>,
    },
}

/// Options of a simulation.
#[derive(Clone, Debug)]
pub struct SimulationOptions {
    /// Which decisions.
    pub scope: SimulationScope,
    /// Only decisions made with a bundle of this name (absent: all).
    pub bundle_name: Option<String>,
    /// The most changed decisions listed in each of the report's lists.
    pub list_limit: usize,
    /// Threads to use (0: one per available core).
    pub threads: usize,
}

impl Default for SimulationOptions {
    fn default() -> Self {
        SimulationOptions {
            scope: SimulationScope::Last(1000),
            bundle_name: None,
            list_limit: 20,
            threads: 0,
        }
    }
}

/// Decisions per outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// ALLOW.
    pub allow: u64,
    /// BLOCK.
    pub block: u64,
    /// SKIPPED.
    pub skipped: u64,
}

impl OutcomeCounts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Allow => self.allow += 1,
            Outcome::Block => self.block += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }

    fn merge(&mut self, other: OutcomeCounts) {
        self.allow += other.allow;
        self.block += other.block;
        self.skipped += other.skipped;
    }
}

/// What the candidate changes for one policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyImpact {
    /// The policy id.
    pub policy: String,
    /// Decisions it matched, as recorded.
    pub matched_before: u64,
    /// Decisions it matches with the candidate.
    pub matched_after: u64,
    /// Decisions it blocked (had a reason), as recorded.
    pub blocked_before: u64,
    /// Decisions it blocks with the candidate.
    pub blocked_after: u64,
    /// Decisions it blocks with the candidate and did not block before.
    pub newly_blocked: u64,
    /// Decisions it blocked before and does not block with the candidate.
    pub unblocked: u64,
}

impl PolicyImpact {
    fn merge(&mut self, o: &PolicyImpact) {
        self.matched_before += o.matched_before;
        self.matched_after += o.matched_after;
        self.blocked_before += o.blocked_before;
        self.blocked_after += o.blocked_after;
        self.newly_blocked += o.newly_blocked;
        self.unblocked += o.unblocked;
    }
}

/// A decision whose outcome the candidate changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatedChange {
    /// The decision entry's index.
    pub index: EntryIndex,
    /// The decision id.
    pub decision: String,
    /// The request's subject.
    pub subject: String,
    /// As recorded.
    pub before: Outcome,
    /// With the candidate.
    pub after: Outcome,
    /// The candidate's reasons.
    pub reasons: Vec<Reason>,
}

/// The result of a simulation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimulationReport {
    /// The candidate's hash.
    pub candidate: String,
    /// Decisions evaluated.
    pub evaluated: u64,
    /// The first and last decision evaluated.
    pub first_index: Option<EntryIndex>,
    /// See `first_index`.
    pub last_index: Option<EntryIndex>,
    /// Decisions whose outcome is the same.
    pub unchanged: u64,
    /// Decisions not BLOCK before and BLOCK with the candidate.
    pub would_newly_block: u64,
    /// Decisions BLOCK before and not with the candidate.
    pub would_unblock: u64,
    /// Decisions changing between ALLOW and SKIPPED.
    pub other_changes: u64,
    /// BLOCKs with the candidate minus BLOCKs recorded.
    pub delta: i64,
    /// Outcomes as recorded.
    pub before: OutcomeCounts,
    /// Outcomes with the candidate.
    pub after: OutcomeCounts,
    /// Per policy, sorted by id.
    pub by_policy: Vec<PolicyImpact>,
    /// The first newly blocked decisions (at most `list_limit`), in ledger order.
    pub newly_blocked: Vec<SimulatedChange>,
    /// The first unblocked decisions (at most `list_limit`), in ledger order.
    pub unblocked: Vec<SimulatedChange>,
    /// Decision entries in the range that could not be read and were left out.
    pub unreadable: u64,
}

#[derive(Default)]
struct Tally {
    report: SimulationReport,
    policies: BTreeMap<String, PolicyImpact>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        let (r, o) = (&mut self.report, other.report);
        r.evaluated += o.evaluated;
        r.first_index = match (r.first_index, o.first_index) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        r.last_index = r.last_index.max(o.last_index);
        r.unchanged += o.unchanged;
        r.would_newly_block += o.would_newly_block;
        r.would_unblock += o.would_unblock;
        r.other_changes += o.other_changes;
        r.before.merge(o.before);
        r.after.merge(o.after);
        r.newly_blocked.extend(o.newly_blocked);
        r.unblocked.extend(o.unblocked);
        r.unreadable += o.unreadable;
        for (k, v) in other.policies {
            self.policies.entry(k).or_insert_with(|| PolicyImpact {
                policy: v.policy.clone(),
                ..PolicyImpact::default()
            });
            if let Some(slot) = self.policies.get_mut(&v.policy) {
                slot.merge(&v);
            }
        }
    }

    fn add(&mut self, index: EntryIndex, before: &Parsed, after: &Evaluation, list_limit: usize) {
        let r = &mut self.report;
        r.evaluated += 1;
        if r.first_index.is_none() {
            r.first_index = Some(index);
        }
        r.last_index = Some(index);
        r.before.add(before.outcome);
        r.after.add(after.outcome);
        let change = || SimulatedChange {
            index,
            decision: before.id.clone(),
            subject: before.request.subject().to_owned(),
            before: before.outcome,
            after: after.outcome,
            reasons: after.reasons.clone(),
        };
        match (
            before.outcome == Outcome::Block,
            after.outcome == Outcome::Block,
        ) {
            _ if before.outcome == after.outcome => r.unchanged += 1,
            (false, true) => {
                r.would_newly_block += 1;
                if r.newly_blocked.len() < list_limit {
                    r.newly_blocked.push(change());
                }
            }
            (true, false) => {
                r.would_unblock += 1;
                if r.unblocked.len() < list_limit {
                    r.unblocked.push(change());
                }
            }
            _ => r.other_changes += 1,
        }
        self.policies(before, after);
    }

    fn policies(&mut self, before: &Parsed, after: &Evaluation) {
        let mut blocked_after: Vec<&str> = after
            .reasons
            .iter()
            .filter_map(|r| r.policy.as_deref())
            .collect();
        blocked_after.dedup();
        let map = &mut self.policies;
        for m in &before.matched {
            slot(map, m).matched_before += 1;
        }
        for m in &after.matched_policies {
            slot(map, &m.policy).matched_after += 1;
        }
        for p in &before.blocked {
            let s = slot(map, p);
            s.blocked_before += 1;
            if !blocked_after.contains(&&**p) {
                s.unblocked += 1;
            }
        }
        for p in &blocked_after {
            let s = slot(map, p);
            s.blocked_after += 1;
            if !before.blocked.iter().any(|b| &**b == *p) {
                s.newly_blocked += 1;
            }
        }
    }
}

/// The tally of policy `id`, created on first use.
fn slot<'m>(map: &'m mut BTreeMap<String, PolicyImpact>, id: &str) -> &'m mut PolicyImpact {
    map.entry(id.to_owned()).or_insert_with(|| PolicyImpact {
        policy: id.to_owned(),
        ..PolicyImpact::default()
    })
}

/// The decision entries to evaluate, in index order.
fn decision_indexes(
    ledger: &Ledger,
    scope: &SimulationScope,
    cache: &SimulationCache,
) -> Result<Vec<EntryIndex>, SimulateError> {
    let (start, end, last) = match scope {
        SimulationScope::Last(0) => {
            return Err(SimulateError::InvalidRange(
                "nothing to simulate: ask for at least one decision".to_owned(),
            ));
        }
        SimulationScope::Last(n) if *n > MAX_SIMULATED_DECISIONS => {
            return Err(SimulateError::TooManyDecisions {
                found: *n,
                max: MAX_SIMULATED_DECISIONS,
            });
        }
        SimulationScope::Last(n) => (EntryIndex(0), EntryIndex(ledger.size().0), Some(*n)),
        SimulationScope::Range { since, until } => {
            if let (Some(s), Some(u)) = (since, until)
                && s > u
            {
                return Err(SimulateError::InvalidRange(format!(
                    "since {s} is after until {u}"
                )));
            }
            let start = match since {
                Some(s) => first_at_or_after(ledger, *s)?,
                None => EntryIndex(0),
            };
            let end = match until {
                Some(u) => end_at(ledger, *u)?,
                None => EntryIndex(ledger.size().0),
            };
            (start, end, None)
        }
    };
    let all = cache.decision_indexes(ledger)?;
    let from = all.partition_point(|i| *i < start.0);
    let to = all.partition_point(|i| *i < end.0);
    let mut chosen = all.get(from..to.max(from)).unwrap_or_default();
    if let Some(n) = last {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        chosen = &chosen[chosen.len().saturating_sub(n)..];
    }
    if chosen.len() as u64 > MAX_SIMULATED_DECISIONS {
        return Err(SimulateError::TooManyDecisions {
            found: chosen.len() as u64,
            max: MAX_SIMULATED_DECISIONS,
        });
    }
    Ok(chosen.iter().copied().map(EntryIndex).collect())
}

/// Evaluates one run of decisions (contiguous in the index order) into a tally. With
/// `bundles`, only decisions made with one of those bundle entries count. Decisions the
/// cache holds are not read again; the others are read sequentially and then cached.
fn run(
    ledger: &Ledger,
    candidate: &CompiledBundle,
    indexes: &[EntryIndex],
    bundles: Option<&HashSet<u64>>,
    list_limit: usize,
    cache: &SimulationCache,
) -> Result<Tally, ReadError> {
    let mut tally = Tally::default();
    let mut decisions: Vec<Option<Arc<Parsed>>> = {
        let parsed = lock(&cache.parsed);
        indexes.iter().map(|i| parsed.get(&i.0).cloned()).collect()
    };
    let missing: Vec<usize> = (0..indexes.len())
        .filter(|&k| decisions[k].is_none())
        .collect();
    if let (Some(&first), Some(&last)) = (missing.first(), missing.last()) {
        let mut wanted = missing.iter().peekable();
        let mut fresh = Vec::with_capacity(missing.len());
        let mut ids = PolicyIds::default();
        ledger.scan(
            indexes[first],
            EntryIndex(indexes[last].0 + 1),
            |index, raw| {
                let Some(&k) = wanted.next_if(|k| indexes[**k] == index) else {
                    return Ok(());
                };
                let parsed = EntryView::parse(raw)
                    .ok()
                    .filter(|v| v.kind() == EntryKind::Decision)
                    .and_then(|v| Parsed::read_payload(v.payload(), &mut ids));
                match parsed {
                    Some(p) => {
                        let p = Arc::new(p);
                        fresh.push((index.0, p.clone()));
                        decisions[k] = Some(p);
                    }
                    None => tally.report.unreadable += 1,
                }
                Ok(())
            },
        )?;
        cache.insert(fresh);
    }
    for (index, decision) in indexes.iter().zip(&decisions) {
        let Some(before) = decision else { continue };
        if bundles.is_some_and(|b| !b.contains(&before.bundle_index)) {
            continue;
        }
        let after = evaluate(candidate, &before.request);
        tally.add(*index, before, &after, list_limit);
    }
    Ok(tally)
}

/// The indexes of the bundle entries named `name`.
fn bundles_named(ledger: &Ledger, name: &str) -> Result<HashSet<u64>, ReadError> {
    let mut out = HashSet::new();
    for index in all_hits(ledger, NS_BUNDLE_NAME, name.as_bytes(), None)? {
        let entry = ledger.get(index)?;
        if entry.kind == EntryKind::Policy
            && summary::read::<BundleSummary>(&entry.payload).is_some_and(|b| b.name == name)
        {
            out.insert(index.0);
        }
    }
    Ok(out)
}

pub(crate) fn simulate(
    ledger: &Ledger,
    candidate: &CompiledBundle,
    options: &SimulationOptions,
    cache: &SimulationCache,
) -> Result<SimulationReport, SimulateError> {
    let indexes = decision_indexes(ledger, &options.scope, cache)?;
    let bundles = options
        .bundle_name
        .as_deref()
        .map(|n| bundles_named(ledger, n))
        .transpose()?;
    let bundles = bundles.as_ref();
    let list_limit = options.list_limit;
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    }
    .clamp(1, 64);
    // Small runs are not worth a thread.
    let threads = threads.min(indexes.len().div_ceil(1024).max(1));
    let chunk = indexes.len().div_ceil(threads).max(1);
    let tallies: Vec<Result<Tally, ReadError>> = if threads == 1 {
        vec![run(ledger, candidate, &indexes, bundles, list_limit, cache)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = indexes
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || run(ledger, candidate, part, bundles, list_limit, cache))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    let mut total = Tally::default();
    for t in tallies {
        total.merge(t?);
    }
    let mut report = total.report;
    candidate.hash().clone_into(&mut report.candidate);
    report.delta = i64::try_from(report.after.block).unwrap_or(i64::MAX)
        - i64::try_from(report.before.block).unwrap_or(i64::MAX);
    report.newly_blocked.sort_by_key(|c| c.index);
    report.newly_blocked.truncate(options.list_limit);
    report.unblocked.sort_by_key(|c| c.index);
    report.unblocked.truncate(options.list_limit);
    report.by_policy = total.policies.into_values().collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    //! Reading a decision payload in one pass answers what reading it in two passes (the
    //! summary, then the snapshot's bytes) answers, for recorded payloads and for payloads
    //! whose snapshot is written otherwise, unusual or invalid.

    use proptest::prelude::*;
    use vouch_ledger_core::EntryIndex;

    use super::{Parsed, PolicyIds};
    use crate::bundle::SourceBundle;
    use crate::compiler::compile;
    use crate::decision::DecisionRecord;
    use crate::document::Format;
    use crate::governance::record::DecisionEntry;
    use crate::request::Request;

    /// What a [`Parsed`] holds, comparable.
    type Seen = (
        String,
        u64,
        Request,
        crate::Outcome,
        Vec<String>,
        Vec<String>,
    );

    fn seen(p: Option<Parsed>) -> Option<Seen> {
        p.map(|p| {
            (
                p.id,
                p.bundle_index,
                p.request,
                p.outcome,
                p.matched.iter().map(ToString::to_string).collect(),
                p.blocked.iter().map(ToString::to_string).collect(),
            )
        })
    }

    /// A request as JSON, varied by the choices.
    fn request_json(env: usize, approvals: usize, critical: &str, extra: &str) -> String {
        let approval = r#"{"approver": "sam", "roles": ["Security", "QA"], "kind": "production", "at": "2025-06-03T08:00:00Z", "rationale": "ok"}"#;
        format!(
            r#"{{"subject": "CHG-1", "environment": "{}", "author": "alice", "service": "svc-1",
            "approvals": [{}], "evidence": {{"ticket": "ABC-1", "critical": {critical}}},
            "checks": {{"lint": {{"status": "passed"}}}}, "now": "2025-06-03T10:00:00Z"{extra}}}"#,
            ["production", "dev", "staging"][env],
            vec![approval; approvals].join(", ")
        )
    }

    /// `payload` with its request snapshot replaced by `snapshot`, written as given.
    fn with_snapshot(payload: &[u8], snapshot: &str) -> Vec<u8> {
        let mut value: serde_json::Value = serde_json::from_slice(payload).unwrap();
        value["record"]["request"] = serde_json::Value::String("\u{1}SNAPSHOT".to_owned());
        serde_json::to_string(&value)
            .unwrap()
            .replace("\"\\u0001SNAPSHOT\"", snapshot)
            .into_bytes()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn one_pass_reads_what_two_passes_read(
            env in 0usize..3,
            approvals in 0usize..3,
            critical in prop::sample::select(vec!["0", "3", "-0", "1.0", "\"none\"", "true", "[\"a\"]"]),
            extra in prop::sample::select(vec![
                "",
                r#", "version": 1"#,
                r#", "version": 2"#,
                r#", "branch": "m\u0061in""#,
                r#", "unknown": 1"#,
                r#", "author": "bob""#,
                r#", "labels": {"a": "b", "a": "c"}"#,
                r#", "risk": null"#,
                r#", "approvals": {}"#,
            ]),
        ) {
            let bundle = compile(
                &SourceBundle::parse(
                    "version: 1\nname: t\nroles: [Security]\npolicies:\n  - id: prod\n    when: {environment: production}\n    require:\n      approvals: {min: 1, roles: {Security: 1}}\n      conditions:\n        - id: c\n          cel: 'evidence.critical == 0'\n",
                    Format::Yaml,
                )
                .unwrap(),
            )
            .unwrap();
            let base = Request::from_json(request_json(env, approvals, "0", "").as_bytes()).unwrap();
            let recorded = DecisionEntry::new(DecisionRecord::decide(&bundle, base.clone()), EntryIndex(7))
                .to_json();
            let canonical = String::from_utf8(base.canonical_json()).unwrap();
            for payload in [
                recorded.clone(),
                with_snapshot(&recorded, &canonical),
                with_snapshot(&recorded, &request_json(env, approvals, critical, extra)),
                with_snapshot(&recorded, "[]"),
                with_snapshot(&recorded, "{\"subject\": "),
            ] {
                let one = seen(Parsed::read_payload(&payload, &mut PolicyIds::default()));
                let two = seen(Parsed::read_in_two_passes(&payload, &mut PolicyIds::default()));
                prop_assert_eq!(&one, &two, "{}", String::from_utf8_lossy(&payload));
            }
            // A recorded payload is read in one pass.
            prop_assert!(crate::governance::summary::read::<crate::governance::summary::SimulationDecision>(&recorded).is_some());
        }
    }
}
