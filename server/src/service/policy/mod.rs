//! `vouch.v1.PolicyService`: bundles, decisions, overrides, exceptions, replay, simulation,
//! decision queries and proof packs, over the policy layer ([`vouch_query::Governance`]).
//!
//! Every call that touches a ledger runs on the blocking pool: the policy layer reads the
//! ledger and waits for its appends to be acknowledged. One [`Governance`] per ledger is kept
//! for the server's life, so compiled bundles are cached across calls. Request bodies whose
//! schema is the policy layer's arrive as JSON or YAML text and are validated there; its
//! errors become statuses in [`crate::status`].

pub mod convert;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tonic::{Request, Response, Status};
use vouch_ledger_core::{EntryIndex, TreeSize};
use vouch_query::governance::{
    DecideOptions, DecisionQuery, Governance, SimulationOptions, SimulationScope,
};
use vouch_query::{SourceBundle, compile};

use self::convert as pc;
use crate::convert::receipt_to_proto;
use crate::proto::v1 as pb;
use crate::proto::v1::policy_service_server::PolicyService as PolicyApi;
use crate::registry::Registry;
use crate::status::{self, InputError, IntoStatus};

/// Bundles listed and decisions returned per page when the request says 0.
const DEFAULT_PAGE: usize = 100;
/// The most bundles listed and decisions returned per page.
const MAX_PAGE: usize = 1000;
/// Decisions simulated when the request names neither a count nor a time range.
const DEFAULT_SIMULATION: u64 = 1000;
/// Changed decisions listed per list of a simulation when the request says 0.
const DEFAULT_LIST_LIMIT: usize = 20;

/// The policy service; see the module documentation.
#[derive(Debug, Clone)]
pub struct PolicyService {
    registry: Arc<Registry>,
    governance: Arc<Mutex<HashMap<String, Arc<Governance>>>>,
}

/// Runs blocking policy-layer work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| status::task_failed(&e))?
}

