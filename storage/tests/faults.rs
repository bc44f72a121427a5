//! Faults of a running ledger that are not crashes: a disk that fills up, and files removed or
//! cut short behind the ledger's back.
//!
//! The full disk is the fault-injecting file system's space model (`FaultVfs::set_free_space`):
//! every write that grows a file uses up space, and a write that does not fit stores what fits
//! and fails with `ENOSPC`. The sweep puts the limit at many different bytes of a workload
//! that appends, batches, waits for checkpoints, rolls segments over and replaces the index
//! head, so that the disk fills up during each of those steps. Whatever step it hits, the
//! callers get a "no space left on device" error, the ledger is never poisoned, it stays
//! readable and verifiable, appends resume as soon as there is space again (without a reopen),
//! every acknowledged entry survives a power failure, and a reopen finds them all.
//!
//! The other tests remove or truncate files of an open ledger with the real file system and
//! check that the ledger notices at the next append instead of acknowledging entries it cannot
//! keep, and what a reopen reports.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use support::fault_vfs::{FaultVfs, Survival};
use support::{StepClock, config, draft, signer};
use vouch_ledger_core::{EntryIndex, Hash, HashAlg, TreeSize};
use vouch_storage::{
    AppendError, CheckpointCadence, CheckpointError, DataDir, Durability, Ledger, LedgerOptions,
    OpenError, ReadError, verify_ledger_dir,
};

const LEDGER: &str = "faults";

fn options(clock: &Arc<StepClock>) -> LedgerOptions {
    LedgerOptions {
        durability: Durability::Fsync,
        checkpoints: CheckpointCadence {
            every_entries: Some(5),
            every: None,
        },
        segment_target_size: 600,
        head_interval: Duration::ZERO,
        clock: clock.clone(),
        ..LedgerOptions::default()
    }
}

/// A ledger on a fault VFS holding `n` entries.
fn ledger_on(root: &Path, n: u64) -> (FaultVfs, Ledger) {
    let vfs = FaultVfs::new(root);
    let dd = DataDir::open_with(root, vfs.as_vfs()).unwrap();
    dd.create_ledger(LEDGER, &config(HashAlg::Blake3), &signer().verifier(), 1)
        .unwrap();
    let clock = Arc::new(StepClock::new(1_000, 1_000));
    let ledger = dd.open_ledger(LEDGER, signer(), options(&clock)).unwrap();
    for i in 0..n {
        ledger.append(draft(i, None)).unwrap();
    }
    (vfs, ledger)
}

/// Whether an error says the disk is full.
fn says_disk_full(text: &str) -> bool {
    text.contains("No space left on device")
}

/// One step of the workload: appends `n` (a single entry, a batch, with a key, waiting for a
/// checkpoint) or asks for a checkpoint. Returns the acknowledged `(index, leaf hash)`s, or the
/// error's text after checking it is a full disk and not a poisoned ledger.
fn step(ledger: &Ledger, n: u64) -> Result<Vec<(u64, Hash)>, String> {
    let receipts = match n % 6 {
        0 | 1 => ledger.append(draft(n, None)).map(|r| vec![r]),
        2 => ledger
            .append(draft(n, Some(&format!("key-{n}"))))
            .map(|r| vec![r]),
        3 => ledger
            .submit((0..3).map(|j| draft(n * 10 + j, None)).collect(), false)
            .and_then(vouch_storage::AppendTicket::wait)
            .map(|o| o.receipts),
        4 => ledger
            .submit(vec![draft(n, None)], true)
            .and_then(vouch_storage::AppendTicket::wait)
            .map(|o| o.receipts),
        _ => {
            return match ledger.checkpoint_now() {
                Ok(_) => Ok(Vec::new()),
                Err(e @ CheckpointError::Io(_)) if says_disk_full(&e.to_string()) => {
                    Err(e.to_string())
                }
                Err(e) => panic!("step {n}: checkpoint: not a full-disk error: {e}"),
            };
        }
    };
    match receipts {
        Ok(r) => Ok(r.iter().map(|r| (r.index.0, r.leaf_hash)).collect()),
        Err(e @ (AppendError::Io(_) | AppendError::NoCheckpoint(CheckpointError::Io(_))))
            if says_disk_full(&e.to_string()) =>
        {
            Err(e.to_string())
        }
        Err(e) => panic!("step {n}: not a full-disk error: {e}"),
    }
}

/// Checks that the ledger in `root` (opened with the real file system) holds every
/// acknowledged entry with its leaf hash, verifies offline and after opening, and takes a new
/// entry.
fn check_reopened(root: &Path, acked: &BTreeMap<u64, Hash>, what: &str) {
    let report = verify_ledger_dir(root, LEDGER, &mut |_| {})
        .unwrap_or_else(|e| panic!("{what}: offline verification: {e}"));
    assert!(report.entries >= acked.len() as u64, "{what}");
    let dd = DataDir::open(root).unwrap();
    let ledger = dd
        .open_ledger(LEDGER, signer(), LedgerOptions::default())
        .unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    for (&index, hash) in acked {
        let leaf = ledger
            .leaf_hash(EntryIndex(index))
            .unwrap_or_else(|e| panic!("{what}: acknowledged entry {index}: {e}"));
        assert_eq!(&leaf, hash, "{what}: entry {index}");
    }
    ledger.verify(&mut |_| {}).unwrap();
    let size = ledger.size().0;
    assert_eq!(
        ledger.append(draft(size, None)).unwrap().index,
        EntryIndex(size)
    );
}

