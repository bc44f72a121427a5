//! Each configured limit, with its status code and a message naming it and the values.

use std::time::Duration;

use tonic::Code;
use vouch_server::proto::v1 as pb;

use crate::support::{append, assert_status, client, config, entry, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_enforced_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.max_payload_bytes = 1000;
    cfg.limits.max_message_bytes = 64 * 1024;
    cfg.limits.max_batch_entries = 5;
    cfg.limits.max_open_streams = 2;
    let server = serve(cfg).await;
    let mut c = client(&server, None).await;

    c.append(append(&[b'a'; 1000], None, false)).await.unwrap();
    assert_status(
        c.append(append(&[b'a'; 1001], None, false)).await,
        Code::InvalidArgument,
        &["entry.payload", "1001", "limits.max_payload_bytes = 1000"],
    );
    let mut big_in_batch = pb::AppendBatchRequest {
        ledger: String::new(),
        entries: vec![entry(b"ok", None); 3],
        wait_for_checkpoint: false,
    };
    big_in_batch.entries[2].payload = vec![0; 2000];
    assert_status(
        c.append_batch(big_in_batch).await,
        Code::InvalidArgument,
        &[
            "entries[2].payload",
            "2000",
            "limits.max_payload_bytes = 1000",
        ],
    );
    assert_status(
        c.append_batch(pb::AppendBatchRequest {
            ledger: String::new(),
            entries: vec![entry(b"ok", None); 6],
            wait_for_checkpoint: false,
        })
        .await,
        Code::InvalidArgument,
        &["entries", "6", "limits.max_batch_entries = 5"],
    );
    // 5 entries of 1000 bytes fit the batch and payload limits; 80 of them, sent as a batch
    // that is also too long, first hit the message size.
    assert_status(
        c.append_batch(pb::AppendBatchRequest {
            ledger: String::new(),
            entries: vec![entry(&[b'm'; 1000], None); 80],
            wait_for_checkpoint: false,
        })
        .await,
        Code::ResourceExhausted,
        &["limits.max_message_bytes = 65536", "bytes"],
    );
    let info = c
        .get_ledger(pb::GetLedgerRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.size, 1, "refused requests wrote nothing");

    // Two streams may be open at once on the whole server; the third is refused until one
    // closes.
    let mut other = client(&server, None).await;
    let mut w1 = c
        .watch_checkpoints(pb::WatchCheckpointsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let w2 = other
        .watch_checkpoints(pb::WatchCheckpointsRequest::default())
        .await
        .unwrap()
        .into_inner();
    w1.message().await.unwrap().unwrap();
    assert_status(
        c.stream_entries(pb::StreamEntriesRequest::default()).await,
        Code::ResourceExhausted,
        &["limits.max_open_streams = 2"],
    );
    drop(w2);
    // The server notices the closed stream when it next tries to send or checks.
    let mut reopened = false;
    for _ in 0..100 {
        if c.stream_entries(pb::StreamEntriesRequest::default())
            .await
            .is_ok()
        {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        reopened,
        "a stream slot is freed when a client closes its stream"
    );
    drop(w1);
    server.shutdown().await.unwrap();
}
