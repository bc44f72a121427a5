//! Golden files of on-disk format version 1: any change to a format fails here, loudly.
//!
//! `tests/data/v1/datadir/` is a data directory written by a deterministic script (a fixed
//! clock, a fixed signing seed, a fixed creation time): two ledgers, one per hash function,
//! each with several segments, checkpoints made by cadence, on demand and at close, entries of
//! every kind with idempotency keys, empty and binary payloads, closed and reopened once.
//! `tests/data/v1/expected.json` holds what reading it must give: every entry, the roots, the
//! checkpoints and a set of proofs.
//!
//! - `the_v1_golden_ledgers_read_back` opens a copy and checks it against `expected.json`.
//! - `the_v1_golden_ledgers_are_regenerated_byte_for_byte` runs the script again and compares
//!   every file (segments, offsets, node files, index head, checkpoints, `ledger.json`, the
//!   marker) with the golden ones; sled's files are not deterministic and are left out, as are
//!   the `LOCK` files. The derived files are kept only up to their last valid record (the
//!   engine reserves space ahead in 1 MiB steps; the rest must be zeros).
//!
//! After an intended format change, `VOUCH_BLESS=1 cargo nextest run -p vouch-storage --test
//! golden` rewrites both (then run it again without `VOUCH_BLESS` and commit the result with
//! the change and a new format version).

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use support::{StepClock, signer};
use vouch_ledger_core::entry::{EntryDraft, EntryKind};
use vouch_ledger_core::merkle::MemoryTree;
use vouch_ledger_core::proof::{verify_consistency, verify_inclusion};
use vouch_ledger_core::{EntryIndex, Hash, HashAlg, TreeSize};
use vouch_storage::{
    CheckpointCadence, DataDir, Durability, Ledger, LedgerConfig, LedgerOptions, verify_ledger_dir,
};

/// The ledgers of the golden data directory.
const LEDGERS: [(&str, HashAlg); 2] = [
    ("golden-blake3", HashAlg::Blake3),
    ("golden-sha256", HashAlg::Sha256),
];
/// The ledgers' creation time: 2023-11-14T22:13:20Z.
const CREATED_UNIX_NS: u64 = 1_700_000_000_000_000_000;
/// Entries written before the ledger is closed and reopened, and in all.
const FIRST: u64 = 16;
const TOTAL: u64 = 27;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1")
}

fn options(clock: &Arc<StepClock>) -> LedgerOptions {
    LedgerOptions {
        durability: Durability::Fsync,
        checkpoints: CheckpointCadence {
            every_entries: Some(10),
            every: None,
        },
        segment_target_size: 512,
        head_interval: Duration::from_secs(3600),
        clock: clock.clone(),
        ..LedgerOptions::default()
    }
}

/// The `n`-th entry of the script.
fn script_draft(n: u64) -> EntryDraft {
    let kind = EntryKind::ALL[usize::try_from(n).unwrap() % EntryKind::ALL.len()];
    let key = match n {
        3 => Some("order-0003".to_owned()),
        18 => Some("golden key \u{e9}18".to_owned()),
        _ => None,
    };
    let content_type = if n % 3 == 2 { "" } else { "application/json" };
    let payload = match n {
        7 => Vec::new(),
        11 => (0..=255u8).collect(),
        _ => format!("{{\"n\":{n}}}").into_bytes(),
    };
    EntryDraft::new(kind, key, content_type.into(), payload).unwrap()
}

/// Writes the golden data directory into `root`.
fn generate(root: &Path) {
    let dd = DataDir::open(root).unwrap();
    for (name, hash) in LEDGERS {
        let config = LedgerConfig {
            hash,
            origin: support::ORIGIN.into(),
            leaf_hash_index: true,
        };
        dd.create_ledger(name, &config, &signer().verifier(), CREATED_UNIX_NS)
            .unwrap();
        let clock = Arc::new(StepClock::new(CREATED_UNIX_NS + 1_000_000_000, 1_000_000));
        {
            let ledger = dd.open_ledger(name, signer(), options(&clock)).unwrap();
            for n in 0..12 {
                ledger.append(script_draft(n)).unwrap();
            }
            let batch = (12..FIRST).map(script_draft).collect();
            ledger.submit(batch, false).unwrap().wait().unwrap();
            ledger.checkpoint_now().unwrap();
            ledger.close();
        }
        {
            let ledger = dd.open_ledger(name, signer(), options(&clock)).unwrap();
            let batch = (FIRST..20).map(script_draft).collect();
            ledger.submit(batch, true).unwrap().wait().unwrap();
            // An idempotent retry: nothing new.
            assert!(ledger.append(script_draft(3)).unwrap().duplicate);
            for n in 20..TOTAL {
                ledger.append(script_draft(n)).unwrap();
            }
            ledger.close();
        }
    }
}