/// Fills the disk at `free` bytes into the workload, runs on for a while, frees the disk, and
/// checks everything. Returns how many steps failed for lack of space.
fn fill_the_disk_at(free: u64) -> usize {
    let dir = support::scratch_dir();
    let root = dir.path();
    // 64 entries: the node files of levels 1 to 6 exist and have their space, so the disk
    // fills up in the steps of the commits, not in the reservations of new levels.
    let (vfs, ledger) = ledger_on(root, 64);
    let mut acked: BTreeMap<u64, Hash> = (0..64)
        .map(|i| (i, ledger.leaf_hash(EntryIndex(i)).unwrap()))
        .collect();
    vfs.set_free_space(Some(free));
    let mut refused = 0;
    for n in 64..100 {
        match step(&ledger, n) {
            Ok(r) => acked.extend(r),
            Err(_) => refused += 1,
        }
        assert_eq!(ledger.poisoned(), None, "{free} bytes free, step {n}");
    }
    // Reads and verification work on a full disk.
    let size = ledger.size();
    assert!(size.0 >= acked.len() as u64);
    for &index in acked.keys() {
        ledger.get(EntryIndex(index)).unwrap();
    }
    ledger
        .inclusion_proof(EntryIndex(0), size)
        .unwrap_or_else(|e| panic!("{free}: {e}"));
    ledger.verify(&mut |_| {}).unwrap();
    // Space is freed: appends, checkpoints and roll-overs work again, without a reopen.
    vfs.set_free_space(None);
    for n in 100..112 {
        let r = step(&ledger, n)
            .unwrap_or_else(|e| panic!("{free} bytes free, after freeing space: {e}"));
        acked.extend(r);
    }
    let cp = ledger.checkpoint_now().unwrap();
    assert_eq!(cp.size(), ledger.size());
    ledger.close();
    drop(ledger);
    // A power failure now keeps every acknowledged entry.
    let crashed = root.with_extension("synced");
    vfs.materialize(&crashed, Survival::Synced, false).unwrap();
    check_reopened(
        &crashed,
        &acked,
        &format!("{free} bytes free, synced state"),
    );
    std::fs::remove_dir_all(&crashed).unwrap();
    check_reopened(root, &acked, &format!("{free} bytes free"));
    refused
}

#[test]
fn a_full_disk_refuses_appends_loses_nothing_and_appends_resume_when_space_is_freed() {
    // From no space at all, in small steps through the first few kilobytes (segment writes,
    // checkpoint frames, index heads, new segments), then around the 1 MiB steps in which the
    // offset and node files reserve space.
    let mut points: Vec<u64> = (0..40).map(|i| i * 97).collect();
    points.extend((0..6).map(|i| (1 << 20) + i * 211));
    points.extend([2 << 20, 3 << 20]);
    let mut total_refused = 0;
    for free in points {
        total_refused += fill_the_disk_at(free);
    }
    assert!(total_refused > 0, "the disk never filled up");
}

#[test]
fn concurrent_appenders_on_a_filling_disk_lose_nothing() {
    let dir = support::scratch_dir();
    let root = dir.path();
    let (vfs, ledger) = ledger_on(root, 0);
    let ledger = Arc::new(ledger);
    vfs.set_free_space(Some(6_000));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let ledger = ledger.clone();
            let vfs = vfs.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut refused = 0;
                // Bounded: every thread stops after 400 steps.
                for i in 0..400u64 {
                    if i == 200 && t == 0 {
                        vfs.set_free_space(None);
                    }
                    match step(&ledger, (t << 32) | i) {
                        Ok(r) => acked.extend(r),
                        Err(_) => refused += 1,
                    }
                }
                (acked, refused)
            })
        })
        .collect();
    let mut acked = BTreeMap::new();
    let mut refused = 0;
    for t in threads {
        let (a, r) = t.join().unwrap();
        acked.extend(a);
        refused += r;
    }
    assert!(refused > 0, "the disk never filled up");
    assert_eq!(ledger.poisoned(), None);
    // Space was freed half-way: the ledger works without a reopen.
    assert!(step(&ledger, 1 << 40).is_ok());
    ledger.close();
    drop(ledger);
    let crashed = root.with_extension("synced");
    vfs.materialize(&crashed, Survival::Synced, false).unwrap();
    check_reopened(&crashed, &acked, "synced state");
    check_reopened(root, &acked, "live directory");
}

// ---------------------------------------------------------------------------------------------
// Files changed behind the ledger's back (with the real file system).

