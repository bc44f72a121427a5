//! The leaf-hash index: every published entry is found by its leaf hash at once, full chunks
//! become runs that merge into a binary-counter shape, and damaged, stray or stale run files
//! are removed and their entries indexed again from the log on open.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{config, draft, signer};
use vouch_ledger_core::{Hash, HashAlg};
use vouch_storage::leafidx::{LEAF_INDEX_DIR, run_file_name};
use vouch_storage::{DataDir, Durability, Ledger, LedgerConfig, LedgerOptions, Receipt};

const LEDGER: &str = "l";
const CHUNK: u64 = 4;

fn options(chunk: u64) -> LedgerOptions {
    LedgerOptions {
        durability: Durability::NoneUnsafe,
        leaf_index_chunk: chunk,
        ..LedgerOptions::default()
    }
}

fn open(dd: &DataDir, chunk: u64) -> Ledger {
    dd.open_ledger(LEDGER, signer(), options(chunk)).unwrap()
}

fn setup(entries: u64, chunk: u64) -> (tempfile::TempDir, DataDir, Vec<Receipt>) {
    setup_with(entries, chunk, &config(HashAlg::Sha256))
}

fn setup_with(
    entries: u64,
    chunk: u64,
    cfg: &LedgerConfig,
) -> (tempfile::TempDir, DataDir, Vec<Receipt>) {
    let scratch = support::scratch_dir();
    let dd = DataDir::open(scratch.path()).unwrap();
    dd.create_ledger(LEDGER, cfg, &signer().verifier(), 1)
        .unwrap();
    let ledger = open(&dd, chunk);
    let mut receipts = Vec::new();
    let mut n = 0;
    while n < entries {
        // Batches of varying size, so chunk boundaries fall inside groups.
        let batch = (n % 7 + 1).min(entries - n);
        let drafts = (n..n + batch).map(|i| draft(i, None)).collect();
        receipts.extend(
            ledger
                .submit(drafts, false)
                .unwrap()
                .wait()
                .unwrap()
                .receipts,
        );
        n += batch;
    }
    settle(&ledger, chunk);
    ledger.close();
    (scratch, dd, receipts)
}

