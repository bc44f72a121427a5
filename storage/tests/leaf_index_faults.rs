//! The leaf-hash index under faults: a run that cannot be written keeps its entries in memory
//! and is written later without poisoning the ledger, and a crash at a random moment while runs
//! are written and merged leaves a ledger whose acknowledged entries are all found again.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::fault_vfs::{Fault, FaultVfs, OpKind, Survival};
use support::{Rng, StepClock, config, draft, signer};
use vouch_ledger_core::{EntryIndex, Hash, HashAlg};
use vouch_storage::{CheckpointCadence, DataDir, Durability, LedgerOptions};

const LEDGER: &str = "leaf";

fn options(clock: &Arc<StepClock>) -> LedgerOptions {
    LedgerOptions {
        durability: Durability::Fsync,
        checkpoints: CheckpointCadence {
            every_entries: Some(16),
            every: None,
        },
        head_interval: Duration::ZERO,
        clock: clock.clone(),
        leaf_index_chunk: 4,
        ..LedgerOptions::default()
    }
}

#[test]
fn a_run_that_cannot_be_written_stays_in_memory_and_is_written_later() {
    let scratch = support::scratch_dir();
    let root = scratch.path();
    let vfs = FaultVfs::new(root);
    let dd = DataDir::open_with(root, vfs.as_vfs()).unwrap();
    dd.create_ledger(LEDGER, &config(HashAlg::Sha256), &signer().verifier(), 1)
        .unwrap();
    let clock = Arc::new(StepClock::new(1_000, 1_000));
    vfs.fail_next(OpKind::Write, ".run.tmp", Fault::Enospc);
    let ledger = dd.open_ledger(LEDGER, signer(), options(&clock)).unwrap();
    let mut receipts: Vec<_> = (0..4)
        .map(|i| ledger.append(draft(i, None)).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while vfs.fault_pending() {
        assert!(Instant::now() < deadline, "the run was never attempted");
        std::thread::sleep(Duration::from_millis(2));
    }
    // The failed write poisoned nothing: appends go on, every entry is found.
    receipts.push(ledger.append(draft(4, None)).unwrap());
    assert_eq!(ledger.poisoned(), None);
    for r in &receipts {
        assert_eq!(
            ledger.find_by_leaf_hash(&r.leaf_hash).unwrap(),
            Some(r.index)
        );
    }
    // The write is tried again, and succeeds now that there is space.
    loop {
        let s = ledger.leaf_index_status().unwrap();
        if s.runs == vec![(0, 4)] {
            assert_eq!(s.in_memory, 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run was not written again: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for r in &receipts {
        assert_eq!(
            ledger.find_by_leaf_hash(&r.leaf_hash).unwrap(),
            Some(r.index)
        );
    }
}

#[test]
fn a_crash_while_runs_are_written_and_merged_loses_no_acknowledged_entry() {
    let mut leaf_index_ops_before_crash = 0;
    for seed in 1..=12u64 {
        let scratch = support::scratch_dir();
        let root = scratch.path().join("live");
        std::fs::create_dir_all(&root).unwrap();
        let vfs = FaultVfs::new(&root);
        let dd = DataDir::open_with(&root, vfs.as_vfs()).unwrap();
        dd.create_ledger(LEDGER, &config(HashAlg::Blake3), &signer().verifier(), 1)
            .unwrap();
        let clock = Arc::new(StepClock::new(1_000, 1_000));
        let ledger = dd.open_ledger(LEDGER, signer(), options(&clock)).unwrap();
        let mut rng = Rng::new(seed);
        let mut acked: BTreeMap<u64, Hash> = BTreeMap::new();
        let crash_after = 20 + rng.below(150);
        let mut n = 0u64;
        'work: for round in 0..200u64 {
            if round == crash_after {
                vfs.crash_at(vfs.op_count() + 1 + rng.below(30));
            }
            let batch = 1 + rng.below(6);
            let drafts = (n..n + batch).map(|i| draft(i, None)).collect();
            n += batch;
            match ledger
                .submit(drafts, false)
                .and_then(vouch_storage::AppendTicket::wait)
            {
                Ok(out) => {
                    for r in out.receipts {
                        acked.insert(r.index.0, r.leaf_hash);
                    }
                }
                Err(_) => break 'work,
            }
        }
        drop(ledger);
        drop(dd);
        leaf_index_ops_before_crash += vfs
            .trace()
            .iter()
            .filter(|op| op.path.to_string_lossy().contains("leaf-index"))
            .count();
        for survival in [Survival::Synced, Survival::Random(seed)] {
            let dest = scratch.path().join(format!("after-{survival:?}"));
            let notes = vfs.materialize(&dest, survival, false).unwrap();
            let dd = DataDir::open(&dest).unwrap();
            let ledger = dd
                .open_ledger(
                    LEDGER,
                    signer(),
                    LedgerOptions {
                        leaf_index_chunk: 4,
                        ..LedgerOptions::default()
                    },
                )
                .unwrap_or_else(|e| panic!("seed {seed}, {survival:?}: {e}; {notes}"));
            for (&index, hash) in &acked {
                assert_eq!(
                    ledger.find_by_leaf_hash(hash).unwrap(),
                    Some(EntryIndex(index)),
                    "seed {seed}, {survival:?}: entry {index}; {notes}"
                );
            }
            support::assert_leaf_index_covers(&ledger, &format!("seed {seed}, {survival:?}"));
        }
    }
    assert!(
        leaf_index_ops_before_crash > 0,
        "no run was written before the crashes: the test covers nothing"
    );
}
