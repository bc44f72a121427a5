//! The server-derived context of a request: prior promotions of its artifact and the active
//! exceptions of the bundle's policies, found through the ledger's index.
//!
//! - **Promotions.** For each (environment, commit, digest) that the request's artifact
//!   version was promoted with, in the same repository and service (both compared as
//!   present-or-absent values), the earliest promotion made at or before the request's
//!   `now` (of several at the same instant, the one recorded first). A promotion is a
//!   recorded ALLOW decision, or a decision let through by a granted override. Each becomes
//!   `{environment, version, commit, digest, at, decision}` with `at` the earlier decision's
//!   `now`. Sorted by `at`, environment, version, commit, digest and decision; when there
//!   are more than a request may carry, the most recent are kept. Only the entries indexed
//!   as first promotions ([`NS_FIRST_PROMOTION`]) are read, so re-deciding a version that
//!   was already promoted does not make later look-ups slower.
//! - **Exceptions.** The recorded exceptions naming a policy of the bundle, whose scope
//!   contains the request and which are not expired at `now` (a temporary exception whose
//!   `expires_at` is at or before `now` is left out; permanent exceptions stay in, so that an
//!   overdue re-review is reported by evaluation as `exception-rejected`). The first record of
//!   an id counts. Sorted by id; when there are more than a request may carry, the first ids
//!   are kept.

use std::collections::BTreeMap;
use std::collections::btree_map;

use jiff::Timestamp;
use vouch_ledger_core::EntryIndex;
use vouch_ledger_core::entry::EntryKind;
use vouch_storage::{Ledger, ReadError};

use super::record::{ExceptionEntry, OverrideEntry};
use super::summary::{self, DecisionSummary};
use super::terms::{NS_EXCEPTION_POLICY, NS_FIRST_PROMOTION, promotion_key};
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
    promotions_reading(ledger, request).map(|(promotions, _)| promotions)
}

/// The promotions of the module documentation, and how many entries were read for them.
pub(crate) fn promotions_reading(
    ledger: &Ledger,
    request: &Request,
) -> Result<(Vec<Promotion>, usize), ReadError> {
    let Some(artifact) = request.artifact() else {
        return Ok((Vec::new(), 0));
    };
    let now = request.now();
    let repository = request.repository.as_deref();
    let service = request.service.as_deref();
    let key = promotion_key(repository, service, &artifact.version);
    let hits = all_hits(ledger, NS_FIRST_PROMOTION, &key, None)?;
    let read = hits.len();
    // The earliest promotion per (environment, commit, digest); the hits come in index
    // order, so of promotions at the same instant the first recorded stays.
    let mut earliest: BTreeMap<(String, String, String), Promotion> = BTreeMap::new();
    for index in hits {
        let entry = ledger.get(index)?;
        let found = match entry.kind {
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
                    Promotion {
                        environment: r.environment.clone(),
                        version: a.version.clone(),
                        commit: a.commit.clone(),
                        digest: a.digest.clone(),
                        at,
                        decision: Some(d.id),
                    }
                } else {
                    continue;
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
                    Promotion {
                        environment: p.environment,
                        version: p.version,
                        commit: p.commit,
                        digest: p.digest,
                        at: p.at,
                        decision: Some(p.decision),
                    }
                } else {
                    continue;
                }
            }
            _ => continue,
        };
        let binding = (
            found.environment.clone(),
            found.commit.clone(),
            found.digest.clone(),
        );
        match earliest.entry(binding) {
            btree_map::Entry::Vacant(v) => {
                v.insert(found);
            }
            btree_map::Entry::Occupied(mut o) => {
                if found.at < o.get().at {
                    o.insert(found);
                }
            }
        }
    }
    let mut out: Vec<Promotion> = earliest.into_values().collect();
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
    if out.len() > MAX_PROMOTIONS {
        out.drain(..out.len() - MAX_PROMOTIONS);
    }
    Ok((out, read))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use vouch_ledger_core::HashAlg;
    use vouch_ledger_core::note::Signer;
    use vouch_storage::{DataDir, Durability, LedgerConfig, LedgerOptions};

    use super::*;
    use crate::governance::terms::NS_PROMOTION;
    use crate::{BundleRef, DecideOptions, Format, Governance, GovernanceTerms};

    /// Dev, then staging, then production, each needing the artifact in the environments
    /// before it.
    const PIPELINE: &str = "\
version: 1
name: pipeline
vocabulary:
  environment: [dev, staging, production]
