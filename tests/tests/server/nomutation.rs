//! No call changes what is stored: after entries (records and policy-layer entries) are
//! appended and covered by a signed checkpoint, every method of every service is called, with
//! valid arguments and with hostile ones, and then every byte the ledger held before is still
//! there (segments, checkpoints, ledger metadata: the old contents are a prefix of the new),
//! every entry has the leaf hash it was acknowledged with, and every proof taken before still
//! verifies, with the old checkpoint consistent with the latest one.
//!
//! There is no RPC that changes or deletes an entry; this test fails if one appears, and it
//! also fails for a new method that has no valid call below.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio_stream::StreamExt as _;
use tonic::codegen::Bytes;
use vouch_ledger_core::HashAlg;
use vouch_server::client::{Client, PolicyClient};
use vouch_server::proto::v1 as pb;
use vouch_server::proto::v1::get_inclusion_proof_request::Target;

use crate::policy::{
    HRP_NAME, by_id, by_name, decide, exception_json, hrp_bundle, hrp_request, override_json,
    policy, publish,
};
use crate::raw::{every_method, frame, raw_call};
use crate::support::{
    append, client, config, entry, open, serve, verify_consistency_proof, verify_inclusion_proof,
    vkey,
};

/// Every file of the ledger that holds what it stores (not the derived ones), with its bytes.
fn stored_files(ledger_dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for name in ["ledger.json", "checkpoints.dat"] {
        files.insert(
            PathBuf::from(name),
            std::fs::read(ledger_dir.join(name)).unwrap(),
        );
    }
    for e in std::fs::read_dir(ledger_dir.join("segments")).unwrap() {
        let e = e.unwrap();
        files.insert(
            Path::new("segments").join(e.file_name()),
            std::fs::read(e.path()).unwrap(),
        );
    }
    files
}

