//! `vouch-soak`: the load driver of the soak scripts `scripts/crash-soak.sh` and
//! `scripts/load-soak.sh`, which run it against a real `vouch serve`.
//!
//! ```text
//! vouch-soak load  --server URL --acks FILE [--cycle N] [--clients N] [--seconds S]
//! vouch-soak check --server URL --acks FILE [--vkey VKEY]
//! vouch-soak soak  --server URL --pid PID [--clients N] [--seconds S] [--interval S]
//!                  [--mix mixed|reads]
//! ```
//!
//! `load` appends from several clients at once (single entries, entries with idempotency
//! keys, batches, appends that wait for a checkpoint) and reads in between, until the time is
//! up or the server goes away; every acknowledged entry is appended to the acks file as
//! `<index> <leaf hash hex> <idempotency key or ->`, one line per entry, written as soon as
//! the acknowledgement arrives. `check` reads the acks file and checks the server against it:
//! every acknowledged index holds the acknowledged leaf hash, every idempotency key still
//! returns its entry, and sampled inclusion proofs verify against the latest checkpoint
//! (whose signature is checked with `--vkey`). It exits 1 on any loss.
//!
//! `soak` runs a steady mixed load (or, with `--mix reads`, reads and proofs only) for a
//! bounded time and prints, per interval, the calls
//! made, their latency (median, 99th percentile, maximum), the errors, and the resident set
//! size of the server process `--pid`; at the end it says whether memory stayed flat, latency
//! did not creep and no call failed, and exits 1 if not.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::Code;
use vouch_ledger_core::checkpoint::open_checkpoint;
use vouch_ledger_core::note::{Verifier, Verifiers};
use vouch_ledger_core::proof::{InclusionProof, verify_inclusion};
use vouch_ledger_core::{EntryIndex, Hash, HashAlg, TreeSize};
use vouch_server::client::{Client, connect};
use vouch_server::proto::v1 as pb;
use vouch_server::proto::v1::get_inclusion_proof_request::Target;

const USAGE: &str = "usage:
  vouch-soak load  --server URL --acks FILE [--cycle N] [--clients N] [--seconds S]
  vouch-soak check --server URL --acks FILE [--vkey VKEY]
  vouch-soak soak  --server URL --pid PID [--clients N] [--seconds S] [--interval S]
                   [--mix mixed|reads]";

/// `--name value` pairs.
struct Args(HashMap<String, String>);

impl Args {
    fn parse(words: &[String]) -> Result<Self, String> {
        let mut map = HashMap::new();
        let mut it = words.iter();
        while let Some(w) = it.next() {
            let name = w
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {w:?}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            map.insert(name.to_owned(), value.clone());
        }
        Ok(Self(map))
    }

    fn text(&self, name: &str) -> Result<String, String> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        self.0.get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("--{name} {v:?} is not a number"))
        })
    }
}

fn main() -> ExitCode {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = words.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let args = match Args::parse(rest) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vouch-soak: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vouch-soak: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match command.as_str() {
            "load" => load(&args).await,
            "check" => check(&args).await,
            "soak" => soak(&args).await,
            other => Err(format!("unknown command {other:?}\n{USAGE}")),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("vouch-soak: {e}");
            ExitCode::from(2)
        }
    }
}

/// The payload of the entry with idempotency key (or name) `key`: a retry can send the same.
fn payload_for(key: &str) -> Vec<u8> {
    format!("{{\"soak\":\"{key}\"}}").into_bytes()
}

fn entry(key: &str, keyed: bool) -> pb::EntryInput {
    pb::EntryInput {
        kind: pb::EntryKind::Record.into(),
        idempotency_key: if keyed { key.to_owned() } else { String::new() },
        content_type: "application/json".to_owned(),
        payload: payload_for(key),
    }
}

/// A small seeded generator (`SplitMix64`).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// One acknowledged entry.
struct Ack {
    index: u64,
    leaf: Vec<u8>,
    key: Option<String>,
}

/// What one step of the mixed workload did.
enum Step {
    /// Entries acknowledged.
    Appended(Vec<Ack>),
    /// A read answered.
    Read,
}