fn real_ledger(root: &Path, n: u64) -> Ledger {
    let dd = DataDir::open(root).unwrap();
    if !dd.has_ledger(LEDGER) {
        dd.create_ledger(LEDGER, &config(HashAlg::Blake3), &signer().verifier(), 1)
            .unwrap();
    }
    let ledger = dd
        .open_ledger(
            LEDGER,
            signer(),
            LedgerOptions {
                checkpoints: CheckpointCadence {
                    every_entries: None,
                    every: None,
                },
                ..LedgerOptions::default()
            },
        )
        .unwrap();
    let size = ledger.size().0;
    for i in size..size + n {
        ledger.append(draft(i, Some(&format!("k{i}")))).unwrap();
    }
    ledger
}

fn active_segment(root: &Path) -> std::path::PathBuf {
    let dir = root.join("ledgers").join(LEDGER).join("segments");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.pop().unwrap()
}

/// Asserts that an append is refused because the ledger is poisoned for `cause`.
#[track_caller]
fn assert_refused(ledger: &Ledger, n: u64, cause: &str) {
    let err = ledger.append(draft(n, None)).unwrap_err();
    assert!(matches!(err, AppendError::Poisoned(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains(cause), "{text}");
    assert!(text.contains("00000000000000000000.seg"), "{text}");
    assert!(ledger.poisoned().is_some());
}

#[test]
fn an_active_segment_removed_under_the_ledger_is_noticed_and_reported_at_reopen() {
    let dir = support::scratch_dir();
    let root = dir.path();
    let ledger = real_ledger(root, 6);
    ledger.checkpoint_now().unwrap();
    std::fs::remove_file(active_segment(root)).unwrap();
    // The next append is refused: its bytes went to a file that no longer has a name.
    assert_refused(&ledger, 6, "was removed while the ledger was open");
    assert_eq!(ledger.size(), TreeSize(6));
    // What was published stays readable from the open file.
    for i in 0..6 {
        ledger.get(EntryIndex(i)).unwrap();
    }
    ledger.inclusion_proof(EntryIndex(2), TreeSize(6)).unwrap();
    drop(ledger);
    // The entries a checkpoint covered are gone: the reopen refuses, naming what is missing.
    let err = DataDir::open(root)
        .unwrap()
        .open_ledger(LEDGER, signer(), LedgerOptions::default())
        .unwrap_err();
    assert!(matches!(err, OpenError::Corrupted(_)), "{err}");
    assert!(err.to_string().contains("segments"), "{err}");
    let err = verify_ledger_dir(root, LEDGER, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("segments"), "{err}");
}

#[test]
fn an_active_segment_truncated_under_the_ledger_is_noticed_and_reported() {
    let dir = support::scratch_dir();
    let root = dir.path();
    let ledger = real_ledger(root, 6);
    ledger.checkpoint_now().unwrap();
    let segment = active_segment(root);
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 20)
        .unwrap();
    assert_refused(&ledger, 6, "was changed (truncated or written)");
    // Entry 5 lost its last bytes: reading it is an error naming the segment, never other
    // bytes; the entries before it still read.
    let err = ledger.get(EntryIndex(5)).unwrap_err();
    assert!(
        matches!(err, ReadError::Corrupted(_) | ReadError::Io(_)),
        "{err}"
    );
    assert!(err.to_string().contains(".seg"), "{err}");
    ledger.get(EntryIndex(4)).unwrap();
    drop(ledger);
    let err = DataDir::open(root)
        .unwrap()
        .open_ledger(LEDGER, signer(), LedgerOptions::default())
        .unwrap_err();
    assert!(matches!(err, OpenError::Corrupted(_)), "{err}");
    assert!(err.to_string().contains(".seg"), "{err}");
}

#[test]
fn a_secondary_index_removed_under_the_ledger_is_rebuilt_at_reopen() {
    let dir = support::scratch_dir();
    let root = dir.path();
    let ledger = real_ledger(root, 6);
    std::fs::remove_dir_all(root.join("ledgers").join(LEDGER).join("sled")).unwrap();
    // sled keeps its files open, so the index goes on working from the removed files: an
    // entry with an old key is still found, and new entries are indexed.
    let r = ledger.append(draft(2, Some("k2"))).unwrap();
    assert!(r.duplicate && r.index == EntryIndex(2), "{r:?}");
    for i in 6..10 {
        ledger.append(draft(i, Some(&format!("k{i}")))).unwrap();
    }
    assert_eq!(
        ledger.find_by_idempotency_key("k8").unwrap(),
        Some(EntryIndex(8))
    );
    ledger.close();
    drop(ledger);
    // Reopened, the index is rebuilt from the log and finds every key.
    let ledger = real_ledger(root, 0);
    assert_eq!(ledger.size(), TreeSize(10));
    assert!(
        root.join("ledgers").join(LEDGER).join("sled").is_dir(),
        "the index was rebuilt"
    );
    for i in 0..10 {
        assert_eq!(
            ledger.find_by_idempotency_key(&format!("k{i}")).unwrap(),
            Some(EntryIndex(i)),
            "k{i}"
        );
    }
    let r = ledger.append(draft(3, Some("k3"))).unwrap();
    assert!(r.duplicate && r.index == EntryIndex(3), "{r:?}");
}
