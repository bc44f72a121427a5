//! `vouch.v1.LedgerService` on hostile requests: fuzz bytes are decoded as request messages
//! (prost) and handed to the real service implementation, built in-process over a data
//! directory on tmpfs as the server builds it, and called through the tonic service trait.
//!
//! An input is a sequence of calls: a selector byte (which RPC), a length byte, and that
//! many bytes of the encoded message. Nothing may panic (a panic on any thread aborts the
//! fuzzer); no call may fail with `INTERNAL`, `DATA_LOSS` or `UNKNOWN` (the disk is healthy,
//! so those mean a bug); an acknowledged append reads back with its receipt's leaf hash;
//! every proof returned with a signed checkpoint verifies against it; and every ledger
//! verifies in full every few hundred iterations and before the environment is recycled.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tonic::{Code, Request, Status};
use vouch_fuzz::scratch_dir;
use vouch_ledger_core::checkpoint::{Checkpoint, open_checkpoint};
use vouch_ledger_core::note::Verifiers;
use vouch_ledger_core::proof::{
    ConsistencyProof, InclusionProof, verify_consistency, verify_inclusion,
};
use vouch_ledger_core::{EntryIndex, Hash, TreeSize};
use vouch_server::config::{Config, DurabilityMode};
use vouch_server::metrics::Metrics;
use vouch_server::proto::v1 as pb;
use vouch_server::proto::v1::ledger_service_server::LedgerService as _;
use vouch_server::registry::Registry;
use vouch_server::service::LedgerService;

/// Iterations between full verifications of every ledger.
const VERIFY_EVERY: u64 = 256;
/// Iterations after which the data directory is verified, dropped and made anew, so that
/// ledgers stay small and verification cheap.
const RECYCLE_EVERY: u64 = 4096;
/// Ledgers the fuzzer may create before the environment is recycled.
const MAX_LEDGERS: usize = 6;
/// Calls in one input, at most.
const MAX_CALLS: usize = 8;

struct Env {
    registry: Arc<Registry>,
    service: LedgerService,
    _shutdown: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

struct State {
    runtime: tokio::runtime::Runtime,
    env: Option<Env>,
    iterations: u64,
}

fn config(dir: PathBuf) -> Config {
    let mut config = Config::embedded_default();
    config.data_dir = dir;
    config.storage.durability = DurabilityMode::None;
    config.storage.checkpoint_every_ms = 0;
    config.storage.checkpoint_every_entries = 16;
    config.storage.segment_target_bytes = 4096;
    config.limits.max_payload_bytes = 4096;
    config.limits.max_batch_entries = 64;
    config.limits.max_open_streams = 8;
    config
}

fn make_env(runtime: &tokio::runtime::Runtime) -> Env {
    let dir = scratch_dir("grpc");
    let config = config(dir.path().join("data"));
    let registry = Arc::new(Registry::open(&config).expect("registry opens"));
    for ledger in registry.list() {
        if ledger.latest_checkpoint().is_none() {
            ledger.checkpoint_now().expect("first checkpoint");
        }
    }
    let (shutdown, shutdown_rx) = watch::channel(false);
    let service = {
        let _guard = runtime.enter();
        LedgerService::new(
            registry.clone(),
            Arc::new(Metrics::default()),
            &config.limits,
            shutdown_rx,
        )
    };
    Env {
        registry,
        service,
        _shutdown: shutdown,
        _dir: dir,
    }
}

fn verify_all(registry: &Registry) {
    for ledger in registry.list() {
        let report = ledger.verify(&mut |_| {});
        assert!(
            report.is_ok(),
            "ledger {} does not verify: {report:?}",
            ledger.name()
        );
    }
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        Mutex::new(State {
            runtime,
            env: None,
            iterations: 0,
        })
    })
}

/// Fails on status codes that a healthy disk and a correct server never produce.
fn check_status(rpc: &str, status: &Status) {
    assert!(
        !matches!(
            status.code(),
            Code::Internal | Code::DataLoss | Code::Unknown
        ),
        "{rpc} failed with {:?}: {}",
        status.code(),
        status.message()
    );
}

fn verifiers(registry: &Registry, ledger: &str) -> Option<Verifiers> {
    registry.get(ledger).ok().map(|l| l.verifiers().clone())
}

