//! Corruption is detected, named, or repaired; the log is never silently changed.
//!
//! One table of cases, each a damage done to a copy of the same closed ledger (a flipped byte
//! in a segment header, frame length or body, the tree store, the offsets file, the checkpoint
//! file, the index head, `ledger.json` or `VOUCH-FORMAT`; a deleted sled directory or node
//! file; a truncated or deleted segment) and what must follow: whether the offline verifier,
//! opening, reading an entry, proving and verifying the open ledger fail, each naming the
//! damaged file (and the byte offset where there is one), or succeed with every entry intact
//! (derived files rebuilt from the log). After every case, the segment files must hold exactly
//! the bytes they held after the damage: nothing is truncated or rewritten to hide it.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use support::{StepClock, config, draft, signer};
use vouch_ledger_core::entry::EntryView;
use vouch_ledger_core::merkle::MemoryTree;
use vouch_ledger_core::proof::verify_inclusion;
use vouch_ledger_core::{EntryIndex, HashAlg, TreeSize};
use vouch_storage::{CheckpointCadence, DataDir, LedgerOptions, verify_ledger_dir};

const LEDGER: &str = "c";
const HASH: HashAlg = HashAlg::Blake3;

/// Entries before the ledger is closed the first time (its head is saved then).
const FIRST: u64 = 100;
/// Entries in the end.
const SIZE: u64 = 150;

fn options(clock: &Arc<StepClock>) -> LedgerOptions {
    LedgerOptions {
        checkpoints: CheckpointCadence {
            every_entries: Some(40),
            every: None,
        },
        segment_target_size: 1024,
        head_interval: Duration::from_secs(3600),
        clock: clock.clone(),
        ..LedgerOptions::default()
    }
}

fn key(n: u64) -> Option<String> {
    (n % 10 == 3).then(|| format!("key-{n}"))
}

/// Where everything is in the pristine ledger, read from the files themselves.
struct Geometry {
    /// Segment file names, in order.
    segments: Vec<String>,
    /// Per entry: its segment's file name, its frame's offset and total length.
    frames: Vec<(String, u64, u64)>,
    /// Offsets and total lengths of the checkpoint frames.
    checkpoints: Vec<(u64, u64)>,
    /// The index head written after [`FIRST`] entries.
    head_at_first: Vec<u8>,
    /// Every entry's envelope.
    entries: Vec<Vec<u8>>,
}

impl Geometry {
    fn frame(&self, index: u64) -> &(String, u64, u64) {
        &self.frames[usize::try_from(index).unwrap()]
    }

    fn active(&self) -> &str {
        self.segments.last().unwrap()
    }

    /// The first entry of the active segment.
    fn first_active(&self) -> u64 {
        let active = self.active();
        self.frames.iter().position(|f| f.0 == active).unwrap() as u64
    }
}

/// The frames of a framed file (segment or checkpoint file): offset, total length, body.
fn frames_of(bytes: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 32usize;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push((
            at as u64,
            8 + len as u64,
            bytes[at + 8..at + 8 + len].to_vec(),
        ));
        at += 8 + len;
    }
    assert_eq!(
        at,
        bytes.len(),
        "the pristine file ends after its last frame"
    );
    out
}

