//! Starting test servers, connecting clients and verifying proofs with ledger-core.

use std::path::Path;

use tonic::Status;
use vouch_ledger_core::checkpoint::{Checkpoint, open_checkpoint};
use vouch_ledger_core::note::{Verifier, Verifiers};
use vouch_ledger_core::proof::{
    ConsistencyProof, InclusionProof, verify_consistency, verify_inclusion,
};
use vouch_ledger_core::{EntryIndex, Hash, HashAlg, TreeSize};
use vouch_server::client::{Client, ClientTls, connect};
use vouch_server::config::Config;
use vouch_server::proto::v1 as pb;
use vouch_server::server::{RunningServer, start};

/// A configuration for a test server: everything on `127.0.0.1:0`, the data directory inside
/// `dir`, fast checkpoints.
pub fn config(dir: &Path) -> Config {
    let mut c = Config::embedded_default();
    c.data_dir = dir.join("data");
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.metrics.listen = "127.0.0.1:0".parse().unwrap();
    c.storage.checkpoint_every_ms = 50;
    c.shutdown_grace_ms = 5_000;
    c
}

/// Starts a server, panicking with the error's text if it does not start.
pub async fn serve(config: Config) -> RunningServer {
    match start(config).await {
        Ok(s) => s,
        Err(e) => panic!("server did not start: {e}"),
    }
}

/// A client of `server` sending `token`.
pub async fn client(server: &RunningServer, token: Option<&str>) -> Client {
    client_tls(server, token, None).await
}

/// A client of `server` with TLS settings.
pub async fn client_tls(
    server: &RunningServer,
    token: Option<&str>,
    tls: Option<ClientTls>,
) -> Client {
    connect(&server.grpc_url(), token.map(str::to_owned), tls)
        .await
        .unwrap()
}

/// A record to append.
pub fn entry(payload: &[u8], key: Option<&str>) -> pb::EntryInput {
    pb::EntryInput {
        kind: pb::EntryKind::Record.into(),
        idempotency_key: key.unwrap_or_default().to_owned(),
        content_type: "application/json".to_owned(),
        payload: payload.to_vec(),
    }
}

/// An append request for the default ledger.
pub fn append(payload: &[u8], key: Option<&str>, wait: bool) -> pb::AppendRequest {
    pb::AppendRequest {
        ledger: String::new(),
        entry: Some(entry(payload, key)),
        wait_for_checkpoint: wait,
    }
}

/// The verifier key the server reported for `ledger`.
pub fn vkey(server: &RunningServer, ledger: &str) -> String {
    server
        .ledgers
        .iter()
        .find(|(n, _)| n == ledger)
        .map_or_else(
            || panic!("no ledger {ledger} in {:?}", server.ledgers),
            |(_, k)| k.clone(),
        )
}

/// Opens a signed checkpoint with the verifier key `vkey`.
pub fn open(cp: &pb::SignedCheckpoint, vkey: &str) -> Checkpoint {
    let mut verifiers = Verifiers::new();
    verifiers.insert(Verifier::from_vkey(vkey).unwrap());
    let (checkpoint, _) = open_checkpoint(&cp.note, &verifiers).unwrap();
    assert_eq!(checkpoint.size.0, cp.tree_size);
    assert_eq!(checkpoint.root.0.as_slice(), cp.root_hash.as_slice());
    assert_eq!(checkpoint.origin, cp.origin);
    checkpoint
}

fn hashes(path: &[Vec<u8>]) -> Vec<Hash> {
    path.iter().map(|h| Hash::from_slice(h).unwrap()).collect()
}

/// Verifies an inclusion proof against a root.
pub fn verify_inclusion_proof(alg: HashAlg, p: &pb::InclusionProof, root: &Hash) {
    let proof = InclusionProof {
        index: EntryIndex(p.index),
        size: TreeSize(p.tree_size),
        path: hashes(&p.path),
    };
    verify_inclusion(alg, &Hash::from_slice(&p.leaf_hash).unwrap(), &proof, root).unwrap();
}

/// Verifies a consistency proof between two roots.
pub fn verify_consistency_proof(alg: HashAlg, p: &pb::ConsistencyProof, old: &Hash, new: &Hash) {
    let proof = ConsistencyProof {
        old_size: TreeSize(p.old_size),
        new_size: TreeSize(p.new_size),
        path: hashes(&p.path),
    };
    verify_consistency(alg, &proof, old, new).unwrap();
}

/// Asserts that `result` failed with `code` and a message containing every one of `parts`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: tonic::Code,
    parts: &[&str],
) {
    let status = result.expect_err("the call should have failed");
    assert_eq!(status.code(), code, "message: {}", status.message());
    for p in parts {
        assert!(
            status.message().contains(p),
            "{:?} does not contain {p:?}",
            status.message()
        );
    }
}

/// `GET path` over plain HTTP/1.1 (the metrics endpoint): the whole response, status line
/// first.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.read_to_string(&mut out),
    )
    .await
    .unwrap()
    .unwrap();
    out
}

/// Asserts that a call made with a token of `role` succeeded when the role is `allowed`, and
/// otherwise failed with `PERMISSION_DENIED` naming the role.
#[track_caller]
pub fn assert_role_answer<T: std::fmt::Debug>(
    rpc: &dyn std::fmt::Debug,
    role: impl std::fmt::Display,
    allowed: bool,
    result: Result<T, Status>,
) {
    match result {
        Ok(_) if allowed => {}
        Err(e) if allowed => panic!("{rpc:?} with role {role}: {e:?}"),
        Ok(answer) => panic!("{rpc:?} with role {role} was answered: {answer:?}"),
        Err(e) => {
            assert_eq!(
                e.code(),
                tonic::Code::PermissionDenied,
                "{rpc:?} {role}: {}",
                e.message()
            );
            assert!(
                e.message().contains(&format!("has role {role}")),
                "{}",
                e.message()
            );
        }
    }
}
