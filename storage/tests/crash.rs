//! Crash consistency and fault injection, through the fault-injecting file system of
//! `support/fault_vfs.rs`.
//!
//! The crash tests run a scripted workload (data directory and ledger creation, appends with
//! and without idempotency keys, batches, checkpoints on demand, by cadence and for a waiting
//! batch, segment roll-overs, index heads, close and reopen) once without faults to count its
//! file-system operations `K`, then once per crash point `1..=K`: the crash makes that
//! operation and all later ones fail. The odd points run with BLAKE3 and the even ones with
//! SHA-256 (the workload makes the same operations with either); `VOUCH_CRASH_ALL=1` runs
//! every point with both. For each crash the durable state is rebuilt four ways (only synced
//! bytes; everything written; a seeded random mix with torn writes; a seeded mix of lost
//! writes whose files kept their size, so zeros), verified offline, reopened with the real
//! file system and checked: the log is a prefix of what was written,
//! every acknowledged entry, key and checkpoint is there, `verify` passes, the latest
//! checkpoint is valid for the log, and appends work again.
//!
//! The fault tests make one operation fail (`EIO`, `ENOSPC`, a short write) without a crash
//! and check the answer the engine gives: a rolled-back append that leaves the ledger working,
//! or a poisoned ledger that refuses appends, stays readable and recovers when reopened.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::fault_vfs::{Fault, FaultVfs, OpKind, OpRecord, Survival};
use support::{StepClock, config, draft, signer};
use vouch_ledger_core::checkpoint::open_checkpoint;
use vouch_ledger_core::note::Verifiers;
use vouch_ledger_core::{EntryIndex, Hash, HashAlg, TreeSize};
use vouch_storage::vfs::Vfs;
use vouch_storage::{
    AppendError, CheckpointCadence, CheckpointError, DataDir, Durability, Ledger, LedgerOptions,
    OpenError, StoredCheckpoint, verify_ledger_dir,
};

const LEDGER: &str = "crash";

/// Crash points below this are all run; above it, a deterministic sample.
const ALL_POINTS_UP_TO: u64 = 400;
/// How many points the sample above [`ALL_POINTS_UP_TO`] holds.
const SAMPLED_POINTS: u64 = 100;
/// How many durable states each crash is rebuilt as.
const SURVIVALS: usize = 4;

/// Interval mode that only syncs when it must (checkpoint, head, roll-over, close), so that
/// the workload's operations are the same on every run.
const LAZY: Durability = Durability::Interval(Duration::from_secs(3600));

fn options(
    clock: &Arc<StepClock>,
    head_interval: Duration,
    durability: Durability,
) -> LedgerOptions {
    LedgerOptions {
        durability,
        checkpoints: CheckpointCadence {
            every_entries: Some(9),
            every: None,
        },
        segment_target_size: 700,
        head_interval,
        clock: clock.clone(),
        ..LedgerOptions::default()
    }
}

/// What the workload was told before it stopped.
#[derive(Debug, Default)]
struct Acked {
    /// The ledger's creation was acknowledged.
    created: bool,
    /// (index, leaf hash) of every acknowledged entry.
    entries: Vec<(u64, Hash)>,
    /// Idempotency keys acknowledged, with their entry and the entry's number in the script.
    keys: Vec<(String, u64, u64)>,
    /// Checkpoints returned to a caller.
    checkpoints: Vec<Arc<StoredCheckpoint>>,
    /// The first error, which ended the workload.
    error: Option<String>,
}

impl Acked {
    fn receipt(&mut self, r: &vouch_storage::Receipt, n: u64, key: Option<&str>) {
        self.entries.push((r.index.0, r.leaf_hash));
        if let Some(k) = key {
            self.keys.push((k.to_owned(), r.index.0, n));
        }
    }
}

/// The scripted workload. Stops at the first error and says what was acknowledged until then.
fn workload(root: &Path, vfs: Arc<dyn Vfs>, hash: HashAlg, durability: Durability) -> Acked {
    let mut acked = Acked::default();
    if let Err(e) = script(root, vfs, hash, durability, &mut acked) {
        acked.error = Some(e);
    }
    acked
}

fn key_for(n: u64) -> Option<String> {
    n.is_multiple_of(4).then(|| format!("k-{n}"))
}

