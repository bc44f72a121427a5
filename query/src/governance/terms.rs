//! The secondary-index terms of the policy layer's entries, for the storage engine's index.
//!
//! [`GovernanceTerms`] is the [`TermExtractor`] a ledger serving the policy layer is opened
//! with. It is a pure function of an entry's bytes, as the engine requires, so the index can
//! be rebuilt from the log at any time; bumping [`TERMS_VERSION`] makes the engine rebuild
//! it. Entries of kind `record`, entries with another content type, and payloads without the
//! expected shape get no terms. Every look-up re-reads and re-checks the entries it finds.
//!
//! | Namespace | Value | Entries |
//! | --- | --- | --- |
//! | [`NS_KIND`] | `policy`, `decision`, `override` or `exception` | every policy-layer entry |
//! | [`NS_BUNDLE_HASH`] | bundle hash | bundles |
//! | [`NS_BUNDLE_NAME`] | bundle name | bundles |
//! | [`NS_DECISION_ID`] | decision id | decisions |
//! | [`NS_SUBJECT`] | request `subject` | decisions |
//! | [`NS_OUTCOME`] | `ALLOW`, `BLOCK` or `SKIPPED` | decisions |
//! | [`NS_POLICY`] | id of each matched policy | decisions |
//! | [`NS_ENVIRONMENT`] | request `environment` | decisions |
//! | [`NS_DECISION_BUNDLE`] | bundle hash | decisions |
//! | [`NS_PROMOTION`] | [`promotion_key`] of the artifact | ALLOW decisions and granted overrides naming an artifact |
//! | [`NS_FIRST_PROMOTION`] | [`promotion_key`] of the artifact | the first promotions of an artifact (below) and granted overrides naming an artifact |
//! | [`NS_OVERRIDE_DECISION`] | overridden decision id | overrides |
//! | [`NS_EXCEPTION_POLICY`] | the exception's policy | exceptions |
//!
//! An ALLOW decision naming an artifact is a *first promotion* unless the prior promotions
//! recorded in its own snapshot (`context.promotions`, which the layer derived from the
//! ledger when it decided) already hold one to the same environment with the same version,
//! commit and digest. That is a pure function of the entry, and it is enough for the
//! promotion look-up (`context.rs`), which needs only the earliest promotion of each
//! (environment, commit, digest): the earliest one recorded is always marked, since nothing
//! at or before it could be in its context; re-deciding a version that was already
//! promoted adds no `NS_FIRST_PROMOTION` term, so the look-up reads one entry per binding
//! (more only when decisions raced or were made at an earlier `now`, both harmless). A
//! decision whose snapshot cannot be read that far counts as a first promotion; so does
//! every granted override, whose payload does not hold the overridden decision's context.

use vouch_ledger_core::entry::{EntryKind, EntryView};
use vouch_storage::terms::FIRST_CUSTOM_NAMESPACE;
use vouch_storage::{Term, TermExtractor};

use super::record::{
    BUNDLE_CONTENT_TYPE, DECISION_CONTENT_TYPE, EXCEPTION_CONTENT_TYPE, OVERRIDE_CONTENT_TYPE,
};
use super::summary::{
    self, ArtifactSummary, BundleSummary, DecisionSummary, ExceptionSummary, OverrideSummary,
    PriorPromotionsSummary,
};
use crate::canonical;
use crate::evaluation::Outcome;
use crate::overrides::OverrideStatus;

/// The version of the extraction rules.
///
/// 2: [`NS_FIRST_PROMOTION`].
pub const TERMS_VERSION: u64 = 2;

/// The kind of a policy-layer entry.
pub const NS_KIND: u8 = FIRST_CUSTOM_NAMESPACE;
/// A bundle entry's hash.
pub const NS_BUNDLE_HASH: u8 = FIRST_CUSTOM_NAMESPACE + 1;
/// A bundle entry's name.
pub const NS_BUNDLE_NAME: u8 = FIRST_CUSTOM_NAMESPACE + 2;
/// A decision's id.
pub const NS_DECISION_ID: u8 = FIRST_CUSTOM_NAMESPACE + 3;
/// A decision's subject.
pub const NS_SUBJECT: u8 = FIRST_CUSTOM_NAMESPACE + 4;
/// A decision's outcome.
pub const NS_OUTCOME: u8 = FIRST_CUSTOM_NAMESPACE + 5;
/// A policy that matched a decision.
pub const NS_POLICY: u8 = FIRST_CUSTOM_NAMESPACE + 6;
/// A decision's environment.
pub const NS_ENVIRONMENT: u8 = FIRST_CUSTOM_NAMESPACE + 7;
/// The bundle hash a decision was made with.
pub const NS_DECISION_BUNDLE: u8 = FIRST_CUSTOM_NAMESPACE + 8;
/// The artifact identity of a promotion.
pub const NS_PROMOTION: u8 = FIRST_CUSTOM_NAMESPACE + 9;
/// The decision an override is for.
pub const NS_OVERRIDE_DECISION: u8 = FIRST_CUSTOM_NAMESPACE + 10;
/// The policy an exception is for.
pub const NS_EXCEPTION_POLICY: u8 = FIRST_CUSTOM_NAMESPACE + 11;
/// The artifact identity of a first promotion (see the module documentation).
pub const NS_FIRST_PROMOTION: u8 = FIRST_CUSTOM_NAMESPACE + 12;

