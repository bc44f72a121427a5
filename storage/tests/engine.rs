//! End-to-end tests of the storage engine through its public API: append, read, prove,
//! checkpoint, idempotency, reopen and recovery.

use std::sync::Arc;

use vouch_ledger_core::checkpoint::open_checkpoint;
use vouch_ledger_core::entry::{EntryDraft, EntryKind};
use vouch_ledger_core::merkle::MemoryTree;
use vouch_ledger_core::note::{Signer, Verifiers};
use vouch_ledger_core::proof::{verify_consistency, verify_inclusion};
use vouch_ledger_core::{EntryIndex, HashAlg, TreeSize};
use vouch_storage::{
    AppendError, CheckpointCadence, DataDir, Durability, LedgerConfig, LedgerOptions, ReadError,
};

fn signer() -> Signer {
    Signer::from_seed("test.example/log", &[7u8; 32]).unwrap()
}

fn config(hash: HashAlg) -> LedgerConfig {
    LedgerConfig {
        hash,
        origin: "test.example/log".into(),
        leaf_hash_index: true,
    }
}

fn draft(i: u64, key: Option<&str>) -> EntryDraft {
    EntryDraft::new(
        EntryKind::Record,
        key.map(str::to_owned),
        "application/json".into(),
        format!("{{\"n\":{i}}}").into_bytes(),
    )
    .unwrap()
}

fn options() -> LedgerOptions {
    LedgerOptions {
        checkpoints: CheckpointCadence {
            every_entries: Some(50),
            every: None,
        },
        ..LedgerOptions::default()
    }
}

#[test]
fn append_read_prove_and_reopen_in_both_hash_modes() {
    for hash in HashAlg::ALL {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::open(dir.path()).unwrap();
        dd.create_ledger("main", &config(hash), &signer().verifier(), 1)
            .unwrap();
        let mut model = MemoryTree::new(hash);
        {
            let ledger = dd.open_ledger("main", signer(), options()).unwrap();
            for i in 0..300u64 {
                let r = ledger.append(draft(i, None)).unwrap();
                assert_eq!(r.index, EntryIndex(i));
                assert!(!r.duplicate);
                model.push(r.leaf_hash);
                assert_eq!(
                    r.leaf_hash,
                    hash.leaf_hash(&ledger.get_raw(r.index).unwrap())
                );
            }
            assert_eq!(ledger.size(), TreeSize(300));
            for size in [1u64, 2, 3, 7, 64, 100, 257, 300] {
                let root = ledger.root_at(TreeSize(size)).unwrap();
                assert_eq!(root, model.root_at(TreeSize(size)).unwrap(), "size {size}");
                for index in [0, size / 2, size - 1] {
                    let p = ledger
                        .inclusion_proof(EntryIndex(index), TreeSize(size))
                        .unwrap();
                    let leaf = ledger.leaf_hash(EntryIndex(index)).unwrap();
                    verify_inclusion(hash, &leaf, &p, &root).unwrap();
                }
                for old in [1u64, size / 3 + 1, size] {
                    let p = ledger
                        .consistency_proof(TreeSize(old), TreeSize(size))
                        .unwrap();
                    verify_consistency(hash, &p, &model.root_at(TreeSize(old)).unwrap(), &root)
                        .unwrap();
                }
            }
            let cp = ledger.checkpoint_now().unwrap();
            assert_eq!(cp.size(), TreeSize(300));
            let mut v = Verifiers::new();
            v.insert(signer().verifier());
            let (opened, _) = open_checkpoint(&cp.note, &v).unwrap();
            assert_eq!(opened.root, model.root());
            // Cadence checkpoints were made along the way.
            assert!(
                ledger.checkpoint_count() >= 6,
                "{}",
                ledger.checkpoint_count()
            );
            assert_eq!(
                ledger
                    .checkpoint_at(TreeSize(50))
                    .unwrap()
                    .unwrap()
                    .checkpoint
                    .root,
                model.root_at(TreeSize(50)).unwrap()
            );
            ledger.close();
        }
        let ledger = dd.open_ledger("main", signer(), options()).unwrap();
        assert_eq!(ledger.size(), TreeSize(300));
        assert_eq!(ledger.root_at(TreeSize(300)).unwrap(), model.root());
        let e = ledger.get(EntryIndex(123)).unwrap();
        assert_eq!(e.payload, b"{\"n\":123}");
        let r = ledger.append(draft(300, None)).unwrap();
        assert_eq!(r.index, EntryIndex(300));
        let report = ledger.verify(&mut |_| {}).unwrap();
        assert_eq!(report.entries, 301);
    }
}

