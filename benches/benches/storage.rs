//! Criterion benchmarks of the storage engine (`vouch-storage`), with a raw write+fsync loop
//! over the very same bytes as the baseline in the same group.
//!
//! Every entry has a 256-byte JSON payload and content type `application/json`; ledgers use
//! BLAKE3 (the default; the proof and verification groups also SHA-256) and the default
//! options except the durability mode. Groups:
//!
//! - `append_fsync`: durable appends (`Durability::Fsync`) of batches of 1, 10, 100 and 1000
//!   entries per submit, with and without the leaf-hash index, next to `raw_write_fsync`: one
//!   positional write of the identical frame bytes the engine writes for such a group (read
//!   back from a segment), then `fdatasync`, in a loop.
//! - `append_fsync_concurrent`: single-entry durable appends from 1, 8 and 64 threads at
//!   once (16 each per iteration, timed from the moment all threads are ready), next to
//!   `raw_write_fsync` of as many frames per write (what perfect group commit would do).
//! - `append_interval_10ms` and `append_none_unsafe`: the same batches with
//!   `Durability::Interval(10 ms)` and `Durability::NoneUnsafe` (benchmarks only: nothing is
//!   synced on the append path), the latter next to `raw_write_nosync`.
//! - `proof_1m/{blake3,sha256}`: inclusion and consistency proofs at the latest size of a
//!   1,000,000-entry ledger, with and without `LedgerOptions::self_check_proofs`.
//! - `verify_1m/{blake3,sha256}`: full verification (`Ledger::verify`) of that ledger.
//!
//! Ledgers live in temporary directories under the system temp dir (set `TMPDIR` to move
//! them), removed at the end. Run with `cargo bench -p vouch-benches --bench storage`;
//! results are in `docs/benchmarks.md`, the 10M-entry figures come from the `storage-bench`
//! binary.

/// The allocator the `vouch` binary uses, so that what is measured is what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{
    BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use tempfile::TempDir;
use vouch_benches::workload::{self, RawLog};
use vouch_ledger_core::{EntryIndex, HashAlg, TreeSize};
use vouch_storage::{DataDir, Durability, Ledger, LedgerOptions, StatsSnapshot};

/// Entries per submit in the batch benchmarks.
const BATCHES: [usize; 4] = [1, 10, 100, 1000];

/// Submitting threads in the concurrency benchmark.
const THREADS: [usize; 3] = [1, 8, 64];

/// Single-entry appends each thread makes per iteration of the concurrency benchmark.
const PER_THREAD: usize = 16;

/// Entries in the ledger of the proof and verification benchmarks.
const PROOF_LEDGER: u64 = 1_000_000;

/// Distinct proof targets cycled through.
const TARGETS: usize = 4096;

/// A fresh data directory with one open ledger.
fn fresh(leaf_hash_index: bool, options: LedgerOptions) -> (TempDir, Ledger) {
    let dir = tempfile::Builder::new()
        .prefix("vouch-bench-storage-")
        .tempdir()
        .expect("temporary directory");
    let dd = DataDir::open(dir.path()).expect("data directory");
    let config = workload::config(HashAlg::Blake3, leaf_hash_index);
    let ledger = workload::create_and_open(&dd, "bench", &config, options);
    (dir, ledger)
}

fn append_batch(ledger: &Ledger, drafts: Vec<vouch_ledger_core::EntryDraft>) {
    let outcome = ledger
        .submit(drafts, false)
        .expect("submit")
        .wait()
        .expect("append");
    black_box(outcome);
}

/// The engine at every batch size, into one ledger per variant.
fn bench_engine(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    leaf_hash_index: bool,
    durability: Durability,
) {
    let (_dir, ledger) = fresh(leaf_hash_index, workload::options(durability));
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        let before = ledger.stats();
        group.bench_function(BenchmarkId::new(label, batch), |b| {
            b.iter_batched(
                || workload::drafts(0, batch),
                |d| append_batch(&ledger, d),
                BatchSize::SmallInput,
            );
        });
        report_groups(&format!("{label}/{batch}"), &before, &ledger.stats());
    }
    ledger.close();
}

/// The raw loop at every batch size, over the bytes the engine writes for that batch.
fn bench_raw(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    sizes: &[usize],
    sync: bool,
) {
    let dir = tempfile::Builder::new()
        .prefix("vouch-bench-raw-")
        .tempdir()
        .expect("temporary directory");
    let mut log = RawLog::create(&dir.path().join("raw.log")).expect("raw log");
    for &batch in sizes {
        let bytes = workload::group_bytes(batch);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new(label, batch), |b| {
            b.iter(|| log.append(black_box(&bytes), sync).expect("raw append"));
        });
    }
}

fn append_fsync(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_fsync");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    bench_raw(&mut group, "raw_write_fsync", &BATCHES, true);
    bench_engine(&mut group, "vouch_leaf_index", true, Durability::Fsync);
    bench_engine(&mut group, "vouch_no_leaf_index", false, Durability::Fsync);
    group.finish();
}

