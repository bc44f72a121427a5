//! Hostile clients against the real server: messages over the size limit, huge batches,
//! deeply nested JSON and YAML, stream consumers that never read, thousands of idle
//! connections, and malformed gRPC frames and protobuf bytes sent over raw HTTP/2.
//!
//! In every case the server answers the offending call with an error (or closes the offending
//! connection), and goes on serving a well-behaved client on the same server.

use std::time::Duration;

use tonic::Code;
use tonic::codegen::Bytes;
use vouch_server::proto::v1 as pb;
use vouch_server::server::RunningServer;

use crate::policy::{HRP_NAME, decide, hrp_bundle, hrp_request, policy, publish};
use crate::raw::{every_method, frame, raw_call};
use crate::support::{append, assert_status, client, config, entry, serve};

/// One well-behaved round trip: an append that waits for its checkpoint, and a read.
async fn still_serves(server: &RunningServer) {
    let mut c = client(server, None).await;
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        c.append(append(b"still here", None, true)),
    )
    .await
    .expect("the server answers a normal client")
    .unwrap()
    .into_inner();
    let index = r.receipt.unwrap().index;
    c.get_entry(pb::GetEntryRequest {
        ledger: String::new(),
        index,
    })
    .await
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Oversized messages and huge batches.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_and_huge_batches_are_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let limit = "limits.max_message_bytes = 4194304";
    // The policy service has the same limit as the ledger service.
    let mut p = policy(&server, None).await;
    assert_status(
        p.lint_bundle(pb::LintBundleRequest {
            source: "#".repeat(5 << 20),
            format: 0,
        })
        .await,
        Code::ResourceExhausted,
        &[limit],
    );
    assert_status(
        p.decide(decide(HRP_NAME, &" ".repeat(5 << 20), false))
            .await,
        Code::ResourceExhausted,
        &[limit],
    );
    // A batch of 200,000 empty entries fits in the message limit but not the batch limit.
    let mut c = client(&server, None).await;
    assert_status(
        c.append_batch(pb::AppendBatchRequest {
            ledger: String::new(),
            entries: vec![pb::EntryInput::default(); 200_000],
            wait_for_checkpoint: false,
        })
        .await,
        Code::InvalidArgument,
        &["entries", "200000", "limits.max_batch_entries = 1000"],
    );
    // One payload over the payload limit, in a message under the message limit.
    assert_status(
        c.append(append(&vec![b'p'; (1 << 20) + 1], None, false))
            .await,
        Code::InvalidArgument,
        &["entry.payload", "limits.max_payload_bytes = 1048576"],
    );
    // A frame that announces 4 GiB is refused from its 5-byte header.
    let (code, message) = raw_call(
        server.grpc_addr,
        "/vouch.v1.LedgerService/Append",
        Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
        None,
        false,
    )
    .await;
    assert_eq!(code, Some(Code::ResourceExhausted), "{message}");
    assert!(message.contains("limits.max_message_bytes"), "{message}");
    let info = c
        .get_ledger(pb::GetLedgerRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.size, 0, "nothing refused was written");
    still_serves(&server).await;
    server.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Deeply nested JSON and YAML.

const DEEP: usize = 100_000;

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

/// A bundle whose one condition is `expression`.
fn bundle_with_condition(expression: &str) -> String {
    format!(
        "version: 1\nname: deep\nroles: [Dev]\npolicies:\n  - id: deep\n    require:\n      conditions:\n        - id: c\n          cel: '{expression}'\n"
    )
}

