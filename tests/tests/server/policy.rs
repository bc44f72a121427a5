//! The policy service through the real server: every RPC, roles, malformed bundles and
//! requests, proofs of decisions against signed checkpoints, and the shipped packs' golden
//! evaluations reproduced over gRPC with the context the server derives from its ledger.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio_stream::StreamExt as _;
use tonic::{Code, Status};
use vouch_ledger_core::HashAlg;
use vouch_server::auth::{Role, generate_token, hash_token};
use vouch_server::client::{PolicyClient, connect_policy};
use vouch_server::config::TokenConfig;
use vouch_server::proto::v1 as pb;
use vouch_server::server::RunningServer;

use crate::support::{
    assert_role_answer, assert_status, config, open, serve, verify_inclusion_proof, vkey,
};

fn packs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) fn hrp_bundle() -> String {
    read(&packs_dir().join("high-risk-production/bundle.yaml"))
}

pub(crate) fn hrp_request(name: &str) -> String {
    read(&packs_dir().join("high-risk-production/requests").join(name))
}

pub(crate) async fn policy(server: &RunningServer, token: Option<&str>) -> PolicyClient {
    connect_policy(&server.grpc_url(), token.map(str::to_owned), None)
        .await
        .unwrap()
}

pub(crate) fn by_name(name: &str) -> pb::BundleRef {
    pb::BundleRef {
        r#ref: Some(pb::bundle_ref::Ref::Name(name.into())),
    }
}

pub(crate) fn by_id(id: &str) -> pb::DecisionRef {
    pb::DecisionRef {
        r#ref: Some(pb::decision_ref::Ref::Id(id.into())),
    }
}

pub(crate) fn publish(source: &str) -> pb::PublishBundleRequest {
    pb::PublishBundleRequest {
        ledger: String::new(),
        source: source.into(),
        format: pb::BundleFormat::Unspecified.into(),
        wait_for_checkpoint: false,
    }
}

pub(crate) fn decide(bundle: &str, request: &str, wait: bool) -> pb::DecideRequest {
    pb::DecideRequest {
        ledger: String::new(),
        bundle: Some(by_name(bundle)),
        request_json: request.into(),
        idempotency_key: String::new(),
        wait_for_checkpoint: wait,
    }
}

pub(crate) const HRP_NAME: &str = "high-risk-production-release";

pub(crate) fn override_json(decision: &str, key: &str) -> String {
    json!({
        "decision": decision, "requester": "rita", "approver": "rm-rosa",
        "approver_roles": ["ReleaseManager"], "justification": "incident INC-88",
        "expires_at": "2025-06-03T20:00:00Z", "idempotency_key": key,
        "now": "2025-06-03T10:05:00Z"
    })
    .to_string()
}