/// Opens a returned checkpoint with the ledger's keys and checks its fields.
fn check_checkpoint(cp: &pb::SignedCheckpoint, known: &Verifiers) -> Checkpoint {
    let (checkpoint, _) = open_checkpoint(&cp.note, known).expect("a served checkpoint opens");
    assert_eq!(checkpoint.size, TreeSize(cp.tree_size));
    assert_eq!(checkpoint.origin, cp.origin);
    assert_eq!(
        checkpoint.root.as_bytes().as_slice(),
        cp.root_hash.as_slice()
    );
    checkpoint
}

fn hash(bytes: &[u8]) -> Hash {
    Hash::from_slice(bytes).expect("a served hash is 32 bytes")
}

fn check_inclusion(
    proof: &pb::InclusionProof,
    checkpoint: Option<&pb::SignedCheckpoint>,
    known: &Verifiers,
    registry: &Registry,
    ledger: &str,
) {
    let Some(cp) = checkpoint.or(proof.checkpoint.as_ref()) else {
        return;
    };
    let checkpoint = check_checkpoint(cp, known);
    let alg = registry.get(ledger).expect("ledger").hash_alg();
    let ours = InclusionProof {
        index: EntryIndex(proof.index),
        size: TreeSize(proof.tree_size),
        path: proof.path.iter().map(|p| hash(p)).collect(),
    };
    assert_eq!(checkpoint.size, ours.size);
    assert_eq!(
        verify_inclusion(alg, &hash(&proof.leaf_hash), &ours, &checkpoint.root),
        Ok(()),
        "a served inclusion proof does not verify"
    );
}

async fn call(service: &LedgerService, registry: &Registry, selector: u8, bytes: &[u8]) {
    macro_rules! decode {
        ($t:ty) => {
            match <$t>::decode(bytes) {
                Ok(m) => m,
                Err(_) => return,
            }
        };
    }
    match selector % 11 {
        0 => {
            let req = decode!(pb::CreateLedgerRequest);
            if registry.list().len() >= MAX_LEDGERS {
                return;
            }
            if let Err(s) = service.create_ledger(Request::new(req)).await {
                check_status("CreateLedger", &s);
            }
        }
        1 => {
            let req = decode!(pb::ListLedgersRequest);
            if let Err(s) = service.list_ledgers(Request::new(req)).await {
                check_status("ListLedgers", &s);
            }
        }
        2 => {
            let req = decode!(pb::GetLedgerRequest);
            if let Err(s) = service.get_ledger(Request::new(req)).await {
                check_status("GetLedger", &s);
            }
        }
        3 => {
            let req = decode!(pb::AppendRequest);
            let name = ledger_name(registry, &req.ledger);
            match service.append(Request::new(req)).await {
                Ok(response) => {
                    let response = response.into_inner();
                    let receipt = response.receipt.expect("a receipt");
                    check_receipt(service, &name, &receipt).await;
                    if let (Some(known), Some(proof)) = (
                        verifiers(registry, &name),
                        response.inclusion_proof.as_ref(),
                    ) {
                        check_inclusion(
                            proof,
                            response.checkpoint.as_ref(),
                            &known,
                            registry,
                            &name,
                        );
                    }
                }
                Err(s) => check_status("Append", &s),
            }
        }
        4 => {
            let req = decode!(pb::AppendBatchRequest);
            let name = ledger_name(registry, &req.ledger);
            match service.append_batch(Request::new(req)).await {
                Ok(response) => {
                    let response = response.into_inner();
                    for receipt in &response.receipts {
                        check_receipt(service, &name, receipt).await;
                    }
                    if let Some(known) = verifiers(registry, &name) {
                        for proof in &response.inclusion_proofs {
                            check_inclusion(
                                proof,
                                response.checkpoint.as_ref(),
                                &known,
                                registry,
                                &name,
                            );
                        }
                    }
                }
                Err(s) => check_status("AppendBatch", &s),
            }
        }
        5 => {
            let req = decode!(pb::GetEntryRequest);
            if let Err(s) = service.get_entry(Request::new(req)).await {
                check_status("GetEntry", &s);
            }
        }
        6 => {
            let req = decode!(pb::StreamEntriesRequest);
            match service.stream_entries(Request::new(req)).await {
                Ok(response) => {
                    let mut stream = response.into_inner().take(64);
                    while let Some(item) = stream.next().await {
                        if let Err(s) = item {
                            check_status("StreamEntries", &s);
                        }
                    }
                }
                Err(s) => check_status("StreamEntries", &s),
            }
        }
        7 => {
            let req = decode!(pb::GetInclusionProofRequest);
            let name = ledger_name(registry, &req.ledger);
            match service.get_inclusion_proof(Request::new(req)).await {
                Ok(response) => {
                    if let Some(known) = verifiers(registry, &name) {
                        check_inclusion(&response.into_inner(), None, &known, registry, &name);
                    }
                }
                Err(s) => check_status("GetInclusionProof", &s),
            }
        }
        8 => {
            let req = decode!(pb::GetConsistencyProofRequest);
            let name = ledger_name(registry, &req.ledger);
            match service.get_consistency_proof(Request::new(req)).await {
                Ok(response) => {
                    let proof = response.into_inner();
                    let (Some(known), Some(old), Some(new)) = (
                        verifiers(registry, &name),
                        proof.old_checkpoint.as_ref(),
                        proof.new_checkpoint.as_ref(),
                    ) else {
                        return;
                    };
                    let old = check_checkpoint(old, &known);
                    let new = check_checkpoint(new, &known);
                    let alg = registry.get(&name).expect("ledger").hash_alg();
                    let ours = ConsistencyProof {
                        old_size: TreeSize(proof.old_size),
                        new_size: TreeSize(proof.new_size),
                        path: proof.path.iter().map(|p| hash(p)).collect(),
                    };
                    assert_eq!(
                        verify_consistency(alg, &ours, &old.root, &new.root),
                        Ok(()),
                        "a served consistency proof does not verify"
                    );
                }
                Err(s) => check_status("GetConsistencyProof", &s),
            }
        }
        9 => {
            let req = decode!(pb::GetCheckpointRequest);
            let name = ledger_name(registry, &req.ledger);
            match service.get_checkpoint(Request::new(req)).await {
                Ok(response) => {
                    if let Some(known) = verifiers(registry, &name) {
                        check_checkpoint(&response.into_inner(), &known);
                    }
                }
                Err(s) => check_status("GetCheckpoint", &s),
            }
        }
        _ => {
            let req = decode!(pb::WatchCheckpointsRequest);
            match service.watch_checkpoints(Request::new(req)).await {
                Ok(response) => {
                    let mut stream = response.into_inner();
                    // The current checkpoint comes at once; later ones only as entries arrive.
                    if let Ok(Some(Err(s))) =
                        tokio::time::timeout(Duration::from_millis(50), stream.next()).await
                    {
                        check_status("WatchCheckpoints", &s);
                    }
                }
                Err(s) => check_status("WatchCheckpoints", &s),
            }
        }
    }
}

