//! `storage-bench`: the large-scale figures of the storage engine that criterion is not
//! suited for.
//!
//! It builds a ledger `main` of N entries (10 million by default) of 256-byte JSON payloads
//! with the leaf-hash index (as the server creates ledgers; `--main-without-leaf-index` leaves
//! it out), in large batches, and a ledger `indexed` with the leaf-hash index (1 million
//! entries by default, in small groups), closes them cleanly, and measures: bytes on disk per entry
//! by file, reopen time (median of several clean reopens of each, and of `main` after a child
//! process appending to it is killed with SIGKILL), inclusion and consistency proof latency
//! (median and p99 over random targets, with and without `self_check_proofs`), and full
//! verification throughput (online and offline). It prints a table, or JSON with `--json`,
//! and progress on stderr. Builds stop early if the process's resident memory passes a bound.
//! Everything lives in a temporary directory that is removed at the end unless `--keep` is
//! given.
//!
//! Run with `cargo run --release -p vouch-benches --bin storage-bench -- --help`; results
//! are in `docs/benchmarks.md`.

/// The allocator the `vouch` binary uses, so that what is measured is what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use vouch_benches::workload::{self, CONTENT_TYPE, PAYLOAD_LEN, RawLog};
use vouch_ledger_core::{EntryIndex, HashAlg, TreeSize};
use vouch_storage::{DataDir, Durability, Ledger, LedgerOptions, StatsSnapshot};

/// The large ledger (with the leaf-hash index unless `--main-without-leaf-index`).
const MAIN: &str = "main";
/// The ledger with the leaf-hash index (the default configuration).
const INDEXED: &str = "indexed";

/// Entries per submit in the append phase.
const BATCHES: [usize; 4] = [1, 10, 100, 1000];

/// Appending threads in the append phase.
const THREADS: [usize; 3] = [1, 8, 64];