/// One valid call of `method` that changes nothing already stored (appends add after it).
async fn valid_call(c: &mut Client, p: &mut PolicyClient, method: &str, decision: &str, n: u64) {
    let name_ref = || Some(by_name(HRP_NAME));
    let ok = match method {
        "CreateLedger" => c
            .create_ledger(pb::CreateLedgerRequest {
                name: format!("other-{n}"),
                ..Default::default()
            })
            .await
            .map(drop),
        "ListLedgers" => c.list_ledgers(pb::ListLedgersRequest {}).await.map(drop),
        "GetLedger" => c
            .get_ledger(pb::GetLedgerRequest::default())
            .await
            .map(drop),
        "Append" => c
            .append(append(format!("new {n}").as_bytes(), None, false))
            .await
            .map(drop),
        "AppendBatch" => c
            .append_batch(pb::AppendBatchRequest {
                ledger: String::new(),
                entries: vec![entry(b"new a", None), entry(b"new b", Some("k-1"))],
                wait_for_checkpoint: true,
            })
            .await
            .map(drop),
        "GetEntry" => c
            .get_entry(pb::GetEntryRequest {
                ledger: String::new(),
                index: 1,
            })
            .await
            .map(drop),
        "StreamEntries" => {
            let mut s = c
                .stream_entries(pb::StreamEntriesRequest::default())
                .await
                .unwrap()
                .into_inner();
            while s.next().await.transpose().unwrap().is_some() {}
            Ok(())
        }
        "GetInclusionProof" => c
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                ledger: String::new(),
                tree_size: 0,
                target: Some(Target::Index(0)),
            })
            .await
            .map(drop),
        "GetConsistencyProof" => c
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                ledger: String::new(),
                old_size: 1,
                new_size: 0,
            })
            .await
            .map(drop),
        "GetCheckpoint" => c
            .get_checkpoint(pb::GetCheckpointRequest::default())
            .await
            .map(drop),
        "WatchCheckpoints" => {
            let mut w = c
                .watch_checkpoints(pb::WatchCheckpointsRequest::default())
                .await
                .unwrap()
                .into_inner();
            w.next().await.unwrap().map(drop)
        }
        "LintBundle" => p
            .lint_bundle(pb::LintBundleRequest {
                source: hrp_bundle(),
                format: 0,
            })
            .await
            .map(drop),
        "PublishBundle" => p.publish_bundle(publish(&hrp_bundle())).await.map(drop),
        "GetBundle" => p
            .get_bundle(pb::GetBundleRequest {
                ledger: String::new(),
                bundle: name_ref(),
            })
            .await
            .map(drop),
        "ListBundles" => p
            .list_bundles(pb::ListBundlesRequest::default())
            .await
            .map(drop),
        "Evaluate" => p
            .evaluate(pb::EvaluateRequest {
                ledger: String::new(),
                bundle: name_ref(),
                request_json: hrp_request("block-one-approval.json"),
            })
            .await
            .map(drop),
        "Decide" => p
            .decide(decide(HRP_NAME, &hrp_request("allow-low-risk.json"), true))
            .await
            .map(drop),
        "GetDecision" => p
            .get_decision(pb::GetDecisionRequest {
                ledger: String::new(),
                decision: Some(by_id(decision)),
                with_proof: true,
            })
            .await
            .map(drop),
        "RecordOverride" => p
            .record_override(pb::RecordOverrideRequest {
                ledger: String::new(),
                override_json: override_json(decision, &format!("ovr-{n}")),
                wait_for_checkpoint: false,
            })
            .await
            .map(drop),
        "RecordException" => p
            .record_exception(pb::RecordExceptionRequest {
                ledger: String::new(),
                exception_json: exception_json(&format!("EXC-{n}")),
                wait_for_checkpoint: false,
            })
            .await
            .map(drop),
        "Replay" => p
            .replay(pb::ReplayRequest {
                ledger: String::new(),
                decision: Some(by_id(decision)),
            })
            .await
            .map(drop),
        "Simulate" => p
            .simulate(pb::SimulateRequest {
                source: hrp_bundle().replace("min: 2", "min: 1"),
                last: 10,
                ..Default::default()
            })
            .await
            .map(drop),
        "QueryDecisions" => p
            .query_decisions(pb::QueryDecisionsRequest {
                with_proof: true,
                ..Default::default()
            })
            .await
            .map(drop),
        "ExportProofPack" => p
            .export_proof_pack(pb::ExportProofPackRequest {
                ledger: String::new(),
                decision: Some(by_id(decision)),
                tree_size: 0,
            })
            .await
            .map(drop),
        other => panic!("no valid call of {other} in this test: add one"),
    };
    if let Err(e) = ok {
        panic!("{method}: {e:?}");
    }
}

