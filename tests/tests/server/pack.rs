//! Proof packs through the real server: a decision with an exception in its context and two
//! overrides is exported with `ExportProofPack` and verified offline with the verifier key
//! the server printed; anchoring at an older checkpoint, packs of another ledger, and the
//! errors of the RPC.

use serde_json::json;
use tonic::Code;
use vouch_ledger_core::note::{Verifier, Verifiers};
use vouch_query::pack::{PackCheck, ProofPack, verify};
use vouch_server::client::{PolicyClient, connect_policy};
use vouch_server::proto::v1 as pb;
use vouch_server::server::RunningServer;

use crate::support::{assert_status, client, config, serve, vkey};

const HRP_NAME: &str = "high-risk-production-release";

fn example(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/policies/high-risk-production")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn policy(server: &RunningServer) -> PolicyClient {
    connect_policy(&server.grpc_url(), None, None)
        .await
        .unwrap()
}

fn by_id(id: &str) -> pb::DecisionRef {
    pb::DecisionRef {
        r#ref: Some(pb::decision_ref::Ref::Id(id.into())),
    }
}

fn trusting(keys: &[&str]) -> Verifiers {
    let mut v = Verifiers::new();
    for k in keys {
        v.insert(Verifier::from_vkey(k).unwrap());
    }
    v
}

fn override_json(decision: &str, key: &str, approver: &str) -> String {
    json!({
        "decision": decision, "requester": "rita", "approver": approver,
        "approver_roles": ["ReleaseManager"], "justification": "incident INC-88",
        "expires_at": "2025-06-03T20:00:00Z", "idempotency_key": key,
        "now": "2025-06-03T10:05:00Z"
    })
    .to_string()
}