/// One step of the mixed workload: appends (single, keyed, batched, waiting for a
/// checkpoint) and reads (an entry, an inclusion proof) of entries up to `known`.
async fn step(
    c: &mut Client,
    rng: &mut Rng,
    name: &str,
    known: &AtomicU64,
    reads_only: bool,
) -> Result<Step, tonic::Status> {
    let receipts = |rs: Vec<pb::Receipt>, keys: Vec<Option<String>>| {
        let acks: Vec<Ack> = rs
            .into_iter()
            .zip(keys)
            .map(|(r, key)| Ack {
                index: r.index,
                leaf: r.leaf_hash,
                key,
            })
            .collect();
        if let Some(max) = acks.iter().map(|a| a.index + 1).max() {
            known.fetch_max(max, Ordering::Relaxed);
        }
        Step::Appended(acks)
    };
    let size = known.load(Ordering::Relaxed);
    let pick = if reads_only {
        8 + rng.below(2)
    } else {
        rng.below(10)
    };
    match pick {
        0..=4 => {
            let keyed = rng.below(2) == 0;
            let r = c
                .append(pb::AppendRequest {
                    ledger: String::new(),
                    entry: Some(entry(name, keyed)),
                    wait_for_checkpoint: false,
                })
                .await?
                .into_inner();
            Ok(receipts(
                r.receipt.into_iter().collect(),
                vec![keyed.then(|| name.to_owned())],
            ))
        }
        5 | 6 => {
            let n = 1 + rng.below(8);
            let keys: Vec<Option<String>> = (0..n)
                .map(|j| (j % 2 == 0).then(|| format!("{name}.{j}")))
                .collect();
            let entries = (0..n)
                .zip(&keys)
                .map(|(j, k)| match k {
                    Some(k) => entry(k, true),
                    None => entry(&format!("{name}.{j}"), false),
                })
                .collect();
            let r = c
                .append_batch(pb::AppendBatchRequest {
                    ledger: String::new(),
                    entries,
                    wait_for_checkpoint: false,
                })
                .await?
                .into_inner();
            Ok(receipts(r.receipts, keys))
        }
        7 => {
            let r = c
                .append(pb::AppendRequest {
                    ledger: String::new(),
                    entry: Some(entry(name, true)),
                    wait_for_checkpoint: true,
                })
                .await?
                .into_inner();
            Ok(receipts(
                r.receipt.into_iter().collect(),
                vec![Some(name.to_owned())],
            ))
        }
        8 if size > 0 => {
            c.get_entry(pb::GetEntryRequest {
                ledger: String::new(),
                index: rng.below(size),
            })
            .await?;
            Ok(Step::Read)
        }
        _ if size > 0 => {
            let cp = c
                .get_checkpoint(pb::GetCheckpointRequest::default())
                .await?
                .into_inner();
            if cp.tree_size > 0 {
                c.get_inclusion_proof(pb::GetInclusionProofRequest {
                    ledger: String::new(),
                    tree_size: cp.tree_size,
                    target: Some(Target::Index(rng.below(cp.tree_size))),
                })
                .await?;
            }
            Ok(Step::Read)
        }
        _ => {
            c.get_ledger(pb::GetLedgerRequest::default()).await?;
            Ok(Step::Read)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// load

async fn load(args: &Args) -> Result<bool, String> {
    let url = args.text("server")?;
    let acks_path = args.text("acks")?;
    let cycle = args.number("cycle", 0)?;
    let clients = args.number("clients", 8)?;
    let seconds = args.number("seconds", 60)?;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&acks_path)
        .map_err(|e| format!("{acks_path}: {e}"))?;
    let file = Arc::new(Mutex::new(file));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let known = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..clients {
        let (url, file, stop, known) = (url.clone(), file.clone(), stop.clone(), known.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = 0u64;
            let Ok(mut c) = connect(&url, None, None).await else {
                return (acked, Some("cannot connect".to_owned()));
            };
            let mut rng = Rng(cycle << 32 | w);
            for i in 0u64.. {
                if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                    break;
                }
                let name = format!("c{cycle}-w{w}-{i}");
                match step(&mut c, &mut rng, &name, &known, false).await {
                    Ok(Step::Appended(acks)) => {
                        let mut lines = String::new();
                        for a in &acks {
                            let _ = writeln!(
                                lines,
                                "{} {} {}",
                                a.index,
                                hex::encode(&a.leaf),
                                a.key.as_deref().unwrap_or("-")
                            );
                        }
                        let mut f = file
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if let Err(e) = f.write_all(lines.as_bytes()) {
                            stop.store(true, Ordering::Relaxed);
                            return (acked, Some(format!("writing the acks file: {e}")));
                        }
                        acked += acks.len() as u64;
                    }
                    Ok(Step::Read) => {}
                    Err(status) => {
                        // The server went away (killed) or refused: this client stops.
                        return (
                            acked,
                            Some(format!("{:?}: {}", status.code(), status.message())),
                        );
                    }
                }
            }
            (acked, None)
        }));
    }
    let mut acked = 0;
    let mut ended_by: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        let (a, why) = t.await.map_err(|e| e.to_string())?;
        acked += a;
        if let Some(why) = why {
            let short: String = why.chars().take(100).collect();
            *ended_by.entry(short).or_default() += 1;
        }
    }
    println!("load: cycle {cycle}: {acked} entries acknowledged by {clients} clients");
    for (why, n) in &ended_by {
        println!("load: {n} client(s) stopped on {why}");
    }
    // Only a server that went away ends a client early; any other refusal is a bug.
    let unexpected = ended_by.keys().any(|why| {
        !(why.starts_with("Unavailable")
            || why.starts_with("Unknown")
            || why.starts_with("Cancelled")
            || why.starts_with("Internal") && why.contains("h2")
            || why == "cannot connect")
    });
    Ok(!unexpected)
}

