//! The few members of an entry payload that indexing, look-ups and simulation need, read
//! with serde without validating the whole record.
//!
//! Index terms are extracted on the sequencer thread for every entry, and simulation reads
//! every recorded decision of a range, so both skip the strict readers of
//! [`super::record`]. A summary is only ever a hint: every look-up that returns a record
//! re-reads the entry strictly.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::evaluation::Outcome;
use crate::request::EmbeddedRequest;

/// A decision payload's indexable members.
#[derive(Debug, Deserialize)]
pub(crate) struct DecisionSummary {
    pub(crate) id: String,
    pub(crate) record: RecordSummary,
}

/// The record inside a decision payload.
#[derive(Debug, Deserialize)]
pub(crate) struct RecordSummary {
    pub(crate) bundle: String,
    pub(crate) evaluation: EvaluationSummary,
    pub(crate) request: RequestSummary,
}

/// The evaluation's outcome, matched policies and the policies of its reasons.
#[derive(Debug, Deserialize)]
pub(crate) struct EvaluationSummary {
    pub(crate) outcome: Outcome,
    pub(crate) matched_policies: Vec<PolicyRef>,
    pub(crate) reasons: Vec<ReasonRef>,
}

/// A matched policy, by id.
#[derive(Debug, Deserialize)]
pub(crate) struct PolicyRef {
    pub(crate) policy: String,
}

/// A reason, by policy.
#[derive(Debug, Deserialize)]
pub(crate) struct ReasonRef {
    pub(crate) policy: Option<String>,
}

/// The request members used by look-ups.
#[derive(Debug, Deserialize)]
pub(crate) struct RequestSummary {
    pub(crate) subject: String,
    pub(crate) environment: String,
    pub(crate) repository: Option<String>,
    pub(crate) service: Option<String>,
    pub(crate) artifact: Option<ArtifactSummary>,
    pub(crate) now: String,
}

/// The artifact of a request.
#[derive(Debug, Deserialize)]
pub(crate) struct ArtifactSummary {
    pub(crate) version: String,
    pub(crate) commit: String,
    pub(crate) digest: String,
}

/// The prior promotions recorded in a decision's snapshot, read only to tell whether the
/// decision is the first promotion of its artifact to its environment (see
/// [`super::terms::NS_FIRST_PROMOTION`]).
#[derive(Debug, Deserialize)]
pub(crate) struct PriorPromotionsSummary {
    pub(crate) record: PriorPromotionsRecord,
}

/// The record of a [`PriorPromotionsSummary`].
#[derive(Debug, Deserialize)]
pub(crate) struct PriorPromotionsRecord {
    pub(crate) request: PriorPromotionsRequest,
}

/// The request of a [`PriorPromotionsSummary`].
#[derive(Debug, Deserialize)]
pub(crate) struct PriorPromotionsRequest {
    pub(crate) context: PriorPromotionsContext,
}

/// The context of a [`PriorPromotionsSummary`].
#[derive(Debug, Deserialize)]
pub(crate) struct PriorPromotionsContext {
    pub(crate) promotions: Vec<PriorPromotion>,
}

/// One prior promotion: what identifies the artifact's binding to an environment.
#[derive(Debug, Deserialize)]
pub(crate) struct PriorPromotion {
    pub(crate) environment: String,
    pub(crate) version: String,
    pub(crate) commit: String,
    pub(crate) digest: String,
}

/// A decision payload for simulation: the summary, and the request snapshot left unparsed.
#[derive(Debug, Deserialize)]
pub(crate) struct SimulationView<'a> {
    pub(crate) id: String,
    pub(crate) bundle_index: u64,
    #[serde(borrow)]
    pub(crate) record: SimulationRecord<'a>,
}

/// The record of a [`SimulationView`].
#[derive(Debug, Deserialize)]
pub(crate) struct SimulationRecord<'a> {
    pub(crate) evaluation: EvaluationSummary,
    #[serde(borrow)]
    pub(crate) request: &'a RawValue,
}

/// A decision payload for simulation read in one pass: the summary, and the request
/// snapshot read by the fast request reader on the way (see [`EmbeddedRequest`]).
#[derive(Debug, Deserialize)]
pub(crate) struct SimulationDecision {
    pub(crate) id: String,
    pub(crate) bundle_index: u64,
    pub(crate) record: SimulationDecisionRecord,
}

/// The record of a [`SimulationDecision`].
#[derive(Debug, Deserialize)]
pub(crate) struct SimulationDecisionRecord {
    pub(crate) evaluation: EvaluationSummary,
    pub(crate) request: EmbeddedRequest,
}

/// A bundle payload's indexable members.
#[derive(Debug, Deserialize)]
pub(crate) struct BundleSummary {
    pub(crate) hash: String,
    pub(crate) name: String,
    pub(crate) format: String,
}

/// An override payload's indexable members.
#[derive(Debug, Deserialize)]
pub(crate) struct OverrideSummary {
    pub(crate) outcome: OverrideOutcomeRef,
    pub(crate) promotion: Option<PromotionRef>,
}

/// The overridden decision and the status.
#[derive(Debug, Deserialize)]
pub(crate) struct OverrideOutcomeRef {
    pub(crate) decision: String,
    pub(crate) status: crate::overrides::OverrideStatus,
}

/// The artifact identity of a promotion.
#[derive(Debug, Deserialize)]
pub(crate) struct PromotionRef {
    pub(crate) repository: Option<String>,
    pub(crate) service: Option<String>,
    pub(crate) version: String,
}

/// An exception payload's indexable members.
#[derive(Debug, Deserialize)]
pub(crate) struct ExceptionSummary {
    pub(crate) exception: ExceptionRef,
}

/// The policy an exception is for.
#[derive(Debug, Deserialize)]
pub(crate) struct ExceptionRef {
    pub(crate) policy: String,
}

/// Reads a summary, `None` if the payload does not have its shape.
pub(crate) fn read<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Option<T> {
    serde_json::from_slice(payload).ok()
}
