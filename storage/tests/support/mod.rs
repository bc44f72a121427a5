//! Shared pieces of the storage engine's reliability suites: the fault-injecting file system,
//! a deterministic clock, a small seeded random generator, entry drafts and directory copies.
//!
//! Each test binary includes this module with `mod support;` and uses a different part of it.
#![allow(dead_code)] // Each suite uses a different part of this module.

pub mod fault_vfs;

use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use vouch_ledger_core::HashAlg;
use vouch_ledger_core::entry::{EntryDraft, EntryKind};
use vouch_ledger_core::note::Signer;
use vouch_storage::{Clock, LedgerConfig};

/// The checkpoint origin of every test ledger.
pub const ORIGIN: &str = "test.example/log";

/// The signing key of every test ledger (a fixed seed, so signatures are deterministic).
///
/// # Panics
///
/// Never: the name and seed are valid.
pub fn signer() -> Signer {
    Signer::from_seed(ORIGIN, &[7u8; 32]).expect("a valid key name and seed")
}

/// A ledger configuration with the leaf-hash index.
pub fn config(hash: HashAlg) -> LedgerConfig {
    LedgerConfig {
        hash,
        origin: ORIGIN.into(),
        leaf_hash_index: true,
    }
}

/// A small JSON record entry numbered `n`, with an optional idempotency key.
///
/// # Panics
///
/// Never: the fields are within the envelope's limits.
pub fn draft(n: u64, key: Option<&str>) -> EntryDraft {
    EntryDraft::new(
        EntryKind::Record,
        key.map(str::to_owned),
        "application/json".into(),
        format!("{{\"n\":{n}}}").into_bytes(),
    )
    .expect("a valid draft")
}

/// A clock that starts at a fixed time and moves forward a fixed step on every reading, so a
/// scripted workload gets the same timestamps on every run.
#[derive(Debug)]
pub struct StepClock {
    next: AtomicU64,
    step: u64,
}

impl StepClock {
    /// A clock whose first reading is `start`.
    pub fn new(start: u64, step: u64) -> Self {
        Self {
            next: AtomicU64::new(start),
            step,
        }
    }

    /// Sets the next reading.
    pub fn set(&self, at: u64) {
        self.next.store(at, Ordering::SeqCst);
    }

    /// The next reading, without taking it.
    pub fn peek(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }
}

impl Clock for StepClock {
    fn now_unix_ns(&self) -> u64 {
        self.next.fetch_add(self.step, Ordering::SeqCst)
    }
}

/// `SplitMix64`: a tiny, seeded, reproducible random generator for choosing crash states and
/// kill moments.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Copies a directory tree.
///
/// # Errors
///
/// Any I/O error.
pub fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A fresh scratch directory, in memory (`/dev/shm`) where there is one.
///
/// The crash suite opens thousands of ledgers with the real file system; on a disk, every real
/// `fsync` costs milliseconds, and the durability those suites check is the fault VFS's model,
/// not the disk's.
///
/// # Panics
///
/// If no temporary directory can be made.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new().prefix("vouch-").tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("a temporary directory")
}

/// Asserts the shape of a ledger's leaf-hash index: its runs are contiguous from entry 0 and,
/// with the entries held in memory, cover exactly the ledger's entries. Returns the runs;
/// `what` names the case in failure messages.
///
/// # Panics
///
/// If the ledger has no leaf-hash index or its shape is wrong.
pub fn assert_leaf_index_covers(ledger: &vouch_storage::Ledger, what: &str) -> Vec<(u64, u64)> {
    let s = ledger
        .leaf_index_status()
        .expect("the ledger has the leaf-hash index");
    let mut at = 0;
    for &(first, end) in &s.runs {
        assert_eq!(first, at, "{what}: {s:?}");
        at = end;
    }
    assert_eq!(at + s.in_memory, ledger.size().0, "{what}: {s:?}");
    s.runs
}