/// Publishes the high-risk bundle on `ledger`, records an exception, decides a blocked
/// request and overrides it twice (granted, denied); returns the decision id.
async fn blocked_decision(p: &mut PolicyClient, ledger: &str) -> String {
    p.publish_bundle(pb::PublishBundleRequest {
        ledger: ledger.into(),
        source: example("bundle.yaml"),
        format: pb::BundleFormat::Yaml.into(),
        wait_for_checkpoint: false,
    })
    .await
    .unwrap();
    p.record_exception(pb::RecordExceptionRequest {
        ledger: ledger.into(),
        exception_json: json!({
            "id": "EXC-7", "policy": "high-risk-production", "requirements": ["approvals"],
            "kind": "temporary", "owner_role": "EngineeringManager",
            "scope": {"repository": ["acme/payments"]}, "expires_at": "2025-06-04T12:00:00Z",
            "remediation_plan": "second reviewer back on Monday", "author": "alice",
            "approvers": [{"approver": "erin", "roles": ["EngineeringManager"]}]
        })
        .to_string(),
        wait_for_checkpoint: false,
    })
    .await
    .unwrap();
    let decided = p
        .decide(pb::DecideRequest {
            ledger: ledger.into(),
            bundle: Some(pb::BundleRef {
                r#ref: Some(pb::bundle_ref::Ref::Name(HRP_NAME.into())),
            }),
            request_json: example("requests/block-one-approval.json"),
            idempotency_key: String::new(),
            wait_for_checkpoint: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decided.outcome, i32::from(pb::Outcome::Block));
    for (key, approver) in [("ovr-1", "rm-rosa"), ("ovr-2", "rita")] {
        p.record_override(pb::RecordOverrideRequest {
            ledger: ledger.into(),
            override_json: override_json(&decided.decision_id, key, approver),
            wait_for_checkpoint: false,
        })
        .await
        .unwrap();
    }
    decided.decision_id
}

async fn export(
    p: &mut PolicyClient,
    ledger: &str,
    id: &str,
    tree_size: u64,
) -> Result<pb::ExportProofPackResponse, tonic::Status> {
    p.export_proof_pack(pb::ExportProofPackRequest {
        ledger: ledger.into(),
        decision: Some(by_id(id)),
        tree_size,
    })
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_pack_verifies_offline_with_the_printed_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // No periodic checkpoints: the export signs the one it needs.
    cfg.storage.checkpoint_every_ms = 0;
    let server = serve(cfg).await;
    let key = vkey(&server, "default");
    let mut p = policy(&server).await;
    let id = blocked_decision(&mut p, "").await;

    let r = export(&mut p, "", &id, 0).await.unwrap();
    assert_eq!(r.decision_id, id);
    assert_eq!(r.decision_index, 2);
    assert_eq!(r.exception_indexes, [1]);
    assert_eq!(r.override_indexes, [3, 4]);
    assert_eq!((r.tree_size, r.latest_tree_size), (5, 5));
    let pack = ProofPack::parse(r.pack_json.as_bytes()).unwrap();
    assert_eq!(pack.to_json(), r.pack_json, "the documented layout");
    let verified = verify(&pack, &trusting(&[&key]), None).unwrap();
    assert_eq!(verified.decision_id, id);
    assert_eq!(verified.overrides.len(), 2);
    assert_eq!(verified.exceptions[0].1, "EXC-7");
    assert_eq!(
        verified.checks.last().map(|c| c.check),
        Some(PackCheck::Replay)
    );
    // The pack lists the key the server printed, for reference.
    assert_eq!(pack.verifier_keys[0].to_vkey(), key);

    // More entries and a checkpoint later, the same decision anchored at the checkpoint of
    // size 5 carries a consistency proof to the new one.
    let mut ledger = client(&server, None).await;
    for i in 0..3 {
        ledger
            .append(crate::support::append(
                format!("later {i}").as_bytes(),
                None,
                i == 2,
            ))
            .await
            .unwrap();
    }
    let anchored = export(&mut p, "", &id, 5).await.unwrap();
    assert_eq!((anchored.tree_size, anchored.latest_tree_size), (5, 8));
    let pack = ProofPack::parse(anchored.pack_json.as_bytes()).unwrap();
    assert!(!pack.consistency_path.is_empty());
    let verified = verify(&pack, &trusting(&[&key]), Some("vouch.local/default")).unwrap();
    assert_eq!(verified.latest.checkpoint.size.0, 8);

    // The same decision in another ledger: its pack does not verify with this key.
    ledger
        .create_ledger(pb::CreateLedgerRequest {
            name: "other".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let other_id = blocked_decision(&mut p, "other").await;
    let foreign = export(&mut p, "other", &other_id, 0).await.unwrap();
    let foreign = ProofPack::parse(foreign.pack_json.as_bytes()).unwrap();
    let failed = verify(&foreign, &trusting(&[&key]), None).unwrap_err();
    assert_eq!(failed.check, PackCheck::Checkpoint);
    assert!(
        failed.reason.contains("signed by vouch.local/other+"),
        "{failed}"
    );
    // Trusting its key too, but expecting this ledger.
    let other_key = foreign.verifier_keys[0].to_vkey();
    let failed = verify(
        &foreign,
        &trusting(&[&key, &other_key]),
        Some("vouch.local/default"),
    )
    .unwrap_err();
    assert_eq!(failed.check, PackCheck::Origin);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_proof_pack_errors_have_their_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // Checkpoints only when asked for, so that none is signed at size 2.
    cfg.storage.checkpoint_every_ms = 0;
    let server = serve(cfg).await;
    let mut p = policy(&server).await;
    let id = blocked_decision(&mut p, "").await;
    let unknown = format!("sha256:{}", "ab".repeat(32));
    assert_status(
        export(&mut p, "", &unknown, 0).await,
        Code::NotFound,
        &["decision: no decision sha256:abab", "is recorded"],
    );
    // Entry 0 is the bundle, not a decision.
    assert_status(
        p.export_proof_pack(pb::ExportProofPackRequest {
            ledger: String::new(),
            decision: Some(pb::DecisionRef {
                r#ref: Some(pb::decision_ref::Ref::Index(0)),
            }),
            tree_size: 0,
        })
        .await,
        Code::NotFound,
        &["decision at entry 0"],
    );
    assert_status(
        p.export_proof_pack(pb::ExportProofPackRequest::default())
            .await,
        Code::InvalidArgument,
        &["decision: name the decision by id or index"],
    );
    assert_status(
        export(&mut p, "", &id, 1_000).await,
        Code::OutOfRange,
        &["tree_size: tree_size 1000 is beyond the ledger's size"],
    );
    assert_status(
        export(&mut p, "", &id, 2).await,
        Code::NotFound,
        &["tree_size: no checkpoint was signed at exactly tree size 2"],
    );
    assert_status(
        export(&mut p, "nope", &id, 0).await,
        Code::NotFound,
        &["ledger: "],
    );
    server.shutdown().await.unwrap();
}