// ---------------------------------------------------------------------------------------------
// check

async fn check(args: &Args) -> Result<bool, String> {
    let url = args.text("server")?;
    let acks_path = args.text("acks")?;
    let text = std::fs::read_to_string(&acks_path).unwrap_or_default();
    let mut acked: BTreeMap<u64, (Vec<u8>, Option<String>)> = BTreeMap::new();
    let mut conflicts = 0u64;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(index), Some(leaf), Some(key)) = (words.next(), words.next(), words.next())
        else {
            return Err(format!("{acks_path}: malformed line {line:?}"));
        };
        let index: u64 = index
            .parse()
            .map_err(|_| format!("{acks_path}: bad index in {line:?}"))?;
        let leaf = hex::decode(leaf).map_err(|_| format!("{acks_path}: bad hash in {line:?}"))?;
        let key = (key != "-").then(|| key.to_owned());
        match acked.get(&index) {
            // The same entry acknowledged twice (a duplicate of a keyed append) is fine.
            Some((l, _)) if *l != leaf => conflicts += 1,
            Some(_) => {}
            None => {
                acked.insert(index, (leaf, key));
            }
        }
    }
    let mut c = connect(&url, None, None)
        .await
        .map_err(|e| format!("connecting to {url}: {e}"))?;
    let info = c
        .get_ledger(pb::GetLedgerRequest::default())
        .await
        .map_err(|e| format!("GetLedger: {e}"))?
        .into_inner();
    let size = info.size;
    // Every acknowledged index holds the acknowledged leaf hash.
    let (mut missing, mut different) = (0u64, 0u64);
    let mut stream = c
        .stream_entries(pb::StreamEntriesRequest {
            ledger: String::new(),
            start: 0,
            end: size,
        })
        .await
        .map_err(|e| format!("StreamEntries: {e}"))?
        .into_inner();
    let mut seen = 0u64;
    while let Some(e) = stream
        .message()
        .await
        .map_err(|e| format!("StreamEntries: {e}"))?
    {
        if e.index != seen {
            return Err(format!("StreamEntries sent entry {} for {seen}", e.index));
        }
        if let Some((leaf, _)) = acked.get(&e.index)
            && *leaf != e.leaf_hash
        {
            different += 1;
            eprintln!("check: entry {} has another leaf hash", e.index);
        }
        seen += 1;
    }
    for &index in acked.keys().filter(|i| **i >= seen) {
        missing += 1;
        if missing <= 10 {
            eprintln!("check: acknowledged entry {index} is missing (ledger size {seen})");
        }
    }
    // Idempotency keys survive: appending a keyed entry again returns it (a sample).
    let keyed: Vec<(u64, &String)> = acked
        .iter()
        .filter_map(|(i, (_, k))| k.as_ref().map(|k| (*i, k)))
        .collect();
    let mut keys_lost = 0u64;
    let stride = (keyed.len() / 200).max(1);
    for &(index, key) in keyed.iter().step_by(stride) {
        let r = c
            .append(pb::AppendRequest {
                ledger: String::new(),
                entry: Some(entry(key, true)),
                wait_for_checkpoint: false,
            })
            .await
            .map_err(|e| format!("re-appending key {key}: {e}"))?
            .into_inner()
            .receipt
            .ok_or("a receipt without its entry")?;
        if !r.duplicate || r.index != index {
            keys_lost += 1;
            eprintln!(
                "check: key {key} of entry {index} now gives entry {}",
                r.index
            );
        }
    }
    // Inclusion proofs of a sample verify against the latest checkpoint.
    let cp = c
        .get_checkpoint(pb::GetCheckpointRequest::default())
        .await
        .map_err(|e| format!("GetCheckpoint: {e}"))?
        .into_inner();
    if let Ok(vkey) = args.text("vkey") {
        let mut verifiers = Verifiers::new();
        verifiers.insert(Verifier::from_vkey(&vkey).map_err(|e| format!("--vkey: {e}"))?);
        open_checkpoint(&cp.note, &verifiers)
            .map_err(|e| format!("the latest checkpoint does not verify: {e}"))?;
    }
    let alg = if info.hash == i32::from(pb::HashAlgorithm::Sha256) {
        HashAlg::Sha256
    } else {
        HashAlg::Blake3
    };
    let root = Hash::from_slice(&cp.root_hash).map_err(|e| format!("checkpoint root: {e}"))?;
    let mut proofs = 0u64;
    let covered: Vec<u64> = acked
        .keys()
        .copied()
        .filter(|i| *i < cp.tree_size)
        .collect();
    for &index in covered.iter().step_by((covered.len() / 50).max(1)) {
        let p = c
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                ledger: String::new(),
                tree_size: cp.tree_size,
                target: Some(Target::Index(index)),
            })
            .await
            .map_err(|e| format!("GetInclusionProof {index}: {e}"))?
            .into_inner();
        let path = p
            .path
            .iter()
            .map(|h| Hash::from_slice(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("proof of {index}: {e}"))?;
        let leaf = Hash::from_slice(&acked[&index].0).map_err(|e| format!("ack {index}: {e}"))?;
        let proof = InclusionProof {
            index: EntryIndex(index),
            size: TreeSize(cp.tree_size),
            path,
        };
        verify_inclusion(alg, &leaf, &proof, &root)
            .map_err(|e| format!("the proof of acknowledged entry {index} fails: {e}"))?;
        proofs += 1;
    }
    println!(
        "check: {} acknowledged entries in a ledger of {seen}: {missing} missing, {different} with another leaf hash, {conflicts} acknowledged twice differently, {keys_lost} of {} sampled keys lost; {proofs} proofs verified against the checkpoint of size {}",
        acked.len(),
        keyed.iter().step_by(stride).count(),
        cp.tree_size
    );
    Ok(missing + different + conflicts + keys_lost == 0)
}

