//! `baselines`: Vouch's durable appends through the gRPC API next to the systems they are
//! judged against, measured in the same process, on the same disk and with the same payloads,
//! in short interleaved slices so that every ratio compares measurements seconds apart.
//!
//! It starts one server (`vouch_server::server::start`, `fsync` durability, the default
//! configuration with the leaf-hash index, a temporary data directory); then each slice
//! creates the peers' files afresh and measures, for `--seconds` each (or until
//! `--max-mib` of payloads are written, so that a fast disk does not fill up), in this
//! order:
//!
//! 1. Vouch, single-entry appends: `vouch bench append` (in process, through
//!    `vouch_server::cli::bench::report_for`) against that server with `--concurrency`
//!    clients (group commit);
//! 2. a raw write+fsync loop writing as many of the frames Vouch writes per entry per
//!    `fdatasync` as Vouch's group commits held on average in step 1 (the same bytes grouped
//!    the same way: the engine's floor);
//! 3. the same loop with one frame per `fdatasync` (a single writer without group commit);
//! 4. a SHA-256 hash chain in SQLite (`synchronous = FULL`), one transaction per entry, in
//!    WAL mode and with the rollback journal: the single writer an application would have;
//! 5. Vouch, batches: `vouch bench batch` with `--batch-size` entries per `AppendBatch` and
//!    `--batch-concurrency` clients;
//! 6. the raw loop writing a batch's frames per `fdatasync`;
//! 7. the SQLite chain with one transaction per batch (WAL).
//!
//! It prints the median of each figure over the slices and the median of the per-slice
//! ratios, or JSON with every slice with `--json`. Run with
//! `cargo run --release -p vouch-benches --bin baselines -- --help`; results and the method
//! are in `docs/benchmarks.md` ("Baselines and ratios"). The in-memory Merkle peer
//! (`rs_merkle`) is compared in the criterion suite `benches/benches/merkle.rs`.
#![allow(clippy::doc_markdown, reason = "SQLite is a product name, not code")]

/// The allocator the `vouch` binary uses, so that what is measured is what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use vouch_benches::baseline::{Journal, SqliteChain};
use vouch_benches::workload::{self, RawLog};
use vouch_ledger_core::entry::{EntryDraft, EntryKind};
use vouch_server::cli::bench::report::Report;
use vouch_server::cli::bench::workloads::{CONTENT_TYPE, Payloads};

#[derive(Debug, Parser)]
#[command(
    name = "baselines",
    about = "Vouch's durable appends next to a raw write+fsync loop and a SQLite hash chain, in one run"
)]
struct Args {
    /// Slices; every figure is the median over them.
    #[arg(long, default_value_t = 10)]
    slices: usize,
    /// Seconds each measurement of a slice runs.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Concurrent clients of Vouch's single-entry appends.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Entries per batch (Vouch's `AppendBatch`, the raw loop, SQLite's transaction).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Concurrent clients of Vouch's batch appends.
    #[arg(long, default_value_t = 4)]
    batch_concurrency: usize,
    /// Payload bytes of every entry.
    #[arg(long, default_value_t = 256)]
    payload_size: usize,
    /// Stop each measurement once it has written this many MiB of payloads (the rate is
    /// taken over the time it ran): on a fast disk a 2-second raw loop would otherwise write
    /// gigabytes. Raw logs and SQLite files are recreated for every slice.
    #[arg(long, default_value_t = 64)]
    max_mib: u64,
    /// Where the raw log and the SQLite files go (default: the system temp dir, where the
    /// embedded server's data directory goes too; set `TMPDIR` to move both).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn note(msg: &str) {
    eprintln!("[baselines] {msg}");
}

#[allow(clippy::cast_precision_loss, reason = "counts stay far below 2^52")]
fn to_f64(n: u64) -> f64 {
    n as f64
}

fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        f64::midpoint(s[n / 2 - 1], s[n / 2])
    }
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Calls `op` until `seconds` have passed or `max_calls` calls were made; returns entries per
/// second, each call counting `per_call` entries.
fn timed(seconds: f64, max_calls: u64, per_call: u64, mut op: impl FnMut(u64)) -> f64 {
    let limit = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < limit && calls < max_calls.max(1) {
        op(calls);
        calls += 1;
    }
    to_f64(calls * per_call) / start.elapsed().as_secs_f64()
}

fn drafts(payloads: &Payloads, first: u64, count: usize) -> Vec<EntryDraft> {
    (first..first + count as u64)
        .map(|s| {
            EntryDraft::new(
                EntryKind::Record,
                None,
                CONTENT_TYPE.to_owned(),
                payloads.make(s),
            )
            .expect("a valid benchmark entry")
        })
        .collect()
}