/// Hostile request bodies that make sense for any method: a protobuf message that sets fields
/// 1 to 12 to the largest varint, to bytes that are not UTF-8, to a huge length; bytes that
/// are not protobuf; a frame cut short.
fn hostile_bodies() -> Vec<Bytes> {
    let mut bodies = Vec::new();
    let mut max_varints = Vec::new();
    let mut bad_strings = Vec::new();
    for field in 1u8..=12 {
        max_varints.push(field << 3);
        max_varints.extend_from_slice(&[0xff; 9]);
        max_varints.push(0x01);
        bad_strings.extend_from_slice(&[(field << 3) | 2, 4, 0xff, 0xfe, 0x00, 0xc0]);
    }
    bodies.push(frame(&max_varints));
    bodies.push(frame(&bad_strings));
    bodies.push(frame(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, b'x']));
    bodies.push(frame(&[0xff; 32]));
    bodies.push(Bytes::from_static(&[0, 0, 0, 1, 0, 0x0a]));
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_of_any_method_changes_what_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let key = vkey(&server, "default");
    let ledger_dir = config(dir.path()).data_dir.join("ledgers/default");
    let mut c = client(&server, None).await;
    let mut p = policy(&server, None).await;

    // Records, a batch, keyed entries, and entries of the policy layer.
    for i in 0..10u8 {
        c.append(append(
            &[i; 40],
            (i % 3 == 0).then_some(&*format!("k{i}")),
            false,
        ))
        .await
        .unwrap();
    }
    p.publish_bundle(publish(&hrp_bundle())).await.unwrap();
    let blocked = p
        .decide(decide(
            HRP_NAME,
            &hrp_request("block-one-approval.json"),
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    p.record_override(pb::RecordOverrideRequest {
        ledger: String::new(),
        override_json: override_json(&blocked.decision_id, "ovr-0"),
        wait_for_checkpoint: false,
    })
    .await
    .unwrap();
    let last = c
        .append_batch(pb::AppendBatchRequest {
            ledger: String::new(),
            entries: (0..5u8).map(|i| entry(&[i; 8], None)).collect(),
            wait_for_checkpoint: true,
        })
        .await
        .unwrap()
        .into_inner();
    let before_cp = last.checkpoint.unwrap();
    let before_root = open(&before_cp, &key).root;
    let size = before_cp.tree_size;
    let mut leaves = Vec::new();
    let mut proofs = Vec::new();
    for index in 0..size {
        let e = c
            .get_entry(pb::GetEntryRequest {
                ledger: String::new(),
                index,
            })
            .await
            .unwrap()
            .into_inner();
        leaves.push(e.leaf_hash.clone());
        let proof = c
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                ledger: String::new(),
                tree_size: size,
                target: Some(Target::Index(index)),
            })
            .await
            .unwrap()
            .into_inner();
        verify_inclusion_proof(HashAlg::Blake3, &proof, &before_root);
        proofs.push(proof);
    }
    let before = stored_files(&ledger_dir);

    // Every method: a valid call, then hostile bodies over raw HTTP/2, then a second valid
    // call (some, such as an idempotent publish, answer differently the second time).
    let methods = every_method();
    let mut n = 0;
    for (path, _) in &methods {
        let method = path.rsplit('/').next().unwrap();
        if path.starts_with("/vouch.") {
            n += 1;
            valid_call(&mut c, &mut p, method, &blocked.decision_id, n).await;
        }
        for body in hostile_bodies() {
            let _ = raw_call(server.grpc_addr, path, body, None, true).await;
        }
        if path.starts_with("/vouch.") {
            n += 1;
            valid_call(&mut c, &mut p, method, &blocked.decision_id, n).await;
        }
    }
    // Conflicting and out-of-range arguments.
    let conflict = c.append(append(b"other bytes", Some("k0"), false)).await;
    assert_eq!(
        conflict.unwrap_err().code(),
        tonic::Code::AlreadyExists,
        "a used key with other contents"
    );
    for index in [size, u64::MAX] {
        let e = c
            .get_entry(pb::GetEntryRequest {
                ledger: String::new(),
                index,
            })
            .await;
        assert!(e.is_err() || index == size, "entry {index}");
    }

    // Every byte stored before is still there, in the same place.
    let after = stored_files(&ledger_dir);
    for (file, old) in &before {
        let new = after
            .get(file)
            .unwrap_or_else(|| panic!("{} disappeared", file.display()));
        assert!(
            new.len() >= old.len() && new[..old.len()] == old[..],
            "{} changed below byte {}",
            file.display(),
            old.len()
        );
    }
    // Every entry keeps its leaf hash, and every earlier proof still verifies: against the old
    // checkpoint, which the latest one provably extends.
    let latest = c
        .get_checkpoint(pb::GetCheckpointRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(latest.tree_size > size, "the valid calls appended");
    let latest_root = open(&latest, &key).root;
    let consistency = c
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            ledger: String::new(),
            old_size: size,
            new_size: latest.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    verify_consistency_proof(HashAlg::Blake3, &consistency, &before_root, &latest_root);
    for (index, (leaf, proof)) in (0u64..).zip(leaves.iter().zip(&proofs)) {
        verify_inclusion_proof(HashAlg::Blake3, proof, &before_root);
        let now = c
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                ledger: String::new(),
                tree_size: latest.tree_size,
                target: Some(Target::LeafHash(leaf.clone())),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(now.index, index, "the leaf hash still finds entry {index}");
        verify_inclusion_proof(HashAlg::Blake3, &now, &latest_root);
    }
    server.shutdown().await.unwrap();
    let report =
        vouch_storage::verify_ledger_dir(&config(dir.path()).data_dir, "default", &mut |_| {})
            .unwrap();
    assert!(report.entries >= latest.tree_size);
}