#[test]
fn idempotency_keys_return_the_original_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::open(dir.path()).unwrap();
    dd.create_ledger("l", &config(HashAlg::Blake3), &signer().verifier(), 1)
        .unwrap();
    let ledger = dd.open_ledger("l", signer(), options()).unwrap();
    let first = ledger.append(draft(1, Some("k-1"))).unwrap();
    ledger.append(draft(2, None)).unwrap();
    let again = ledger.append(draft(1, Some("k-1"))).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.index, first.index);
    assert_eq!(again.leaf_hash, first.leaf_hash);
    assert_eq!(ledger.size(), TreeSize(2));
    let conflict = ledger.append(draft(99, Some("k-1"))).unwrap_err();
    assert!(
        matches!(
            conflict,
            AppendError::IdempotencyConflict {
                index: EntryIndex(0),
                ..
            }
        ),
        "{conflict}"
    );
    // A duplicate key inside one batch is refused before anything is written.
    let err = ledger
        .submit(vec![draft(5, Some("x")), draft(5, Some("x"))], false)
        .unwrap_err();
    assert!(matches!(err, AppendError::DuplicateKeyInBatch(_)), "{err}");
    assert_eq!(
        ledger.find_by_idempotency_key("k-1").unwrap(),
        Some(EntryIndex(0))
    );
    assert_eq!(ledger.find_by_idempotency_key("nope").unwrap(), None);
    assert_eq!(
        ledger.find_by_leaf_hash(&first.leaf_hash).unwrap(),
        Some(EntryIndex(0))
    );
    drop(ledger);
    // Keys survive a reopen.
    let ledger = dd.open_ledger("l", signer(), options()).unwrap();
    let again = ledger.append(draft(1, Some("k-1"))).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.index, EntryIndex(0));
}

#[test]
fn batches_are_contiguous_and_can_wait_for_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::open(dir.path()).unwrap();
    dd.create_ledger("b", &config(HashAlg::Sha256), &signer().verifier(), 1)
        .unwrap();
    let ledger = Arc::new(dd.open_ledger("b", signer(), options()).unwrap());
    let outcome = ledger
        .submit((0..10).map(|i| draft(i, None)).collect(), true)
        .unwrap()
        .wait()
        .unwrap();
    let idx: Vec<u64> = outcome.receipts.iter().map(|r| r.index.0).collect();
    assert_eq!(idx, (0..10).collect::<Vec<_>>());
    let cp = outcome.checkpoint.expect("asked to wait for a checkpoint");
    assert!(cp.size() >= TreeSize(10));
    let root = cp.checkpoint.root;
    for r in &outcome.receipts {
        let p = ledger.inclusion_proof(r.index, cp.size()).unwrap();
        verify_inclusion(HashAlg::Sha256, &r.leaf_hash, &p, &root).unwrap();
    }
    // Many threads append at once; every index is handed out exactly once.
    let mut handles = Vec::new();
    for t in 0..8 {
        let l = ledger.clone();
        handles.push(std::thread::spawn(move || {
            (0..50)
                .map(|i| l.append(draft(t * 1000 + i, None)).unwrap().index.0)
                .collect::<Vec<_>>()
        }));
    }
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (10..410).collect::<Vec<_>>());
}

#[test]
fn reads_beyond_the_end_and_bad_sizes_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::open(dir.path()).unwrap();
    dd.create_ledger("r", &config(HashAlg::Blake3), &signer().verifier(), 1)
        .unwrap();
    let ledger = dd.open_ledger("r", signer(), options()).unwrap();
    ledger.append(draft(0, None)).unwrap();
    let err = ledger.get(EntryIndex(1)).unwrap_err();
    assert!(matches!(err, ReadError::OutOfRange { .. }), "{err}");
    assert!(ledger.inclusion_proof(EntryIndex(0), TreeSize(2)).is_err());
    assert!(ledger.inclusion_proof(EntryIndex(1), TreeSize(1)).is_err());
    assert!(ledger.consistency_proof(TreeSize(2), TreeSize(1)).is_err());
}

#[test]
fn the_wrong_key_and_a_second_opener_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::open(dir.path()).unwrap();
    dd.create_ledger("k", &config(HashAlg::Blake3), &signer().verifier(), 1)
        .unwrap();
    let other = Signer::from_seed("test.example/log", &[8u8; 32]).unwrap();
    let err = dd.open_ledger("k", other, options()).unwrap_err();
    assert!(
        err.to_string().contains("not the ledger's current key"),
        "{err}"
    );
    let _open = dd.open_ledger("k", signer(), options()).unwrap();
    let err = dd.open_ledger("k", signer(), options()).unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(dd.open_ledger("nope", signer(), options()).is_err());
    assert!(
        dd.create_ledger(
            "Bad/Name",
            &config(HashAlg::Blake3),
            &signer().verifier(),
            1
        )
        .is_err()
    );
}

#[test]
fn segments_roll_over_and_the_log_reopens_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::open(dir.path()).unwrap();
    dd.create_ledger("s", &config(HashAlg::Blake3), &signer().verifier(), 1)
        .unwrap();
    let opts = LedgerOptions {
        segment_target_size: 4096,
        durability: Durability::Interval(std::time::Duration::from_millis(5)),
        ..options()
    };
    let mut leaves = Vec::new();
    {
        let ledger = dd.open_ledger("s", signer(), opts.clone()).unwrap();
        for i in 0..500 {
            leaves.push(ledger.append(draft(i, None)).unwrap().leaf_hash);
        }
    }
    let segs = std::fs::read_dir(dir.path().join("ledgers/s/segments"))
        .unwrap()
        .count();
    assert!(segs > 5, "expected several segments, got {segs}");
    let ledger = dd.open_ledger("s", signer(), opts).unwrap();
    let tree = MemoryTree::from_leaf_hashes(HashAlg::Blake3, leaves);
    assert_eq!(ledger.root_at(TreeSize(500)).unwrap(), tree.root());
    let mut n = 0;
    ledger
        .scan(EntryIndex(0), EntryIndex(500), |i, _| {
            assert_eq!(i.0, n);
            n += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(n, 500);
    let report = ledger.verify(&mut |_| {}).unwrap();
    assert_eq!(report.entries, 500);
    assert!(report.checkpoints >= 10);
}