/// The identity of an artifact across promotions: canonical JSON of
/// `[repository, service, version]`, with `null` for an absent repository or service.
pub fn promotion_key(repository: Option<&str>, service: Option<&str>, version: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + version.len());
    out.push(b'[');
    for part in [repository, service] {
        match part {
            Some(s) => canonical::write_string(&mut out, s),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b',');
    }
    canonical::write_string(&mut out, version);
    out.push(b']');
    out
}

/// The name of an outcome as indexed.
pub(crate) fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "ALLOW",
        Outcome::Block => "BLOCK",
        Outcome::Skipped => "SKIPPED",
    }
}

/// The term extractor of the policy layer; see the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct GovernanceTerms;

fn push(out: &mut Vec<Term>, namespace: u8, value: impl Into<Vec<u8>>) {
    out.push(Term {
        namespace,
        value: value.into(),
    });
}

impl TermExtractor for GovernanceTerms {
    fn version(&self) -> u64 {
        TERMS_VERSION
    }

    fn terms(&self, entry: &EntryView<'_>, out: &mut Vec<Term>) {
        let payload = entry.payload();
        match (entry.kind(), entry.content_type()) {
            (EntryKind::Policy, BUNDLE_CONTENT_TYPE) => {
                if let Some(b) = summary::read::<BundleSummary>(payload) {
                    push(out, NS_KIND, "policy");
                    push(out, NS_BUNDLE_HASH, b.hash);
                    push(out, NS_BUNDLE_NAME, b.name);
                }
            }
            (EntryKind::Decision, DECISION_CONTENT_TYPE) => {
                if let Some(d) = summary::read::<DecisionSummary>(payload) {
                    decision_terms(d, payload, out);
                }
            }
            (EntryKind::Override, OVERRIDE_CONTENT_TYPE) => {
                if let Some(o) = summary::read::<OverrideSummary>(payload) {
                    push(out, NS_KIND, "override");
                    push(out, NS_OVERRIDE_DECISION, o.outcome.decision);
                    if o.outcome.status == OverrideStatus::Granted
                        && let Some(p) = o.promotion
                    {
                        let key = promotion_key(
                            p.repository.as_deref(),
                            p.service.as_deref(),
                            &p.version,
                        );
                        push(out, NS_PROMOTION, key.clone());
                        push(out, NS_FIRST_PROMOTION, key);
                    }
                }
            }
            (EntryKind::Exception, EXCEPTION_CONTENT_TYPE) => {
                if let Some(e) = summary::read::<ExceptionSummary>(payload) {
                    push(out, NS_KIND, "exception");
                    push(out, NS_EXCEPTION_POLICY, e.exception.policy);
                }
            }
            _ => {}
        }
    }
}

fn decision_terms(d: DecisionSummary, payload: &[u8], out: &mut Vec<Term>) {
    let request = &d.record.request;
    let evaluation = &d.record.evaluation;
    push(out, NS_KIND, "decision");
    push(out, NS_DECISION_ID, d.id);
    push(out, NS_SUBJECT, request.subject.as_bytes());
    push(out, NS_OUTCOME, outcome_name(evaluation.outcome));
    push(out, NS_ENVIRONMENT, request.environment.as_bytes());
    push(out, NS_DECISION_BUNDLE, d.record.bundle.as_bytes());
    for p in &evaluation.matched_policies {
        push(out, NS_POLICY, p.policy.as_bytes());
    }
    if evaluation.outcome == Outcome::Allow
        && let Some(a) = &request.artifact
    {
        let key = promotion_key(
            request.repository.as_deref(),
            request.service.as_deref(),
            &a.version,
        );
        if first_promotion(&request.environment, a, payload) {
            push(out, NS_FIRST_PROMOTION, key.clone());
        }
        push(out, NS_PROMOTION, key);
    }
}

/// Whether an ALLOW decision is a first promotion (see the module documentation): its
/// snapshot's prior promotions hold none to `environment` with the artifact's version,
/// commit and digest. A snapshot that cannot be read counts as a first promotion.
fn first_promotion(environment: &str, artifact: &ArtifactSummary, payload: &[u8]) -> bool {
    let Some(prior) = summary::read::<PriorPromotionsSummary>(payload) else {
        return true;
    };
    !prior.record.request.context.promotions.iter().any(|p| {
        p.environment == environment
            && p.version == artifact.version
            && p.commit == artifact.commit
            && p.digest == artifact.digest
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_keys_are_canonical_arrays() {
        assert_eq!(
            promotion_key(Some("acme/pay"), None, "1.2.3"),
            br#"["acme/pay",null,"1.2.3"]"#
        );
        assert_ne!(
            promotion_key(Some("a"), None, "1"),
            promotion_key(None, Some("a"), "1")
        );
    }
}