/// Waits until the background thread has written every full chunk and made every merge.
fn settle(ledger: &Ledger, chunk: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = ledger.leaf_index_status().unwrap();
        let merged = s.runs.windows(2).all(|w| {
            let (a, b) = (w[0], w[1]);
            let len = a.1 - a.0;
            !(len == b.1 - b.0 && a.0 % (2 * len) == 0)
        });
        if s.in_memory < chunk && merged {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the leaf index did not settle: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn assert_all_found(ledger: &Ledger, receipts: &[Receipt]) {
    for r in receipts {
        assert_eq!(
            ledger.find_by_leaf_hash(&r.leaf_hash).unwrap(),
            Some(r.index),
            "entry {}",
            r.index
        );
    }
    assert_eq!(ledger.find_by_leaf_hash(&Hash([0xAB; 32])).unwrap(), None);
}

/// Runs are contiguous from entry 0 and, with the in-memory entries, cover the log.
fn assert_shape(ledger: &Ledger) -> Vec<(u64, u64)> {
    support::assert_leaf_index_covers(ledger, "leaf index")
}

fn run_dir(dd_root: &Path) -> PathBuf {
    dd_root.join("ledgers").join(LEDGER).join(LEAF_INDEX_DIR)
}

fn run_files(dd_root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(run_dir(dd_root))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_entry_is_found_at_once_and_runs_merge_like_a_binary_counter() {
    let scratch = support::scratch_dir();
    let dd = DataDir::open(scratch.path()).unwrap();
    dd.create_ledger(LEDGER, &config(HashAlg::Blake3), &signer().verifier(), 1)
        .unwrap();
    let ledger = open(&dd, CHUNK);
    let mut receipts = Vec::new();
    for i in 0..203u64 {
        let r = ledger.append(draft(i, None)).unwrap();
        // Found as soon as the append returns, whether or not its chunk was written yet.
        assert_eq!(
            ledger.find_by_leaf_hash(&r.leaf_hash).unwrap(),
            Some(r.index)
        );
        receipts.push(r);
    }
    settle(&ledger, CHUNK);
    assert_all_found(&ledger, &receipts);
    let runs = assert_shape(&ledger);
    // 200 = 128 + 64 + 8 entries in runs (binary 11001000 times the chunk of 4), 3 in memory.
    assert_eq!(runs, vec![(0, 128), (128, 192), (192, 200)]);
    assert_eq!(ledger.leaf_index_status().unwrap().in_memory, 3);
    drop(ledger);
    assert_eq!(
        run_files(scratch.path()),
        vec![
            run_file_name(0, 128),
            run_file_name(128, 192),
            run_file_name(192, 200)
        ]
    );
    // A reopen keeps the runs and indexes the three entries past them from the log.
    let ledger = open(&dd, CHUNK);
    assert_eq!(assert_shape(&ledger), runs);
    assert_all_found(&ledger, &receipts);
}

#[test]
fn a_deleted_index_is_rebuilt_from_the_log_in_large_runs() {
    let (scratch, dd, receipts) = setup(150, CHUNK);
    fs::remove_dir_all(run_dir(scratch.path())).unwrap();
    let ledger = open(&dd, CHUNK);
    // The rebuild writes the largest aligned runs at once: 128 + 16 + 4, and 2 in memory.
    assert_eq!(
        assert_shape(&ledger),
        vec![(0, 128), (128, 144), (144, 148)]
    );
    assert_all_found(&ledger, &receipts);
}

#[test]
fn a_damaged_run_is_removed_and_its_entries_indexed_again() {
    let (scratch, dd, receipts) = setup(100, CHUNK);
    let dir = run_dir(scratch.path());
    // Runs of 64, 32 and 4 entries.
    let first = dir.join(run_file_name(0, 64));
    let mut bytes = fs::read(&first).unwrap();
    // Swap two records' prefixes: a checksum mismatch and an order violation.
    bytes[32 + 16 * 3] ^= 0x55;
    fs::write(&first, &bytes).unwrap();
    let ledger = open(&dd, CHUNK);
    let runs = assert_shape(&ledger);
    // Everything from entry 0 was indexed again.
    assert_eq!(runs, vec![(0, 64), (64, 96), (96, 100)]);
    assert_all_found(&ledger, &receipts);
    ledger.close();
    assert_ne!(
        fs::read(&first).unwrap(),
        bytes,
        "the damaged run was rewritten"
    );
}

#[test]
fn truncated_stray_and_stale_run_files_are_removed() {
    let (scratch, dd, receipts) = setup(100, CHUNK);
    let dir = run_dir(scratch.path());
    // A truncated run: the chain breaks at entry 64 and the rest is indexed again.
    let second = dir.join(run_file_name(64, 96));
    let len = fs::metadata(&second).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&second).unwrap();
    f.set_len(len - 1).unwrap();
    drop(f);
    // A temporary file left by an interrupted write, a run beyond the log, a run of a range
    // the engine never writes, and a file that is not a run at all (left alone).
    fs::write(
        dir.join(format!("{}.tmp", run_file_name(96, 100))),
        b"partial",
    )
    .unwrap();
    fs::copy(
        dir.join(run_file_name(0, 64)),
        dir.join(run_file_name(128, 192)),
    )
    .unwrap();
    fs::copy(
        dir.join(run_file_name(0, 64)),
        dir.join(run_file_name(3, 7)),
    )
    .unwrap();
    fs::write(dir.join("README"), b"operator notes").unwrap();
    let ledger = open(&dd, CHUNK);
    assert_eq!(assert_shape(&ledger), vec![(0, 64), (64, 96), (96, 100)]);
    assert_all_found(&ledger, &receipts);
    ledger.close();
    let mut expected = vec![
        "README".to_owned(),
        run_file_name(0, 64),
        run_file_name(64, 96),
        run_file_name(96, 100),
    ];
    expected.sort();
    assert_eq!(run_files(scratch.path()), expected);
}

#[test]
fn a_run_claiming_another_ledgers_hash_function_is_refused() {
    let (scratch, dd, receipts) = setup(40, CHUNK);
    // Copy a SHA-256 ledger's run into a BLAKE3 ledger of the same length.
    let (other, other_dd, other_receipts) = setup_with(40, CHUNK, &config(HashAlg::Blake3));
    let name = run_file_name(0, 32);
    fs::copy(
        run_dir(scratch.path()).join(&name),
        run_dir(other.path()).join(&name),
    )
    .unwrap();
    let ledger = open(&other_dd, CHUNK);
    assert_all_found(&ledger, &other_receipts);
    drop(ledger);
    let ledger = open(&dd, CHUNK);
    assert_all_found(&ledger, &receipts);
}

#[test]
fn a_new_chunk_size_rebuilds_runs_it_would_not_write() {
    let (_scratch, dd, receipts) = setup(100, CHUNK);
    let ledger = open(&dd, 8);
    // 64 and 32 are aligned multiples of 8; the run of 4 is not, and goes.
    let runs = assert_shape(&ledger);
    assert_eq!(runs, vec![(0, 64), (64, 96)]);
    assert_all_found(&ledger, &receipts);
    settle(&ledger, 8);
    drop(ledger);
    let ledger = open(&dd, CHUNK);
    assert_all_found(&ledger, &receipts);
}

#[test]
fn a_ledger_without_the_index_finds_nothing() {
    let cfg = LedgerConfig {
        leaf_hash_index: false,
        ..config(HashAlg::Sha256)
    };
    let (scratch, dd, receipts) = setup_with_no_index(&cfg);
    let ledger = open(&dd, CHUNK);
    assert_eq!(ledger.leaf_index_status(), None);
    assert_eq!(
        ledger.find_by_leaf_hash(&receipts[0].leaf_hash).unwrap(),
        None
    );
    assert!(!run_dir(scratch.path()).exists());
}

fn setup_with_no_index(cfg: &LedgerConfig) -> (tempfile::TempDir, DataDir, Vec<Receipt>) {
    let scratch = support::scratch_dir();
    let dd = DataDir::open(scratch.path()).unwrap();
    dd.create_ledger(LEDGER, cfg, &signer().verifier(), 1)
        .unwrap();
    let ledger = open(&dd, CHUNK);
    let receipts = (0..10)
        .map(|i| ledger.append(draft(i, None)).unwrap())
        .collect();
    ledger.close();
    (scratch, dd, receipts)
}