fn append(ledger: &Ledger, n: u64, acked: &mut Acked) -> Result<(), String> {
    let key = key_for(n);
    let r = ledger
        .append(draft(n, key.as_deref()))
        .map_err(|e| e.to_string())?;
    acked.receipt(&r, n, key.as_deref());
    Ok(())
}

fn batch(
    ledger: &Ledger,
    ns: std::ops::Range<u64>,
    wait: bool,
    acked: &mut Acked,
) -> Result<(), String> {
    let drafts: Vec<_> = ns
        .clone()
        .map(|n| draft(n, key_for(n).as_deref()))
        .collect();
    let outcome = ledger
        .submit(drafts, wait)
        .map_err(|e| e.to_string())?
        .wait()
        .map_err(|e| e.to_string())?;
    for (r, n) in outcome.receipts.iter().zip(ns) {
        acked.receipt(r, n, key_for(n).as_deref());
    }
    if let Some(cp) = outcome.checkpoint {
        acked.checkpoints.push(cp);
    }
    Ok(())
}

fn script(
    root: &Path,
    vfs: Arc<dyn Vfs>,
    hash: HashAlg,
    durability: Durability,
    acked: &mut Acked,
) -> Result<(), String> {
    let clock = Arc::new(StepClock::new(1_000_000, 1_000));
    let dd = DataDir::open_with(root, vfs).map_err(|e| e.to_string())?;
    dd.create_ledger(LEDGER, &config(hash), &signer().verifier(), 1)
        .map_err(|e| e.to_string())?;
    acked.created = true;
    {
        let ledger = dd
            .open_ledger(
                LEDGER,
                signer(),
                options(&clock, Duration::from_secs(3600), durability),
            )
            .map_err(|e| e.to_string())?;
        for n in 0..10 {
            append(&ledger, n, acked)?;
        }
        batch(&ledger, 10..14, false, acked)?;
        // The same key and contents again: the original receipt, nothing appended.
        append(&ledger, 0, acked)?;
        acked
            .checkpoints
            .push(ledger.checkpoint_now().map_err(|e| e.to_string())?);
        batch(&ledger, 14..17, true, acked)?;
        for n in 17..26 {
            append(&ledger, n, acked)?;
        }
        ledger.close();
    }
    {
        // Reopened with an index head after every group commit.
        let ledger = dd
            .open_ledger(
                LEDGER,
                signer(),
                options(&clock, Duration::ZERO, durability),
            )
            .map_err(|e| e.to_string())?;

        for n in 26..31 {
            append(&ledger, n, acked)?;
        }
        append(&ledger, 8, acked)?;
        batch(&ledger, 31..34, false, acked)?;
        acked
            .checkpoints
            .push(ledger.checkpoint_now().map_err(|e| e.to_string())?);
        for n in 34..37 {
            append(&ledger, n, acked)?;
        }
        ledger.close();
    }
    Ok(())
}

/// Runs the workload without faults: its operations and every entry written.
fn reference(hash: HashAlg, durability: Durability) -> (Vec<OpRecord>, Vec<Vec<u8>>) {
    let dir = support::scratch_dir();
    let root = dir.path().join("data");
    std::fs::create_dir(&root).unwrap();
    let vfs = FaultVfs::new(&root);
    let acked = workload(&root, vfs.as_vfs(), hash, durability);
    assert_eq!(acked.error, None, "the workload fails without faults");
    let ops = vfs.trace();
    let dd = DataDir::open(&root).unwrap();
    let ledger = dd
        .open_ledger(LEDGER, signer(), LedgerOptions::default())
        .unwrap();
    let segments = std::fs::read_dir(root.join("ledgers/crash/segments"))
        .unwrap()
        .count();
    assert!(
        segments >= 3,
        "the workload must roll over: {segments} segments"
    );
    let entries = (0..ledger.size().0)
        .map(|i| ledger.get_raw(EntryIndex(i)).unwrap())
        .collect();
    (ops, entries)
}

