//! Bearer tokens and roles, for every RPC: missing, unknown and under-privileged tokens.

use std::collections::BTreeMap;
use std::path::Path;

use tonic::{Code, Status};
use vouch_server::auth::{Role, generate_token, hash_token};
use vouch_server::client::Client;
use vouch_server::config::TokenConfig;
use vouch_server::proto::v1 as pb;
use vouch_server::proto::v1::get_inclusion_proof_request::Target;

use crate::raw::{every_method, frame, raw_call};
use crate::support::{append, assert_role_answer, client, config, entry, serve};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    CreateLedger,
    ListLedgers,
    GetLedger,
    Append,
    AppendBatch,
    GetEntry,
    StreamEntries,
    GetInclusionProof,
    GetConsistencyProof,
    GetCheckpoint,
    WatchCheckpoints,
}

const ALL: [Rpc; 11] = [
    Rpc::CreateLedger,
    Rpc::ListLedgers,
    Rpc::GetLedger,
    Rpc::Append,
    Rpc::AppendBatch,
    Rpc::GetEntry,
    Rpc::StreamEntries,
    Rpc::GetInclusionProof,
    Rpc::GetConsistencyProof,
    Rpc::GetCheckpoint,
    Rpc::WatchCheckpoints,
];

/// The roles each RPC allows, as documented in docs/api.md.
fn allowed(rpc: Rpc) -> &'static [Role] {
    match rpc {
        Rpc::CreateLedger => &[Role::Admin],
        Rpc::Append | Rpc::AppendBatch => &[Role::Writer, Role::Admin],
        _ => &Role::ALL,
    }
}

/// Makes one valid call of `rpc`; `n` makes created ledger names unique.
async fn call(c: &mut Client, rpc: Rpc, n: usize) -> Result<(), Status> {
    match rpc {
        Rpc::CreateLedger => c
            .create_ledger(pb::CreateLedgerRequest {
                name: format!("l{n}"),
                ..Default::default()
            })
            .await
            .map(drop),
        Rpc::ListLedgers => c.list_ledgers(pb::ListLedgersRequest {}).await.map(drop),
        Rpc::GetLedger => c
            .get_ledger(pb::GetLedgerRequest::default())
            .await
            .map(drop),
        Rpc::Append => c.append(append(b"x", None, false)).await.map(drop),
        Rpc::AppendBatch => c
            .append_batch(pb::AppendBatchRequest {
                ledger: String::new(),
                entries: vec![entry(b"y", None)],
                wait_for_checkpoint: false,
            })
            .await
            .map(drop),
        Rpc::GetEntry => c
            .get_entry(pb::GetEntryRequest {
                ledger: String::new(),
                index: 0,
            })
            .await
            .map(drop),
        Rpc::StreamEntries => {
            let mut s = c
                .stream_entries(pb::StreamEntriesRequest {
                    ledger: String::new(),
                    start: 0,
                    end: 1,
                })
                .await?
                .into_inner();
            s.message().await.map(drop)
        }
        Rpc::GetInclusionProof => c
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                ledger: String::new(),
                tree_size: 1,
                target: Some(Target::Index(0)),
            })
            .await
            .map(drop),
        Rpc::GetConsistencyProof => c
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                ledger: String::new(),
                old_size: 1,
                new_size: 1,
            })
            .await
            .map(drop),
        Rpc::GetCheckpoint => c
            .get_checkpoint(pb::GetCheckpointRequest::default())
            .await
            .map(drop),
        Rpc::WatchCheckpoints => {
            let mut s = c
                .watch_checkpoints(pb::WatchCheckpointsRequest::default())
                .await?
                .into_inner();
            s.message().await.map(drop)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_checks_the_token_and_the_role() {
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
    let token_of = |role: Role| {
        tokens
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, t)| t.as_str())
            .unwrap()
    };
    let mut admin = client(&server, Some(token_of(Role::Admin))).await;
    admin.append(append(b"first", None, true)).await.unwrap();

    let mut anonymous = client(&server, None).await;
    let mut unknown = client(&server, Some("vch_not-a-configured-token")).await;
    let mut n = 0;
    for rpc in ALL {
        let e = call(&mut anonymous, rpc, n).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{rpc:?}: {}", e.message());
        assert!(
            e.message().contains("missing bearer token"),
            "{}",
            e.message()
        );
        let e = call(&mut unknown, rpc, n).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{rpc:?}: {}", e.message());
        assert!(
            e.message().contains("unknown bearer token"),
            "{}",
            e.message()
        );
        assert!(!e.message().contains("not-a-configured"), "{}", e.message());
        for (role, token) in &tokens {
            n += 1;
            let mut c = client(&server, Some(token)).await;
            let result = call(&mut c, rpc, n).await;
            assert_role_answer(&rpc, role, allowed(rpc).contains(role), result);
        }
    }
    // Health needs no token, even with authentication on.
    let channel = vouch_server::client::channel(&server.grpc_url(), None)
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tokens_on_an_open_address_is_a_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.listen = "0.0.0.0:0".parse().unwrap();
    let e = vouch_server::server::start(cfg).await.unwrap_err();
    assert!(e.to_string().contains("not a loopback address"), "{e}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

/// The roles `docs/api.md` gives each RPC, by method name: the line starting `Role:` under
/// the RPC's heading, such as `Role: any.` or ``Role: `writer` or `admin`.``.
fn documented_roles() -> BTreeMap<String, Vec<Role>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut roles = BTreeMap::new();
    let mut heading: Option<&str> = None;
    for line in text.lines() {
        if let Some(h) = line
            .strip_prefix("#### ")
            .or_else(|| line.strip_prefix("### "))
        {
            heading = Some(h.trim());
        } else if let (Some(rpc), Some(rest)) = (heading, line.strip_prefix("Role: ")) {
            let allowed = if rest.starts_with("any") {
                Role::ALL.to_vec()
            } else {
                Role::ALL
                    .into_iter()
                    .filter(|r| rest.contains(&format!("`{r}`")))
                    .collect()
            };
            assert!(!allowed.is_empty(), "docs/api.md: {rpc}: {line}");
            roles.insert(rpc.to_owned(), allowed);
            heading = None;
        }
    }
    roles
}