fn vouch(args: &[&str]) -> Report {
    vouch_server::cli::bench::report_for(args).unwrap_or_else(|e| panic!("vouch bench: {e:#}"))
}

/// The ledger `vouch bench` appends to.
const LEDGER: &str = "bench";

/// The server every slice calls, with its runtime and data directory.
struct Target {
    runtime: tokio::runtime::Runtime,
    running: Option<vouch_server::server::RunningServer>,
    url: String,
    _dir: tempfile::TempDir,
}

impl Target {
    fn start(parent: &Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vouch-baselines-server-")
            .tempdir_in(parent)
            .expect("the server's temporary directory");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("baselines-server")
            .build()
            .expect("the server's runtime");
        let mut config = vouch_server::config::Config::embedded_default();
        config.data_dir = dir.path().join("data");
        config.listen = ([127, 0, 0, 1], 0).into();
        config.metrics.enabled = false;
        config.storage.durability = vouch_server::config::DurabilityMode::Fsync;
        LEDGER.clone_into(&mut config.default_ledger);
        let server = runtime
            .block_on(vouch_server::server::start(config))
            .expect("the server starts");
        let url = server.grpc_url();
        Self {
            runtime,
            running: Some(server),
            url,
            _dir: dir,
        }
    }

    fn stats(&self) -> vouch_storage::StatsSnapshot {
        self.running
            .as_ref()
            .and_then(|s| s.registry().get(LEDGER).ok())
            .expect("the bench ledger")
            .stats()
    }

    fn stop(mut self) {
        if let Some(server) = self.running.take() {
            self.runtime
                .block_on(server.shutdown())
                .expect("a clean shutdown");
        }
    }
}

/// The peers, opened once and appended to slice after slice.
struct Peers {
    raw_single: RawLog,
    raw_grouped: RawLog,
    raw_batch: RawLog,
    wal: SqliteChain,
    delete: SqliteChain,
    wal_batch: SqliteChain,
    /// The next payload number of the SQLite chains.
    seq: u64,
}

impl Peers {
    /// Creates every log and chain afresh in `dir` (replacing the previous slice's).
    fn open(dir: &Path) -> Self {
        for name in ["raw-1.log", "raw-g.log", "raw-b.log"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
        for name in ["wal.db", "delete.db", "batch.db"] {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(dir.join(format!("{name}{suffix}")));
            }
        }
        let raw = |name: &str| RawLog::create(&dir.join(name)).expect("create a raw log");
        let chain = |name: &str, journal| {
            SqliteChain::create(&dir.join(name), journal).expect("create a SQLite chain")
        };
        Self {
            raw_single: raw("raw-1.log"),
            raw_grouped: raw("raw-g.log"),
            raw_batch: raw("raw-b.log"),
            wal: chain("wal.db", Journal::Wal),
            delete: chain("delete.db", Journal::Delete),
            wal_batch: chain("batch.db", Journal::Wal),
            seq: 0,
        }
    }

    /// Checks every chain from its first row.
    fn verify(&self) {
        for chain in [&self.wal, &self.delete, &self.wal_batch] {
            assert_eq!(
                chain.verify().expect("read the chain back"),
                Ok(chain.rows()),
                "a SQLite chain is broken"
            );
        }
    }
}

fn raw_rate(log: &mut RawLog, bytes: &[u8], per_write: u64, seconds: f64, budget: u64) -> f64 {
    let max_calls = budget / (bytes.len() as u64).max(1);
    timed(seconds, max_calls, per_write, |_| {
        log.append(bytes, true).expect("raw write+fsync");
    })
}

fn sqlite_rate(
    chain: &mut SqliteChain,
    seq: &mut u64,
    payloads: &Payloads,
    batch: usize,
    seconds: f64,
    budget: u64,
) -> f64 {
    let per_call = (payloads.make(0).len() * batch.max(1)) as u64;
    let max_calls = budget / per_call.max(1);
    if batch <= 1 {
        timed(seconds, max_calls, 1, |_| {
            chain.append(&payloads.make(*seq)).expect("SQLite append");
            *seq += 1;
        })
    } else {
        timed(seconds, max_calls, batch as u64, |_| {
            let rows: Vec<Vec<u8>> = (*seq..*seq + batch as u64)
                .map(|s| payloads.make(s))
                .collect();
            chain.append_batch(&rows).expect("SQLite batch append");
            *seq += batch as u64;
        })
    }
}