fn build(root: &Path) -> Geometry {
    let dd = DataDir::open(root).unwrap();
    dd.create_ledger(LEDGER, &config(HASH), &signer().verifier(), 1)
        .unwrap();
    let clock = Arc::new(StepClock::new(1_000_000, 1_000));
    let dir = root.join("ledgers").join(LEDGER);
    let mut head_at_first = Vec::new();
    for range in [0..FIRST, FIRST..SIZE] {
        let ledger = dd.open_ledger(LEDGER, signer(), options(&clock)).unwrap();
        for n in range {
            assert_eq!(
                ledger.append(draft(n, key(n).as_deref())).unwrap().index,
                EntryIndex(n)
            );
        }
        ledger.close();
        if head_at_first.is_empty() {
            head_at_first = fs::read(dir.join("index.head")).unwrap();
        }
    }
    let mut segments: Vec<String> = fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    segments.sort();
    let mut frames = Vec::new();
    let mut entries = Vec::new();
    for name in &segments {
        let bytes = fs::read(dir.join("segments").join(name)).unwrap();
        for (offset, len, body) in frames_of(&bytes) {
            assert_eq!(
                EntryView::parse(&body).unwrap().index(),
                EntryIndex(frames.len() as u64)
            );
            frames.push((name.clone(), offset, len));
            entries.push(body);
        }
    }
    assert_eq!(frames.len() as u64, SIZE);
    let checkpoints: Vec<(u64, u64)> = frames_of(&fs::read(dir.join("checkpoints.dat")).unwrap())
        .into_iter()
        .map(|(o, l, _)| (o, l))
        .collect();
    let g = Geometry {
        segments,
        frames,
        checkpoints,
        head_at_first,
        entries,
    };
    // The cases below rely on this shape.
    assert!(g.segments.len() >= 4, "{} segments", g.segments.len());
    assert!(
        g.checkpoints.len() >= 3,
        "{} checkpoints",
        g.checkpoints.len()
    );
    assert!(g.first_active() > FIRST + 2 && g.first_active() < SIZE - 2);
    g
}

/// A file named in an error, with the byte offset where there is one and, optionally, words
/// the message must hold.
#[derive(Debug, Clone)]
struct Named {
    file: String,
    offset: Option<u64>,
    says: Option<&'static str>,
}

fn named(file: impl Into<String>, offset: Option<u64>) -> Named {
    Named {
        file: file.into(),
        offset,
        says: None,
    }
}

impl Named {
    fn check(&self, what: &str, message: &str) {
        assert!(
            message.contains(&self.file),
            "{what}: the error does not name {}: {message}",
            self.file
        );
        if let Some(o) = self.offset {
            assert!(
                message.contains(&format!("at byte {o}")),
                "{what}: the error does not name byte {o}: {message}"
            );
        }
        if let Some(s) = self.says {
            assert!(
                message.contains(s),
                "{what}: the error does not say {s:?}: {message}"
            );
        }
    }
}

/// A damage and what must follow. `None` means the step succeeds (with every entry intact).
struct Case {
    name: &'static str,
    /// Does the damage, given the data directory.
    damage: Box<dyn Fn(&Path)>,
    /// Offline verification (`verify_ledger_dir`) before the ledger is opened.
    offline: Option<Named>,
    /// Opening the data directory and the ledger.
    open: Option<Named>,
    /// Reading this entry.
    read: Option<(u64, Named)>,
    /// An inclusion proof of this entry at the full size.
    proof: Option<(u64, Named)>,
    /// `Ledger::verify`.
    verify: Option<Named>,
}

fn ledger_path(file: &str) -> String {
    format!("ledgers/{LEDGER}/{file}")
}

fn seg_path(name: &str) -> String {
    ledger_path(&format!("segments/{name}"))
}

