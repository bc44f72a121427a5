//! Model-based property test: random sequences of operations against the engine and against a
//! simple in-memory model (a `Vec` of entries, a `MemoryTree`, a map of idempotency keys and a
//! list of checkpoints), which must give the same answer to every one.
//!
//! Operations: single appends and batches (with and without idempotency keys, keys repeated
//! with the same or other contents, batches that wait for a checkpoint), reads, roots,
//! inclusion and consistency proofs at random sizes (valid or not), `checkpoint_now`, close
//! and reopen, look-ups by idempotency key, by leaf hash and by time, and a clock that moves
//! both ways. Checkpoints by cadence and at close are predicted exactly. 64 cases by default;
//! `PROPTEST_CASES` sets another number.

// Proof arguments keep the short names of RFC 9162 (`i`, `s`, `o`, `n`) beside the harness
// and model (`h`, `m`).
#![allow(clippy::many_single_char_names)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use support::{StepClock, config, signer};
use vouch_ledger_core::entry::{EntryDraft, EntryKind, Timestamp};
use vouch_ledger_core::merkle::MemoryTree;
use vouch_ledger_core::proof::{prove_consistency, prove_inclusion, verify_inclusion};
use vouch_ledger_core::{EntryIndex, Hash, HashAlg, TreeSize};
use vouch_storage::{
    AppendError, CheckpointCadence, DataDir, Durability, Ledger, LedgerOptions, ProveError,
    ReadError, Receipt,
};

const LEDGER: &str = "model";
/// The checkpoint cadence, in entries.
const EVERY: u64 = 5;

#[derive(Debug, Clone)]
enum Op {
    Append(Option<u8>, u8),
    Batch(Vec<(Option<u8>, u8)>, bool),
    Get(u16),
    Root(u16),
    Inclusion(u16, u16),
    Consistency(u16, u16),
    CheckpointNow,
    Reopen,
    FindKey(u8),
    FindLeaf(u16),
    FindUnknownLeaf(u8),
    IndexAtTime(u16, i8),
    Clock(i16),
}

fn item() -> impl Strategy<Value = (Option<u8>, u8)> {
    (proptest::option::weighted(0.5, 0..6u8), 0..3u8)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => item().prop_map(|(k, p)| Op::Append(k, p)),
        3 => (proptest::collection::vec(item(), 0..5), any::<bool>())
            .prop_map(|(items, wait)| Op::Batch(items, wait)),
        2 => any::<u16>().prop_map(Op::Get),
        1 => any::<u16>().prop_map(Op::Root),
        2 => (any::<u16>(), any::<u16>()).prop_map(|(i, s)| Op::Inclusion(i, s)),
        2 => (any::<u16>(), any::<u16>()).prop_map(|(o, n)| Op::Consistency(o, n)),
        1 => Just(Op::CheckpointNow),
        1 => Just(Op::Reopen),
        1 => (0..7u8).prop_map(Op::FindKey),
        1 => any::<u16>().prop_map(Op::FindLeaf),
        1 => any::<u8>().prop_map(Op::FindUnknownLeaf),
        1 => (any::<u16>(), -1..=1i8).prop_map(|(s, d)| Op::IndexAtTime(s, d)),
        2 => (-3..10i16).prop_map(Op::Clock),
    ]
}

fn make_draft((key, payload): (Option<u8>, u8)) -> EntryDraft {
    EntryDraft::new(
        EntryKind::Record,
        key.map(|k| format!("key-{k}")),
        "text/plain".into(),
        format!("payload {payload}").into_bytes(),
    )
    .unwrap()
}

/// The receipts of an accepted append, and the (size, root) of the checkpoint it waited for.
type Answer = (Vec<Receipt>, Option<(u64, Hash)>);

/// Why the model refuses an append.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    Empty,
    DuplicateKeyInBatch(String),
    Conflict(String, u64),
}

fn refusal(e: &AppendError) -> Refusal {
    match e {
        AppendError::EmptyBatch => Refusal::Empty,
        AppendError::DuplicateKeyInBatch(k) => Refusal::DuplicateKeyInBatch(k.clone()),
        AppendError::IdempotencyConflict { key, index } => Refusal::Conflict(key.clone(), index.0),
        other => panic!("the engine refused with {other}"),
    }
}

struct Entry {
    raw: Vec<u8>,
    leaf: Hash,
    ts: u64,
    draft: EntryDraft,
}