fn slice(args: &Args, server: &Target, dir: &Path, payloads: &Payloads, n: usize) -> Value {
    let mut peers = Peers::open(dir);
    let peers = &mut peers;
    let budget = args.max_mib << 20;
    let payload_bytes = (args.payload_size as u64).max(1);
    let single_limit = (budget / payload_bytes).to_string();
    let batch_limit = (budget / (payload_bytes * args.batch_size as u64).max(1)).to_string();
    let secs = format!("{}", args.seconds);
    let payload = args.payload_size.to_string();
    let seed = (n as u64 + 1).to_string();
    let warmup = if n == 0 { "1s" } else { "0" };
    let load_before = load_average();
    let concurrency = args.concurrency.to_string();
    note(&format!(
        "slice {}: Vouch single entries, raw loops, SQLite chains, Vouch batches",
        n + 1
    ));
    let before = server.stats();
    let single = vouch(&[
        "append",
        "--server",
        &server.url,
        "--requests",
        &single_limit,
        "--ledger",
        LEDGER,
        "--concurrency",
        &concurrency,
        "--duration",
        &secs,
        "--warmup",
        warmup,
        "--payload-size",
        &payload,
        "--seed",
        &seed,
    ]);
    let engine = vouch_server::cli::bench::report::Engine::between(&before, &server.stats());
    assert_eq!(single.errors, 0, "Vouch single-entry appends failed");
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a group of a few hundred entries at most"
    )]
    let group = engine.entries_per_group.round().max(1.0) as usize;
    let grouped = workload::frames(drafts(payloads, 0, group));
    let raw_grouped = raw_rate(
        &mut peers.raw_grouped,
        &grouped,
        group as u64,
        args.seconds,
        budget,
    );
    let one = workload::frames(drafts(payloads, 0, 1));
    let raw_single = raw_rate(&mut peers.raw_single, &one, 1, args.seconds, budget);
    let sqlite_wal = sqlite_rate(
        &mut peers.wal,
        &mut peers.seq,
        payloads,
        1,
        args.seconds,
        budget,
    );
    let sqlite_delete = sqlite_rate(
        &mut peers.delete,
        &mut peers.seq,
        payloads,
        1,
        args.seconds,
        budget,
    );

    let batch = args.batch_size.to_string();
    let batch_concurrency = args.batch_concurrency.to_string();
    let batches = vouch(&[
        "batch",
        "--server",
        &server.url,
        "--requests",
        &batch_limit,
        "--ledger",
        LEDGER,
        "--batch-size",
        &batch,
        "--concurrency",
        &batch_concurrency,
        "--duration",
        &secs,
        "--warmup",
        "0",
        "--payload-size",
        &payload,
        "--seed",
        &seed,
    ]);
    assert_eq!(batches.errors, 0, "Vouch batch appends failed");
    let batch_bytes = workload::frames(drafts(payloads, 0, args.batch_size));
    let raw_batch = raw_rate(
        &mut peers.raw_batch,
        &batch_bytes,
        args.batch_size as u64,
        args.seconds,
        budget,
    );
    let sqlite_batch = sqlite_rate(
        &mut peers.wal_batch,
        &mut peers.seq,
        payloads,
        args.batch_size,
        args.seconds,
        budget,
    );
    peers.verify();
    json!({
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "vouch_single_entries_per_second": single.entries_per_second,
        "vouch_single_p50_us": single.latency_us.p50_us,
        "vouch_single_p99_us": single.latency_us.p99_us,
        "vouch_single_entries_per_group": engine.entries_per_group,
        "vouch_single_fsync_mean_us": engine.fsync_mean_us,
        "raw_single_entries_per_second": raw_single,
        "raw_grouped_frames_per_fsync": group,
        "raw_grouped_entries_per_second": raw_grouped,
        "sqlite_wal_single_entries_per_second": sqlite_wal,
        "sqlite_delete_single_entries_per_second": sqlite_delete,
        "vouch_batch_entries_per_second": batches.entries_per_second,
        "vouch_batch_p99_us": batches.latency_us.p99_us,
        "raw_batch_entries_per_second": raw_batch,
        "sqlite_wal_batch_entries_per_second": sqlite_batch,
        "ratios": {
            "vouch_single_over_sqlite_wal_single": single.entries_per_second / sqlite_wal,
            "vouch_single_over_sqlite_delete_single": single.entries_per_second / sqlite_delete,
            "vouch_single_over_raw_single": single.entries_per_second / raw_single,
            "raw_grouped_over_vouch_single": raw_grouped / single.entries_per_second,
            "vouch_batch_over_sqlite_wal_batch": batches.entries_per_second / sqlite_batch,
            "raw_batch_over_vouch_batch": raw_batch / batches.entries_per_second,
        },
    })
}