/// The crash points a test runs: those of `1..=k` that leave `rest` divided by `every` (the
/// two hash functions share the `fsync` points between them: the workload makes the same
/// operations with either), all of them up to [`ALL_POINTS_UP_TO`] and a deterministic sample
/// after that. `VOUCH_CRASH_ALL=1` runs every point in every test.
fn crash_points(k: u64, (every, rest): (u64, u64)) -> Vec<u64> {
    if std::env::var_os("VOUCH_CRASH_ALL").is_some() {
        return (1..=k).collect();
    }
    let mut points: Vec<u64> = (1..=k.min(ALL_POINTS_UP_TO)).collect();
    if k > ALL_POINTS_UP_TO {
        let rest = k - ALL_POINTS_UP_TO;
        let width = (rest / SAMPLED_POINTS).max(1);
        let mut rng = support::Rng::new(k);
        for i in 0..SAMPLED_POINTS.min(rest) {
            let start = ALL_POINTS_UP_TO + rest * i / SAMPLED_POINTS.min(rest);
            points.push((start + 1 + rng.below(width)).min(k));
        }
        points.dedup();
    }
    points.retain(|p| p % every == rest);
    points
}

/// Checks one reconstructed durable state. Unless `lossless`, acknowledged entries that no
/// sync covered may be gone (interval mode after a power failure), but nothing a checkpoint
/// covers.
fn check_recovered(
    root: &Path,
    acked: &Acked,
    reference: &[Vec<u8>],
    hash: HashAlg,
    lossless: bool,
) -> usize {
    let dd = DataDir::open(root).expect("the data directory opens after a crash");
    if !dd.has_ledger(LEDGER) {
        assert!(
            !acked.created,
            "the ledger's creation was acknowledged but it is gone"
        );
        // The name is free again.
        dd.create_ledger(LEDGER, &config(hash), &signer().verifier(), 1)
            .unwrap();
        let ledger = dd
            .open_ledger(LEDGER, signer(), LedgerOptions::default())
            .unwrap();
        assert_eq!(ledger.append(draft(0, None)).unwrap().index, EntryIndex(0));
        return 0;
    }
    // Offline verification of the crashed state, before recovery touches it.
    let offline = verify_ledger_dir(root, LEDGER, &mut |_| {})
        .unwrap_or_else(|e| panic!("offline verification of the crashed state: {e}"));

    let clock = Arc::new(StepClock::new(u64::MAX / 2, 1));
    let ledger = dd
        .open_ledger(
            LEDGER,
            signer(),
            options(&clock, Duration::from_secs(3600), Durability::Fsync),
        )
        .unwrap_or_else(|e| panic!("reopening after the crash: {e}"));
    let size = ledger.size().0;
    assert!(
        usize::try_from(size).unwrap() <= reference.len(),
        "the ledger holds {size} entries, more than the {} ever written",
        reference.len()
    );
    for (i, written) in (0..size).zip(reference) {
        let raw = ledger.get_raw(EntryIndex(i)).unwrap();
        assert_eq!(&raw, written, "entry {i} is not the one written");
    }
    let checkpointed = acked
        .checkpoints
        .iter()
        .map(|c| c.size().0)
        .max()
        .unwrap_or(0);
    for &(index, leaf) in &acked.entries {
        assert!(
            index < size || !(lossless || index < checkpointed),
            "acknowledged entry {index} is missing: the ledger holds {size}"
        );
        if index < size {
            assert_eq!(ledger.leaf_hash(EntryIndex(index)).unwrap(), leaf);
        }
    }
    let report = ledger
        .verify(&mut |_| {})
        .unwrap_or_else(|e| panic!("verify after the crash: {e}"));
    assert_eq!(report.entries, size);
    assert_eq!(
        offline.entries, size,
        "offline verification read another log than recovery kept"
    );
    if let Some(cp) = ledger.latest_checkpoint() {
        assert!(
            cp.size().0 <= size,
            "checkpoint {} beyond the log {size}",
            cp.size()
        );
        let mut v = Verifiers::new();
        v.insert(signer().verifier());
        let (body, _) = open_checkpoint(&cp.note, &v).unwrap();
        assert_eq!(body.root, ledger.root_at(cp.size()).unwrap());
    }
    for cp in &acked.checkpoints {
        let stored = ledger
            .checkpoint_at(cp.size())
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged checkpoint of size {} is missing", cp.size()));
        assert_eq!(stored.note, cp.note);
    }
    for (key, index, n) in acked.keys.iter().filter(|(_, i, _)| *i < size) {
        assert_eq!(
            ledger.find_by_idempotency_key(key).unwrap(),
            Some(EntryIndex(*index)),
            "key {key}"
        );
        let again = ledger.append(draft(*n, Some(key))).unwrap();
        assert!(again.duplicate, "key {key} was appended twice");
        assert_eq!(again.index, EntryIndex(*index));
    }
    let r = ledger.append(draft(1_000, None)).unwrap();
    assert_eq!(r.index, EntryIndex(size));
    assert_eq!(
        ledger.find_by_leaf_hash(&r.leaf_hash).unwrap(),
        Some(r.index)
    );
    ledger.close();
    acked.entries.iter().filter(|(i, _)| *i >= size).count()
}