/// The reference: everything the engine should answer, computed the simple way.
struct Model {
    alg: HashAlg,
    entries: Vec<Entry>,
    tree: MemoryTree,
    keys: HashMap<String, u64>,
    /// (size, root) of every checkpoint.
    checkpoints: Vec<(u64, Hash)>,
    last_ts: u64,
    clock: u64,
    /// The size of the last checkpoint the open ledger made or found (its cadence counts
    /// from there).
    last_checkpoint: u64,
}

impl Model {
    fn size(&self) -> u64 {
        self.entries.len() as u64
    }

    fn checkpoint(&mut self) -> (u64, Hash) {
        let size = self.size();
        if let Some(&last) = self.checkpoints.last()
            && last.0 == size
        {
            return last;
        }
        let cp = (size, self.tree.root());
        self.checkpoints.push(cp);
        self.last_checkpoint = size;
        cp
    }

    /// The sequencer's timed work after every command.
    fn tick(&mut self) {
        let new = self.size() - self.last_checkpoint;
        if new >= EVERY {
            self.checkpoint();
        }
    }

    fn receipt(&self, index: u64, tree_size: u64, duplicate: bool) -> Receipt {
        let e = &self.entries[usize::try_from(index).unwrap()];
        Receipt {
            index: EntryIndex(index),
            leaf_hash: e.leaf,
            timestamp: Timestamp(e.ts),
            tree_size: TreeSize(tree_size),
            duplicate,
        }
    }

    fn submit(&mut self, drafts: &[EntryDraft], wait: bool) -> Result<Answer, Refusal> {
        if drafts.is_empty() {
            return Err(Refusal::Empty);
        }
        let mut seen = std::collections::HashSet::new();
        for d in drafts {
            if let Some(k) = d.idempotency_key()
                && !seen.insert(k)
            {
                return Err(Refusal::DuplicateKeyInBatch(k.to_owned()));
            }
        }
        let before = self.size();
        let mut existing = Vec::new();
        for d in drafts {
            let found = d
                .idempotency_key()
                .and_then(|k| self.keys.get(k).map(|&i| (k, i)));
            if let Some((k, i)) = found {
                let e = &self.entries[usize::try_from(i).unwrap()].draft;
                if e.kind() != d.kind()
                    || e.content_type() != d.content_type()
                    || e.payload() != d.payload()
                {
                    return Err(Refusal::Conflict(k.to_owned(), i));
                }
            }
            existing.push(found.map(|(_, i)| i));
        }
        let new = existing.iter().filter(|e| e.is_none()).count() as u64;
        let end = before + new;
        let ts = self.clock.max(self.last_ts);
        let mut receipts = Vec::new();
        for (d, e) in drafts.iter().zip(existing) {
            if let Some(i) = e {
                receipts.push(self.receipt(i, before, true));
                continue;
            }
            let index = self.size();
            let mut raw = Vec::new();
            d.encode_at(EntryIndex(index), Timestamp(ts), &mut raw);
            let leaf = self.alg.leaf_hash(&raw);
            self.tree.push(leaf);
            if let Some(k) = d.idempotency_key() {
                self.keys.insert(k.to_owned(), index);
            }
            self.entries.push(Entry {
                raw,
                leaf,
                ts,
                draft: d.clone(),
            });
            receipts.push(self.receipt(index, end, false));
        }
        if new > 0 {
            self.last_ts = ts;
        }
        let checkpoint = wait.then(|| {
            let needed = receipts.iter().map(|r| r.index.0 + 1).max().unwrap_or(0);
            match self.checkpoints.last() {
                Some(&cp) if cp.0 >= needed => cp,
                _ => self.checkpoint(),
            }
        });
        Ok((receipts, checkpoint))
    }
}

struct Harness {
    _scratch: tempfile::TempDir,
    dd: DataDir,
    options: LedgerOptions,
    clock: Arc<StepClock>,
    ledger: Option<Ledger>,
}

impl Harness {
    fn ledger(&self) -> &Ledger {
        self.ledger.as_ref().unwrap()
    }
}

/// Selects an index or size in `0..size + 2` (so sometimes past the end).
fn pick(sel: u16, size: u64) -> u64 {
    u64::from(sel) % (size + 2)
}