/// Lint reports a bundle it cannot compile in its answer, or refuses a source it cannot read.
#[track_caller]
fn check_lint_refuses(
    lint: Result<tonic::Response<pb::LintBundleResponse>, tonic::Status>,
    what: &str,
) {
    match lint {
        Ok(r) => {
            let r = r.into_inner();
            assert!(
                !r.compiles && !r.findings.is_empty(),
                "lint compiled {what}: {r:?}"
            );
        }
        Err(e) => assert_eq!(e.code(), Code::InvalidArgument, "{what}: {}", e.message()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_documents_are_refused_without_exhausting_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let mut p = policy(&server, None).await;
    p.publish_bundle(publish(&hrp_bundle())).await.unwrap();
    let documents = [
        ("arrays", nested_arrays(DEEP)),
        // 40,000 levels of objects: the most that fits the policy layer's request size.
        ("objects", nested_objects(40_000)),
        (
            "arrays in a request",
            hrp_request("allow-low-risk.json").replacen(
                '{',
                &format!("{{\"deep\": {}, ", nested_arrays(DEEP)),
                1,
            ),
        ),
    ];
    for (what, json) in &documents {
        // Every RPC that takes a JSON or YAML document.
        let answers = [
            (
                "Decide",
                p.decide(decide(HRP_NAME, json, false)).await.map(drop),
            ),
            (
                "Evaluate",
                p.evaluate(pb::EvaluateRequest {
                    ledger: String::new(),
                    bundle: Some(pb::BundleRef {
                        r#ref: Some(pb::bundle_ref::Ref::Name(HRP_NAME.into())),
                    }),
                    request_json: json.clone(),
                })
                .await
                .map(drop),
            ),
            (
                "PublishBundle",
                p.publish_bundle(publish(json)).await.map(drop),
            ),
            (
                "Simulate",
                p.simulate(pb::SimulateRequest {
                    source: json.clone(),
                    last: 5,
                    ..Default::default()
                })
                .await
                .map(drop),
            ),
            (
                "RecordOverride",
                p.record_override(pb::RecordOverrideRequest {
                    ledger: String::new(),
                    override_json: json.clone(),
                    wait_for_checkpoint: false,
                })
                .await
                .map(drop),
            ),
            (
                "RecordException",
                p.record_exception(pb::RecordExceptionRequest {
                    ledger: String::new(),
                    exception_json: json.clone(),
                    wait_for_checkpoint: false,
                })
                .await
                .map(drop),
            ),
        ];
        for (rpc, answer) in answers {
            let e = answer.expect_err(&format!("{rpc} accepted {what} nested {DEEP} deep"));
            assert_eq!(
                e.code(),
                Code::InvalidArgument,
                "{rpc} {what}: {}",
                e.message()
            );
        }
        // Lint answers with its findings.
        for format in [pb::BundleFormat::Json, pb::BundleFormat::Yaml] {
            let lint = p
                .lint_bundle(pb::LintBundleRequest {
                    source: json.clone(),
                    format: format.into(),
                })
                .await;
            check_lint_refuses(lint, &format!("{what} as {format:?}"));
        }
    }
    // CEL conditions nested as deep as their length limit (2048 bytes) allows, with and
    // without brackets.
    for expression in [
        format!("{}true{}", "(".repeat(1000), ")".repeat(1000)),
        format!("{}true", "!".repeat(2000)),
        format!("{}1", "-".repeat(2000)),
        format!("{}1{}", "[".repeat(1000), "]".repeat(1000)),
        format!("risk{}", ".x".repeat(1000)),
        vec!["risk"; 280].join(" + "),
    ] {
        let source = bundle_with_condition(&expression);
        let lint = p
            .lint_bundle(pb::LintBundleRequest {
                source: source.clone(),
                format: 0,
            })
            .await;
        let published = p.publish_bundle(publish(&source)).await;
        let short = &expression[..20];
        match lint.map(tonic::Response::into_inner) {
            // Within the limits: it is published, and evaluating it answers.
            Ok(r) if r.compiles => {
                published.unwrap_or_else(|e| panic!("lint compiled {short}…: {e:?}"));
                let evaluated = p
                    .evaluate(pb::EvaluateRequest {
                        ledger: String::new(),
                        bundle: Some(pb::BundleRef {
                            r#ref: Some(pb::bundle_ref::Ref::Name("deep".into())),
                        }),
                        request_json: hrp_request("allow-low-risk.json"),
                    })
                    .await;
                evaluated.unwrap_or_else(|e| panic!("evaluating {short}…: {e:?}"));
            }
            lint => {
                check_lint_refuses(lint.map(tonic::Response::new), short);
                let e = published.expect_err(&format!("published {short}…"));
                assert_eq!(e.code(), Code::InvalidArgument, "{short}…: {}", e.message());
            }
        }
    }
    still_serves(&server).await;
    server.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Consumers that never read.

/// The resident set size of this process (the server runs in it), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_consumers_that_never_read_hold_bounded_memory_and_block_no_one() {
    const ENTRIES: usize = 63;
    const STALLED: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.storage.durability = vouch_server::config::DurabilityMode::None;
    let server = serve(cfg).await;
    let mut c = client(&server, None).await;
    // 63 entries of 1 MiB: a stalled stream of all of them would hold 126 MiB (an entry
    // carries its payload twice: alone and in its leaf bytes) if the server read ahead
    // without bound.
    let payload = vec![b'x'; 1 << 20];
    for _ in 0..ENTRIES / 3 {
        c.append_batch(pb::AppendBatchRequest {
            ledger: String::new(),
            entries: vec![entry(&payload, None); 3],
            wait_for_checkpoint: false,
        })
        .await
        .unwrap();
    }
    let before = rss_kib();
    // Each stalled consumer has a connection of its own, reads the response headers and then
    // nothing more.
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut s = client(&server, None).await;
        let stream = s
            .stream_entries(pb::StreamEntriesRequest::default())
            .await
            .unwrap()
            .into_inner();
        stalled.push((s, stream));
    }
    let mut watchers = Vec::new();
    for _ in 0..2 {
        let mut s = client(&server, None).await;
        let w = s
            .watch_checkpoints(pb::WatchCheckpointsRequest::default())
            .await
            .unwrap()
            .into_inner();
        watchers.push((s, w));
    }
    // Give the server time to read ahead as far as it would.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Others are served meanwhile: appends, checkpoints for the stalled watchers, reads, and a
    // stream that is read to its end.
    for i in 0..20u8 {
        c.append(append(&[i], None, i % 5 == 0)).await.unwrap();
    }
    let mut reader = client(&server, None).await;
    let mut all = reader
        .stream_entries(pb::StreamEntriesRequest {
            ledger: String::new(),
            start: 40,
            end: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut read = 0;
    while let Some(e) = all.message().await.unwrap() {
        assert_eq!(e.index, 40 + read);
        read += 1;
    }
    assert_eq!(read, ENTRIES as u64 + 20 - 40);
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    // Unbounded read-ahead would be 6 × 126 MiB. The server holds two read chunks per stream
    // (4 MiB of payload each, as entries of twice that size: about 16 MiB), the client the
    // HTTP/2 stream window (2 MiB); 20 MiB per stream measured.
    assert!(
        grown_mib < 400,
        "{STALLED} stalled streams grew the process by {grown_mib} MiB"
    );
    drop(stalled);
    drop(watchers);
    still_serves(&server).await;
    server.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Idle connections.

/// The soft limit on open files of this process.
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// Reads until the server closes the connection (end of file or an error).
async fn closed_by_server(mut s: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt as _;
    let mut sink = vec![0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept an idle connection open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_do_not_stop_a_normal_client_and_are_closed() {
    use tokio::io::AsyncWriteExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // Short enough for a quick test, long enough that a busy machine's real clients (which
    // send their preface at once and answer pings) are never mistaken for idle ones.
    cfg.limits.handshake_timeout_ms = 1_000;
    cfg.limits.keepalive_interval_ms = 200;
    cfg.limits.keepalive_timeout_ms = 2_000;
    let server = serve(cfg).await;
    // Both ends of every connection are in this process; keep well below the limit.
    let n = usize::try_from((open_files_limit().saturating_sub(300) / 2).min(2000)).unwrap();
    assert!(n >= 300, "too few file descriptors for this test: {n}");
    let mut idle = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = tokio::net::TcpStream::connect(server.grpc_addr)
            .await
            .unwrap();
        // Some send half an HTTP/2 preface and stop.
        if i % 4 == 0 {
            s.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        }
        idle.push(s);
    }
    still_serves(&server).await;
    // Some send the preface and their settings, then never answer a ping.
    let mut mute = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(server.grpc_addr)
            .await
            .unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .unwrap();
        mute.push(s);
    }
    // And some are real HTTP/2 clients that stay idle: they answer pings and stay open.
    let mut handshaken = Vec::new();
    for _ in 0..50 {
        let tcp = tokio::net::TcpStream::connect(server.grpc_addr)
            .await
            .unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.unwrap();
        let driver = tokio::spawn(conn);
        handshaken.push((send, driver));
    }
    still_serves(&server).await;
    // The server closes every connection that did not finish its handshake in time, and
    // every one that stopped answering its pings.
    for s in idle.into_iter().chain(mute) {
        closed_by_server(s).await;
    }
    for (_, driver) in &handshaken {
        assert!(
            !driver.is_finished(),
            "an idle client that answers pings was closed"
        );
    }
    for (_, driver) in handshaken {
        driver.abort();
    }
    still_serves(&server).await;
    tokio::time::timeout(Duration::from_secs(30), server.shutdown())
        .await
        .expect("idle connections do not hold the shutdown")
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Malformed frames and protobuf bytes over raw HTTP/2.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_and_protobuf_bytes_are_refused_on_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let addr = server.grpc_addr;
    // Bytes that are not a protobuf message of any type: a field number 0, a truncated
    // varint, a length-delimited field longer than the message, an end-group without a start.
    let not_protobuf: [&[u8]; 4] = [
        &[0x00, 0x01],
        &[0x08, 0xff, 0xff],
        &[0x0a, 0x7f, 0x01, 0x02],
        &[0x0c],
    ];
    // Frames that are not gRPC frames.
    let bad_frames: [(&str, Bytes); 4] = [
        (
            "a frame cut short",
            Bytes::from_static(&[0, 0, 0, 0, 100, 1, 2, 3]),
        ),
        ("a compressed frame without an encoding", {
            let mut f = frame(&[]).to_vec();
            f[0] = 1;
            f.into()
        }),
        ("an unknown frame flag", {
            let mut f = frame(&[]).to_vec();
            f[0] = 0x80;
            f.into()
        }),
        ("half a frame header", Bytes::from_static(&[0, 0, 0])),
    ];
    for (path, streaming) in every_method() {
        for bytes in not_protobuf {
            let (code, message) = raw_call(addr, &path, frame(bytes), None, false).await;
            // Reflection, the only service with streamed requests, ends its stream quietly
            // on a request it cannot decode.
            let expected = if streaming {
                matches!(
                    code,
                    Some(Code::Ok | Code::Internal | Code::InvalidArgument)
                )
            } else {
                matches!(code, Some(Code::Internal | Code::InvalidArgument))
            };
            assert!(expected, "{path} with {bytes:?}: {code:?} {message}");
        }
        for (what, body) in &bad_frames {
            let (code, message) = raw_call(addr, &path, body.clone(), None, false).await;
            assert!(
                code.is_some_and(|c| c != Code::Ok) || streaming,
                "{path} with {what}: {code:?} {message}"
            );
        }
    }
    // Bytes that are not HTTP/2 at all close that connection only.
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        s.write_all(&vec![0x5a; 64 << 10]).await.unwrap_or(());
        let mut sink = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut sink)).await;
        assert!(
            read.is_ok(),
            "the server closes a connection that is not HTTP/2"
        );
    }
    still_serves(&server).await;
    server.shutdown().await.unwrap();
}