/// The ledger a request names, the default ledger for an empty name.
fn ledger_name(registry: &Registry, name: &str) -> String {
    if name.is_empty() {
        registry.default_ledger().to_owned()
    } else {
        name.to_owned()
    }
}

/// An acknowledged entry reads back with the receipt's leaf hash.
async fn check_receipt(service: &LedgerService, ledger: &str, receipt: &pb::Receipt) {
    let entry = service
        .get_entry(Request::new(pb::GetEntryRequest {
            ledger: ledger.to_owned(),
            index: receipt.index,
        }))
        .await
        .unwrap_or_else(|s| panic!("an acknowledged entry does not read back: {s:?}"))
        .into_inner();
    assert_eq!(entry.leaf_hash, receipt.leaf_hash);
    assert_eq!(entry.index, receipt.index);
    assert!(receipt.index < receipt.tree_size);
}

fuzz_target!(|data: &[u8]| {
    let mut state = state()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let state = &mut *state;
    if state.env.is_none() {
        state.env = Some(make_env(&state.runtime));
    }
    let env = state.env.as_ref().expect("environment");
    let mut rest = data;
    let mut calls = 0;
    while let Some((&[selector, len], tail)) = rest.split_first_chunk::<2>() {
        let (message, tail) = tail.split_at(usize::from(len).min(tail.len()));
        state
            .runtime
            .block_on(call(&env.service, &env.registry, selector, message));
        rest = tail;
        calls += 1;
        if calls == MAX_CALLS {
            break;
        }
    }
    state.iterations += 1;
    let recycle = state.iterations % RECYCLE_EVERY == 0 || env.registry.list().len() >= MAX_LEDGERS;
    if state.iterations % VERIFY_EVERY == 0 || recycle {
        verify_all(&env.registry);
    }
    if recycle {
        let env = state.env.take().expect("environment");
        env.registry.close_all();
        drop(env);
    }
});