fn page_size(limit: u32) -> usize {
    match usize::try_from(limit).unwrap_or(MAX_PAGE) {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

fn check_proof(
    proof: Option<&vouch_query::governance::Proof>,
) -> (Option<pb::SignedCheckpoint>, Option<pb::InclusionProof>) {
    match proof.map(pc::proof_to_proto) {
        Some((cp, p)) => (Some(cp), Some(p)),
        None => (None, None),
    }
}

impl PolicyService {
    /// A service over the ledgers of `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            governance: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The policy layer of ledger `name` (empty: the default ledger).
    fn governance(&self, name: &str) -> Result<Arc<Governance>, Status> {
        let ledger = self.registry.get(name).map_err(IntoStatus::into_status)?;
        let mut map = self
            .governance
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(map
            .entry(ledger.name().to_owned())
            .or_insert_with(|| Arc::new(Governance::new(ledger)))
            .clone())
    }
}

#[tonic::async_trait]
impl PolicyApi for PolicyService {
    async fn lint_bundle(
        &self,
        request: Request<pb::LintBundleRequest>,
    ) -> Result<Response<pb::LintBundleResponse>, Status> {
        let req = request.into_inner();
        let format = pc::format_from_proto(req.format, &req.source, "format")?;
        let response = blocking(move || {
            Ok(match SourceBundle::parse(&req.source, format) {
                Err(e) => pb::LintBundleResponse {
                    compiles: false,
                    hash: String::new(),
                    name: String::new(),
                    findings: e.errors.iter().map(pc::parse_error_to_proto).collect(),
                },
                Ok(source) => {
                    let findings = source.lint();
                    let hash = compile(&source)
                        .map(|c| c.hash().to_owned())
                        .unwrap_or_default();
                    pb::LintBundleResponse {
                        compiles: !hash.is_empty(),
                        hash,
                        name: source.name().to_owned(),
                        findings: findings.iter().map(pc::finding_to_proto).collect(),
                    }
                }
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn publish_bundle(
        &self,
        request: Request<pb::PublishBundleRequest>,
    ) -> Result<Response<pb::PublishBundleResponse>, Status> {
        let req = request.into_inner();
        let gov = self.governance(&req.ledger)?;
        let format = pc::format_from_proto(req.format, &req.source, "format")?;
        let published = blocking(move || {
            gov.publish(&req.source, format, req.wait_for_checkpoint)
                .map_err(IntoStatus::into_status)
        })
        .await?;
        let (checkpoint, inclusion_proof) = check_proof(published.proof.as_ref());
        Ok(Response::new(pb::PublishBundleResponse {
            hash: published.bundle.entry.hash.clone(),
            name: published.bundle.entry.name.clone(),
            index: published.bundle.index.0,
            receipt: Some(receipt_to_proto(&published.receipt)),
            duplicate: published.duplicate,
            warnings: published
                .warnings
                .iter()
                .map(pc::finding_to_proto)
                .collect(),
            checkpoint,
            inclusion_proof,
        }))
    }

    async fn get_bundle(
        &self,
        request: Request<pb::GetBundleRequest>,
    ) -> Result<Response<pb::Bundle>, Status> {
        let req = request.into_inner();
        let gov = self.governance(&req.ledger)?;
        let which = pc::bundle_ref(req.bundle, "bundle")?;
        let bundle = blocking(move || gov.bundle(&which).map_err(IntoStatus::into_status)).await?;
        Ok(Response::new(pc::bundle_to_proto(&bundle)))
    }

    async fn list_bundles(
        &self,
        request: Request<pb::ListBundlesRequest>,
    ) -> Result<Response<pb::ListBundlesResponse>, Status> {
        let req = request.into_inner();
        let gov = self.governance(&req.ledger)?;
        let limit = page_size(req.limit);
        let bundles = blocking(move || {
            let name = (!req.name.is_empty()).then_some(req.name.as_str());
            gov.list_bundles(name, req.after.map(EntryIndex), limit)
                .map_err(IntoStatus::into_status)
        })
        .await?;
        let next_cursor = (bundles.len() == limit)
            .then(|| bundles.last().map(|b| b.index.0))
            .flatten();
        Ok(Response::new(pb::ListBundlesResponse {
            bundles: bundles.iter().map(pc::bundle_summary_to_proto).collect(),
            next_cursor,
        }))
    }

    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let req = request.into_inner();
        let gov = self.governance(&req.ledger)?;
        let which = pc::bundle_ref(req.bundle, "bundle")?;
        let evaluated = blocking(move || {
            gov.evaluate(&which, req.request_json.as_bytes())
                .map_err(IntoStatus::into_status)
        })
        .await?;
        let evaluation = &evaluated.record.evaluation;
        Ok(Response::new(pb::EvaluateResponse {
            outcome: pc::outcome_to_proto(evaluation.outcome).into(),
            reasons: pc::reasons_to_proto(&evaluation.reasons),
            bundle_hash: evaluated.bundle.entry.hash.clone(),
            bundle_index: evaluated.bundle.index.0,
            evaluation_json: pc::json_text(&evaluation.canonical_json()),
            request_json: pc::json_text(&evaluated.record.request.canonical_json()),
        }))
    }

    async fn decide(
        &self,
        request: Request<pb::DecideRequest>,
    ) -> Result<Response<pb::DecideResponse>, Status> {
        let req = request.into_inner();
        let gov = self.governance(&req.ledger)?;
        let which = pc::bundle_ref(req.bundle, "bundle")?;
        let options = DecideOptions {
            idempotency_key: (!req.idempotency_key.is_empty()).then_some(req.idempotency_key),
            wait_for_checkpoint: req.wait_for_checkpoint,
        };
        let decided = blocking(move || {
            gov.decide(&which, req.request_json.as_bytes(), &options)
                .map_err(IntoStatus::into_status)
        })
        .await?;
        let evaluation = &decided.record.evaluation;
        let (checkpoint, inclusion_proof) = check_proof(decided.proof.as_ref());
        Ok(Response::new(pb::DecideResponse {
            decision_id: decided.id.clone(),
            index: decided.index.0,
            receipt: Some(receipt_to_proto(&decided.receipt)),
            outcome: pc::outcome_to_proto(evaluation.outcome).into(),
            reasons: pc::reasons_to_proto(&evaluation.reasons),
            bundle_hash: decided.record.bundle.clone(),
            bundle_index: decided.bundle.index.0,
            record_json: pc::json_text(&decided.record.canonical_json()),
            duplicate: decided.duplicate,
            checkpoint,
            inclusion_proof,
        }))
    }

    async fn get_decision(
        &self,
        request: Request<pb::GetDecisionRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        let req = request.into_inner();
        let gov = self.governance(&req.ledger)?;
        let which = pc::decision_ref(req.decision, "decision")?;
        let decision = blocking(move || {
            gov.decision(&which, req.with_proof)
                .map_err(IntoStatus::into_status)
        })
        .await?;
        Ok(Response::new(pc::decision_to_proto(&decision)))
    }

    async fn record_override(
        &self,
        request: Request<pb::RecordOverrideRequest>,
    ) -> Result<Response<pb::RecordOverrideResponse>, Status> {
        let req = request.into_inner();
        let gov = self.governance(&req.ledger)?;
        let recorded = blocking(move || {
            gov.record_override(req.override_json.as_bytes(), req.wait_for_checkpoint)
                .map_err(IntoStatus::into_status)
        })
        .await?;
        let outcome = &recorded.entry.outcome;
        let (checkpoint, inclusion_proof) = check_proof(recorded.proof.as_ref());
        Ok(Response::new(pb::RecordOverrideResponse {
            index: recorded.index.0,
            receipt: Some(receipt_to_proto(&recorded.receipt)),
            status: pc::override_status_to_proto(outcome.status).into(),
            reasons: pc::reasons_to_proto(&outcome.reasons),
            decision_id: recorded.decision.clone(),
            decision_index: recorded.entry.decision_index.0,
            outcome_json: pc::json_text(&outcome.canonical_json()),
            duplicate: recorded.duplicate,
            checkpoint,
            inclusion_proof,
        }))
    }

    async fn record_exception(
        &self,
        request: Request<pb::RecordExceptionRequest>,
    ) -> Result<Response<pb::RecordExceptionResponse>, Status> {
        let req = request.into_inner();
        let gov = self.governance(&req.ledger)?;
        let recorded = blocking(move || {
            gov.record_exception(req.exception_json.as_bytes(), req.wait_for_checkpoint)
                .map_err(IntoStatus::into_status)
        })
        .await?;
        let (checkpoint, inclusion_proof) = check_proof(recorded.proof.as_ref());
        Ok(Response::new(pb::RecordExceptionResponse {
            index: recorded.index.0,
            receipt: Some(receipt_to_proto(&recorded.receipt)),
            exception_id: recorded.exception.id.clone(),
            duplicate: recorded.duplicate,
            checkpoint,
            inclusion_proof,
        }))
    }

    async fn replay(
        &self,
        request: Request<pb::ReplayRequest>,
    ) -> Result<Response<pb::ReplayResponse>, Status> {
        let req = request.into_inner();
        let gov = self.governance(&req.ledger)?;
        let which = pc::decision_ref(req.decision, "decision")?;
        let report = blocking(move || gov.replay(&which).map_err(IntoStatus::into_status)).await?;
        Ok(Response::new(pc::replay_to_proto(&report)))
    }

    async fn simulate(
        &self,
        request: Request<pb::SimulateRequest>,
    ) -> Result<Response<pb::SimulateResponse>, Status> {
        let req = request.into_inner();
        let gov = self.governance(&req.ledger)?;
        let format = pc::format_from_proto(req.format, &req.source, "format")?;
        let since = pc::time(&req.since, "since")?;
        let until = pc::time(&req.until, "until")?;
        let scope = match (req.last, since.is_some() || until.is_some()) {
            (0, false) => SimulationScope::Last(DEFAULT_SIMULATION),
            (0, true) => SimulationScope::Range { since, until },
            (n, false) => SimulationScope::Last(n),
            (_, true) => {
                return Err(InputError::new(
                    "last",
                    "ask for the last N decisions or for a time range (since, until), not both",
                )
                .into_status());
            }
        };
        let options = SimulationOptions {
            scope,
            bundle_name: (!req.bundle_name.is_empty()).then_some(req.bundle_name),
            list_limit: match usize::try_from(req.list_limit).unwrap_or(MAX_PAGE) {
                0 => DEFAULT_LIST_LIMIT,
                n => n.min(MAX_PAGE),
            },
            threads: 0,
        };
        let report = blocking(move || {
            gov.simulate(&req.source, format, &options)
                .map_err(IntoStatus::into_status)
        })
        .await?;
        Ok(Response::new(pc::simulation_to_proto(&report)))
    }

    async fn query_decisions(
        &self,
        request: Request<pb::QueryDecisionsRequest>,
    ) -> Result<Response<pb::QueryDecisionsResponse>, Status> {
        let req = request.into_inner();
        let gov = self.governance(&req.ledger)?;
        let text = |s: String| (!s.is_empty()).then_some(s);
        let query = DecisionQuery {
            outcome: pc::outcome_from_proto(req.outcome, "outcome")?,
            since: pc::time(&req.since, "since")?,
            until: pc::time(&req.until, "until")?,
            as_of: pc::time(&req.as_of, "as_of")?,
            subject: text(req.subject),
            policy: text(req.policy),
            environment: text(req.environment),
            after: req.after.map(EntryIndex),
            limit: page_size(req.limit),
            with_proof: req.with_proof,
        };
        let page = blocking(move || gov.query(&query).map_err(IntoStatus::into_status)).await?;
        Ok(Response::new(pb::QueryDecisionsResponse {
            decisions: page.decisions.iter().map(pc::decision_to_proto).collect(),
            next_cursor: page.next.map(|i| i.0),
            checkpoint: page
                .checkpoint
                .as_deref()
                .map(crate::convert::checkpoint_to_proto),
        }))
    }

    async fn export_proof_pack(
        &self,
        request: Request<pb::ExportProofPackRequest>,
    ) -> Result<Response<pb::ExportProofPackResponse>, Status> {
        let req = request.into_inner();
        let gov = self.governance(&req.ledger)?;
        let which = pc::decision_ref(req.decision, "decision")?;
        let anchor = (req.tree_size != 0).then_some(TreeSize(req.tree_size));
        let exported = blocking(move || {
            gov.export_pack(&which, anchor)
                .map_err(IntoStatus::into_status)
        })
        .await?;
        let pack = &exported.pack;
        Ok(Response::new(pb::ExportProofPackResponse {
            pack_json: pack.to_json(),
            decision_id: pack.decision_id.clone(),
            decision_index: pack.decision.index.0,
            tree_size: exported.verified.checkpoint.checkpoint.size.0,
            latest_tree_size: exported.verified.latest.checkpoint.size.0,
            exception_indexes: pack.exceptions.iter().map(|e| e.index.0).collect(),
            override_indexes: pack.overrides.iter().map(|e| e.index.0).collect(),
        }))
    }
}