fn append_fsync_concurrent(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_fsync_concurrent");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    bench_raw(&mut group, "raw_write_fsync", &THREADS, true);
    for leaf_hash_index in [true, false] {
        let (_dir, ledger) = fresh(leaf_hash_index, workload::options(Durability::Fsync));
        let ledger = Arc::new(ledger);
        let label = if leaf_hash_index {
            "vouch_leaf_index"
        } else {
            "vouch_no_leaf_index"
        };
        for threads in THREADS {
            group.throughput(Throughput::Elements((threads * PER_THREAD) as u64));
            let before = ledger.stats();
            group.bench_function(BenchmarkId::new(label, threads), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| workload::concurrent_round(&ledger, threads, PER_THREAD))
                        .sum()
                });
            });
            report_groups(&format!("{label}/{threads}"), &before, &ledger.stats());
        }
        ledger.close();
    }
    group.finish();
}

/// Prints how many entries the group commits of a benchmark held on average.
#[allow(clippy::cast_precision_loss)] // Counts far below 2^52.
fn report_groups(label: &str, before: &StatsSnapshot, after: &StatsSnapshot) {
    let entries = after.entries_appended - before.entries_appended;
    let groups = after.group_commits - before.group_commits;
    eprintln!(
        "{label}: {entries} entries in {groups} group commits, {:.1} entries per group",
        entries as f64 / groups.max(1) as f64
    );
}

fn append_interval(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_interval_10ms");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let interval = Durability::Interval(Duration::from_millis(10));
    bench_engine(&mut group, "vouch_leaf_index", true, interval);
    bench_engine(&mut group, "vouch_no_leaf_index", false, interval);
    group.finish();
}

fn append_none(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_none_unsafe");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    bench_raw(&mut group, "raw_write_nosync", &BATCHES, false);
    bench_engine(&mut group, "vouch_leaf_index", true, Durability::NoneUnsafe);
    bench_engine(
        &mut group,
        "vouch_no_leaf_index",
        false,
        Durability::NoneUnsafe,
    );
    group.finish();
}

/// A data directory holding ledger `proofs` of [`PROOF_LEDGER`] entries, built without
/// syncing and closed cleanly.
fn proof_ledger(hash: HashAlg) -> (TempDir, DataDir) {
    let dir = tempfile::Builder::new()
        .prefix("vouch-bench-proofs-")
        .tempdir()
        .expect("temporary directory");
    let dd = DataDir::open(dir.path()).expect("data directory");
    let ledger = workload::create_and_open(
        &dd,
        "proofs",
        &workload::config(hash, false),
        workload::options(Durability::NoneUnsafe),
    );
    workload::load(&ledger, PROOF_LEDGER, 4096, 4, &mut |_| true);
    ledger.close();
    (dir, dd)
}

fn proofs_and_verify(c: &mut Criterion) {
    for hash in HashAlg::ALL {
        let (_dir, dd) = proof_ledger(hash);
        let mut group = c.benchmark_group(format!("proof_1m/{}", hash.name()));
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .throughput(Throughput::Elements(1));
        let indexes = workload::targets(PROOF_LEDGER, TARGETS, 1);
        let olds = workload::targets(PROOF_LEDGER - 1, TARGETS, 2);
        for self_check in [false, true] {
            let ledger = dd
                .open_ledger(
                    "proofs",
                    workload::signer(),
                    LedgerOptions {
                        self_check_proofs: self_check,
                        ..workload::options(Durability::Fsync)
                    },
                )
                .expect("reopen");
            let size = ledger.size();
            let check = if self_check { "check_on" } else { "check_off" };
            group.bench_function(BenchmarkId::new("inclusion", check), |b| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % TARGETS;
                    ledger
                        .inclusion_proof(EntryIndex(indexes[i]), size)
                        .expect("inclusion proof")
                });
            });
            group.bench_function(BenchmarkId::new("consistency", check), |b| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % TARGETS;
                    ledger
                        .consistency_proof(TreeSize(olds[i] + 1), size)
                        .expect("consistency proof")
                });
            });
            ledger.close();
        }
        group.finish();

        let ledger = dd
            .open_ledger(
                "proofs",
                workload::signer(),
                workload::options(Durability::Fsync),
            )
            .expect("reopen");
        let mut group = c.benchmark_group(format!("verify_1m/{}", hash.name()));
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(5))
            .throughput(Throughput::Elements(PROOF_LEDGER));
        group.bench_function("ledger_verify", |b| {
            b.iter(|| ledger.verify(&mut |_| {}).expect("verify"));
        });
        group.finish();
        ledger.close();
    }
}

criterion_group!(
    storage,
    append_fsync,
    append_fsync_concurrent,
    append_interval,
    append_none,
    proofs_and_verify
);
criterion_main!(storage);
