//! Shared pieces of the governance suites: a real ledger in a temporary directory, opened
//! with the policy layer's term extractor and a clock the test moves, and the shipped packs.
#![allow(dead_code)] // Each suite uses a different part of this module.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use vouch_ledger_core::HashAlg;
use vouch_ledger_core::note::Signer;
use vouch_query::{Governance, GovernanceTerms};
use vouch_storage::{
    CheckpointCadence, Clock, DataDir, Durability, Ledger, LedgerConfig, LedgerOptions,
};

/// The checkpoint origin of every test ledger.
pub const ORIGIN: &str = "test.example/policy";

/// A clock that reads what the test set, moving one microsecond per reading so that
/// timestamps stay distinct.
#[derive(Debug)]
pub struct TestClock(AtomicU64);

impl TestClock {
    /// Sets the next reading (Unix nanoseconds).
    pub fn set(&self, unix_ns: u64) {
        self.0.store(unix_ns, Ordering::SeqCst);
    }

    /// Sets the next reading from an RFC 3339 time.
    pub fn set_time(&self, rfc3339: &str) {
        let t: jiff::Timestamp = rfc3339.parse().unwrap();
        self.set(u64::try_from(t.as_nanosecond()).unwrap());
    }
}

impl Clock for TestClock {
    fn now_unix_ns(&self) -> u64 {
        self.0.fetch_add(1_000, Ordering::SeqCst)
    }
}

/// A ledger with the policy layer on it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub ledger: Arc<Ledger>,
    pub gov: Governance,
    pub clock: Arc<TestClock>,
}

fn signer() -> Signer {
    Signer::from_seed(ORIGIN, &[9u8; 32]).unwrap()
}

fn options(clock: Arc<TestClock>, durability: Durability) -> LedgerOptions {
    LedgerOptions {
        durability,
        checkpoints: CheckpointCadence {
            every_entries: None,
            every: None,
        },
        extractor: Arc::new(GovernanceTerms),
        clock,
        ..LedgerOptions::default()
    }
}

/// A new ledger (fsync durability) whose clock starts at 2025-06-01.
pub fn fixture() -> Fixture {
    fixture_with(Durability::Fsync)
}

/// A new ledger of another origin, signed with a key from `seed`, whose clock starts at
/// 2025-06-01.
pub fn fixture_named(origin: &str, seed: u8) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let config = LedgerConfig {
        hash: HashAlg::Blake3,
        origin: origin.into(),
        leaf_hash_index: true,
    };
    let signer = Signer::from_seed(origin, &[seed; 32]).unwrap();
    data.create_ledger("policy", &config, &signer.verifier(), 0)
        .unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(0)));
    clock.set_time("2025-06-01T00:00:00Z");
    let ledger = Arc::new(
        data.open_ledger("policy", signer, options(clock.clone(), Durability::Fsync))
            .unwrap(),
    );
    let gov = Governance::new(ledger.clone());
    Fixture {
        dir,
        ledger,
        gov,
        clock,
    }
}

/// A new ledger with the given durability.
pub fn fixture_with(durability: Durability) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let config = LedgerConfig {
        hash: HashAlg::Blake3,
        origin: ORIGIN.into(),
        leaf_hash_index: true,
    };
    data.create_ledger("policy", &config, &signer().verifier(), 0)
        .unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(0)));
    clock.set_time("2025-06-01T00:00:00Z");
    let ledger = Arc::new(
        data.open_ledger("policy", signer(), options(clock.clone(), durability))
            .unwrap(),
    );
    let gov = Governance::new(ledger.clone());
    Fixture {
        dir,
        ledger,
        gov,
        clock,
    }
}

impl Fixture {
    /// Closes the ledger and opens it again (the index is kept, not rebuilt).
    pub fn reopen(self) -> Fixture {
        self.reopen_with(|| {})
    }

    /// Closes the ledger, runs `between` while it is closed, and opens it again.
    pub fn reopen_with(self, between: impl FnOnce()) -> Fixture {
        let Fixture {
            dir,
            ledger,
            clock,
            gov,
        } = self;
        drop(gov);
        ledger.close();
        drop(ledger);
        between();
        let data = DataDir::open(dir.path()).unwrap();
        let ledger = Arc::new(
            data.open_ledger(
                "policy",
                signer(),
                options(clock.clone(), Durability::Fsync),
            )
            .unwrap(),
        );
        let gov = Governance::new(ledger.clone());
        Fixture {
            dir,
            ledger,
            gov,
            clock,
        }
    }
}

/// The directory of the shipped packs.
pub fn packs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies")
}

/// A pack: its bundle text and its requests, by file name, in name order.
pub struct Pack {
    pub name: String,
    pub bundle: String,
    pub requests: Vec<(String, String)>,
}

/// Every shipped pack, in name order.
pub fn packs() -> Vec<Pack> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(packs_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let mut requests: Vec<(String, String)> = fs::read_dir(dir.join("requests"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .map(|p| {
                    (
                        p.file_name().unwrap().to_string_lossy().into_owned(),
                        fs::read_to_string(&p).unwrap(),
                    )
                })
                .collect();
            requests.sort();
            Pack {
                name: dir.file_name().unwrap().to_string_lossy().into_owned(),
                bundle: fs::read_to_string(dir.join("bundle.yaml")).unwrap(),
                requests,
            }
        })
        .collect()
}

/// The pack named `name`.
pub fn pack(name: &str) -> Pack {
    packs().into_iter().find(|p| p.name == name).unwrap()
}

impl Pack {
    /// The request file `file`.
    pub fn request(&self, file: &str) -> &str {
        &self
            .requests
            .iter()
            .find(|(n, _)| n == file)
            .unwrap_or_else(|| panic!("no request {file} in {}", self.name))
            .1
    }
}

/// A JSON value with `member` replaced (or added).
pub fn with(json: &str, member: &str, value: serde_json::Value) -> String {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    v[member] = value;
    v.to_string()
}
