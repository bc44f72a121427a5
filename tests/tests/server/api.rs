//! Every RPC of the ledger service, idempotency, proofs in one round trip, the checkpoint
//! stream, malformed requests and concurrent appenders.

use std::collections::HashSet;
use std::time::Duration;

use tokio_stream::StreamExt as _;
use tonic::Code;
use vouch_ledger_core::{Hash, HashAlg};
use vouch_server::proto::v1 as pb;
use vouch_server::proto::v1::get_inclusion_proof_request::Target;

use crate::support::{
    append, assert_status, client, config, entry, open, serve, verify_consistency_proof,
    verify_inclusion_proof, vkey,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_and_its_proofs_verify() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let mut c = client(&server, None).await;

    // A second ledger in SHA-256 mode, next to the default one.
    let info = c
        .create_ledger(pb::CreateLedgerRequest {
            name: "audit".into(),
            hash: pb::HashAlgorithm::Sha256.into(),
            origin: String::new(),
            disable_leaf_hash_index: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "audit");
    assert_eq!(info.hash, i32::from(pb::HashAlgorithm::Sha256));
    assert_eq!(info.origin, "vouch.local/audit");
    assert_eq!(info.size, 0);
    assert_eq!(info.verifier_keys.len(), 1);
    assert!(info.leaf_hash_index);
    assert_eq!(info.durability, "fsync");
    let audit_key = info.verifier_keys[0].clone();
    assert!(audit_key.starts_with("vouch.local/audit+"), "{audit_key}");
    let first = info
        .latest_checkpoint
        .expect("a new ledger has a checkpoint");
    assert_eq!(first.tree_size, 0);
    open(&first, &audit_key);

    let list = c
        .list_ledgers(pb::ListLedgersRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = list.ledgers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["audit", "default"]);
    let default = c
        .get_ledger(pb::GetLedgerRequest {
            ledger: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(default.name, "default");
    assert_eq!(default.hash, i32::from(pb::HashAlgorithm::Blake3));
    assert_eq!(default.verifier_keys, [vkey(&server, "default")]);

    // Appends: one, then a batch.
    let r = c
        .append(pb::AppendRequest {
            ledger: "audit".into(),
            entry: Some(entry(b"{\"n\":0}", None)),
            wait_for_checkpoint: false,
        })
        .await
        .unwrap()
        .into_inner();
    let receipt = r.receipt.unwrap();
    assert_eq!(receipt.index, 0);
    assert!(!receipt.duplicate);
    assert!(r.checkpoint.is_none() && r.inclusion_proof.is_none());
    let batch = c
        .append_batch(pb::AppendBatchRequest {
            ledger: "audit".into(),
            entries: (1..=9)
                .map(|i| entry(format!("{{\"n\":{i}}}").as_bytes(), None))
                .collect(),
            wait_for_checkpoint: true,
        })
        .await
        .unwrap()
        .into_inner();
    let indexes: Vec<u64> = batch.receipts.iter().map(|r| r.index).collect();
    assert_eq!(indexes, (1..=9).collect::<Vec<_>>());
    let cp = batch.checkpoint.unwrap();
    let root = open(&cp, &audit_key).root;
    assert!(cp.tree_size >= 10);
    assert_eq!(batch.inclusion_proofs.len(), 9);
    for p in &batch.inclusion_proofs {
        assert_eq!(p.tree_size, cp.tree_size);
        verify_inclusion_proof(HashAlg::Sha256, p, &root);
    }

    // Entries: one, and a range as a stream.
    let e = c
        .get_entry(pb::GetEntryRequest {
            ledger: "audit".into(),
            index: 4,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.index, 4);
    assert_eq!(e.payload, b"{\"n\":4}");
    assert_eq!(e.kind, i32::from(pb::EntryKind::Record));
    assert_eq!(e.content_type, "application/json");
    assert_eq!(
        e.leaf_hash,
        HashAlg::Sha256.leaf_hash(&e.leaf_bytes).0.to_vec(),
        "leaf hash = H(0x00 || leaf bytes)"
    );
    assert_eq!(e.leaf_hash, batch.receipts[3].leaf_hash);
    let mut stream = c
        .stream_entries(pb::StreamEntriesRequest {
            ledger: "audit".into(),
            start: 2,
            end: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(e) = stream.next().await {
        seen.push(e.unwrap().index);
    }
    assert_eq!(seen, (2..10).collect::<Vec<_>>());

    // Proofs: by index and by leaf hash, at the latest checkpoint and at a given size.
    let latest = c
        .get_checkpoint(pb::GetCheckpointRequest {
            ledger: "audit".into(),
            tree_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let latest_root = open(&latest, &audit_key).root;
    let by_index = c
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            ledger: "audit".into(),
            tree_size: 0,
            target: Some(Target::Index(4)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_index.tree_size, latest.tree_size);
    assert_eq!(by_index.checkpoint.as_ref(), Some(&latest));
    verify_inclusion_proof(HashAlg::Sha256, &by_index, &latest_root);
    let by_hash = c
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            ledger: "audit".into(),
            tree_size: 0,
            target: Some(Target::LeafHash(e.leaf_hash.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_hash, by_index);
    let at_size = c
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            ledger: "audit".into(),
            tree_size: 7,
            target: Some(Target::Index(4)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(at_size.tree_size, 7);
    assert!(at_size.path.len() >= 2);

    // Consistency from the first entry's tree to the latest checkpoint, and checkpoints.
    let one = c
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            ledger: "audit".into(),
            old_size: 1,
            new_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.new_size, latest.tree_size);
    assert_eq!(one.new_checkpoint.as_ref(), Some(&latest));
    let first_leaf = Hash::from_slice(
        &c.get_entry(pb::GetEntryRequest {
            ledger: "audit".into(),
            index: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .leaf_hash,
    )
    .unwrap();
    // The root of a one-leaf tree is its leaf hash.
    verify_consistency_proof(HashAlg::Sha256, &one, &first_leaf, &latest_root);
    let at = c
        .get_checkpoint(pb::GetCheckpointRequest {
            ledger: "audit".into(),
            tree_size: cp.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(at, cp);
    let from_cp = c
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            ledger: "audit".into(),
            old_size: cp.tree_size,
            new_size: latest.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(from_cp.old_checkpoint.as_ref(), Some(&cp));
    verify_consistency_proof(HashAlg::Sha256, &from_cp, &root, &latest_root);

    // The watch stream starts with the latest checkpoint.
    let mut watch = c
        .watch_checkpoints(pb::WatchCheckpointsRequest {
            ledger: "audit".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.tree_size, latest.tree_size);
    drop(watch);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_appends_return_the_original_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let mut c = client(&server, None).await;
    let first = c
        .append(append(b"deploy 42", Some("deploy-42"), false))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    c.append(append(b"other", None, false)).await.unwrap();
    let again = c
        .append(append(b"deploy 42", Some("deploy-42"), false))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.index, first.index);
    assert_eq!(again.leaf_hash, first.leaf_hash);
    assert_eq!(again.timestamp_unix_nanos, first.timestamp_unix_nanos);
    let info = c
        .get_ledger(pb::GetLedgerRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.size, 2, "the repeat appended nothing");
    assert_status(
        c.append(append(b"deploy 43", Some("deploy-42"), false))
            .await,
        Code::AlreadyExists,
        &["deploy-42", "different contents"],
    );
    // In a batch, the repeat is answered as a duplicate and the new entry appended.
    let batch = c
        .append_batch(pb::AppendBatchRequest {
            ledger: String::new(),
            entries: vec![
                entry(b"deploy 42", Some("deploy-42")),
                entry(b"new", Some("n")),
            ],
            wait_for_checkpoint: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(batch.receipts[0].duplicate);
    assert_eq!(batch.receipts[0].index, first.index);
    assert!(!batch.receipts[1].duplicate);
    assert_eq!(batch.receipts[1].index, 2);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_checkpoint_proves_inclusion_in_one_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // No cadence checkpoints: the one in the answer is made for the request.
    cfg.storage.checkpoint_every_ms = 0;
    cfg.storage.checkpoint_every_entries = 0;
    let server = serve(cfg).await;
    let key = vkey(&server, "default");
    let mut c = client(&server, None).await;
    for i in 0..5u8 {
        let r = c
            .append(append(&[i; 40], None, true))
            .await
            .unwrap()
            .into_inner();
        let receipt = r.receipt.unwrap();
        let cp = r.checkpoint.unwrap();
        let proof = r.inclusion_proof.unwrap();
        assert_eq!(cp.tree_size, u64::from(i) + 1);
        assert_eq!(proof.index, receipt.index);
        assert_eq!(proof.leaf_hash, receipt.leaf_hash);
        assert_eq!(proof.checkpoint.as_ref(), Some(&cp));
        // Verified with nothing but the printed verifier key and ledger-core.
        let opened = open(&cp, &key);
        verify_inclusion_proof(HashAlg::Blake3, &proof, &opened.root);
    }
    server.shutdown().await.unwrap();
}

async fn next(w: &mut tonic::Streaming<pb::SignedCheckpoint>) -> pb::SignedCheckpoint {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("a checkpoint within 10 s")
        .expect("the stream is open")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_stream_receives_new_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let key = vkey(&server, "default");
    let mut c = client(&server, None).await;
    let mut watch = c
        .watch_checkpoints(pb::WatchCheckpointsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut watch).await;
    assert_eq!(first.tree_size, 0);
    let mut last = first.tree_size;
    for round in 1..=3u64 {
        c.append_batch(pb::AppendBatchRequest {
            ledger: String::new(),
            entries: (0..5).map(|i| entry(&[i; 8], None)).collect(),
            wait_for_checkpoint: true,
        })
        .await
        .unwrap();
        // Intermediate checkpoints may be skipped, never reordered; each new one is larger.
        let mut got = next(&mut watch).await;
        assert!(got.tree_size > last);
        for _ in 0..10 {
            if got.tree_size == round * 5 {
                break;
            }
            got = next(&mut watch).await;
        }
        assert_eq!(got.tree_size, round * 5);
        open(&got, &key);
        last = got.tree_size;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let mut c = client(&server, None).await;
    c.append_batch(pb::AppendBatchRequest {
        ledger: String::new(),
        entries: (0..3).map(|i| entry(&[i], None)).collect(),
        wait_for_checkpoint: true,
    })
    .await
    .unwrap();

    assert_status(
        c.get_ledger(pb::GetLedgerRequest {
            ledger: "Bad Name".into(),
        })
        .await,
        Code::InvalidArgument,
        &["ledger", "invalid ledger name"],
    );
    assert_status(
        c.get_entry(pb::GetEntryRequest {
            ledger: "nope".into(),
            index: 0,
        })
        .await,
        Code::NotFound,
        &["nope"],
    );
    assert_status(
        c.create_ledger(pb::CreateLedgerRequest {
            name: "-x".into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        &["name"],
    );
    assert_status(
        c.create_ledger(pb::CreateLedgerRequest {
            name: "default".into(),
            ..Default::default()
        })
        .await,
        Code::AlreadyExists,
        &["default"],
    );
    assert_status(
        c.create_ledger(pb::CreateLedgerRequest {
            name: "x".into(),
            hash: 7,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        &["hash"],
    );
    assert_status(
        c.create_ledger(pb::CreateLedgerRequest {
            name: "x".into(),
            origin: "has space".into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        &["origin"],
    );
    let mut decision = append(b"{}", None, false);
    decision.entry.as_mut().unwrap().kind = pb::EntryKind::Decision.into();
    assert_status(
        c.append(decision).await,
        Code::InvalidArgument,
        &["entry.kind", "ENTRY_KIND_DECISION", "policy service"],
    );
    assert_status(
        c.append(pb::AppendRequest {
            ledger: String::new(),
            entry: None,
            wait_for_checkpoint: false,
        })
        .await,
        Code::InvalidArgument,
        &["entry"],
    );
    let mut bad_type = append(b"{}", None, false);
    bad_type.entry.as_mut().unwrap().content_type = "text/\u{7}".into();
    assert_status(
        c.append(bad_type).await,
        Code::InvalidArgument,
        &["entry.content_type"],
    );
    let mut batch = pb::AppendBatchRequest {
        ledger: String::new(),
        entries: vec![entry(b"ok", None), entry(b"ok", None)],
        wait_for_checkpoint: false,
    };
    batch.entries[1].idempotency_key = "k".repeat(129);
    assert_status(
        c.append_batch(batch).await,
        Code::InvalidArgument,
        &["entries[1].idempotency_key", "128"],
    );
    assert_status(
        c.append_batch(pb::AppendBatchRequest::default()).await,
        Code::InvalidArgument,
        &["entries", "empty"],
    );
    assert_status(
        c.append_batch(pb::AppendBatchRequest {
            ledger: String::new(),
            entries: vec![entry(b"a", Some("same")), entry(b"b", Some("same"))],
            wait_for_checkpoint: false,
        })
        .await,
        Code::InvalidArgument,
        &["entries", "same"],
    );
    assert_status(
        c.get_inclusion_proof(pb::GetInclusionProofRequest {
            ledger: String::new(),
            tree_size: 0,
            target: Some(Target::LeafHash(vec![0; 31])),
        })
        .await,
        Code::InvalidArgument,
        &["leaf_hash", "32 bytes, got 31"],
    );
    assert_status(
        c.get_inclusion_proof(pb::GetInclusionProofRequest {
            ledger: String::new(),
            tree_size: 0,
            target: Some(Target::LeafHash(vec![0; 32])),
        })
        .await,
        Code::NotFound,
        &["leaf_hash"],
    );
    assert_status(
        c.get_inclusion_proof(pb::GetInclusionProofRequest {
            ledger: String::new(),
            tree_size: 0,
            target: None,
        })
        .await,
        Code::InvalidArgument,
        &["target"],
    );
    assert_status(
        c.get_entry(pb::GetEntryRequest {
            ledger: String::new(),
            index: 3,
        })
        .await,
        Code::OutOfRange,
        &["index", "3"],
    );
    assert_status(
        c.get_inclusion_proof(pb::GetInclusionProofRequest {
            ledger: String::new(),
            tree_size: 0,
            target: Some(Target::Index(99)),
        })
        .await,
        Code::OutOfRange,
        &["index", "99"],
    );
    assert_status(
        c.get_inclusion_proof(pb::GetInclusionProofRequest {
            ledger: String::new(),
            tree_size: 2,
            target: Some(Target::Index(2)),
        })
        .await,
        Code::InvalidArgument,
        &["index"],
    );
    assert_status(
        c.get_inclusion_proof(pb::GetInclusionProofRequest {
            ledger: String::new(),
            tree_size: 9,
            target: Some(Target::Index(0)),
        })
        .await,
        Code::OutOfRange,
        &["tree_size", "9"],
    );
    assert_status(
        c.get_consistency_proof(pb::GetConsistencyProofRequest {
            ledger: String::new(),
            old_size: 3,
            new_size: 2,
        })
        .await,
        Code::InvalidArgument,
        &["old_size", "new_size"],
    );
    assert_status(
        c.get_consistency_proof(pb::GetConsistencyProofRequest {
            ledger: String::new(),
            old_size: 0,
            new_size: 2,
        })
        .await,
        Code::InvalidArgument,
        &["old_size"],
    );
    assert_status(
        c.get_checkpoint(pb::GetCheckpointRequest {
            ledger: String::new(),
            tree_size: 2,
        })
        .await,
        Code::NotFound,
        &["tree_size", "2"],
    );
    assert_status(
        c.stream_entries(pb::StreamEntriesRequest {
            ledger: String::new(),
            start: 2,
            end: 1,
        })
        .await,
        Code::InvalidArgument,
        &["start"],
    );
    assert_status(
        c.stream_entries(pb::StreamEntriesRequest {
            ledger: String::new(),
            start: 0,
            end: 50,
        })
        .await,
        Code::OutOfRange,
        &["end", "50"],
    );
    // A ledger without the leaf-hash index cannot prove by leaf hash.
    c.create_ledger(pb::CreateLedgerRequest {
        name: "lean".into(),
        disable_leaf_hash_index: true,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_status(
        c.get_inclusion_proof(pb::GetInclusionProofRequest {
            ledger: "lean".into(),
            tree_size: 0,
            target: Some(Target::LeafHash(vec![0; 32])),
        })
        .await,
        Code::FailedPrecondition,
        &["leaf_hash", "leaf-hash index"],
    );
    // The server still works after all of that.
    let info = c
        .get_ledger(pb::GetLedgerRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.size, 3);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_clients_lose_and_duplicate_nothing() {
    const CLIENTS: u64 = 64;
    const EACH: u64 = 16;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let mut tasks = Vec::new();
    for client_id in 0..CLIENTS {
        let mut c = client(&server, None).await;
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..EACH {
                let payload = format!("{{\"client\":{client_id},\"i\":{i}}}");
                let r = c
                    .append(append(payload.as_bytes(), None, false))
                    .await
                    .unwrap()
                    .into_inner()
                    .receipt
                    .unwrap();
                got.push((r.index, payload));
            }
            got
        }));
    }
    let mut by_index = std::collections::BTreeMap::new();
    for t in tasks {
        for (index, payload) in t.await.unwrap() {
            assert!(
                by_index.insert(index, payload).is_none(),
                "index {index} twice"
            );
        }
    }
    let total = CLIENTS * EACH;
    assert_eq!(by_index.len() as u64, total);
    assert_eq!(
        by_index.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    // Every acknowledged entry reads back with its own payload.
    let mut c = client(&server, None).await;
    let mut stream = c
        .stream_entries(pb::StreamEntriesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut payloads = HashSet::new();
    while let Some(e) = stream.next().await {
        let e = e.unwrap();
        assert_eq!(by_index[&e.index].as_bytes(), e.payload.as_slice());
        payloads.insert(e.payload);
    }
    assert_eq!(payloads.len() as u64, total);
    server.shutdown().await.unwrap();
}
