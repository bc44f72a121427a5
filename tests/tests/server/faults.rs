//! Disk faults under the running server, as its clients and its operator see them: a full disk
//! (`RESOURCE_EXHAUSTED`, appends resume once space is freed), a failed `fsync` (a poisoned
//! ledger that refuses appends with `FAILED_PRECONDITION`, stays readable, and recovers at the
//! restart), and files removed or truncated behind the server's back.
//!
//! The full disk and the failed `fsync` come from the storage suite's fault-injecting file
//! system, which the server writes through when started with
//! `vouch_server::server::start_with_vfs`; the removed files are removed for real.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tonic::Code;
use vouch_server::client::Client;
use vouch_server::proto::v1 as pb;
use vouch_server::proto::v1::get_inclusion_proof_request::Target;
use vouch_server::server::{RunningServer, start_with_vfs};

use crate::policy::{HRP_NAME, decide, hrp_bundle, hrp_request, policy, publish};
use crate::storage_support::fault_vfs::{Fault, FaultVfs, OpKind};
use crate::support::{append, assert_status, client, config, entry, http_get, serve};

/// Acknowledged entries: index → leaf hash.
type Acked = BTreeMap<u64, Vec<u8>>;

async fn serve_on(vfs: &FaultVfs, dir: &Path) -> RunningServer {
    match start_with_vfs(config(dir), vfs.as_vfs()).await {
        Ok(s) => s,
        Err(e) => panic!("server did not start: {e}"),
    }
}

/// A fault file system over the data directory of `config(dir)`.
fn fault_vfs(dir: &Path) -> FaultVfs {
    let data = config(dir).data_dir;
    std::fs::create_dir_all(&data).unwrap();
    FaultVfs::new(&data)
}

/// Appends `n` entries with idempotency keys `prefix-i`, the last one waiting for a checkpoint.
async fn append_some(c: &mut Client, prefix: &str, n: usize, acked: &mut Acked) {
    for i in 0..n {
        let key = format!("{prefix}-{i}");
        let r = c
            .append(append(key.as_bytes(), Some(&key), i + 1 == n))
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"))
            .into_inner()
            .receipt
            .unwrap();
        acked.insert(r.index, r.leaf_hash);
    }
}

/// Every acknowledged entry reads back with its leaf hash.
async fn check_acked(c: &mut Client, acked: &Acked) {
    for (&index, leaf) in acked {
        let e = c
            .get_entry(pb::GetEntryRequest {
                ledger: String::new(),
                index,
            })
            .await
            .unwrap_or_else(|e| panic!("entry {index}: {e:?}"))
            .into_inner();
        assert_eq!(&e.leaf_hash, leaf, "entry {index}");
    }
}

/// Restarts on the real file system and checks every acknowledged entry and the ledger.
async fn restart_and_check(dir: &Path, acked: &Acked) {
    let data = config(dir).data_dir;
    let report = vouch_storage::verify_ledger_dir(&data, "default", &mut |_| {}).unwrap();
    assert!(report.entries >= acked.len() as u64);
    let server = serve(config(dir)).await;
    let mut c = client(&server, None).await;
    check_acked(&mut c, acked).await;
    c.append(append(b"after the restart", None, true))
        .await
        .unwrap();
    server.shutdown().await.unwrap();
}

