//! The server-derived context of a request: prior promotions of its artifact and the active
//! exceptions of the bundle's policies, found through the ledger's index.
//!
//! - **Promotions.** The recorded ALLOW decisions, and the decisions let through by a granted
//!   override, whose request names an artifact of the same version, in the same repository
//!   and service (both compared as present-or-absent values), made at or before the request's
//!   `now`. Each becomes `{environment, version, commit, digest, at, decision}` with `at` the
//!   earlier decision's `now`. Sorted by `at`, environment, version, commit, digest and
//!   decision; when there are more than a request may carry, the most recent are kept.
//! - **Exceptions.** The recorded exceptions naming a policy of the bundle, whose scope
//!   contains the request and which are not expired at `now` (a temporary exception whose
//!   `expires_at` is at or before `now` is left out; permanent exceptions stay in, so that an
//!   overdue re-review is reported by evaluation as `exception-rejected`). The first record of
//!   an id counts. Sorted by id; when there are more than a request may carry, the first ids
//!   are kept.

use std::collections::BTreeMap;

use jiff::Timestamp;
use vouch_ledger_core::EntryIndex;
use vouch_ledger_core::entry::EntryKind;
use vouch_storage::{Ledger, ReadError};

use super::record::{ExceptionEntry, OverrideEntry};
use super::summary::{self, DecisionSummary};
use super::terms::{NS_EXCEPTION_POLICY, NS_PROMOTION, promotion_key};
use crate::compiler::CompiledBundle;
use crate::evaluation::Outcome;
use crate::overrides::OverrideStatus;
use crate::request::limits::{MAX_EXCEPTIONS, MAX_PROMOTIONS};
use crate::request::{Context, ExceptionKind, ExceptionRecord, Promotion, Request};

/// Every entry holding a term, in index order, below `end` if given.
pub(crate) fn all_hits(
    ledger: &Ledger,
    namespace: u8,
    value: &[u8],
    end: Option<EntryIndex>,
) -> Result<Vec<EntryIndex>, ReadError> {
    const PAGE: usize = 1024;
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let hits = ledger.lookup_term(namespace, value, after, PAGE)?;
        let full = hits.len() == PAGE;
        for h in hits {
            if end.is_some_and(|e| h >= e) {
                return Ok(out);
            }
            after = Some(h);
            out.push(h);
        }
        if !full {
            return Ok(out);
        }
    }
}

/// The context the server injects into `request` before evaluating it with `bundle`.
pub(crate) fn context_for(
    ledger: &Ledger,
    bundle: &CompiledBundle,
    request: &Request,
) -> Result<Context, ReadError> {
    Ok(Context {
        promotions: promotions(ledger, request)?,
        exceptions: exceptions(ledger, bundle, request)?,
    })
}

fn promotions(ledger: &Ledger, request: &Request) -> Result<Vec<Promotion>, ReadError> {
    let Some(artifact) = request.artifact() else {
        return Ok(Vec::new());
    };
    let now = request.now();
    let repository = request.repository.as_deref();
    let service = request.service.as_deref();
    let key = promotion_key(repository, service, &artifact.version);
    let mut out: Vec<Promotion> = Vec::new();
    for index in all_hits(ledger, NS_PROMOTION, &key, None)? {
        let entry = ledger.get(index)?;
        match entry.kind {
            EntryKind::Decision => {
                let Some(d) = summary::read::<DecisionSummary>(&entry.payload) else {
                    continue;
                };
                let r = &d.record.request;
                let Some(a) = &r.artifact else { continue };
                let Ok(at) = r.now.parse::<Timestamp>() else {
                    continue;
                };
                if d.record.evaluation.outcome == Outcome::Allow
                    && a.version == artifact.version
                    && r.repository.as_deref() == repository
                    && r.service.as_deref() == service
                    && at <= now
                {
                    out.push(Promotion {
                        environment: r.environment.clone(),
                        version: a.version.clone(),
                        commit: a.commit.clone(),
                        digest: a.digest.clone(),
                        at,
                        decision: Some(d.id),
                    });
                }
            }
            EntryKind::Override => {
                let Ok(o) = OverrideEntry::from_json(&entry.payload) else {
                    continue;
                };
                let Some(p) = o.promotion else { continue };
                if o.outcome.status == OverrideStatus::Granted
                    && p.version == artifact.version
                    && p.repository.as_deref() == repository
                    && p.service.as_deref() == service
                    && p.at <= now
                {
                    out.push(Promotion {
                        environment: p.environment,
                        version: p.version,
                        commit: p.commit,
                        digest: p.digest,
                        at: p.at,
                        decision: Some(p.decision),
                    });
                }
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| {
        (
            a.at,
            &a.environment,
            &a.version,
            &a.commit,
            &a.digest,
            &a.decision,
        )
            .cmp(&(
                b.at,
                &b.environment,
                &b.version,
                &b.commit,
                &b.digest,
                &b.decision,
            ))
    });
    out.dedup();
    if out.len() > MAX_PROMOTIONS {
        out.drain(..out.len() - MAX_PROMOTIONS);
    }
    Ok(out)
}

/// Whether an exception is not expired at `now` (see the module documentation).
pub(crate) fn active(exception: &ExceptionRecord, now: Timestamp) -> bool {
    match exception.kind {
        ExceptionKind::Temporary => exception.expires_at.is_none_or(|t| t > now),
        ExceptionKind::Permanent => true,
    }
}

fn exceptions(
    ledger: &Ledger,
    bundle: &CompiledBundle,
    request: &Request,
) -> Result<Vec<ExceptionRecord>, ReadError> {
    let now = request.now();
    let mut found: BTreeMap<String, ExceptionRecord> = BTreeMap::new();
    let mut seen_ids = std::collections::HashSet::new();
    for policy in bundle.policy_ids() {
        for index in all_hits(ledger, NS_EXCEPTION_POLICY, policy.as_bytes(), None)? {
            let entry = ledger.get(index)?;
            if entry.kind != EntryKind::Exception {
                continue;
            }
            let Ok(e) = ExceptionEntry::from_json(&entry.payload) else {
                continue;
            };
            let e = e.exception;
            // The first record of an id is the exception; later ones cannot exist (the id is
            // the idempotency key) unless written around this layer, and are ignored.
            if e.policy != policy || !seen_ids.insert(e.id.clone()) {
                continue;
            }
            if active(&e, now) && e.scope.contains(request) {
                found.insert(e.id.clone(), e);
            }
        }
    }
    Ok(found.into_values().take(MAX_EXCEPTIONS).collect())
}
