//! Restart, health, reflection, key-file permissions, metrics and graceful shutdown.

use std::time::Duration;

use tokio_stream::StreamExt as _;
use tonic::Code;
use vouch_ledger_core::HashAlg;
use vouch_server::proto::v1 as pb;
use vouch_server::proto::v1::get_inclusion_proof_request::Target;

use crate::support::{
    append, client, config, entry, http_get, open, serve, verify_consistency_proof,
    verify_inclusion_proof, vkey,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_everything_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let key = vkey(&server, "default");
    let mut c = client(&server, None).await;
    let before = c
        .append_batch(pb::AppendBatchRequest {
            ledger: String::new(),
            entries: (0..50u8)
                .map(|i| entry(&[i; 16], Some(&format!("k{i}"))))
                .collect(),
            wait_for_checkpoint: true,
        })
        .await
        .unwrap()
        .into_inner();
    let old_cp = before.checkpoint.unwrap();
    let old_root = open(&old_cp, &key).root;
    let entry_7 = c
        .get_entry(pb::GetEntryRequest {
            ledger: String::new(),
            index: 7,
        })
        .await
        .unwrap()
        .into_inner();
    drop(c);
    server.shutdown().await.unwrap();
    // What the server left on disk verifies offline.
    let report =
        vouch_storage::verify_ledger_dir(&config(dir.path()).data_dir, "default", &mut |_| {})
            .unwrap();
    assert_eq!(report.entries, 50);
    assert!(report.torn_tail.is_none());

    let server = serve(config(dir.path())).await;
    assert_eq!(
        vkey(&server, "default"),
        key,
        "the same signing key signs on"
    );
    assert!(
        server.banner().contains("default (blake3, 50 entries)"),
        "{}",
        server.banner()
    );
    let mut c = client(&server, None).await;
    let info = c
        .get_ledger(pb::GetLedgerRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.size, 50);
    assert_eq!(
        c.get_entry(pb::GetEntryRequest {
            ledger: String::new(),
            index: 7,
        })
        .await
        .unwrap()
        .into_inner(),
        entry_7
    );
    // Idempotency keys survive the restart.
    let again = c
        .append(pb::AppendRequest {
            ledger: String::new(),
            entry: Some(entry(&[7; 16], Some("k7"))),
            wait_for_checkpoint: false,
        })
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.index, 7);
    // New entries extend the same tree, provably.
    let after = c
        .append(append(b"after restart", None, true))
        .await
        .unwrap()
        .into_inner();
    let new_cp = after.checkpoint.unwrap();
    assert_eq!(new_cp.tree_size, 51);
    let new_root = open(&new_cp, &key).root;
    let consistency = c
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            ledger: String::new(),
            old_size: old_cp.tree_size,
            new_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    verify_consistency_proof(HashAlg::Blake3, &consistency, &old_root, &new_root);
    let proof = c
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            ledger: String::new(),
            tree_size: 0,
            target: Some(Target::LeafHash(entry_7.leaf_hash.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(proof.index, 7);
    verify_inclusion_proof(HashAlg::Blake3, &proof, &new_root);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1 as r1;
    use tonic_reflection::pb::v1alpha as r1a;

    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let channel = vouch_server::client::channel(&server.grpc_url(), None)
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "vouch.v1.LedgerService"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }

    let mut v1 = r1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = v1
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(r1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"vouch.v1.LedgerService"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

    let mut alpha = r1a::server_reflection_client::ServerReflectionClient::new(channel);
    let request = r1a::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            r1a::server_reflection_request::MessageRequest::FileContainingSymbol(
                "vouch.v1.LedgerService".into(),
            ),
        ),
    };
    let mut answers = alpha
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(r1a::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        answer.message_response
    else {
        panic!("not a file descriptor: {answer:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    // Shutting down reports NOT_SERVING to watchers before the port closes.
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(server.shutdown());
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .unwrap();
    if let Ok(Some(r)) = next {
        assert_eq!(r.status(), ServingStatus::NotServing);
    }
    stopping.await.unwrap().unwrap();
    // The open health watch ends with the shutdown instead of holding it for the whole grace
    // period (5 s in the test configuration).
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_readable_by_others_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let server = serve(cfg.clone()).await;
    server.shutdown().await.unwrap();
    let key = vouch_server::keys::key_path(&cfg.data_dir, "default");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600,
        "keys are created private"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = vouch_server::server::start(cfg.clone()).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("chmod 600"), "{text}");
    assert!(text.contains("default.key"), "{text}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    serve(cfg).await.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_serves_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let mut c = client(&server, None).await;
    for i in 0..3u8 {
        c.append(append(&[i], None, false)).await.unwrap();
    }
    c.append_batch(pb::AppendBatchRequest {
        ledger: String::new(),
        entries: vec![entry(b"a", None), entry(b"b", None)],
        wait_for_checkpoint: true,
    })
    .await
    .unwrap();
    let _ = c
        .get_entry(pb::GetEntryRequest {
            ledger: String::new(),
            index: 99,
        })
        .await;
    let addr = server.metrics_addr.expect("metrics are on by default");
    let banner = server.banner();
    let lines: Vec<&str> = banner.lines().collect();
    assert_eq!(
        lines[0],
        format!("vouch {} serving", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        lines[1],
        format!("  grpc:         http://{}", server.grpc_addr)
    );
    assert_eq!(lines[2], format!("  metrics:      http://{addr}/metrics"));
    assert!(lines[3].starts_with("  data dir:     "), "{banner}");
    assert_eq!(lines[4], "  ledger:       default (blake3, 5 entries)");
    assert_eq!(
        lines[5],
        format!("  verifier key: {}", vkey(&server, "default"))
    );
    assert_eq!(
        lines[6],
        "  auth:         disabled: no tokens configured, loopback only"
    );
    let text = http_get(addr, "/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for expected in [
        "vouch_appends_total{ledger=\"default\"} 5",
        "vouch_ledger_entries{ledger=\"default\"} 5",
        "vouch_ledger_poisoned{ledger=\"default\"} 0",
        "vouch_rpc_requests_total{method=\"vouch.v1.LedgerService/Append\",code=\"OK\"} 3",
        "vouch_rpc_errors_total{method=\"vouch.v1.LedgerService/GetEntry\",code=\"OUT_OF_RANGE\"} 1",
        "vouch_append_batch_entries_bucket{le=\"2\"} 4",
        "vouch_append_batch_entries_count 4",
        "vouch_proof_duration_seconds_count{kind=\"inclusion\"} 2",
        "# TYPE vouch_fsync_duration_seconds histogram",
        "vouch_group_commit_duration_seconds_count{ledger=\"default\"}",
        "vouch_ledger_checkpoints{ledger=\"default\"}",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(http_get(addr, "/other").await.starts_with("HTTP/1.1 404"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_streams_and_closes_the_ledgers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.storage.checkpoint_every_ms = 0;
    cfg.storage.checkpoint_every_entries = 0;
    let server = serve(cfg.clone()).await;
    let mut c = client(&server, None).await;
    c.append(append(b"last", None, false)).await.unwrap();
    let mut watch = c
        .watch_checkpoints(pb::WatchCheckpointsRequest::default())
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().unwrap();
    let grpc = server.grpc_url();
    tokio::time::timeout(Duration::from_secs(20), server.shutdown())
        .await
        .expect("shutdown does not wait for open streams")
        .unwrap();
    match watch.message().await {
        Err(e) => assert_eq!(e.code(), Code::Unavailable, "{}", e.message()),
        Ok(None) => {}
        Ok(Some(cp)) => panic!("unexpected checkpoint {cp:?}"),
    }
    assert!(
        vouch_server::client::connect(&grpc, None, None)
            .await
            .is_err(),
        "the port is closed"
    );
    // The final checkpoint covers the last append.
    let server = serve(cfg).await;
    let mut c = client(&server, None).await;
    let latest = c
        .get_checkpoint(pb::GetCheckpointRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(latest.tree_size, 1);
    server.shutdown().await.unwrap();
}