fn crash_at_every_point(hash: HashAlg, durability: Durability, share: (u64, u64)) {
    let (ops, reference) = reference(hash, durability);
    let k = ops.len() as u64;
    let points = crash_points(k, share);
    assert!(!points.is_empty());
    let mut lost = 0;
    for &point in &points {
        let dir = support::scratch_dir();
        let root = dir.path().join("data");
        std::fs::create_dir(&root).unwrap();
        let vfs = FaultVfs::new(&root);
        vfs.crash_at(point);
        let acked = workload(&root, vfs.as_vfs(), hash, durability);
        // The workload is deterministic: up to the crash it makes the fault-free run's
        // operations, so crash point `n` is the same operation in every run.
        let trace = vfs.trace();
        let upto = usize::try_from(point).unwrap();
        if let Some(i) = (0..upto).find(|&i| trace.get(i) != ops.get(i)) {
            panic!(
                "crash point {point}: operation {} is {:?} here but {:?} without the crash",
                i + 1,
                trace.get(i).map(ToString::to_string),
                ops.get(i).map(ToString::to_string)
            );
        }
        assert!(
            vfs.crashed(),
            "crash point {point} of {k} was never reached"
        );
        let at = &trace[upto - 1];
        let modes: [Survival; SURVIVALS] = [
            Survival::Synced,
            Survival::All,
            Survival::Random(point.wrapping_mul(0x9E37_79B9)),
            Survival::Pages(point.wrapping_mul(0x85EB_CA6B)),
        ];
        for (m, survival) in modes.into_iter().enumerate() {
            let dest = dir.path().join(format!("after-{m}"));
            // The secondary index is derived: it is dropped in the harshest state, kept in the
            // others (then it may lag the log, never lead it).
            let notes = vfs
                .materialize(&dest, survival, survival != Survival::Synced)
                .unwrap_or_else(|e| panic!("crash point {point}, {survival:?}: {e}"));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let lossless = durability == Durability::Fsync || survival == Survival::All;
                check_recovered(&dest, &acked, &reference, hash, lossless)
            }));
            match result {
                Ok(n) => lost += n,
                Err(panic) => {
                    eprintln!(
                        "crash at operation {at} of {k}, {survival:?}, {hash:?}, {durability}; the workload stopped with {:?}; durable state: {notes}",
                        acked.error
                    );
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
    eprintln!(
        "{hash:?}, {durability}: {} crash points of {k} operations, {} durable states each; {lost} acknowledged entries lost in all",
        points.len(),
        SURVIVALS
    );
    // Without fsync before the acknowledgement, power failures do lose acknowledged entries:
    // the model must have produced such states, or this test checked nothing of the kind.
    assert_eq!(
        lost > 0,
        durability != Durability::Fsync,
        "{lost} entries lost"
    );
}

#[test]
fn every_odd_crash_point_recovers_blake3() {
    crash_at_every_point(HashAlg::Blake3, Durability::Fsync, (2, 1));
}

#[test]
fn every_even_crash_point_recovers_sha256() {
    crash_at_every_point(HashAlg::Sha256, Durability::Fsync, (2, 0));
}

/// Interval mode acknowledges before `fsync`: a power failure may lose what no sync covered,
/// but recovery still finds a prefix of the log, with every checkpoint it had acknowledged, and
/// a process crash (everything written survives) loses nothing. Every third point.
#[test]
fn every_third_crash_point_recovers_in_interval_mode() {
    crash_at_every_point(HashAlg::Blake3, LAZY, (3, 0));
}

// ---------------------------------------------------------------------------------------------
// Faults without a crash.

/// A ledger of `n` entries on a fault VFS, with its options.
fn faulty_ledger(root: &Path, n: u64) -> (FaultVfs, DataDir, Ledger) {
    let vfs = FaultVfs::new(root);
    let dd = DataDir::open_with(root, vfs.as_vfs()).unwrap();
    dd.create_ledger(LEDGER, &config(HashAlg::Blake3), &signer().verifier(), 1)
        .unwrap();
    let clock = Arc::new(StepClock::new(1_000, 1_000));
    let ledger = dd
        .open_ledger(
            LEDGER,
            signer(),
            options(&clock, Duration::from_secs(3600), Durability::Fsync),
        )
        .unwrap();
    for i in 0..n {
        assert_eq!(ledger.append(draft(i, None)).unwrap().index, EntryIndex(i));
    }
    (vfs, dd, ledger)
}

/// Reopens with the real file system and checks the first `acked` entries and a fresh append.
fn reopen_and_check(root: &Path, at_least: u64) -> Ledger {
    let dd = DataDir::open(root).unwrap();
    let ledger = dd
        .open_ledger(LEDGER, signer(), LedgerOptions::default())
        .unwrap();
    let size = ledger.size().0;
    assert!(size >= at_least, "{size} entries, {at_least} acknowledged");
    for i in 0..size {
        let e = ledger.get(EntryIndex(i)).unwrap();
        assert_eq!(e.payload, format!("{{\"n\":{i}}}").into_bytes());
    }
    ledger.verify(&mut |_| {}).unwrap();
    assert_eq!(
        ledger.append(draft(size, None)).unwrap().index,
        EntryIndex(size)
    );
    ledger
}

#[test]
fn a_failed_segment_write_is_rolled_back_and_the_ledger_keeps_working() {
    for fault in [Fault::Eio, Fault::Enospc, Fault::ShortWrite] {
        let dir = support::scratch_dir();
        let (vfs, _dd, ledger) = faulty_ledger(dir.path(), 5);
        vfs.fail_next(OpKind::Write, ".seg", fault);
        let err = ledger.append(draft(5, None)).unwrap_err();
        assert!(!vfs.fault_pending(), "{fault:?} was not injected");
        let AppendError::Io(io) = &err else {
            panic!("{fault:?}: expected a rolled-back I/O error, got {err}");
        };
        assert_eq!(io.is_disk_full(), fault != Fault::Eio, "{fault:?}: {err}");
        assert!(err.to_string().contains(".seg"), "{err}");
        assert_eq!(ledger.poisoned(), None);
        assert_eq!(ledger.size(), TreeSize(5));
        // The same entry goes in at the same index; nothing of the failed write remains.
        assert_eq!(ledger.append(draft(5, None)).unwrap().index, EntryIndex(5));
        assert_eq!(ledger.verify(&mut |_| {}).unwrap().entries, 6);
        drop(ledger);
        let ledger = reopen_and_check(dir.path(), 6);
        assert_eq!(ledger.size(), TreeSize(7));
    }
}

#[test]
fn a_failed_index_write_is_rolled_back_and_appends_resume_once_the_index_is_reopened() {
    for fault in [Fault::Eio, Fault::Enospc] {
        let dir = support::scratch_dir();
        let (vfs, _dd, ledger) = faulty_ledger(dir.path(), 5);
        let keyed = |n: u64| draft(n, Some(&format!("key-{n}")));
        assert_eq!(ledger.append(keyed(5)).unwrap().index, EntryIndex(5));
        // The group's frames are written and synced before its terms; the terms fail.
        vfs.fail_next(OpKind::IndexWrite, "sled", fault);
        let err = ledger.append(keyed(6)).unwrap_err();
        assert!(!vfs.fault_pending(), "{fault:?} was not injected");
        let AppendError::Io(io) = &err else {
            panic!("{fault:?}: expected a rolled-back I/O error, got {err}");
        };
        assert_eq!(
            io.is_disk_full(),
            fault == Fault::Enospc,
            "{fault:?}: {err}"
        );
        assert!(err.to_string().contains("sled"), "{err}");
        assert_eq!(ledger.poisoned(), None);
        assert_eq!(ledger.size(), TreeSize(6));
        // Nothing of the failed group is published, and the log holds none of it.
        assert!(ledger.get(EntryIndex(6)).is_err());
        assert_eq!(ledger.verify(&mut |_| {}).unwrap().entries, 6);
        // Until then, a repeated key is still answered with its receipt.
        let again = ledger.append(keyed(5)).unwrap();
        assert_eq!((again.index, again.duplicate), (EntryIndex(5), true));
        // The index is reopened and caught up within about a second; appends then resume
        // at the same index, and keys written before the failure still find their entries.
        let deadline = Instant::now() + Duration::from_secs(10);
        let receipt = loop {
            match ledger.append(keyed(6)) {
                Ok(r) => break r,
                Err(AppendError::Io(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("{fault:?}: appends did not resume: {e}"),
            }
        };
        assert_eq!(receipt.index, EntryIndex(6));
        assert!(!receipt.duplicate);
        let again = ledger.append(keyed(5)).unwrap();
        assert_eq!((again.index, again.duplicate), (EntryIndex(5), true));
        let again = ledger.append(keyed(6)).unwrap();
        assert_eq!((again.index, again.duplicate), (EntryIndex(6), true));
        assert_eq!(ledger.poisoned(), None);
        drop(ledger);
        let ledger = reopen_and_check(dir.path(), 7);
        assert_eq!(ledger.size(), TreeSize(8));
    }
}

#[test]
fn a_failed_space_reservation_is_reported_and_the_ledger_keeps_working() {
    for (suffix, at) in [("offsets.dat", 0), ("level-01.dat", 1), ("level-02.dat", 3)] {
        let dir = support::scratch_dir();
        let (vfs, _dd, ledger) = faulty_ledger(dir.path(), at);
        vfs.fail_next(OpKind::Allocate, suffix, Fault::Enospc);
        let err = ledger.append(draft(at, None)).unwrap_err();
        assert!(!vfs.fault_pending(), "{suffix}: the fault was not injected");
        assert!(
            matches!(&err, AppendError::Io(io) if io.is_disk_full()),
            "{suffix}: {err}"
        );
        assert!(err.to_string().contains(suffix), "{err}");
        assert_eq!(ledger.poisoned(), None);
        assert_eq!(
            ledger.append(draft(at, None)).unwrap().index,
            EntryIndex(at)
        );
        drop(ledger);
        reopen_and_check(dir.path(), at + 1);
    }
}

#[test]
fn a_failed_node_file_creation_is_reported_and_the_ledger_keeps_working() {
    // The first entry of a new level creates its node file (header, sync, directory sync).
    for (at, suffix, kind) in [
        (1, "level-01.dat", OpKind::Write),
        (1, "level-01.dat", OpKind::Sync),
        (3, "level-02.dat", OpKind::Write),
        (3, "tree", OpKind::SyncDir),
    ] {
        let dir = support::scratch_dir();
        let (vfs, _dd, ledger) = faulty_ledger(dir.path(), at);
        vfs.fail_next(kind, suffix, Fault::Eio);
        let err = ledger.append(draft(at, None)).unwrap_err();
        assert!(
            !vfs.fault_pending(),
            "{suffix} {kind:?}: the fault was not injected"
        );
        assert!(
            matches!(err, AppendError::Io(_)),
            "{suffix} {kind:?}: {err}"
        );
        assert_eq!(ledger.poisoned(), None);
        for i in at..at + 8 {
            let r = ledger
                .append(draft(i, None))
                .unwrap_or_else(|e| panic!("{suffix} {kind:?}: append after the fault: {e}"));
            assert_eq!(r.index, EntryIndex(i));
        }
        assert_eq!(ledger.verify(&mut |_| {}).unwrap().entries, at + 8);
        drop(ledger);
        reopen_and_check(dir.path(), at + 8);
    }
}

#[test]
fn a_ledger_reopens_after_a_failed_node_file_creation() {
    for (at, suffix, kind) in [
        (1, "level-01.dat", OpKind::Create),
        (1, "level-01.dat", OpKind::Write),
        (3, "level-02.dat", OpKind::Sync),
    ] {
        let dir = support::scratch_dir();
        let (vfs, _dd, ledger) = faulty_ledger(dir.path(), at);
        vfs.fail_next(kind, suffix, Fault::ShortWrite);
        let err = ledger.append(draft(at, None)).unwrap_err();
        assert!(
            !vfs.fault_pending(),
            "{suffix} {kind:?}: the fault was not injected"
        );
        assert!(
            matches!(err, AppendError::Io(_)),
            "{suffix} {kind:?}: {err}"
        );
        drop(ledger);
        reopen_and_check(dir.path(), at);
    }
}

/// A poisoned ledger refuses appends and checkpoints with a clear error, stays readable, and
/// recovers when reopened.
fn check_poisoned(ledger: &Ledger, readable: u64, cause: &str) {
    let why = ledger.poisoned().expect("the ledger is poisoned");
    assert!(
        why.contains(cause),
        "poison cause {why:?} does not mention {cause}"
    );
    let err = ledger.append(draft(999, None)).unwrap_err();
    assert!(matches!(err, AppendError::Poisoned(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("poisoned") && text.contains("reopened"),
        "{text}"
    );
    let err = ledger.checkpoint_now().unwrap_err();
    assert!(matches!(err, CheckpointError::Poisoned(_)), "{err}");
    assert_eq!(ledger.size(), TreeSize(readable));
    for i in 0..readable {
        ledger.get(EntryIndex(i)).unwrap();
    }
    if readable > 0 {
        ledger
            .inclusion_proof(EntryIndex(0), TreeSize(readable))
            .unwrap();
    }
    ledger.verify(&mut |_| {}).unwrap();
}

#[test]
fn a_failed_fsync_or_derived_write_poisons_the_ledger_until_reopened() {
    for (kind, suffix, cause) in [
        (OpKind::Sync, ".seg", "fsync"),
        (OpKind::Write, "offsets.dat", "offsets.dat"),
        (OpKind::Write, "level-01.dat", "level-01.dat"),
    ] {
        let dir = support::scratch_dir();
        let (vfs, _dd, ledger) = faulty_ledger(dir.path(), 7);
        vfs.fail_next(kind, suffix, Fault::Eio);
        // Entry 7 completes node (1, 3), so it writes offsets and level 1.
        let err = ledger.append(draft(7, None)).unwrap_err();
        assert!(
            !vfs.fault_pending(),
            "{suffix} {kind:?}: the fault was not injected"
        );
        assert!(
            matches!(err, AppendError::Poisoned(_)),
            "{suffix} {kind:?}: {err}"
        );
        check_poisoned(&ledger, 7, cause);
        drop(ledger);
        // The failed entry was written, never acknowledged: it may or may not be there.
        reopen_and_check(dir.path(), 7);
    }
}

#[test]
fn a_failed_checkpoint_write_is_rolled_back_and_the_ledger_keeps_working() {
    let dir = support::scratch_dir();
    let (vfs, _dd, ledger) = faulty_ledger(dir.path(), 4);
    vfs.fail_next(OpKind::Write, "checkpoints.dat", Fault::ShortWrite);
    let err = ledger.checkpoint_now().unwrap_err();
    assert!(!vfs.fault_pending());
    assert!(
        matches!(&err, CheckpointError::Io(io) if io.is_disk_full()),
        "{err}"
    );
    assert!(err.to_string().contains("checkpoints.dat"), "{err}");
    assert_eq!(ledger.poisoned(), None);
    // The half-written frame is gone: the next checkpoint takes its place.
    let cp = ledger.checkpoint_now().unwrap();
    assert_eq!(cp.size(), TreeSize(4));
    assert_eq!(ledger.append(draft(4, None)).unwrap().index, EntryIndex(4));
    assert_eq!(ledger.verify(&mut |_| {}).unwrap().entries, 5);
    drop(ledger);
    let ledger = reopen_and_check(dir.path(), 5);
    assert_eq!(ledger.latest_checkpoint().unwrap().size(), TreeSize(5));
}

#[test]
fn a_failed_checkpoint_sync_poisons_the_ledger_until_reopened() {
    let dir = support::scratch_dir();
    let (vfs, _dd, ledger) = faulty_ledger(dir.path(), 4);
    vfs.fail_next(OpKind::Sync, "checkpoints.dat", Fault::Eio);
    let err = ledger.checkpoint_now().unwrap_err();
    assert!(!vfs.fault_pending());
    assert!(matches!(err, CheckpointError::Io(_)), "{err}");
    assert!(err.to_string().contains("checkpoints.dat"), "{err}");
    check_poisoned(&ledger, 4, "checkpoints.dat");
    drop(ledger);
    let ledger = reopen_and_check(dir.path(), 4);
    // A checkpoint whose sync failed was never published; one can be made now.
    let cp = ledger.checkpoint_now().unwrap();
    assert_eq!(cp.size(), ledger.size());
}

/// A new segment that cannot be made (a full disk) is removed again; the active segment takes
/// the next entries and the roll-over succeeds once it can.
#[test]
fn a_failed_roll_over_is_undone_and_tried_again() {
    // Where the first roll-over happens: the second segment's file name.
    let second = {
        let dir = support::scratch_dir();
        let (_vfs, _dd, ledger) = faulty_ledger(dir.path(), 0);
        let segments = dir.path().join("ledgers").join(LEDGER).join("segments");
        let mut n = 0;
        while std::fs::read_dir(&segments).unwrap().count() < 2 {
            assert!(n < 100, "the ledger never rolled over");
            ledger.append(draft(n, None)).unwrap();
            n += 1;
        }
        let mut names: Vec<String> = std::fs::read_dir(&segments)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.pop().unwrap()
    };
    for (kind, fault) in [
        (OpKind::Create, Fault::Enospc),
        (OpKind::Write, Fault::ShortWrite),
        (OpKind::Sync, Fault::Eio),
    ] {
        let dir = support::scratch_dir();
        let (vfs, _dd, ledger) = faulty_ledger(dir.path(), 0);
        vfs.fail_next(kind, &second, fault);
        // Fill the first segment; the roll-over after the commit that fills it fails.
        let mut n = 0;
        while vfs.fault_pending() {
            assert!(n < 100, "{kind:?}: the ledger never rolled over");
            assert_eq!(ledger.append(draft(n, None)).unwrap().index, EntryIndex(n));
            n += 1;
        }
        // The next commit goes to the first segment, and the roll-over after it succeeds.
        assert_eq!(ledger.append(draft(n, None)).unwrap().index, EntryIndex(n));
        assert_eq!(ledger.poisoned(), None, "{kind:?}");
        let removed = vfs
            .trace()
            .iter()
            .any(|op| op.kind == OpKind::Remove && op.path.ends_with(&second));
        assert!(
            removed || kind == OpKind::Create,
            "{kind:?}: the failed segment was removed"
        );
        let segments = dir.path().join("ledgers").join(LEDGER).join("segments");
        // The second roll-over runs after the append was answered; a checkpoint goes through
        // the sequencer after it.
        ledger.checkpoint_now().unwrap();
        assert_eq!(std::fs::read_dir(&segments).unwrap().count(), 2, "{kind:?}");
        assert_eq!(ledger.verify(&mut |_| {}).unwrap().entries, n + 1);
        drop(ledger);
        let ledger = reopen_and_check(dir.path(), n + 1);
        assert_eq!(ledger.size(), TreeSize(n + 2));
    }
}

/// A roll-over whose directory sync fails cannot know whether the new segment is durable.
#[test]
fn a_failed_roll_over_sync_poisons_the_ledger_until_reopened() {
    let dir = support::scratch_dir();
    let (vfs, _dd, ledger) = faulty_ledger(dir.path(), 0);
    vfs.fail_next(OpKind::SyncDir, "segments", Fault::Eio);
    let mut acked = 0;
    loop {
        assert!(acked < 100, "the ledger never rolled over");
        match ledger.append(draft(acked, None)) {
            Ok(r) => assert_eq!(r.index, EntryIndex(acked)),
            Err(AppendError::Poisoned(_)) => break,
            Err(e) => panic!("{e}"),
        }
        acked += 1;
    }
    assert!(!vfs.fault_pending());
    check_poisoned(&ledger, acked, "segments");
    drop(ledger);
    let ledger = reopen_and_check(dir.path(), acked);
    assert_eq!(ledger.size(), TreeSize(acked + 1));
}

#[test]
fn a_failed_head_write_at_close_loses_nothing() {
    for kind in [
        OpKind::Create,
        OpKind::Write,
        OpKind::Sync,
        OpKind::Rename,
        OpKind::SyncDir,
    ] {
        let dir = support::scratch_dir();
        let (vfs, _dd, ledger) = faulty_ledger(dir.path(), 20);
        let suffix = if kind == OpKind::SyncDir {
            LEDGER
        } else {
            "index.head.tmp"
        };
        vfs.fail_next(kind, suffix, Fault::Eio);
        ledger.close();
        assert!(!vfs.fault_pending(), "{kind:?}: the fault was not injected");
        drop(ledger);
        let ledger = reopen_and_check(dir.path(), 20);
        assert_eq!(ledger.size(), TreeSize(21));
    }
}

#[test]
fn a_data_directory_of_a_newer_format_is_refused_through_any_vfs() {
    let dir = support::scratch_dir();
    std::fs::write(
        dir.path().join("VOUCH-FORMAT"),
        "vouch data directory\nformat 2\n",
    )
    .unwrap();
    let vfs = FaultVfs::new(dir.path());
    let err = DataDir::open_with(dir.path(), vfs.as_vfs()).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::UnsupportedFormat {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        vfs.op_count(),
        0,
        "nothing may be written to a newer data directory"
    );
}