#[derive(Debug, Parser)]
#[command(
    name = "storage-bench",
    about = "Large-scale benchmarks of Vouch's storage engine: reopen, proofs, bytes per entry, verification"
)]
struct Args {
    /// Entries in the ledger `main`.
    #[arg(long, default_value_t = 10_000_000)]
    entries: u64,
    /// Entries per submitted batch while building `main` (four batches in flight).
    #[arg(long, default_value_t = 4096)]
    build_batch: usize,
    /// Build `main` without the leaf-hash index.
    #[arg(long)]
    main_without_leaf_index: bool,
    /// Entries in the ledger `indexed` (with the leaf-hash index); 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    indexed_entries: u64,
    /// Entries per submitted batch while building `indexed` (one batch in flight, so this is
    /// also the group size).
    #[arg(long, default_value_t = 100)]
    indexed_batch: usize,
    /// Stop a build when the resident memory of this process passes this many MiB.
    #[arg(long, default_value_t = 8192)]
    max_rss_mib: u64,
    /// The hash function of the ledgers.
    #[arg(long, value_enum, default_value_t = Hash::Blake3)]
    hash: Hash,
    /// Durability mode while building; measurements reopen with the default (fsync).
    #[arg(long, value_enum, default_value_t = BuildDurability::None)]
    build_durability: BuildDurability,
    /// Directory that holds the temporary data directory (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Clean reopens to time.
    #[arg(long, default_value_t = 7)]
    reopens: usize,
    /// Crash-and-reopen cycles (a child appending with fsync durability is killed).
    #[arg(long, default_value_t = 3)]
    crashes: usize,
    /// Proofs to time per series (four series per self-check setting).
    #[arg(long, default_value_t = 100_000)]
    proofs: usize,
    /// Rounds of the append phase; each round times a raw write+fsync loop and then the
    /// engine over the same bytes, so that both see the same disk.
    #[arg(long, default_value_t = 10)]
    append_rounds: usize,
    /// Full verifications to time, online and offline each.
    #[arg(long, default_value_t = 1)]
    verify_runs: usize,
    /// Stop a timed series (proofs, reopens) after this many seconds.
    #[arg(long, default_value_t = 30)]
    series_seconds: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Keep the data directory and print its path.
    #[arg(long)]
    keep: bool,
    /// Reuse a data directory kept by an earlier `--keep` run instead of building one (the
    /// build and bytes phases are skipped; `--entries` must match the kept ledger).
    #[arg(long)]
    reuse: Option<PathBuf>,
    /// Phases to run after the build, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Phase::all())]
    phases: Vec<Phase>,
    /// The ledger the crash phase kills an appender of and reopens.
    #[arg(long, value_enum, default_value_t = CrashLedger::Main)]
    crash_ledger: CrashLedger,
    /// Internal: append to the `--crash-ledger` ledger in this data directory until killed.
    #[arg(long, hide = true)]
    crash_child: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BuildDurability {
    /// `Durability::NoneUnsafe` (a final sync happens at close).
    None,
    /// `Durability::Interval` of 100 ms.
    Interval,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CrashLedger {
    /// The large ledger.
    Main,
    /// The ledger with the leaf-hash index.
    Indexed,
}

impl CrashLedger {
    fn name(self) -> &'static str {
        match self {
            CrashLedger::Main => MAIN,
            CrashLedger::Indexed => INDEXED,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Hash {
    /// BLAKE3, the default.
    Blake3,
    /// SHA-256 (RFC 6962 mode).
    Sha256,
}

impl Hash {
    fn alg(self) -> HashAlg {
        match self {
            Hash::Blake3 => HashAlg::Blake3,
            Hash::Sha256 => HashAlg::Sha256,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Durable appends, interleaved with a raw write+fsync loop over the same bytes.
    Append,
    /// Time clean reopens.
    Reopen,
    /// Time inclusion and consistency proofs.
    Proofs,
    /// Time full verifications.
    Verify,
    /// Kill an appending child and time the reopen.
    Crash,
}

impl Phase {
    fn all() -> Vec<Phase> {
        vec![
            Phase::Append,
            Phase::Reopen,
            Phase::Proofs,
            Phase::Verify,
            Phase::Crash,
        ]
    }
}

impl BuildDurability {
    fn mode(self) -> Durability {
        match self {
            BuildDurability::None => Durability::NoneUnsafe,
            BuildDurability::Interval => Durability::Interval(Duration::from_millis(100)),
        }
    }
}

fn main() {
    let args = Args::parse();
    if let Some(dir) = &args.crash_child {
        crash_child(dir, args.crash_ledger.name());
        return;
    }
    if let Some(root) = &args.reuse {
        let report = run(&args, root, false);
        output(&args, &report);
        return;
    }
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix("vouch-storage-bench-")
        .tempdir_in(&parent)
        .expect("create the temporary data directory");
    let root = tmp.path().to_path_buf();
    note(&format!("data directory: {}", root.display()));
    let report = run(&args, &root, true);
    output(&args, &report);
    if args.keep {
        let kept = tmp.keep();
        note(&format!("kept {}", kept.display()));
    }
}

fn output(args: &Args, report: &Value) {
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else {
        print_table(report);
    }
}

fn note(msg: &str) {
    eprintln!("[storage-bench] {msg}");
}

fn run(args: &Args, root: &Path, fresh: bool) -> Value {
    let dd = DataDir::open(root).expect("open the data directory");
    let mut report = serde_json::Map::new();
    report.insert(
        "setup".into(),
        json!({
            "entries": args.entries,
            "payload_bytes": PAYLOAD_LEN,
            "content_type": CONTENT_TYPE,
            "envelope_bytes": workload::envelope_len(),
            "hash": args.hash.alg().name(),
            "build_durability": args.build_durability.mode().to_string(),
            "data_dir": root.display().to_string(),
        }),
    );

    if fresh {
        build_phase(args, root, &dd, &mut report);
    }
    let has = |p| args.phases.contains(&p);
    if has(Phase::Append) {
        report.insert("append_fsync".into(), appends(&dd, root, args));
    }
    if has(Phase::Reopen) {
        let mut reopens = serde_json::Map::new();
        for name in [MAIN, INDEXED] {
            if dd.has_ledger(name) {
                reopens.insert(name.into(), reopen_clean(&dd, name, args));
            }
        }
        report.insert("reopen_clean".into(), Value::Object(reopens));
    }
    if has(Phase::Proofs) {
        report.insert("proofs".into(), proofs(&dd, args));
    }
    if has(Phase::Verify) {
        report.insert("verify".into(), verify(&dd, root, args));
    }
    if has(Phase::Crash) {
        report.insert(
            "reopen_after_kill".into(),
            reopen_after_kill(&dd, root, args),
        );
    }
    Value::Object(report)
}

/// Builds both ledgers and measures their bytes on disk.
fn build_phase(
    args: &Args,
    root: &Path,
    dd: &DataDir,
    report: &mut serde_json::Map<String, Value>,
) {
    let mut bytes = serde_json::Map::new();
    let plan = [
        (
            MAIN,
            !args.main_without_leaf_index,
            args.entries,
            args.build_batch,
            4,
        ),
        (INDEXED, true, args.indexed_entries, args.indexed_batch, 1),
    ];
    for (name, leaf_index, entries, batch, in_flight) in plan {
        if entries == 0 {
            continue;
        }
        let built = build(dd, name, leaf_index, entries, batch, in_flight, args);
        let appended = built["entries"].as_u64().unwrap_or(0);
        report.insert(format!("build_{name}"), built);
        bytes.insert(
            name.into(),
            disk_usage(&root.join("ledgers").join(name), appended),
        );
    }
    report.insert("bytes_per_entry".into(), Value::Object(bytes));
}

/// Appends timed per submit of `batch` entries, `ops` per round.
fn ops_per_round(batch: usize) -> usize {
    match batch {
        1 | 10 => 30,
        100 => 20,
        _ => 10,
    }
}

/// Durable appends (`Durability::Fsync`) at every batch size and with concurrent appenders,
/// each round timing the raw loop and then the engine, into fresh ledgers with and without
/// the leaf-hash index.
fn appends(dd: &DataDir, root: &Path, args: &Args) -> Value {
    let raw_dir = root.join("raw");
    std::fs::create_dir_all(&raw_dir).expect("create the raw log directory");
    let mut out = serde_json::Map::new();
    for leaf_index in [false, true] {
        let name = if leaf_index {
            "append-indexed"
        } else {
            "append-plain"
        };
        let ledger = if dd.has_ledger(name) {
            dd.open_ledger(name, workload::signer(), fsync_options(true))
                .expect("open")
        } else {
            workload::create_and_open(
                dd,
                name,
                &workload::config(args.hash.alg(), leaf_index),
                fsync_options(true),
            )
        };
        let mut raw = RawLog::create(&raw_dir.join(format!("{name}.log"))).expect("raw log");
        let mut batches = Vec::new();
        for batch in BATCHES {
            note(&format!(
                "append: leaf-hash index {}, batches of {batch}, {} rounds",
                if leaf_index { "on" } else { "off" },
                args.append_rounds
            ));
            let bytes = workload::group_bytes(batch);
            let ops = ops_per_round(batch);
            let (mut raw_ns, mut vouch_ns) = (Vec::new(), Vec::new());
            let before = ledger.stats();
            for _ in 0..args.append_rounds {
                for _ in 0..ops {
                    let t = Instant::now();
                    raw.append(&bytes, true).expect("raw append");
                    raw_ns.push(ns(t.elapsed()));
                }
                for _ in 0..ops {
                    let drafts = workload::drafts(0, batch);
                    let t = Instant::now();
                    let ticket = ledger.submit(drafts, false).expect("submit");
                    black_box(ticket.wait().expect("append"));
                    vouch_ns.push(ns(t.elapsed()));
                }
            }
            let (r, v) = (median(&raw_ns), median(&vouch_ns));
            let per_s = |op_ns: f64| to_f64(batch as u64) * 1e9 / op_ns;
            let (fsync_us, commit_us) = commit_means(&before, &ledger.stats());
            batches.push(json!({
                "batch": batch,
                "submits": vouch_ns.len(),
                "vouch_fsync_mean_us": fsync_us,
                "vouch_group_commit_mean_us": commit_us,
                "raw_median_us": r / 1e3,
                "vouch_median_us": v / 1e3,
                "raw_entries_per_second": per_s(r),
                "vouch_entries_per_second": per_s(v),
                "ratio": v / r,
            }));
        }
        let ledger = Arc::new(ledger);
        let mut concurrent = Vec::new();
        for threads in THREADS {
            note(&format!(
                "append: leaf-hash index {}, {threads} threads appending single entries, {} rounds",
                if leaf_index { "on" } else { "off" },
                args.append_rounds
            ));
            let bytes = workload::group_bytes(threads);
            let (mut raw_ns, mut vouch_ns) = (Vec::new(), Vec::new());
            let before = ledger.stats();
            for _ in 0..args.append_rounds {
                for _ in 0..10 {
                    let t = Instant::now();
                    raw.append(&bytes, true).expect("raw append");
                    raw_ns.push(ns(t.elapsed()) / to_f64(threads as u64));
                }
                let per_thread = 16;
                let took = workload::concurrent_round(&ledger, threads, per_thread);
                vouch_ns.push(ns(took) / to_f64((threads * per_thread) as u64));
            }
            let after = ledger.stats();
            let (fsync_us, commit_us) = commit_means(&before, &after);
            let groups = after.group_commits - before.group_commits;
            let entries = after.entries_appended - before.entries_appended;
            let (r, v) = (median(&raw_ns), median(&vouch_ns));
            concurrent.push(json!({
                "threads": threads,
                "raw_per_entry_us": r / 1e3,
                "vouch_per_entry_us": v / 1e3,
                "raw_entries_per_second": 1e9 / r,
                "vouch_entries_per_second": 1e9 / v,
                "ratio": v / r,
                "entries_per_group": to_f64(entries) / to_f64(groups.max(1)),
                "vouch_fsync_mean_us": fsync_us,
                "vouch_group_commit_mean_us": commit_us,
            }));
        }
        if let Ok(ledger) = Arc::try_unwrap(ledger) {
            ledger.close();
        }
        out.insert(
            name.into(),
            json!({ "leaf_hash_index": leaf_index, "batches": batches, "concurrent": concurrent }),
        );
    }
    let _ = std::fs::remove_dir_all(&raw_dir);
    Value::Object(out)
}

/// The mean `fdatasync` and the mean whole group commit (write, sync, derived files, index,
/// acknowledgement) of the sequencer between two snapshots of its counters, in µs.
fn commit_means(before: &StatsSnapshot, after: &StatsSnapshot) -> (f64, f64) {
    let mean = |sum: Duration, count: u64| sum.as_secs_f64() * 1e6 / to_f64(count.max(1));
    (
        mean(
            after.fsync.sum.saturating_sub(before.fsync.sum),
            after.fsync.count - before.fsync.count,
        ),
        mean(
            after
                .group_commit
                .sum
                .saturating_sub(before.group_commit.sum),
            after.group_commit.count - before.group_commit.count,
        ),
    )
}

fn fsync_options(self_check: bool) -> LedgerOptions {
    LedgerOptions {
        self_check_proofs: self_check,
        ..workload::options(Durability::Fsync)
    }
}

/// The resident memory of this process, in MiB.
fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| (pages * 4096) >> 20)
}

fn build(
    dd: &DataDir,
    name: &str,
    leaf_index: bool,
    entries: u64,
    batch: usize,
    in_flight: usize,
    args: &Args,
) -> Value {
    note(&format!(
        "building ledger {name:?} (leaf-hash index {}): {entries} entries, batches of {batch} ({in_flight} in flight), durability {}",
        if leaf_index { "on" } else { "off" },
        args.build_durability.mode()
    ));
    let started = Instant::now();
    let ledger = workload::create_and_open(
        dd,
        name,
        &workload::config(args.hash.alg(), leaf_index),
        workload::options(args.build_durability.mode()),
    );
    let mut last = Instant::now();
    let mut peak_rss = 0;
    let mut stopped = None;
    let appended = workload::load(&ledger, entries, batch, in_flight, &mut |done| {
        if last.elapsed() < Duration::from_secs(2) {
            return true;
        }
        last = Instant::now();
        let rss = rss_mib();
        peak_rss = peak_rss.max(rss);
        let secs = started.elapsed().as_secs_f64();
        note(&format!(
            "  {done}/{entries} entries, {:.0} entries/s, resident memory {rss} MiB",
            to_f64(done) / secs
        ));
        if rss > args.max_rss_mib {
            stopped = Some(format!(
                "stopped after {done} entries: resident memory {rss} MiB passed --max-rss-mib {}",
                args.max_rss_mib
            ));
            return false;
        }
        true
    });
    peak_rss = peak_rss.max(rss_mib());
    let append_time = started.elapsed();
    let close_started = Instant::now();
    ledger.close();
    drop(ledger);
    let close = close_started.elapsed();
    let total = started.elapsed();
    if let Some(why) = &stopped {
        note(&format!("  {why}"));
    }
    note(&format!(
        "  built in {:.1} s ({:.0} entries/s), close {:.0} ms, peak resident memory {peak_rss} MiB",
        total.as_secs_f64(),
        to_f64(appended) / total.as_secs_f64(),
        ms(close)
    ));
    json!({
        "entries": appended,
        "requested_entries": entries,
        "stopped_early": stopped,
        "leaf_hash_index": leaf_index,
        "batch": batch,
        "in_flight": in_flight,
        "append_seconds": append_time.as_secs_f64(),
        "close_ms": ms(close),
        "entries_per_second": to_f64(appended) / total.as_secs_f64(),
        "peak_rss_mib": peak_rss,
    })
}

/// Apparent and allocated bytes of each part of a ledger directory.
fn disk_usage(dir: &Path, entries: u64) -> Value {
    let parts = [
        "segments",
        "offsets.dat",
        "tree",
        "leaf-index",
        "sled",
        "checkpoints.dat",
    ];
    let mut rows = Vec::new();
    let (mut total_len, mut total_alloc) = (0u64, 0u64);
    let mut other = (0u64, 0u64);
    for entry in std::fs::read_dir(dir).expect("list the ledger directory") {
        let entry = entry.expect("list the ledger directory");
        let name = entry.file_name().to_string_lossy().into_owned();
        let (len, alloc) = du(&entry.path());
        total_len += len;
        total_alloc += alloc;
        if !parts.contains(&name.as_str()) {
            other.0 += len;
            other.1 += alloc;
        }
    }
    for part in parts {
        let (len, alloc) = du(&dir.join(part));
        rows.push(json!({
            "part": part,
            "bytes": len,
            "allocated_bytes": alloc,
            "per_entry": to_f64(len) / to_f64(entries),
            "allocated_per_entry": to_f64(alloc) / to_f64(entries),
        }));
    }
    rows.push(json!({
        "part": "other (ledger.json, index.head, LOCK)",
        "bytes": other.0,
        "allocated_bytes": other.1,
        "per_entry": to_f64(other.0) / to_f64(entries),
        "allocated_per_entry": to_f64(other.1) / to_f64(entries),
    }));
    let payload = entries * PAYLOAD_LEN as u64;
    json!({
        "entries": entries,
        "parts": rows,
        "total_bytes": total_len,
        "total_allocated_bytes": total_alloc,
        "beyond_payload_per_entry": (to_f64(total_len) - to_f64(payload)) / to_f64(entries),
        "allocated_beyond_payload_per_entry": (to_f64(total_alloc) - to_f64(payload)) / to_f64(entries),
    })
}

/// (apparent length, allocated bytes) of a file or directory tree.
fn du(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return (0, 0);
    };
    if meta.is_dir() {
        let mut sum = (0, 0);
        for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
            let (l, a) = du(&e.path());
            sum.0 += l;
            sum.1 += a;
        }
        sum
    } else {
        (meta.len(), meta.blocks() * 512)
    }
}

fn reopen_clean(dd: &DataDir, name: &str, args: &Args) -> Value {
    note(&format!(
        "timing {} clean reopens of {name:?}",
        args.reopens
    ));
    let deadline = Instant::now() + Duration::from_secs(args.series_seconds);
    let (mut opens, mut closes) = (Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..args.reopens {
        let t = Instant::now();
        let ledger = dd
            .open_ledger(name, workload::signer(), fsync_options(true))
            .expect("reopen");
        opens.push(t.elapsed());
        size = ledger.size().0;
        let t = Instant::now();
        ledger.close();
        drop(ledger);
        closes.push(t.elapsed());
        if Instant::now() > deadline {
            break;
        }
    }
    let open_ms: Vec<f64> = opens.iter().copied().map(ms).collect();
    note(&format!(
        "  open median {:.1} ms (samples {:?})",
        median(&open_ms),
        rounded(&open_ms)
    ));
    json!({
        "entries": size,
        "samples": open_ms.len(),
        "open_ms_median": median(&open_ms),
        "open_ms": open_ms,
        "close_ms_median": median(&closes.iter().copied().map(ms).collect::<Vec<_>>()),
    })
}

/// Latency statistics of a series, in nanoseconds.
fn stats(mut ns: Vec<f64>) -> Value {
    ns.sort_by(f64::total_cmp);
    json!({
        "count": ns.len(),
        "median_ns": percentile(&ns, 50.0),
        "p99_ns": percentile(&ns, 99.0),
        "max_ns": ns.last().copied().unwrap_or(0.0),
    })
}

/// Times `f(0..count)` one call at a time, after an untimed pass over the same arguments
/// (so that the pages they touch are in the page cache and mapped: the figures are for a
/// warm ledger). Each pass stops after `seconds`.
fn timed_series(count: usize, seconds: u64, mut f: impl FnMut(usize)) -> Vec<f64> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    for i in 0..count {
        f(i);
        if i % 4096 == 0 && Instant::now() > deadline {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let t = Instant::now();
        f(i);
        out.push(ns(t.elapsed()));
        if i % 4096 == 0 && Instant::now() > deadline {
            break;
        }
    }
    out
}

fn proofs(dd: &DataDir, args: &Args) -> Value {
    let mut out = serde_json::Map::new();
    // What a bare `Instant::now()` pair costs, to read the latencies against.
    let timer = timed_series(100_000, 5, |i| {
        black_box(i);
    });
    out.insert("timer_overhead".into(), stats(timer));
    for self_check in [false, true] {
        let ledger = dd
            .open_ledger(MAIN, workload::signer(), fsync_options(self_check))
            .expect("reopen");
        let size = ledger.size();
        note(&format!(
            "timing proofs at size {size}, self_check_proofs = {self_check}"
        ));
        let mut series = serde_json::Map::new();
        let indexes = workload::targets(size.0, args.proofs, 1);
        let inclusion = timed_series(indexes.len(), args.series_seconds, |i| {
            let p = ledger
                .inclusion_proof(EntryIndex(indexes[i]), size)
                .expect("inclusion proof");
            black_box(p);
        });
        series.insert("inclusion_at_latest_size".into(), stats(inclusion));
        // Older tree sizes (no checkpoint at most of them).
        let sizes = workload::targets(size.0, args.proofs, 2);
        let inclusion_old = timed_series(indexes.len(), args.series_seconds, |i| {
            let at = sizes[i] + 1;
            let p = ledger
                .inclusion_proof(EntryIndex(indexes[i] % at), TreeSize(at))
                .expect("inclusion proof");
            black_box(p);
        });
        series.insert("inclusion_at_random_size".into(), stats(inclusion_old));
        let consistency = timed_series(sizes.len(), args.series_seconds, |i| {
            let p = ledger
                .consistency_proof(TreeSize(sizes[i] + 1), size)
                .expect("consistency proof");
            black_box(p);
        });
        series.insert("consistency_to_latest_size".into(), stats(consistency));
        let news = workload::targets(size.0, args.proofs, 3);
        let consistency_old = timed_series(sizes.len(), args.series_seconds, |i| {
            let (a, b) = (sizes[i] + 1, news[i] + 1);
            let p = ledger
                .consistency_proof(TreeSize(a.min(b)), TreeSize(a.max(b)))
                .expect("consistency proof");
            black_box(p);
        });
        series.insert(
            "consistency_between_random_sizes".into(),
            stats(consistency_old),
        );
        ledger.close();
        out.insert(
            if self_check {
                "self_check_on".into()
            } else {
                "self_check_off".into()
            },
            Value::Object(series),
        );
    }
    Value::Object(out)
}

fn verify(dd: &DataDir, root: &Path, args: &Args) -> Value {
    let mut online = Vec::new();
    let mut offline = Vec::new();
    let mut envelope_bytes = 0;
    let mut entries = 0;
    for run in 0..args.verify_runs {
        note(&format!("verifying {MAIN:?} online (run {})", run + 1));
        let ledger = dd
            .open_ledger(MAIN, workload::signer(), fsync_options(true))
            .expect("reopen");
        let report = ledger.verify(&mut verify_progress()).expect("verify");
        entries = report.entries;
        envelope_bytes = report.envelope_bytes;
        online.push(to_f64(report.entries) / report.elapsed.as_secs_f64());
        note(&format!(
            "  {} entries in {:.2} s",
            report.entries,
            report.elapsed.as_secs_f64()
        ));
        ledger.close();
        drop(ledger);
        note(&format!("verifying {MAIN:?} offline (run {})", run + 1));
        let report = vouch_storage::verify_ledger_dir(root, MAIN, &mut verify_progress())
            .expect("verify offline");
        offline.push(to_f64(report.entries) / report.elapsed.as_secs_f64());
        note(&format!(
            "  {} entries in {:.2} s",
            report.entries,
            report.elapsed.as_secs_f64()
        ));
    }
    let mb = |rate: f64| rate * to_f64(envelope_bytes) / to_f64(entries.max(1)) / 1e6;
    json!({
        "entries": entries,
        "online_entries_per_second_median": median(&online),
        "online_envelope_mb_per_second_median": mb(median(&online)),
        "offline_entries_per_second_median": median(&offline),
        "offline_envelope_mb_per_second_median": mb(median(&offline)),
        "online_entries_per_second": online,
        "offline_entries_per_second": offline,
    })
}

fn verify_progress() -> impl FnMut(&vouch_storage::VerifyProgress) {
    let mut last = Instant::now();
    move |p| {
        if last.elapsed() >= Duration::from_secs(2) {
            last = Instant::now();
            note(&format!("  {} entries verified", p.entries));
        }
    }
}

/// The `covered` size recorded in a ledger's `index.head` (see `docs/format.md`).
fn head_covered(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join("index.head")).ok()?;
    Some(u64::from_le_bytes(bytes.get(16..24)?.try_into().ok()?))
}

fn reopen_after_kill(dd: &DataDir, root: &Path, args: &Args) -> Value {
    let name = args.crash_ledger.name();
    let mut cycles = Vec::new();
    let exe = std::env::current_exe().expect("the benchmark's own path");
    for cycle in 0..args.crashes {
        let before = {
            let l = dd
                .open_ledger(name, workload::signer(), fsync_options(true))
                .expect("reopen");
            l.size().0
        };
        // Vary how long the child runs so that the kill lands at different points of the
        // one-second index-head cadence.
        let run_for = Duration::from_millis(1300 + 350 * cycle as u64);
        note(&format!(
            "crash cycle {}: a child appends with fsync durability for {} ms, then SIGKILL",
            cycle + 1,
            run_for.as_millis()
        ));
        let mut child = Command::new(&exe)
            .arg("--crash-child")
            .arg(root)
            .arg("--crash-ledger")
            .arg(format!("{:?}", args.crash_ledger).to_lowercase())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("acked ").and_then(|n| n.parse().ok()) {
                    let _ = tx.send(n);
                }
            }
        });
        // Wait for the first acknowledgement, then let it run.
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child appends");
        std::thread::sleep(run_for);
        child.kill().expect("kill the child");
        let _ = child.wait();
        let _ = reader.join();
        let acked = rx.try_iter().last().unwrap_or(first);
        let dir = root.join("ledgers").join(name);
        let covered = head_covered(&dir).unwrap_or(0);
        let t = Instant::now();
        let ledger = dd
            .open_ledger(name, workload::signer(), fsync_options(true))
            .expect("reopen after the kill");
        let open = t.elapsed();
        let size = ledger.size().0;
        assert!(
            size >= acked,
            "acknowledged entries were lost: the child acknowledged {acked} entries, the ledger holds {size}"
        );
        ledger.close();
        drop(ledger);
        note(&format!(
            "  reopen {:.1} ms; {} entries appended by the child, {} acknowledged, {} rescanned past the index head",
            ms(open),
            size - before,
            acked - before,
            size - covered
        ));
        cycles.push(json!({
            "open_ms": ms(open),
            "appended_by_child": size - before,
            "acknowledged_by_child": acked - before,
            "tail_rescanned": size - covered,
            "size_after": size,
        }));
    }
    let opens: Vec<f64> = cycles
        .iter()
        .filter_map(|c| c["open_ms"].as_f64())
        .collect();
    json!({
        "ledger": name,
        "cycles": cycles,
        "open_ms_median": median(&opens),
    })
}