fn check_op(h: &mut Harness, m: &mut Model, op: &Op) {
    let size = m.size();
    let mut caught_up = false;
    match op {
        Op::Append(k, p) => {
            let d = make_draft((*k, *p));
            let got = h.ledger().append(d.clone()).map_err(|e| refusal(&e));
            let want = m.submit(&[d], false).map(|(r, _)| r[0]);
            assert_eq!(got, want);
            m.tick();
        }
        Op::Batch(items, wait) => {
            let drafts: Vec<EntryDraft> = items.iter().copied().map(make_draft).collect();
            let got = h
                .ledger()
                .submit(drafts.clone(), *wait)
                .and_then(vouch_storage::AppendTicket::wait)
                .map(|o| {
                    let cp = o.checkpoint.map(|c| (c.size().0, c.checkpoint.root));
                    (o.receipts, cp)
                })
                .map_err(|e| refusal(&e));
            let want = m.submit(&drafts, *wait);
            // A batch that waited for its checkpoint was answered after the sequencer caught up.
            caught_up = *wait && got.is_ok();
            assert_eq!(got, want);
            // (A batch refused before it reached the sequencer changed nothing to tick for.)
            m.tick();
        }
        Op::Get(sel) => {
            let i = pick(*sel, size);
            match h.ledger().get_raw(EntryIndex(i)) {
                Ok(raw) => {
                    assert!(i < size);
                    assert_eq!(raw, m.entries[usize::try_from(i).unwrap()].raw);
                }
                Err(ReadError::OutOfRange { index, size: s }) => {
                    assert!(i >= size);
                    assert_eq!((index, s), (EntryIndex(i), TreeSize(size)));
                }
                Err(e) => panic!("get {i}: {e}"),
            }
        }
        Op::Root(sel) => {
            let s = pick(*sel, size);
            match h.ledger().root_at(TreeSize(s)) {
                Ok(root) => assert_eq!(root, m.tree.root_at(TreeSize(s)).unwrap()),
                Err(ProveError::SizeBeyondLedger { .. }) => assert!(s > size),
                Err(e) => panic!("root at {s}: {e}"),
            }
        }
        Op::Inclusion(i, s) => {
            let (i, s) = (pick(*i, size), pick(*s, size));
            let got = h.ledger().inclusion_proof(EntryIndex(i), TreeSize(s));
            let want = prove_inclusion(m.alg, EntryIndex(i), TreeSize(s), &m.tree);
            match (got, want) {
                (Ok(p), Ok(q)) => {
                    assert_eq!(p, q);
                    let root = m.tree.root_at(TreeSize(s)).unwrap();
                    let leaf = m.entries[usize::try_from(i).unwrap()].leaf;
                    verify_inclusion(m.alg, &leaf, &p, &root).unwrap();
                }
                (Err(ProveError::SizeBeyondLedger { .. }), _) => assert!(s > size),
                (Err(ProveError::InvalidRequest(_)), Err(_)) => assert!(i >= s),
                (got, want) => panic!("inclusion {i} at {s}: {got:?} but the model says {want:?}"),
            }
        }
        Op::Consistency(o, n) => {
            let (o, n) = (pick(*o, size), pick(*n, size));
            let got = h.ledger().consistency_proof(TreeSize(o), TreeSize(n));
            let want = prove_consistency(m.alg, TreeSize(o), TreeSize(n), &m.tree);
            match (got, want) {
                (Ok(p), Ok(q)) => assert_eq!(p, q),
                (Err(ProveError::SizeBeyondLedger { .. }), _) => assert!(n > size),
                (Err(ProveError::InvalidRequest(_)), Err(_)) => assert!(o == 0 || o > n),
                (got, want) => {
                    panic!("consistency {o} to {n}: {got:?} but the model says {want:?}")
                }
            }
        }
        Op::CheckpointNow => {
            let cp = h.ledger().checkpoint_now().unwrap();
            let want = m.checkpoint();
            assert_eq!((cp.size().0, cp.checkpoint.root), want);
            m.tick();
        }
        Op::Reopen => {
            h.ledger.take().unwrap().close();
            if m.size() > m.last_checkpoint {
                m.checkpoint();
            }
            let ledger =
                h.dd.open_ledger(LEDGER, signer(), h.options.clone())
                    .unwrap();
            h.ledger = Some(ledger);
            m.last_checkpoint = m.checkpoints.last().map_or(0, |c| c.0);
        }
        Op::FindKey(k) => {
            let key = format!("key-{k}");
            let got = h.ledger().find_by_idempotency_key(&key).unwrap();
            assert_eq!(got, m.keys.get(&key).map(|&i| EntryIndex(i)), "{key}");
        }
        Op::FindLeaf(sel) => {
            if size > 0 {
                let i = u64::from(*sel) % size;
                let leaf = m.entries[usize::try_from(i).unwrap()].leaf;
                assert_eq!(
                    h.ledger().find_by_leaf_hash(&leaf).unwrap(),
                    Some(EntryIndex(i))
                );
            }
        }
        Op::FindUnknownLeaf(b) => {
            let leaf = m.alg.leaf_hash(&[*b, 0xFF, 0xFF]);
            assert_eq!(h.ledger().find_by_leaf_hash(&leaf).unwrap(), None);
        }
        Op::IndexAtTime(sel, delta) => {
            let i = u64::from(*sel) % (size + 1);
            let at = m
                .entries
                .get(usize::try_from(i).unwrap())
                .map_or(m.clock + 1_000, |e| {
                    e.ts.saturating_add_signed(i64::from(*delta))
                });
            let want = m
                .entries
                .iter()
                .rposition(|e| e.ts <= at)
                .map(|i| EntryIndex(i as u64));
            assert_eq!(
                h.ledger().index_at_time(Timestamp(at)).unwrap(),
                want,
                "at {at}"
            );
        }
        Op::Clock(delta) => {
            m.clock = m.clock.saturating_add_signed(i64::from(*delta) * 1_000);
            h.clock.set(m.clock);
        }
    }
    let ledger = h.ledger();
    assert_eq!(ledger.size(), TreeSize(m.size()), "after {op:?}");
    // The sequencer makes cadence checkpoints after it answered the appends of a group, so the
    // checkpoints are compared only once it has surely caught up: when it answered a later
    // command (a checkpoint, a batch that waited for one), or was closed.
    let answered_later = match op {
        Op::CheckpointNow | Op::Reopen => true,
        _ => caught_up,
    };
    if answered_later {
        check_checkpoints(ledger, m);
    }
}