async fn metrics(server: &RunningServer) -> String {
    http_get(server.metrics_addr.unwrap(), "/metrics").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_resource_exhausted_and_appends_resume_when_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let vfs = fault_vfs(dir.path());
    let server = serve_on(&vfs, dir.path()).await;
    let mut c = client(&server, None).await;
    let mut p = policy(&server, None).await;
    p.publish_bundle(publish(&hrp_bundle())).await.unwrap();
    let mut acked = Acked::new();
    append_some(&mut c, "before", 5, &mut acked).await;

    vfs.set_free_space(Some(0));
    let full = ["disk full", "No space left on device"];
    assert_status(
        c.append(append(b"no room", Some("no-room"), false)).await,
        Code::ResourceExhausted,
        &full,
    );
    assert_status(
        c.append_batch(pb::AppendBatchRequest {
            ledger: String::new(),
            entries: vec![entry(b"a", None), entry(b"b", None)],
            wait_for_checkpoint: false,
        })
        .await,
        Code::ResourceExhausted,
        &full,
    );
    assert_status(
        p.decide(decide(HRP_NAME, &hrp_request("allow-low-risk.json"), false))
            .await,
        Code::ResourceExhausted,
        &["No space left on device"],
    );
    // Reads and proofs go on.
    check_acked(&mut c, &acked).await;
    c.get_inclusion_proof(pb::GetInclusionProofRequest {
        ledger: String::new(),
        tree_size: 0,
        target: Some(Target::Index(0)),
    })
    .await
    .unwrap();
    let text = metrics(&server).await;
    assert!(
        text.contains("vouch_ledger_poisoned{ledger=\"default\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("vouch_rpc_errors_total{method=\"vouch.v1.LedgerService/Append\",code=\"RESOURCE_EXHAUSTED\"} 1"),
        "{text}"
    );

    // Space is freed: the same server takes appends again, the refused key included.
    vfs.set_free_space(None);
    let r = c
        .append(append(b"no room", Some("no-room"), true))
        .await
        .unwrap()
        .into_inner();
    let receipt = r.receipt.unwrap();
    assert!(!receipt.duplicate, "the refused append had written nothing");
    acked.insert(receipt.index, receipt.leaf_hash);
    assert_eq!(r.checkpoint.unwrap().tree_size, receipt.index + 1);
    p.decide(decide(HRP_NAME, &hrp_request("allow-low-risk.json"), false))
        .await
        .unwrap();
    append_some(&mut c, "after", 3, &mut acked).await;
    server.shutdown().await.unwrap();
    restart_and_check(dir.path(), &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_poisons_the_ledger_until_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let vfs = fault_vfs(dir.path());
    let server = serve_on(&vfs, dir.path()).await;
    let mut c = client(&server, None).await;
    let mut acked = Acked::new();
    append_some(&mut c, "before", 4, &mut acked).await;

    vfs.fail_next(OpKind::Sync, ".seg", Fault::Eio);
    let poisoned = ["poisoned", "fsync", ".seg", "restart the server"];
    assert_status(
        c.append(append(b"lost?", None, false)).await,
        Code::FailedPrecondition,
        &poisoned,
    );
    assert!(!vfs.fault_pending());
    // Every later append is refused the same way, before it reaches the disk.
    assert_status(
        c.append(append(b"refused", None, false)).await,
        Code::FailedPrecondition,
        &poisoned,
    );
    check_acked(&mut c, &acked).await;
    let info = c
        .get_ledger(pb::GetLedgerRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.size, 4);
    c.get_consistency_proof(pb::GetConsistencyProofRequest {
        ledger: String::new(),
        old_size: 1,
        new_size: 4,
    })
    .await
    .unwrap();
    let text = metrics(&server).await;
    assert!(
        text.contains("vouch_ledger_poisoned{ledger=\"default\"} 1"),
        "{text}"
    );
    server.shutdown().await.unwrap();
    restart_and_check(dir.path(), &acked).await;
}

fn ledger_dir(dir: &Path) -> PathBuf {
    config(dir).data_dir.join("ledgers").join("default")
}

fn active_segment(dir: &Path) -> PathBuf {
    let mut names: Vec<PathBuf> = std::fs::read_dir(ledger_dir(dir).join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.pop().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_segment_removed_under_the_server_is_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let mut c = client(&server, None).await;
    let mut acked = Acked::new();
    append_some(&mut c, "k", 5, &mut acked).await;
    std::fs::remove_file(active_segment(dir.path())).unwrap();
    assert_status(
        c.append(append(b"into the void", None, false)).await,
        Code::FailedPrecondition,
        &["poisoned", "was removed while the ledger was open"],
    );
    // The server still reads the removed file through the handle it holds.
    check_acked(&mut c, &acked).await;
    server.shutdown().await.unwrap();
    // A checkpoint covered the entries: the restart refuses to serve a ledger without them.
    let err = vouch_server::server::start(config(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("corrupted") && err.contains("segments"),
        "{err}"
    );
    let err =
        vouch_storage::verify_ledger_dir(&config(dir.path()).data_dir, "default", &mut |_| {})
            .unwrap_err();
    assert!(err.to_string().contains("segments"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_segment_truncated_under_the_server_is_data_loss_never_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let mut c = client(&server, None).await;
    let mut acked = Acked::new();
    append_some(&mut c, "k", 5, &mut acked).await;
    let segment = active_segment(dir.path());
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    assert_status(
        c.get_entry(pb::GetEntryRequest {
            ledger: String::new(),
            index: 4,
        })
        .await,
        Code::DataLoss,
        &[".seg", "vouch verify-ledger"],
    );
    assert_status(
        c.append(append(b"after the cut", None, false)).await,
        Code::FailedPrecondition,
        &["poisoned", "was changed (truncated or written)"],
    );
    acked.remove(&4);
    check_acked(&mut c, &acked).await;
    server.shutdown().await.unwrap();
    let err = vouch_server::server::start(config(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupted") && err.contains(".seg"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_index_removed_under_the_server_is_rebuilt_at_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let mut c = client(&server, None).await;
    let mut acked = Acked::new();
    append_some(&mut c, "k", 5, &mut acked).await;
    std::fs::remove_dir_all(ledger_dir(dir.path()).join("sled")).unwrap();
    // The index keeps working from the files sled holds open.
    let again = c
        .append(append(b"k-2", Some("k-2"), false))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert!(again.duplicate && again.index == 2, "{again:?}");
    append_some(&mut c, "more", 3, &mut acked).await;
    server.shutdown().await.unwrap();
    restart_and_check(dir.path(), &acked).await;
    assert!(ledger_dir(dir.path()).join("sled").is_dir());
    // After the rebuild, keys written before and after the removal are known.
    let server = serve(config(dir.path())).await;
    let mut c = client(&server, None).await;
    for (key, index) in [("k-1", 1), ("more-2", 7)] {
        let r = c
            .append(append(key.as_bytes(), Some(key), false))
            .await
            .unwrap()
            .into_inner()
            .receipt
            .unwrap();
        assert!(r.duplicate && r.index == index, "{key}: {r:?}");
    }
    server.shutdown().await.unwrap();
}