/// Every method of every service the server serves (read from the descriptors, so a new RPC
/// is in this test the moment it exists), called over raw HTTP/2 with an empty request: with
/// no token, an unknown one and malformed headers it is `UNAUTHENTICATED`; with each role's
/// token it is refused with `PERMISSION_DENIED` exactly when `docs/api.md` does not give that
/// role the RPC; health and reflection need no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_of_every_service_checks_tokens_as_documented() {
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
    let addr = server.grpc_addr;
    let documented = documented_roles();
    let mut checked = 0;
    for (path, _) in every_method() {
        let refused = |code: Option<Code>| {
            matches!(code, Some(Code::Unauthenticated | Code::PermissionDenied))
        };
        if path.starts_with("/grpc.") {
            let (code, message) = raw_call(addr, &path, frame(&[]), None, true).await;
            assert!(!refused(code), "{path} is public: {code:?} {message}");
            continue;
        }
        let method = path.rsplit('/').next().unwrap();
        let roles = documented
            .get(method)
            .unwrap_or_else(|| panic!("docs/api.md gives no `Role:` line for {path}"));
        for (header, what) in [
            (None, "no token"),
            (
                Some("Bearer vch_not-a-configured-token"),
                "an unknown token",
            ),
            (Some("Bearer "), "an empty token"),
            (Some("Basic dXNlcjpwYXNz"), "another scheme"),
        ] {
            let (code, message) = raw_call(addr, &path, frame(&[]), header, true).await;
            assert_eq!(
                code,
                Some(Code::Unauthenticated),
                "{path}, {what}: {message}"
            );
        }
        for (role, token) in &tokens {
            let header = format!("Bearer {token}");
            let (code, message) = raw_call(addr, &path, frame(&[]), Some(&header), true).await;
            if roles.contains(role) {
                assert!(!refused(code), "{path} as {role}: {code:?} {message}");
            } else {
                assert_eq!(
                    code,
                    Some(Code::PermissionDenied),
                    "{path} as {role}: {message}"
                );
                assert!(message.contains(&format!("has role {role}")), "{message}");
                assert!(!message.contains(token.as_str()), "{message}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 23, "{checked} vouch.v1 RPCs");
    server.shutdown().await.unwrap();
}