policies:
  - id: dev
    when: {environment: dev}
    require:
      artifact: {immutable_version: true}
  - id: staging
    when: {environment: staging}
    require:
      artifact: {same_digest_in: [dev], immutable_version: true}
  - id: production
    when: {environment: production}
    require:
      artifact: {same_digest_in: [dev, staging], immutable_version: true}
";

    fn request(environment: &str, subject: &str, now: &str) -> String {
        format!(
            r#"{{"subject": "{subject}", "environment": "{environment}", "repository": "acme/shop",
            "service": "cart", "author": "alice", "now": "{now}",
            "artifact": {{"version": "2.0.0", "commit": "c1", "digest": "sha256:aa"}}}}"#
        )
    }

    #[test]
    fn re_deciding_a_promoted_version_keeps_the_look_up_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let signer = Signer::from_seed("test.example/context", &[5u8; 32]).unwrap();
        let config = LedgerConfig {
            hash: HashAlg::Blake3,
            origin: "test.example/context".into(),
            leaf_hash_index: true,
        };
        data.create_ledger("l", &config, &signer.verifier(), 0)
            .unwrap();
        let options = LedgerOptions {
            durability: Durability::NoneUnsafe,
            extractor: Arc::new(GovernanceTerms),
            ..LedgerOptions::default()
        };
        let ledger = Arc::new(data.open_ledger("l", signer, options).unwrap());
        let gov = Governance::new(ledger.clone());
        gov.publish(PIPELINE, Format::Yaml, false).unwrap();
        let b = BundleRef::Name("pipeline".into());
        let decide = |json: &str| {
            gov.decide(&b, json.as_bytes(), &DecideOptions::default())
                .unwrap()
                .record
        };
        let allowed = |json: &str| {
            let record = decide(json);
            assert_eq!(
                record.evaluation.outcome,
                Outcome::Allow,
                "{json}: {:?}",
                record.evaluation.reasons
            );
            record
        };
        allowed(&request("dev", "D-1", "2025-06-01T10:00:00Z"));
        allowed(&request("staging", "S-1", "2025-06-02T10:00:00Z"));
        // Far more re-deployments of the same version than a request's context may hold.
        let redeploys = MAX_PROMOTIONS + 44;
        for i in 0..redeploys {
            let minutes = i % 60;
            let hours = i / 60;
            let now = format!("2025-06-03T{:02}:{minutes:02}:00Z", 8 + hours);
            allowed(&request("production", &format!("P-{i}"), &now));
        }
        // Every production decision is a promotion, but only the first is read.
        let key = promotion_key(Some("acme/shop"), Some("cart"), "2.0.0");
        assert_eq!(
            all_hits(&ledger, NS_PROMOTION, &key, None).unwrap().len(),
            2 + redeploys
        );
        let next =
            Request::from_json(request("production", "P-next", "2025-06-04T10:00:00Z").as_bytes())
                .unwrap();
        let (found, read) = promotions_reading(&ledger, &next).unwrap();
        assert_eq!(read, 3, "one entry per environment");
        let envs: Vec<(&str, String)> = found
            .iter()
            .map(|p| (p.environment.as_str(), p.at.to_string()))
            .collect();
        assert_eq!(
            envs,
            [
                ("dev", "2025-06-01T10:00:00Z".to_owned()),
                ("staging", "2025-06-02T10:00:00Z".to_owned()),
                ("production", "2025-06-03T08:00:00Z".to_owned()),
            ]
        );
        // And the dev and staging promotions are still there for the next decision.
        let next = allowed(&request("production", "P-next", "2025-06-04T10:00:00Z"));
        assert_eq!(next.request.context().promotions, found);
        // A request at an earlier `now` sees only what was promoted by then.
        let early =
            Request::from_json(request("production", "P-early", "2025-06-02T12:00:00Z").as_bytes())
                .unwrap();
        let (found, read) = promotions_reading(&ledger, &early).unwrap();
        assert_eq!(read, 3);
        let envs: Vec<&str> = found.iter().map(|p| p.environment.as_str()).collect();
        assert_eq!(envs, ["dev", "staging"]);
        // A decision made at an earlier `now` than the first production one is a first
        // promotion too, and becomes the earliest.
        allowed(&request(
            "production",
            "P-backdated",
            "2025-06-02T11:00:00Z",
        ));
        let (found, read) = promotions_reading(&ledger, &early).unwrap();
        assert_eq!(read, 4);
        let production: Vec<String> = found
            .iter()
            .filter(|p| p.environment == "production")
            .map(|p| p.at.to_string())
            .collect();
        assert_eq!(production, ["2025-06-02T11:00:00Z"]);
    }
}