const RATES: [(&str, &str); 10] = [
    (
        "vouch_single_entries_per_second",
        "Vouch, single-entry appends (gRPC, group commit)",
    ),
    ("vouch_single_p99_us", "  its p99 latency (µs)"),
    (
        "vouch_single_entries_per_group",
        "  entries per group commit",
    ),
    (
        "raw_single_entries_per_second",
        "raw write+fsync, 1 frame per fdatasync",
    ),
    (
        "raw_grouped_entries_per_second",
        "raw write+fsync, Vouch's group size per fdatasync",
    ),
    (
        "sqlite_wal_single_entries_per_second",
        "SQLite hash chain, 1 entry per transaction, WAL",
    ),
    (
        "sqlite_delete_single_entries_per_second",
        "SQLite hash chain, 1 entry per transaction, rollback journal",
    ),
    (
        "vouch_batch_entries_per_second",
        "Vouch, batches (gRPC AppendBatch)",
    ),
    (
        "raw_batch_entries_per_second",
        "raw write+fsync, a batch per fdatasync",
    ),
    (
        "sqlite_wal_batch_entries_per_second",
        "SQLite hash chain, a batch per transaction, WAL",
    ),
];

const RATIOS: [(&str, &str, &str); 6] = [
    (
        "vouch_single_over_sqlite_wal_single",
        "Vouch single / SQLite chain single (WAL)",
        "≥ 20",
    ),
    (
        "vouch_single_over_sqlite_delete_single",
        "Vouch single / SQLite chain single (rollback journal)",
        "≥ 20",
    ),
    (
        "vouch_single_over_raw_single",
        "Vouch single / raw, 1 frame per fdatasync",
        "",
    ),
    (
        "raw_grouped_over_vouch_single",
        "raw, Vouch's group size / Vouch single",
        "≤ 2",
    ),
    (
        "vouch_batch_over_sqlite_wal_batch",
        "Vouch batches / SQLite chain batches",
        "",
    ),
    (
        "raw_batch_over_vouch_batch",
        "raw batches / Vouch batches",
        "≤ 2",
    ),
];

fn main() {
    let args = Args::parse();
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix("vouch-baselines-")
        .tempdir_in(&parent)
        .expect("create the temporary directory");
    let server = Target::start(&parent);
    let payloads = Payloads::new(args.payload_size, 1);
    let slices: Vec<Value> = (0..args.slices)
        .map(|n| slice(&args, &server, tmp.path(), &payloads, n))
        .collect();
    server.stop();
    let series = |key: &str| -> Vec<f64> {
        slices
            .iter()
            .map(|r| r[key].as_f64().unwrap_or(f64::NAN))
            .collect()
    };
    let ratio_series = |key: &str| -> Vec<f64> {
        slices
            .iter()
            .map(|r| r["ratios"][key].as_f64().unwrap_or(f64::NAN))
            .collect()
    };
    let mut medians = serde_json::Map::new();
    for (key, _) in RATES {
        medians.insert(key.into(), json!(median(&series(key))));
    }
    let mut ratios = serde_json::Map::new();
    for (key, _, _) in RATIOS {
        ratios.insert(key.into(), json!(median(&ratio_series(key))));
    }
    let report = json!({
        "setup": {
            "slices": args.slices,
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "batch_size": args.batch_size,
            "batch_concurrency": args.batch_concurrency,
            "payload_bytes": args.payload_size,
            "cores": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            "vouch_version": env!("CARGO_PKG_VERSION"),
        },
        "medians": medians,
        "ratios": ratios,
        "slices": slices,
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return;
    }
    println!(
        "baselines: {} slices of {} s per measurement, {}-byte payloads, {} cores; medians",
        args.slices, args.seconds, args.payload_size, report["setup"]["cores"]
    );
    println!();
    for (key, name) in RATES {
        let per_slice = series(key)
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  {name:<62} {:>10.0}   ({per_slice})",
            median(&series(key))
        );
    }
    println!();
    println!("ratios (median of the per-slice ratios):");
    for (key, name, target) in RATIOS {
        let per_slice = ratio_series(key)
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  {name:<56} {:>7.2}  target {:<5} ({per_slice})",
            median(&ratio_series(key)),
            if target.is_empty() { "-" } else { target }
        );
    }
    let loads: Vec<String> = slices
        .iter()
        .map(|r| format!("{}→{}", r["load_average_before"], r["load_average_after"]))
        .collect();
    println!();
    println!("load average per slice: {}", loads.join(", "));
}