// ---------------------------------------------------------------------------------------------
// soak

/// A field of `/proc/<pid>/status` in KiB: `VmRSS` (all resident memory), `RssAnon` (heap
/// and stacks), `RssFile` (resident pages of mapped files, which grow with the ledger: the
/// server maps its offset and Merkle node files).
fn proc_kib(pid: u64, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One interval's latencies (microseconds) and errors.
#[derive(Default)]
struct Window {
    micros: Vec<u64>,
    errors: u64,
    last_error: Option<String>,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a slice of at most millions"
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// KiB in MiB, for printing.
#[allow(
    clippy::cast_precision_loss,
    reason = "memory sizes far below 2^52 KiB"
)]
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One row of the soak report.
struct Row {
    calls: u64,
    p50: u64,
    p99: u64,
    max: u64,
    errors: u64,
    rss_kib: u64,
    anon_kib: u64,
    file_kib: u64,
}

async fn soak(args: &Args) -> Result<bool, String> {
    let url = args.text("server")?;
    let pid = args.number("pid", 0)?;
    let clients = args.number("clients", 8)?;
    let seconds = args.number("seconds", 120)?;
    let interval = args.number("interval", 10)?.max(1);
    let reads_only = match args.0.get("mix").map(String::as_str) {
        None | Some("mixed") => false,
        Some("reads") => true,
        Some(other) => return Err(format!("--mix {other:?}: use mixed or reads")),
    };
    if proc_kib(pid, "VmRSS").is_none() {
        return Err(format!("no process {pid} to sample (--pid)"));
    }
    let window = Arc::new(Mutex::new(Window::default()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    // Reads pick entries below the ledger's size when the soak starts (and below what it
    // appends).
    let known = {
        let mut c = connect(&url, None, None)
            .await
            .map_err(|e| format!("connecting to {url}: {e}"))?;
        let info = c
            .get_ledger(pb::GetLedgerRequest::default())
            .await
            .map_err(|e| format!("GetLedger: {e}"))?;
        Arc::new(AtomicU64::new(info.into_inner().size))
    };
    let mut tasks = Vec::new();
    for w in 0..clients {
        let (url, window, known) = (url.clone(), window.clone(), known.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = match connect(&url, None, None).await {
                Ok(c) => c,
                Err(e) => {
                    let mut win = window
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    win.errors += 1;
                    win.last_error = Some(format!("connecting: {e}"));
                    return;
                }
            };
            let mut rng = Rng(0x50AC << 16 | w);
            for i in 0u64.. {
                if Instant::now() >= deadline {
                    break;
                }
                let name = format!("soak-w{w}-{i}");
                let started = Instant::now();
                let result = step(&mut c, &mut rng, &name, &known, reads_only).await;
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                let mut win = window
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match result {
                    Ok(_) => win.micros.push(micros),
                    Err(e) => {
                        win.errors += 1;
                        win.last_error = Some(format!("{:?}: {}", e.code(), e.message()));
                        if e.code() == Code::Unavailable {
                            return;
                        }
                    }
                }
            }
        }));
    }
    println!(
        "interval  calls  calls/s  p50_us  p99_us  max_us  errors  rss_mib  anon_mib  file_mib"
    );
    let mut rows = Vec::new();
    let started = Instant::now();
    let mut next = started;
    while Instant::now() < deadline {
        next += Duration::from_secs(interval);
        tokio::time::sleep_until(next.min(deadline).into()).await;
        let win = std::mem::take(
            &mut *window
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut micros = win.micros;
        micros.sort_unstable();
        let row = Row {
            calls: micros.len() as u64,
            p50: percentile(&micros, 0.50),
            p99: percentile(&micros, 0.99),
            max: micros.last().copied().unwrap_or(0),
            errors: win.errors,
            rss_kib: proc_kib(pid, "VmRSS").unwrap_or(0),
            anon_kib: proc_kib(pid, "RssAnon").unwrap_or(0),
            file_kib: proc_kib(pid, "RssFile").unwrap_or(0),
        };
        println!(
            "{:>8}  {:>5}  {:>7}  {:>6}  {:>6}  {:>6}  {:>6}  {:>7.1}  {:>8.1}  {:>8.1}",
            rows.len() + 1,
            row.calls,
            row.calls / interval,
            row.p50,
            row.p99,
            row.max,
            row.errors,
            mib(row.rss_kib),
            mib(row.anon_kib),
            mib(row.file_kib)
        );
        if let Some(e) = win.last_error {
            println!("          last error: {e}");
        }
        rows.push(row);
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(verdict(&rows))
}

/// Whether the soak passed: no errors; anonymous memory (the heap: what a leak grows) flat
/// over the second half of the run, within 10% or 16 MiB (the first half lets caches fill:
/// the secondary index's grows with the ledger to a bound, see `docs/operations.md`); and
/// the median latency of the last third of the intervals at most twice that of the first
/// third, the first interval left out. Mapped-file pages grow with the ledger and are
/// reported, not judged.
fn verdict(rows: &[Row]) -> bool {
    if rows.len() < 4 {
        println!(
            "soak: too short for a verdict ({} intervals); use at least 4",
            rows.len()
        );
        return false;
    }
    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    let calls: u64 = rows.iter().map(|r| r.calls).sum();
    let (first, middle, last) = (&rows[0], &rows[rows.len() / 2], &rows[rows.len() - 1]);
    let peak = rows.iter().map(|r| r.anon_kib).max().unwrap_or(0);
    let growth_kib = last.anon_kib.saturating_sub(middle.anon_kib);
    let flat = growth_kib <= (middle.anon_kib / 10).max(16 * 1024);
    let third = (rows.len() / 3).max(1);
    let median_of = |rs: &[Row]| {
        let mut p: Vec<u64> = rs.iter().map(|r| r.p50).collect();
        p.sort_unstable();
        p[p.len() / 2]
    };
    let early = median_of(&rows[1..=third]).max(1);
    let late = median_of(&rows[rows.len() - third..]);
    let creep = late > early * 2;
    println!(
        "soak: {calls} calls, {errors} errors; heap (RssAnon) {:.1} MiB after the first interval, {:.1} MiB half-way, {:.1} MiB at the end (peak {:.1} MiB): {} over the second half; RSS {:.1} -> {:.1} MiB, of which mapped files {:.1} -> {:.1} MiB (they grow with the ledger); median latency {early} us early, {late} us late: {}",
        mib(first.anon_kib),
        mib(middle.anon_kib),
        mib(last.anon_kib),
        mib(peak),
        if flat { "flat" } else { "GROWS" },
        mib(first.rss_kib),
        mib(last.rss_kib),
        mib(first.file_kib),
        mib(last.file_kib),
        if creep { "CREEPS" } else { "steady" }
    );
    errors == 0 && flat && !creep
}