/// The child of a crash cycle: appends batches of 1000 with fsync durability and reports each
/// acknowledged size on stdout until it is killed.
fn crash_child(root: &Path, name: &str) {
    let dd = DataDir::open(root).expect("open the data directory");
    let ledger: Ledger = dd
        .open_ledger(name, workload::signer(), fsync_options(true))
        .expect("open the ledger");
    let mut out = std::io::stdout().lock();
    let mut next = ledger.size().0;
    loop {
        let ticket = ledger
            .submit(workload::drafts(next, 1000), false)
            .expect("submit");
        let outcome = ticket.wait().expect("append");
        next = outcome.receipts.last().map_or(next, |r| r.index.0 + 1);
        if writeln!(out, "acked {next}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}

fn print_table(r: &Value) {
    let s = &r["setup"];
    println!(
        "storage-bench: {} entries, {}-byte payloads ({}), envelope {} bytes, {}",
        s["entries"], s["payload_bytes"], CONTENT_TYPE, s["envelope_bytes"], s["hash"]
    );
    if !r["bytes_per_entry"].is_null() {
        print_build(r);
    }
    if !r["reopen_clean"].is_null() || !r["reopen_after_kill"].is_null() {
        print_reopen(r);
    }
    if !r["append_fsync"].is_null() {
        print_appends(&r["append_fsync"]);
    }
    if !r["proofs"].is_null() {
        print_proofs(&r["proofs"]);
    }
    let v = &r["verify"];
    if !v.is_null() {
        println!();
        println!(
            "full verification of {} entries: online {:.0} entries/s ({:.0} MB/s of envelopes), offline {:.0} entries/s ({:.0} MB/s)",
            v["entries"],
            f(&v["online_entries_per_second_median"]),
            f(&v["online_envelope_mb_per_second_median"]),
            f(&v["offline_entries_per_second_median"]),
            f(&v["offline_envelope_mb_per_second_median"])
        );
    }
}

fn print_build(r: &Value) {
    println!();
    println!("build (durability {}):", r["setup"]["build_durability"]);
    for name in [MAIN, INDEXED] {
        let b = &r[format!("build_{name}")];
        if b.is_null() {
            continue;
        }
        println!(
            "  {name:<8} leaf-hash index {:<5} {:>10} entries  batches of {:>5}  {:>8.0} entries/s  close {:>7.1} ms  peak RSS {:>6} MiB",
            b["leaf_hash_index"],
            b["entries"],
            b["batch"],
            f(&b["entries_per_second"]),
            f(&b["close_ms"]),
            b["peak_rss_mib"]
        );
        if let Some(why) = b["stopped_early"].as_str() {
            println!("    {why}");
        }
    }
    println!();
    println!("bytes on disk per entry (apparent / allocated):");
    for (name, b) in r["bytes_per_entry"].as_object().into_iter().flatten() {
        println!("  ledger {name:?} ({} entries):", b["entries"]);
        for p in b["parts"].as_array().into_iter().flatten() {
            println!(
                "    {:<40} {:>8.2} / {:>8.2}",
                p["part"].as_str().unwrap_or(""),
                f(&p["per_entry"]),
                f(&p["allocated_per_entry"])
            );
        }
        println!(
            "    {:<40} {:>8.2} / {:>8.2}",
            "beyond the 256-byte payload",
            f(&b["beyond_payload_per_entry"]),
            f(&b["allocated_beyond_payload_per_entry"])
        );
    }
}

fn print_reopen(r: &Value) {
    println!();
    for (name, ro) in r["reopen_clean"].as_object().into_iter().flatten() {
        println!(
            "reopen of {name:?} ({} entries) after a clean close: median {:.1} ms over {} (close median {:.1} ms)",
            ro["entries"],
            f(&ro["open_ms_median"]),
            ro["samples"],
            f(&ro["close_ms_median"])
        );
    }
    let rk = &r["reopen_after_kill"];
    if !rk.is_null() {
        println!(
            "reopen of {} after SIGKILL of an appending child: median {:.1} ms",
            rk["ledger"],
            f(&rk["open_ms_median"])
        );
        for c in rk["cycles"].as_array().into_iter().flatten() {
            println!(
                "  {:>8.1} ms  tail rescanned {:>7}  acknowledged by the child {:>7}",
                f(&c["open_ms"]),
                c["tail_rescanned"],
                c["acknowledged_by_child"]
            );
        }
    }
}

fn print_appends(a: &Value) {
    for (name, l) in a.as_object().into_iter().flatten() {
        println!();
        println!(
            "durable appends (fsync), ledger {name:?} (leaf-hash index {}); medians, ratio = vouch / raw time:",
            l["leaf_hash_index"]
        );
        println!(
            "  {:<22} {:>10} {:>10} {:>13} {:>15} {:>6} {:>12} {:>13}",
            "batch",
            "raw µs",
            "vouch µs",
            "raw entries/s",
            "vouch entries/s",
            "ratio",
            "fsync mean",
            "commit mean"
        );
        for b in l["batches"].as_array().into_iter().flatten() {
            println!(
                "  {:<22} {:>10.0} {:>10.0} {:>13.0} {:>15.0} {:>6.2} {:>12.0} {:>13.0}",
                b["batch"].to_string(),
                f(&b["raw_median_us"]),
                f(&b["vouch_median_us"]),
                f(&b["raw_entries_per_second"]),
                f(&b["vouch_entries_per_second"]),
                f(&b["ratio"]),
                f(&b["vouch_fsync_mean_us"]),
                f(&b["vouch_group_commit_mean_us"])
            );
        }
        for c in l["concurrent"].as_array().into_iter().flatten() {
            println!(
                "  {:<22} {:>10.0} {:>10.0} {:>13.0} {:>15.0} {:>6.2} {:>12.0} {:>13.0}  ({:.1} entries per group)",
                format!("{} threads (per entry)", c["threads"]),
                f(&c["raw_per_entry_us"]),
                f(&c["vouch_per_entry_us"]),
                f(&c["raw_entries_per_second"]),
                f(&c["vouch_entries_per_second"]),
                f(&c["ratio"]),
                f(&c["vouch_fsync_mean_us"]),
                f(&c["vouch_group_commit_mean_us"]),
                f(&c["entries_per_group"])
            );
        }
    }
}

fn print_proofs(p: &Value) {
    println!();
    println!(
        "proof latency (ns; timer overhead median {:.0}):",
        f(&p["timer_overhead"]["median_ns"])
    );
    println!(
        "  {:<36} {:>10} {:>10} {:>10} {:>10}",
        "", "check off", "p99", "check on", "p99"
    );
    for series in [
        "inclusion_at_latest_size",
        "inclusion_at_random_size",
        "consistency_to_latest_size",
        "consistency_between_random_sizes",
    ] {
        let off = &p["self_check_off"][series];
        let on = &p["self_check_on"][series];
        println!(
            "  {:<36} {:>10.0} {:>10.0} {:>10.0} {:>10.0}",
            series,
            f(&off["median_ns"]),
            f(&off["p99_ns"]),
            f(&on["median_ns"]),
            f(&on["p99_ns"])
        );
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Lossy conversion for reporting; counts in benchmarks stay far below 2^52.
#[allow(clippy::cast_precision_loss)]
fn to_f64(n: u64) -> f64 {
    n as f64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

fn rounded(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 10.0).round() / 10.0).collect()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    percentile(&s, 50.0)
}

/// The nearest-rank percentile of sorted values.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