/// The files that make up format v1 of a data directory, by relative path, with the derived
/// files cut after their last valid record (and checked to hold only zeros after it).
fn format_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "sled" {
                    stack.push(path);
                }
                continue;
            }
            if name == "LOCK" {
                continue;
            }
            files.insert(rel, fs::read(&path).unwrap());
        }
    }
    // Each ledger's size is in its index head (bytes 16..24).
    let heads: Vec<(String, u64)> = files
        .iter()
        .filter_map(|(rel, bytes)| {
            let dir = rel.strip_suffix("/index.head")?;
            Some((
                dir.to_owned(),
                u64::from_le_bytes(bytes[16..24].try_into().unwrap()),
            ))
        })
        .collect();
    assert_eq!(heads.len(), LEDGERS.len(), "one index head per ledger");
    for (dir, size) in heads {
        for (rel, bytes) in &mut files {
            let Some(file) = rel.strip_prefix(&format!("{dir}/")) else {
                continue;
            };
            let valid = if file == "offsets.dat" {
                32 + 8 * size
            } else if let Some(level) = file
                .strip_prefix("tree/level-")
                .and_then(|l| l.strip_suffix(".dat"))
            {
                32 + 32 * (size >> level.parse::<u32>().unwrap())
            } else {
                continue;
            };
            let valid = usize::try_from(valid).unwrap();
            assert!(bytes.len() >= valid, "{rel} is shorter than its records");
            assert!(
                bytes[valid..].iter().all(|b| *b == 0),
                "{rel} holds data after its last record"
            );
            bytes.truncate(valid);
        }
    }
    files
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    ledgers: BTreeMap<String, ExpectedLedger>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedLedger {
    hash: String,
    size: u64,
    root: String,
    entries: Vec<ExpectedEntry>,
    checkpoints: Vec<ExpectedCheckpoint>,
    inclusion_proofs: Vec<ExpectedProof>,
    consistency_proofs: Vec<ExpectedProof>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedEntry {
    index: u64,
    kind: String,
    timestamp_unix_ns: u64,
    idempotency_key: Option<String>,
    content_type: String,
    payload_hex: String,
    leaf_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedCheckpoint {
    size: u64,
    root: String,
    note: String,
}

/// An inclusion proof (`from` is the entry index) or a consistency proof (`from` is the old
/// size) at tree size `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedProof {
    from: u64,
    to: u64,
    path: Vec<String>,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

const INCLUSIONS: [(u64, u64); 6] = [(0, 1), (3, 10), (7, 16), (11, 27), (18, 20), (26, 27)];
const CONSISTENCIES: [(u64, u64); 4] = [(1, 27), (10, 16), (16, 27), (20, 27)];

/// What an open ledger says, in the form of `expected.json`.
fn describe(ledger: &Ledger) -> ExpectedLedger {
    let size = ledger.size().0;
    let entries = (0..size)
        .map(|i| {
            let e = ledger.get(EntryIndex(i)).unwrap();
            ExpectedEntry {
                index: i,
                kind: e.kind.name().to_owned(),
                timestamp_unix_ns: e.timestamp.0,
                idempotency_key: e.idempotency_key,
                content_type: e.content_type,
                payload_hex: hex(&e.payload),
                leaf_hash: ledger.leaf_hash(EntryIndex(i)).unwrap().to_hex(),
            }
        })
        .collect();
    let mut checkpoints = Vec::new();
    let mut from = TreeSize(0);
    while let Some(cp) = ledger.checkpoint_covering(from).unwrap() {
        checkpoints.push(ExpectedCheckpoint {
            size: cp.size().0,
            root: cp.checkpoint.root.to_hex(),
            note: String::from_utf8(cp.note.to_vec()).unwrap(),
        });
        from = TreeSize(cp.size().0 + 1);
    }
    let path = |p: &[Hash]| p.iter().map(Hash::to_hex).collect();
    ExpectedLedger {
        hash: ledger.hash_alg().name().to_owned(),
        size,
        root: ledger.root_at(TreeSize(size)).unwrap().to_hex(),
        entries,
        checkpoints,
        inclusion_proofs: INCLUSIONS
            .iter()
            .map(|&(i, s)| ExpectedProof {
                from: i,
                to: s,
                path: path(
                    &ledger
                        .inclusion_proof(EntryIndex(i), TreeSize(s))
                        .unwrap()
                        .path,
                ),
            })
            .collect(),
        consistency_proofs: CONSISTENCIES
            .iter()
            .map(|&(o, n)| ExpectedProof {
                from: o,
                to: n,
                path: path(
                    &ledger
                        .consistency_proof(TreeSize(o), TreeSize(n))
                        .unwrap()
                        .path,
                ),
            })
            .collect(),
    }
}

fn describe_all(root: &Path) -> Expected {
    let dd = DataDir::open(root).unwrap();
    let mut ledgers = BTreeMap::new();
    for (name, _) in LEDGERS {
        let ledger = dd
            .open_ledger(name, signer(), LedgerOptions::default())
            .unwrap();
        ledgers.insert(name.to_owned(), describe(&ledger));
    }
    Expected { ledgers }
}

fn read_expected() -> Expected {
    let path = golden_dir().join("expected.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (VOUCH_BLESS=1 writes the golden files)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn hash(text: &str) -> Hash {
    Hash::from_hex(text).unwrap()
}

#[test]
fn the_v1_golden_ledgers_read_back() {
    let golden = golden_dir().join("datadir");
    assert!(
        golden.join("VOUCH-FORMAT").is_file(),
        "{} is missing (VOUCH_BLESS=1 writes the golden files)",
        golden.display()
    );
    let expected = read_expected();
    assert_eq!(
        expected.ledgers.keys().collect::<Vec<_>>(),
        LEDGERS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .iter()
            .collect::<Vec<_>>()
    );
    let scratch = support::scratch_dir();
    let root = scratch.path().join("data");
    support::copy_dir(&golden, &root).unwrap();
    for (name, alg) in LEDGERS {
        let want = &expected.ledgers[name];
        assert_eq!(want.hash, alg.name());
        // The expected values hang together on their own.
        let tree =
            MemoryTree::from_leaf_hashes(alg, want.entries.iter().map(|e| hash(&e.leaf_hash)));
        assert_eq!(tree.root().to_hex(), want.root, "{name}");

        let offline = verify_ledger_dir(&root, name, &mut |_| {}).unwrap();
        assert_eq!(offline.entries, want.size, "{name}");
        assert_eq!(offline.root.to_hex(), want.root, "{name}");
        assert_eq!(offline.torn_tail, None, "{name}");
        assert!(
            offline.segments >= 3,
            "{name}: {} segments",
            offline.segments
        );

        let dd = DataDir::open(&root).unwrap();
        let ledger = dd
            .open_ledger(name, signer(), LedgerOptions::default())
            .unwrap();
        assert_eq!(ledger.hash_alg(), alg);
        // Everything read back equals what was recorded when the files were written.
        assert_eq!(&describe(&ledger), want, "{name}");
        for e in &want.entries {
            let raw = ledger.get_raw(EntryIndex(e.index)).unwrap();
            assert_eq!(alg.leaf_hash(&raw).to_hex(), e.leaf_hash);
            if let Some(key) = &e.idempotency_key {
                assert_eq!(
                    ledger.find_by_idempotency_key(key).unwrap(),
                    Some(EntryIndex(e.index))
                );
            }
            assert_eq!(
                ledger.find_by_leaf_hash(&hash(&e.leaf_hash)).unwrap(),
                Some(EntryIndex(e.index))
            );
        }
        for cp in &want.checkpoints {
            assert_eq!(
                tree.root_at(TreeSize(cp.size)).unwrap().to_hex(),
                cp.root,
                "{name}: checkpoint {}",
                cp.size
            );
        }
        for p in &want.inclusion_proofs {
            let proof = ledger
                .inclusion_proof(EntryIndex(p.from), TreeSize(p.to))
                .unwrap();
            let leaf = hash(&want.entries[usize::try_from(p.from).unwrap()].leaf_hash);
            let root = tree.root_at(TreeSize(p.to)).unwrap();
            verify_inclusion(alg, &leaf, &proof, &root).unwrap();
        }
        for p in &want.consistency_proofs {
            let proof = ledger
                .consistency_proof(TreeSize(p.from), TreeSize(p.to))
                .unwrap();
            let old = tree.root_at(TreeSize(p.from)).unwrap();
            let new = tree.root_at(TreeSize(p.to)).unwrap();
            verify_consistency(alg, &proof, &old, &new).unwrap();
        }
        assert_eq!(ledger.verify(&mut |_| {}).unwrap().entries, want.size);
        // A version 1 ledger stays writable.
        let r = ledger.append(script_draft(TOTAL)).unwrap();
        assert_eq!(r.index, EntryIndex(want.size));
    }
}

#[test]
fn the_v1_golden_ledgers_are_regenerated_byte_for_byte() {
    let scratch = support::scratch_dir();
    let root = scratch.path().join("data");
    generate(&root);
    let regenerated = format_files(&root);
    let description = describe_all(&root);
    let golden = golden_dir();
    if std::env::var_os("VOUCH_BLESS").is_some() {
        let datadir = golden.join("datadir");
        if datadir.exists() {
            fs::remove_dir_all(&datadir).unwrap();
        }
        for (rel, bytes) in &regenerated {
            let path = datadir.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
        let mut json = serde_json::to_string_pretty(&description).unwrap();
        json.push('\n');
        fs::write(golden.join("expected.json"), json).unwrap();
        eprintln!("wrote the golden files under {}", golden.display());
    }
    let want = format_files(&golden.join("datadir"));
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&regenerated),
        names(&want),
        "the script writes other files than the golden data directory holds"
    );
    for (rel, bytes) in &regenerated {
        let golden_bytes = &want[rel];
        if bytes != golden_bytes {
            let at = bytes
                .iter()
                .zip(golden_bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(bytes.len().min(golden_bytes.len()));
            panic!(
                "{rel} differs from the golden file at byte {at} ({} bytes now, {} golden): \
                 the v1 format changed; if that is intended, bump the format version and bless \
                 new golden files",
                bytes.len(),
                golden_bytes.len()
            );
        }
    }
    assert_eq!(description, read_expected(), "expected.json is stale");
}