pub(crate) fn exception_json(id: &str) -> String {
    json!({
        "id": id, "policy": "high-risk-production", "requirements": ["approvals"],
        "kind": "temporary", "owner_role": "EngineeringManager",
        "scope": {"repository": ["acme/payments"]}, "expires_at": "2025-06-03T12:00:00Z",
        "remediation_plan": "second reviewer back on Monday", "author": "alice",
        "approvers": [{"approver": "erin", "roles": ["EngineeringManager"]}]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_policy_rpc_answers_and_decisions_prove_against_signed_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let mut p = policy(&server, None).await;
    let key = vkey(&server, "default");

    // Lint: a clean bundle, then one with a typo, located.
    let lint = p
        .lint_bundle(pb::LintBundleRequest {
            source: hrp_bundle(),
            format: pb::BundleFormat::Yaml.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(lint.compiles);
    assert!(lint.hash.starts_with("sha256:"));
    assert_eq!(lint.name, HRP_NAME);
    let typo = hrp_bundle().replace("Security: 1", "Securty: 1");
    let lint = p
        .lint_bundle(pb::LintBundleRequest {
            source: typo,
            format: pb::BundleFormat::Unspecified.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!lint.compiles && lint.hash.is_empty());
    let f = &lint.findings[0];
    assert_eq!(
        (f.line, f.column, f.severity.as_str(), f.code.as_str()),
        (25, 11, "error", "undeclared-role")
    );

    // Publish, with the entry's proof.
    let mut request = publish(&hrp_bundle());
    request.wait_for_checkpoint = true;
    let published = p.publish_bundle(request).await.unwrap().into_inner();
    assert_eq!(published.hash, lint_hash(&mut p).await);
    assert!(!published.duplicate);
    let cp = open(published.checkpoint.as_ref().unwrap(), &key);
    verify_inclusion_proof(
        HashAlg::Blake3,
        published.inclusion_proof.as_ref().unwrap(),
        &cp.root,
    );
    let again = p
        .publish_bundle(publish(&hrp_bundle()))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.index, published.index);

    // Get and list.
    for r in [
        pb::bundle_ref::Ref::Hash(published.hash.clone()),
        pb::bundle_ref::Ref::Name(HRP_NAME.into()),
        pb::bundle_ref::Ref::Index(published.index),
    ] {
        let b = p
            .get_bundle(pb::GetBundleRequest {
                ledger: String::new(),
                bundle: Some(pb::BundleRef { r#ref: Some(r) }),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(b.hash, published.hash);
        assert_eq!(b.source, hrp_bundle());
        assert_eq!(b.format, i32::from(pb::BundleFormat::Yaml));
        assert_eq!(
            b.policies,
            ["high-risk-production", "production-risk-label"]
        );
        assert!(b.ir_json.starts_with("{\"bundle_version\":1,"));
    }
    let list = p
        .list_bundles(pb::ListBundlesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.bundles.len(), 1);
    assert_eq!(list.bundles[0].name, HRP_NAME);
    assert_eq!(list.next_cursor, None);

    // Evaluate records nothing; Decide records and proves.
    let size_before = ledger_size(&server).await;
    let evaluated = p
        .evaluate(pb::EvaluateRequest {
            ledger: String::new(),
            bundle: Some(by_name(HRP_NAME)),
            request_json: hrp_request("block-one-approval.json"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(evaluated.outcome, i32::from(pb::Outcome::Block));
    assert_eq!(evaluated.reasons[0].code, "approvals-insufficient");
    assert!(
        evaluated
            .request_json
            .contains("\"context\":{\"exceptions\":[],\"promotions\":[]}")
    );
    assert_eq!(ledger_size(&server).await, size_before);

    let blocked = p
        .decide(decide(
            HRP_NAME,
            &hrp_request("block-one-approval.json"),
            true,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(blocked.outcome, i32::from(pb::Outcome::Block));
    assert_eq!(blocked.bundle_index, published.index);
    assert_eq!(blocked.bundle_hash, published.hash);
    assert_eq!(
        blocked.evaluation_reasons_codes(),
        ["approvals-insufficient", "approvals-role-missing"]
    );
    // The decision's proof verifies against the signed checkpoint, and the proven entry is
    // the record whose SHA-256 is the decision id.
    let cp = open(blocked.checkpoint.as_ref().unwrap(), &key);
    let proof = blocked.inclusion_proof.as_ref().unwrap();
    assert_eq!(proof.index, blocked.index);
    verify_inclusion_proof(HashAlg::Blake3, proof, &cp.root);
    assert_eq!(proof.leaf_hash, blocked.receipt.as_ref().unwrap().leaf_hash);
    assert_eq!(
        blocked.decision_id,
        sha256_tagged(blocked.record_json.as_bytes())
    );
    let mut ledger = crate::support::client(&server, None).await;
    let entry = ledger
        .get_entry(pb::GetEntryRequest {
            ledger: String::new(),
            index: blocked.index,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(entry.kind, i32::from(pb::EntryKind::Decision));
    assert_eq!(entry.leaf_hash, proof.leaf_hash);
    let payload = String::from_utf8(entry.payload).unwrap();
    assert!(payload.contains(&format!(
        ",\"record\":{},\"record_version\":1}}",
        blocked.record_json
    )));

    // GetDecision, with its proof.
    let got = p
        .get_decision(pb::GetDecisionRequest {
            ledger: String::new(),
            decision: Some(by_id(&blocked.decision_id)),
            with_proof: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.index, got.subject.as_str(), got.environment.as_str()),
        (blocked.index, "CHG-1042", "production")
    );
    assert_eq!(got.record_json, blocked.record_json);
    let gp = got.inclusion_proof.as_ref().unwrap();
    verify_inclusion_proof(
        HashAlg::Blake3,
        gp,
        &open(gp.checkpoint.as_ref().unwrap(), &key).root,
    );

    // An override, and an exception that a later decision honours... (the pack's policy does
    // not honour exceptions, so the exception shows as rejected).
    let granted = p
        .record_override(pb::RecordOverrideRequest {
            ledger: String::new(),
            override_json: override_json(&blocked.decision_id, "ovr-1"),
            wait_for_checkpoint: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(granted.status, i32::from(pb::OverrideStatus::Granted));
    assert_eq!(granted.decision_index, blocked.index);
    assert!(granted.outcome_json.contains("\"status\":\"granted\""));
    verify_inclusion_proof(
        HashAlg::Blake3,
        granted.inclusion_proof.as_ref().unwrap(),
        &open(granted.checkpoint.as_ref().unwrap(), &key).root,
    );
    let exception = p
        .record_exception(pb::RecordExceptionRequest {
            ledger: String::new(),
            exception_json: exception_json("EXC-7"),
            wait_for_checkpoint: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exception.exception_id, "EXC-7");
    assert!(!exception.duplicate);
    let later = p
        .decide(decide(
            HRP_NAME,
            &hrp_request("block-no-approvals.json"),
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        later.record_json.contains("\"id\":\"EXC-7\""),
        "the exception is in the snapshot"
    );
    assert!(
        later
            .evaluation_reasons_codes()
            .contains(&"exception-rejected")
    );

    // Replay matches.
    let replay = p
        .replay(pb::ReplayRequest {
            ledger: String::new(),
            decision: Some(by_id(&blocked.decision_id)),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(replay.matches, "{:?}", replay.differences);
    assert_eq!(
        replay.recorded_evaluation_json,
        replay.replayed_evaluation_json
    );
    assert_eq!(replay.replayed_outcome, i32::from(pb::Outcome::Block));

    // Simulate a stricter candidate over what was recorded.
    p.decide(decide(
        HRP_NAME,
        &hrp_request("allow-security-and-manager.json"),
        false,
    ))
    .await
    .unwrap();
    let sim = p
        .simulate(pb::SimulateRequest {
            ledger: String::new(),
            source: hrp_bundle().replace("        min: 2\n", "        min: 3\n"),
            last: 10,
            bundle_name: HRP_NAME.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            sim.evaluated,
            sim.would_newly_block,
            sim.would_unblock,
            sim.delta
        ),
        (3, 1, 0, 1)
    );
    assert_eq!(
        sim.newly_blocked[0].reasons[0].code,
        "approvals-insufficient"
    );
    assert!(
        sim.by_policy
            .iter()
            .any(|p| p.policy == "high-risk-production" && p.newly_blocked == 1)
    );

    // Query with filters, a cursor and proofs; and as of a time.
    let page = p
        .query_decisions(pb::QueryDecisionsRequest {
            subject: "CHG-1042".into(),
            outcome: pb::Outcome::Block.into(),
            limit: 1,
            with_proof: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.decisions.len(), 1);
    assert_eq!(page.decisions[0].decision_id, blocked.decision_id);
    assert_eq!(page.decisions[0].overrides.len(), 1);
    assert_eq!(page.next_cursor, Some(blocked.index));
    let cp = open(page.checkpoint.as_ref().unwrap(), &key);
    verify_inclusion_proof(
        HashAlg::Blake3,
        page.decisions[0].inclusion_proof.as_ref().unwrap(),
        &cp.root,
    );
    let next = p
        .query_decisions(pb::QueryDecisionsRequest {
            subject: "CHG-1042".into(),
            outcome: pb::Outcome::Block.into(),
            limit: 1,
            after: page.next_cursor,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.decisions.len(), 1);
    assert_eq!(next.decisions[0].decision_id, later.decision_id);
    let latest = p
        .query_decisions(pb::QueryDecisionsRequest {
            subject: "CHG-1042".into(),
            as_of: "2100-01-01T00:00:00Z".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(latest.decisions.len(), 1);
    assert_eq!(latest.decisions[0].outcome, i32::from(pb::Outcome::Allow));
    server.shutdown().await.unwrap();
}

trait ReasonCodes {
    fn evaluation_reasons_codes(&self) -> Vec<&str>;
}

impl ReasonCodes for pb::DecideResponse {
    fn evaluation_reasons_codes(&self) -> Vec<&str> {
        self.reasons.iter().map(|r| r.code.as_str()).collect()
    }
}

fn sha256_tagged(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

async fn lint_hash(p: &mut PolicyClient) -> String {
    p.lint_bundle(pb::LintBundleRequest {
        source: hrp_bundle(),
        format: pb::BundleFormat::Yaml.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .hash
}

async fn ledger_size(server: &RunningServer) -> u64 {
    let mut c = crate::support::client(server, None).await;
    c.get_ledger(pb::GetLedgerRequest::default())
        .await
        .unwrap()
        .into_inner()
        .size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bundles_and_requests_are_refused_with_their_locations() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let mut p = policy(&server, None).await;
    let r = p
        .publish_bundle(publish(
            "version: 1\nname: x\npolicies:\n  - id: a\n    wen: {}\n",
        ))
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &[
            "source: the bundle does not parse",
            "policies[0].wen",
            "did you mean \"when\"",
            "(line 5, column 5)",
        ],
    );
    let r = p
        .publish_bundle(publish(
            "{\"version\": 1, \"name\": \"x\",\n \"policies\": [}",
        ))
        .await;
    assert_status(r, Code::InvalidArgument, &["invalid JSON", "line 2"]);
    let r = p
        .publish_bundle(publish(&hrp_bundle().replace("Security: 1", "Securty: 1")))
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &[
            "source: the bundle has lint errors",
            "undeclared-role",
            "did you mean \"Security\"",
            "(line 25, column 11)",
        ],
    );
    let mut bad_format = publish(&hrp_bundle());
    bad_format.format = 9;
    assert_status(
        p.publish_bundle(bad_format).await,
        Code::InvalidArgument,
        &["format: unknown bundle format 9"],
    );
    p.publish_bundle(publish(&hrp_bundle())).await.unwrap();

    let r = p
        .decide(decide(
            HRP_NAME,
            "{\"subject\": \"x\",\n  \"environment\": 3}",
            false,
        ))
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &[
            "request_json:",
            "environment: expected a string, got 3 (line 2, column 18)",
            "missing required field \"author\"",
        ],
    );
    let r = p.decide(decide(HRP_NAME, "not json", false)).await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["request_json: invalid JSON", "line 1, column 1"],
    );
    let r = p
        .decide(decide(
            "no-such-bundle",
            &hrp_request("block-one-approval.json"),
            false,
        ))
        .await;
    assert_status(
        r,
        Code::NotFound,
        &["bundle: no bundle named \"no-such-bundle\""],
    );
    let mut no_bundle = decide(HRP_NAME, &hrp_request("block-one-approval.json"), false);
    no_bundle.bundle = None;
    assert_status(
        p.decide(no_bundle).await,
        Code::InvalidArgument,
        &["bundle: name the bundle"],
    );
    let mut keyed = decide(HRP_NAME, &hrp_request("block-one-approval.json"), false);
    keyed.idempotency_key = "k-1".into();
    p.decide(keyed.clone()).await.unwrap();
    keyed.request_json = hrp_request("allow-low-risk.json");
    assert_status(
        p.decide(keyed).await,
        Code::AlreadyExists,
        &["idempotency_key:", "k-1"],
    );

    let r = p
        .get_decision(pb::GetDecisionRequest {
            ledger: String::new(),
            decision: Some(by_id("sha256:00")),
            with_proof: false,
        })
        .await;
    assert_status(r, Code::NotFound, &["decision: no decision sha256:00"]);
    let r = p
        .replay(pb::ReplayRequest {
            ledger: String::new(),
            decision: Some(pb::DecisionRef {
                r#ref: Some(pb::decision_ref::Ref::Index(999)),
            }),
        })
        .await;
    assert_status(r, Code::NotFound, &["decision at entry 999"]);
    let r = p
        .record_override(pb::RecordOverrideRequest {
            ledger: String::new(),
            override_json: override_json("sha256:00", "k-2"),
            wait_for_checkpoint: false,
        })
        .await;
    assert_status(r, Code::NotFound, &["override_json.decision:"]);
    let r = p
        .record_exception(pb::RecordExceptionRequest {
            ledger: String::new(),
            exception_json: "{\"id\": \"E-1\",\n \"kind\": \"sometimes\"}".into(),
            wait_for_checkpoint: false,
        })
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["exception_json:", "(line 2, column 10)"],
    );
    let r = p
        .query_decisions(pb::QueryDecisionsRequest {
            since: "yesterday".into(),
            ..Default::default()
        })
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["since: \"yesterday\" is not an RFC 3339 time"],
    );
    let r = p
        .simulate(pb::SimulateRequest {
            source: hrp_bundle(),
            last: 5,
            since: "2025-01-01T00:00:00Z".into(),
            ..Default::default()
        })
        .await;
    assert_status(r, Code::InvalidArgument, &["last:", "not both"]);
    let r = p
        .get_bundle(pb::GetBundleRequest {
            ledger: "nope".into(),
            bundle: Some(by_name(HRP_NAME)),
        })
        .await;
    assert_status(r, Code::NotFound, &["ledger:"]);
    server.shutdown().await.unwrap();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    LintBundle,
    PublishBundle,
    GetBundle,
    ListBundles,
    Evaluate,
    Decide,
    GetDecision,
    RecordOverride,
    RecordException,
    Replay,
    Simulate,
    QueryDecisions,
    ExportProofPack,
}

const ALL: [Rpc; 13] = [
    Rpc::LintBundle,
    Rpc::PublishBundle,
    Rpc::GetBundle,
    Rpc::ListBundles,
    Rpc::Evaluate,
    Rpc::Decide,
    Rpc::GetDecision,
    Rpc::RecordOverride,
    Rpc::RecordException,
    Rpc::Replay,
    Rpc::Simulate,
    Rpc::QueryDecisions,
    Rpc::ExportProofPack,
];

/// The roles each RPC allows, as documented in docs/api.md.
fn allowed(rpc: Rpc) -> &'static [Role] {
    match rpc {
        Rpc::PublishBundle => &[Role::PolicyAdmin, Role::Admin],
        Rpc::Decide => &[Role::Writer, Role::Admin],
        Rpc::RecordOverride | Rpc::RecordException => {
            &[Role::Writer, Role::PolicyAdmin, Role::Admin]
        }
        Rpc::LintBundle | Rpc::Evaluate | Rpc::Simulate => {
            &[Role::Writer, Role::PolicyAdmin, Role::Auditor, Role::Admin]
        }
        Rpc::GetBundle
        | Rpc::ListBundles
        | Rpc::GetDecision
        | Rpc::Replay
        | Rpc::QueryDecisions
        | Rpc::ExportProofPack => &Role::ALL,
    }
}

/// Makes one valid call of `rpc`; `n` keeps keys and ids unique.
async fn call(p: &mut PolicyClient, rpc: Rpc, decision: &str, n: usize) -> Result<(), Status> {
    match rpc {
        Rpc::LintBundle => p
            .lint_bundle(pb::LintBundleRequest {
                source: hrp_bundle(),
                format: 0,
            })
            .await
            .map(drop),
        Rpc::PublishBundle => p.publish_bundle(publish(&hrp_bundle())).await.map(drop),
        Rpc::GetBundle => p
            .get_bundle(pb::GetBundleRequest {
                ledger: String::new(),
                bundle: Some(by_name(HRP_NAME)),
            })
            .await
            .map(drop),
        Rpc::ListBundles => p
            .list_bundles(pb::ListBundlesRequest::default())
            .await
            .map(drop),
        Rpc::Evaluate => p
            .evaluate(pb::EvaluateRequest {
                ledger: String::new(),
                bundle: Some(by_name(HRP_NAME)),
                request_json: hrp_request("allow-low-risk.json"),
            })
            .await
            .map(drop),
        Rpc::Decide => p
            .decide(decide(HRP_NAME, &hrp_request("allow-low-risk.json"), false))
            .await
            .map(drop),
        Rpc::GetDecision => p
            .get_decision(pb::GetDecisionRequest {
                ledger: String::new(),
                decision: Some(by_id(decision)),
                with_proof: false,
            })
            .await
            .map(drop),
        Rpc::RecordOverride => p
            .record_override(pb::RecordOverrideRequest {
                ledger: String::new(),
                override_json: override_json(decision, &format!("ovr-{n}")),
                wait_for_checkpoint: false,
            })
            .await
            .map(drop),
        Rpc::RecordException => p
            .record_exception(pb::RecordExceptionRequest {
                ledger: String::new(),
                exception_json: exception_json(&format!("EXC-{n}")),
                wait_for_checkpoint: false,
            })
            .await
            .map(drop),
        Rpc::Replay => p
            .replay(pb::ReplayRequest {
                ledger: String::new(),
                decision: Some(by_id(decision)),
            })
            .await
            .map(drop),
        Rpc::Simulate => p
            .simulate(pb::SimulateRequest {
                source: hrp_bundle(),
                last: 5,
                ..Default::default()
            })
            .await
            .map(drop),
        Rpc::QueryDecisions => p
            .query_decisions(pb::QueryDecisionsRequest::default())
            .await
            .map(drop),
        Rpc::ExportProofPack => p
            .export_proof_pack(pb::ExportProofPackRequest {
                ledger: String::new(),
                decision: Some(by_id(decision)),
                tree_size: 0,
            })
            .await
            .map(drop),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_policy_rpc_checks_the_token_and_the_role() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let mut tokens = Vec::new();
    for role in Role::ALL {
        let token = generate_token().unwrap();
        cfg.tokens.push(TokenConfig {
            name: format!("{role}-token"),
            role,
            sha256: hash_token(&token),
        });
        tokens.push((role, token));
    }
    let server = serve(cfg).await;
    let admin_token = &tokens.iter().find(|(r, _)| *r == Role::Admin).unwrap().1;
    let mut admin = policy(&server, Some(admin_token)).await;
    admin.publish_bundle(publish(&hrp_bundle())).await.unwrap();
    let blocked = admin
        .decide(decide(
            HRP_NAME,
            &hrp_request("block-one-approval.json"),
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut anonymous = policy(&server, None).await;
    let mut n = 0;
    for rpc in ALL {
        let e = call(&mut anonymous, rpc, &blocked.decision_id, n)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{rpc:?}: {}", e.message());
        for (role, token) in &tokens {
            n += 1;
            let mut c = policy(&server, Some(token)).await;
            let result = call(&mut c, rpc, &blocked.decision_id, n).await;
            assert_role_answer(&rpc, role, allowed(rpc).contains(role), result);
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_include_the_policy_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1 as r1;

    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let channel = vouch_server::client::channel(&server.grpc_url(), None)
        .await
        .unwrap();
    let r = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "vouch.v1.PolicyService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status(), ServingStatus::Serving);
    let mut reflection = r1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            r1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "vouch.v1.PolicyService".into(),
            ),
        ),
    };
    let answer = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    let Some(r1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        answer.message_response
    else {
        panic!("not a file descriptor: {answer:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    server.shutdown().await.unwrap();
}

/// The facts of a request's `context`, as the server would derive them: the promotions'
/// environment, version, commit, digest and time (not the ids of the decisions that made
/// them, which differ when they are seeded), and the exceptions' ids.
fn facts(context: &Value) -> (Vec<[String; 5]>, Vec<String>) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut promotions: Vec<[String; 5]> = context["promotions"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|p| ["at", "environment", "version", "commit", "digest"].map(|k| text(&p[k])))
                .collect()
        })
        .unwrap_or_default();
    promotions.sort();
    let mut exceptions: Vec<String> = context["exceptions"]
        .as_array()
        .map(|list| list.iter().map(|e| text(&e["id"])).collect())
        .unwrap_or_default();
    exceptions.sort();
    (promotions, exceptions)
}

fn pretty(canonical: &str) -> String {
    let value: Value = serde_json::from_str(canonical).unwrap();
    format!("{}\n", serde_json::to_string_pretty(&value).unwrap())
}

/// The bundle that seeds promotions: it allows every request.
const SEED_BUNDLE: &str = "version: 1\nname: seed\npolicies:\n  - id: everything\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packs_golden_evaluations_are_reproduced_through_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let mut p = policy(&server, None).await;
    let mut ledger = crate::support::client(&server, None).await;
    let mut packs: Vec<PathBuf> = fs::read_dir(packs_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    packs.sort();
    let (mut exact, mut decided) = (0, 0);
    let mut approximate = Vec::new();
    let mut other_facts = Vec::new();
    for (pn, pack) in packs.iter().enumerate() {
        let bundle = read(&pack.join("bundle.yaml"));
        let mut requests: Vec<PathBuf> = fs::read_dir(pack.join("requests"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        requests.sort();
        for (rn, path) in requests.iter().enumerate() {
            let request: Value = serde_json::from_str(&read(path)).unwrap();
            let expected = read(&pack.join("expected").join(path.file_name().unwrap()));
            // Each request gets a ledger of its own, holding exactly the facts its sample
            // context describes: promotions as ALLOW decisions of the seed bundle, and the
            // exceptions as recorded exceptions.
            let name = format!("golden-{pn}-{rn}");
            ledger
                .create_ledger(pb::CreateLedgerRequest {
                    name: name.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut published = publish(&bundle);
            published.ledger.clone_from(&name);
            p.publish_bundle(published).await.unwrap();
            let sample_facts = facts(&request["context"]);
            let promotions = request["context"]["promotions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let exceptions = request["context"]["exceptions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !promotions.is_empty() {
                let mut seed = publish(SEED_BUNDLE);
                seed.ledger.clone_from(&name);
                p.publish_bundle(seed).await.unwrap();
            }
            for (i, promotion) in promotions.iter().enumerate() {
                let mut seed = json!({
                    "subject": format!("seed-{i}"), "environment": promotion["environment"],
                    "author": "seed", "now": promotion["at"],
                    "artifact": {"version": promotion["version"], "commit": promotion["commit"], "digest": promotion["digest"]},
                });
                for field in ["repository", "service"] {
                    if let Some(v) = request.get(field) {
                        seed[field] = v.clone();
                    }
                }
                let mut d = decide("seed", &seed.to_string(), false);
                d.ledger.clone_from(&name);
                let seeded = p.decide(d).await.unwrap().into_inner();
                assert_eq!(seeded.outcome, i32::from(pb::Outcome::Allow));
            }
            for e in &exceptions {
                p.record_exception(pb::RecordExceptionRequest {
                    ledger: name.clone(),
                    exception_json: e.to_string(),
                    wait_for_checkpoint: false,
                })
                .await
                .unwrap();
            }
            // The client's own context is sent along, and replaced by the server's.
            let mut d = decide(
                request_bundle_name(&bundle).as_str(),
                &request.to_string(),
                false,
            );
            d.ledger.clone_from(&name);
            let response = p.decide(d).await.unwrap().into_inner();
            decided += 1;
            let record: Value = serde_json::from_str(&response.record_json).unwrap();
            let evaluation = serde_json::to_string(&record["evaluation"]).unwrap();
            let label = format!(
                "{}/{}",
                pack.file_name().unwrap().to_string_lossy(),
                path.file_name().unwrap().to_string_lossy()
            );
            let same_facts = facts(&record["request"]["context"]) == sample_facts;
            if pretty(&evaluation) == expected {
                exact += 1;
                if !same_facts {
                    other_facts.push(label);
                }
            } else {
                // The server left out facts the sample carries (an expired exception): the
                // outcome and every other reason are still the golden's.
                assert!(!same_facts, "{label}: the same facts, another evaluation");
                let golden: Value = serde_json::from_str(&expected).unwrap();
                assert_eq!(
                    record["evaluation"]["outcome"], golden["outcome"],
                    "{label}"
                );
                let strip = |reasons: &Value| -> Vec<Value> {
                    reasons
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|r| r["code"] != "exception-rejected")
                        .cloned()
                        .collect()
                };
                assert_eq!(
                    strip(&record["evaluation"]["reasons"]),
                    strip(&golden["reasons"]),
                    "{label}"
                );
                approximate.push(label);
            }
        }
    }
    assert_eq!(decided, 73);
    assert_eq!(exact, 72);
    // An exception expired at the request's `now` is not injected, so its rejection is not
    // reported.
    assert_eq!(
        approximate,
        ["release-management/block-production-exception-expired.json"]
    );
    // These samples carry promotions but name no artifact: the server derives promotions only
    // for the request's artifact, and the evaluation does not depend on them.
    assert_eq!(
        other_facts,
        [
            "release-management/allow-production-flag-change.json",
            "release-management/block-production-flag-change-self-approved.json",
            "supply-chain-gate/block-no-artifact.json"
        ]
    );
    server.shutdown().await.unwrap();
}

fn request_bundle_name(bundle: &str) -> String {
    bundle
        .lines()
        .find_map(|l| l.strip_prefix("name: "))
        .unwrap()
        .trim()
        .to_owned()
}