fn flip(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[usize::try_from(at).unwrap()] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

fn cases(g: &Geometry) -> Vec<Case> {
    let ldir = |root: &Path| root.join("ledgers").join(LEDGER);
    let seg0 = g.segments[0].clone();
    let active = g.active().to_owned();
    let (_, off5, _) = g.frame(5).clone();
    let (_, off7, len7) = g.frame(7).clone();
    let a = g.first_active() + 1;
    let (_, off_a, len_a) = g.frame(a).clone();
    let last = SIZE - 1;
    let (_, off_last, len_last) = g.frame(last).clone();
    let seg0_end = g.frames.iter().filter(|f| f.0 == seg0).count() as u64;
    let (_, off_seg0_last, _) = g.frame(seg0_end - 1).clone();
    let (cp1, _) = g.checkpoints[1];
    let (cp_last, _) = *g.checkpoints.last().unwrap();
    let head_at_first = g.head_at_first.clone();
    // Node (1, 0) is not on the frontier of 150 = 0b1001_0110; node (1, 74) is.
    let frontier_node = 32 + 32 * (SIZE >> 1) - 32;
    vec![
        Case {
            name: "sealed segment header",
            damage: Box::new({
                let seg0 = seg0.clone();
                move |root| flip(&ldir(root).join("segments").join(&seg0), 16)
            }),
            offline: Some(named(seg_path(&seg0), Some(0))),
            open: Some(named(seg_path(&seg0), Some(0))),
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "sealed segment frame length",
            damage: Box::new({
                let seg0 = seg0.clone();
                move |root| flip(&ldir(root).join("segments").join(&seg0), off5)
            }),
            offline: Some(named(seg_path(&seg0), Some(off5))),
            open: None,
            read: Some((5, named(seg_path(&seg0), Some(off5)))),
            proof: None,
            verify: Some(named(seg_path(&seg0), Some(off5))),
        },
        Case {
            name: "sealed segment frame body",
            damage: Box::new({
                let seg0 = seg0.clone();
                move |root| flip(&ldir(root).join("segments").join(&seg0), off7 + len7 - 1)
            }),
            offline: Some(named(seg_path(&seg0), Some(off7))),
            open: None,
            read: Some((7, named(seg_path(&seg0), Some(off7)))),
            proof: None,
            verify: Some(named(seg_path(&seg0), Some(off7))),
        },
        Case {
            name: "active segment below the index head",
            damage: Box::new({
                let active = active.clone();
                move |root| {
                    flip(
                        &ldir(root).join("segments").join(&active),
                        off_a + len_a - 1,
                    );
                }
            }),
            offline: Some(named(seg_path(&active), Some(off_a))),
            open: None,
            read: Some((a, named(seg_path(&active), Some(off_a)))),
            proof: None,
            verify: Some(named(seg_path(&active), Some(off_a))),
        },
        Case {
            name: "active segment, last entry below the index head",
            damage: Box::new({
                let active = active.clone();
                move |root| {
                    flip(
                        &ldir(root).join("segments").join(&active),
                        off_last + len_last - 1,
                    );
                }
            }),
            offline: Some(named(seg_path(&active), Some(off_last))),
            open: Some(named(seg_path(&active), Some(off_last))),
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "active segment, last entry below the index head, no checkpoint covers it",
            damage: Box::new({
                let active = active.clone();
                move |root| {
                    // Drop the last checkpoint (as if it had never been made).
                    let f = fs::OpenOptions::new()
                        .write(true)
                        .open(ldir(root).join("checkpoints.dat"))
                        .unwrap();
                    f.set_len(cp_last).unwrap();
                    flip(
                        &ldir(root).join("segments").join(&active),
                        off_last + len_last - 1,
                    );
                }
            }),
            offline: Some(named(seg_path(&active), Some(off_last))),
            open: Some(named(seg_path(&active), Some(off_last))),
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "active segment above an older index head, below a checkpoint",
            damage: Box::new({
                let active = active.clone();
                let head = head_at_first.clone();
                move |root| {
                    fs::write(ldir(root).join("index.head"), &head).unwrap();
                    flip(
                        &ldir(root).join("segments").join(&active),
                        off_a + len_a - 1,
                    );
                }
            }),
            offline: Some(named(seg_path(&active), Some(off_a))),
            open: Some(named(seg_path(&active), Some(off_a))),
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "active segment truncated below the index head",
            damage: Box::new({
                let active = active.clone();
                move |root| {
                    let f = fs::OpenOptions::new()
                        .write(true)
                        .open(ldir(root).join("segments").join(&active))
                        .unwrap();
                    f.set_len(off_a + 3).unwrap();
                }
            }),
            offline: Some(named(seg_path(&active), Some(off_a))),
            open: Some(named(seg_path(&active), Some(off_a))),
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "active segment deleted",
            damage: Box::new({
                let active = active.clone();
                move |root| fs::remove_file(ldir(root).join("segments").join(&active)).unwrap()
            }),
            offline: Some(named(ledger_path("segments"), None)),
            open: Some(named(ledger_path("segments"), None)),
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "sealed segment truncated",
            damage: Box::new({
                let seg0 = seg0.clone();
                move |root| {
                    let path = ldir(root).join("segments").join(&seg0);
                    let len = fs::metadata(&path).unwrap().len();
                    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
                    f.set_len(len - 3).unwrap();
                }
            }),
            offline: Some(named(seg_path(&seg0), Some(off_seg0_last))),
            open: Some(named(seg_path(&seg0), Some(off_seg0_last))),
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "tree node",
            damage: Box::new(move |root| flip(&ldir(root).join("tree/level-01.dat"), 32 + 5)),
            offline: Some(named(ledger_path("tree/level-01.dat"), Some(32))),
            open: None,
            read: None,
            proof: Some((2, named(ledger_path("tree"), None))),
            verify: Some(named(ledger_path("tree/level-01.dat"), Some(32))),
        },
        Case {
            name: "tree node on the frontier (rebuilt)",
            damage: Box::new(move |root| {
                flip(&ldir(root).join("tree/level-01.dat"), frontier_node + 9);
            }),
            offline: Some(named(ledger_path("tree/level-01.dat"), Some(frontier_node))),
            open: None,
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "node file deleted, on the frontier (rebuilt)",
            damage: Box::new(move |root| {
                fs::remove_file(ldir(root).join("tree/level-01.dat")).unwrap();
            }),
            offline: Some(named(ledger_path("tree/level-01.dat"), None)),
            open: None,
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "node file deleted, off the frontier (rebuilt)",
            damage: Box::new(move |root| {
                fs::remove_file(ldir(root).join("tree/level-03.dat")).unwrap();
            }),
            offline: Some(named(ledger_path("tree/level-03.dat"), None)),
            open: None,
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "offsets record",
            damage: Box::new(move |root| flip(&ldir(root).join("offsets.dat"), 32 + 8 * 20)),
            offline: Some(named(ledger_path("offsets.dat"), Some(32 + 8 * 20))),
            open: None,
            read: Some((20, named(ledger_path("offsets.dat"), Some(32 + 8 * 20)))),
            proof: None,
            verify: Some(named(ledger_path("offsets.dat"), Some(32 + 8 * 20))),
        },
        Case {
            name: "offsets header (rebuilt)",
            damage: Box::new(move |root| flip(&ldir(root).join("offsets.dat"), 3)),
            offline: Some(named(ledger_path("offsets.dat"), Some(0))),
            open: None,
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "checkpoint frame body",
            damage: Box::new(move |root| flip(&ldir(root).join("checkpoints.dat"), cp1 + 20)),
            offline: Some(named(ledger_path("checkpoints.dat"), Some(cp1))),
            open: Some(named(ledger_path("checkpoints.dat"), Some(cp1))),
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "checkpoint frame checksum",
            damage: Box::new(move |root| flip(&ldir(root).join("checkpoints.dat"), cp_last + 5)),
            offline: Some(named(ledger_path("checkpoints.dat"), Some(cp_last))),
            open: Some(named(ledger_path("checkpoints.dat"), Some(cp_last))),
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "index head (rebuilt)",
            damage: Box::new(move |root| flip(&ldir(root).join("index.head"), 17)),
            offline: None,
            open: None,
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "ledger.json",
            damage: Box::new(move |root| flip(&ldir(root).join("ledger.json"), 0)),
            offline: Some(named(ledger_path("ledger.json"), None)),
            open: Some(named(ledger_path("ledger.json"), None)),
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "VOUCH-FORMAT of a newer version",
            damage: Box::new(move |root| {
                fs::write(
                    root.join("VOUCH-FORMAT"),
                    "vouch data directory\nformat 2\n",
                )
                .unwrap();
            }),
            offline: Some(Named {
                says: Some("format version 2 is not supported"),
                ..named("VOUCH-FORMAT", None)
            }),
            open: Some(Named {
                says: Some("format version 2 is not supported"),
                ..named("VOUCH-FORMAT", None)
            }),
            read: None,
            proof: None,
            verify: None,
        },
        Case {
            name: "sled deleted (rebuilt)",
            damage: Box::new(move |root| fs::remove_dir_all(ldir(root).join("sled")).unwrap()),
            offline: None,
            open: None,
            read: None,
            proof: None,
            verify: None,
        },
    ]
}

fn segment_bytes(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let dir = root.join("ledgers").join(LEDGER).join("segments");
    fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn run(case: &Case, pristine: &Path, g: &Geometry, tree: &MemoryTree) {
    let scratch = support::scratch_dir();
    let root = scratch.path().join("data");
    support::copy_dir(pristine, &root).unwrap();
    (case.damage)(&root);
    let damaged = segment_bytes(&root);

    match (&case.offline, verify_ledger_dir(&root, LEDGER, &mut |_| {})) {
        (None, Ok(report)) => assert_eq!(report.entries, SIZE),
        (None, Err(e)) => panic!("offline verification failed: {e}"),
        (Some(n), Err(e)) => n.check("offline verification", &e.to_string()),
        (Some(_), Ok(r)) => panic!("offline verification passed: {r:?}"),
    }

    let opened = DataDir::open(&root).and_then(|dd| {
        dd.open_ledger(
            LEDGER,
            signer(),
            options(&Arc::new(StepClock::new(u64::MAX / 2, 1))),
        )
    });
    let ledger = match (&case.open, opened) {
        (None, Ok(ledger)) => Some(ledger),
        (None, Err(e)) => panic!("open failed: {e}"),
        (Some(n), Err(e)) => {
            n.check("open", &e.to_string());
            None
        }
        (Some(_), Ok(_)) => panic!("the ledger opened"),
    };
    if let Some(ledger) = ledger {
        assert_eq!(ledger.size(), TreeSize(SIZE));
        let broken = case.read.as_ref().map(|(i, _)| *i);
        for i in 0..SIZE {
            let got = ledger.get_raw(EntryIndex(i));
            match (&case.read, got) {
                (Some((b, n)), Err(e)) if *b == i => n.check("read", &e.to_string()),
                (Some((b, _)), Ok(_)) if *b == i => panic!("entry {i} was read"),
                (_, Ok(raw)) => assert_eq!(raw, g.entries[usize::try_from(i).unwrap()]),
                (_, Err(e)) => panic!("entry {i}: {e}"),
            }
        }
        match &case.proof {
            Some((i, n)) => {
                let e = ledger
                    .inclusion_proof(EntryIndex(*i), TreeSize(SIZE))
                    .unwrap_err();
                n.check("proof", &e.to_string());
            }
            None if broken.is_none() => {
                for i in [0, 2, 37, 64, 101, SIZE - 1] {
                    let p = ledger
                        .inclusion_proof(EntryIndex(i), TreeSize(SIZE))
                        .unwrap();
                    let leaf = HASH.leaf_hash(&g.entries[usize::try_from(i).unwrap()]);
                    verify_inclusion(HASH, &leaf, &p, &tree.root()).unwrap();
                }
                assert_eq!(
                    ledger.find_by_idempotency_key("key-43").unwrap(),
                    Some(EntryIndex(43))
                );
                assert_eq!(
                    ledger
                        .find_by_leaf_hash(&HASH.leaf_hash(&g.entries[88]))
                        .unwrap(),
                    Some(EntryIndex(88))
                );
            }
            None => {}
        }
        match (&case.verify, ledger.verify(&mut |_| {})) {
            (None, Ok(r)) => assert_eq!(r.root, tree.root()),
            (None, Err(e)) => panic!("verify failed: {e}"),
            (Some(n), Err(e)) => n.check("verify", &e.to_string()),
            (Some(_), Ok(_)) => panic!("verify passed"),
        }
        ledger.close();
        drop(ledger);
        if case.verify.is_none() && broken.is_none() {
            // Repaired for good: the offline verifier agrees now.
            let r = verify_ledger_dir(&root, LEDGER, &mut |_| {}).unwrap();
            assert_eq!(r.root, tree.root());
        }
    }
    assert_eq!(
        segment_bytes(&root),
        damaged,
        "the segment files changed after the damage"
    );
}

#[test]
fn every_corruption_is_detected_named_or_repaired() {
    let scratch = support::scratch_dir();
    let pristine = scratch.path().join("pristine");
    let g = build(&pristine);
    let tree = MemoryTree::from_leaf_hashes(HASH, g.entries.iter().map(|e| HASH.leaf_hash(e)));
    let mut failures = Vec::new();
    for case in cases(&g) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&case, &pristine, &g, &tree);
        }));
        if let Err(panic) = result {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