fn check_checkpoints(ledger: &Ledger, m: &Model) {
    assert_eq!(ledger.checkpoint_count(), m.checkpoints.len());
    assert_eq!(
        ledger
            .latest_checkpoint()
            .map(|c| (c.size().0, c.checkpoint.root)),
        m.checkpoints.last().copied()
    );
    for &(size, root) in &m.checkpoints {
        let cp = ledger.checkpoint_at(TreeSize(size)).unwrap().unwrap();
        assert_eq!(cp.checkpoint.root, root);
    }
}

fn run(alg: HashAlg, head_every_commit: bool, ops: &[Op]) {
    let scratch = support::scratch_dir();
    let dd = DataDir::open(scratch.path()).unwrap();
    dd.create_ledger(LEDGER, &config(alg), &signer().verifier(), 1)
        .unwrap();
    let clock = Arc::new(StepClock::new(1_000_000, 0));
    let options = LedgerOptions {
        durability: Durability::Fsync,
        checkpoints: CheckpointCadence {
            every_entries: Some(EVERY),
            every: None,
        },
        segment_target_size: 400,
        head_interval: if head_every_commit {
            Duration::ZERO
        } else {
            Duration::from_secs(3600)
        },
        clock: clock.clone(),
        // Small chunks, so that leaf-index runs are written, merged and reopened.
        leaf_index_chunk: 4,
        ..LedgerOptions::default()
    };
    let ledger = dd.open_ledger(LEDGER, signer(), options.clone()).unwrap();
    let mut h = Harness {
        _scratch: scratch,
        dd,
        options,
        clock,
        ledger: Some(ledger),
    };
    let mut m = Model {
        alg,
        entries: Vec::new(),
        tree: MemoryTree::new(alg),
        keys: HashMap::new(),
        checkpoints: Vec::new(),
        last_ts: 0,
        clock: 1_000_000,
        last_checkpoint: 0,
    };
    for op in ops {
        check_op(&mut h, &mut m, op);
    }
    // Closing makes the sequencer catch up (and sign the last checkpoint).
    check_op(&mut h, &mut m, &Op::Reopen);
    let ledger = h.ledger();
    let report = ledger.verify(&mut |_| {}).unwrap();
    assert_eq!(report.entries, m.size());
    assert_eq!(report.root, m.tree.root());
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64)
}

proptest! {
    // No regression files: integration tests have no lib.rs for proptest to put them beside;
    // a failure prints the minimal sequence of operations instead.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases())
    })]

    #[test]
    fn the_engine_agrees_with_the_model(
        sha256 in any::<bool>(),
        head_every_commit in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let alg = if sha256 { HashAlg::Sha256 } else { HashAlg::Blake3 };
        run(alg, head_every_commit, &ops);
    }
}
