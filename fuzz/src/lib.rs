//! Shared fixtures of the fuzz targets: the fixed test keys and small helpers.
//!
//! Every target is a binary in `fuzz_targets/`; this library holds what more than one of them
//! needs, so that the seed builder (`tests/seeds.rs`) and the targets agree on keys and inputs.

use vouch_ledger_core::note::{Signer, Verifier, Verifiers};

/// The origin (and key name) of the fixed test log.
pub const LOG_ORIGIN: &str = "vouch.test/fuzz";

/// The fixed test log's signer. The seed is public: it exists only for fuzzing.
///
/// # Panics
///
/// Never: the name is a valid key name.
pub fn log_signer() -> Signer {
    Signer::from_seed(LOG_ORIGIN, &[7; 32]).expect("valid key name")
}

/// A second signer under the same name with another key, so that look-ups by name alone
/// would go wrong.
///
/// # Panics
///
/// Never: the name is a valid key name.
pub fn rotated_signer() -> Signer {
    Signer::from_seed(LOG_ORIGIN, &[8; 32]).expect("valid key name")
}

/// A witness key of the cosignature type, trusted beside the log key.
///
/// # Panics
///
/// Never: the name and key are valid.
pub fn witness_verifier() -> Verifier {
    let public = Signer::from_seed("vouch.test/witness", &[9; 32])
        .expect("valid key name")
        .public_key();
    Verifier::new_cosignature_v1("vouch.test/witness", &public).expect("valid key")
}

/// The trusted set every note target opens against: the log key, its rotated successor and
/// the witness. Built once: deriving keys would dominate a fast target's iteration.
pub fn trusted() -> &'static Verifiers {
    static TRUSTED: std::sync::OnceLock<Verifiers> = std::sync::OnceLock::new();
    TRUSTED.get_or_init(|| {
        [
            log_signer().verifier(),
            rotated_signer().verifier(),
            witness_verifier(),
        ]
        .into_iter()
        .collect()
    })
}

/// Splits fuzz input into a selector byte and the rest.
pub fn split_selector(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&selector, rest)) => (selector, rest),
        None => (0, data),
    }
}

/// A directory tree held in memory: relative path and contents of every file.
pub type Snapshot = Vec<(std::path::PathBuf, Vec<u8>)>;

/// Reads every file under `root` into memory, sorted by path.
///
/// # Panics
///
/// On I/O errors: fixtures are built before fuzzing starts, and a broken fixture is a bug.
pub fn snapshot(root: &std::path::Path) -> Snapshot {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Snapshot) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).expect("under root").to_path_buf();
                out.push((relative, std::fs::read(&path).expect("read")));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Writes a snapshot under `root`, which must not exist yet.
///
/// # Panics
///
/// On I/O errors.
pub fn restore(root: &std::path::Path, snapshot: &Snapshot) {
    for (relative, bytes) in snapshot {
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create_dir_all");
        }
        std::fs::write(&path, bytes).expect("write");
    }
}

/// A scratch directory for one fuzzing process: on tmpfs (`/dev/shm`) when there is one, so
/// that an iteration's file I/O stays in memory.
///
/// # Panics
///
/// If no temporary directory can be created.
pub fn scratch_dir(label: &str) -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    // Fuzzing processes end without running destructors, so remove what earlier processes
    // left behind: directories named after a process that no longer runs.
    if let Ok(entries) = std::fs::read_dir(shm) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("vouch-fuzz-"))
                .and_then(|n| n.split('-').nth(1))
            else {
                continue;
            };
            if !std::path::Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let prefix = format!("vouch-fuzz-{label}-{}-", std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    if shm.is_dir() {
        if let Ok(dir) = builder.tempdir_in(shm) {
            return dir;
        }
    }
    builder.tempdir().expect("temporary directory")
}

/// Reads a fuzz input front to back; past the end every read gives zeros (or nothing), so
/// any byte string is a valid input.
#[derive(Debug, Clone)]
pub struct ByteReader<'a>(pub &'a [u8]);

impl<'a> ByteReader<'a> {
    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The next byte, zero past the end.
    pub fn u8(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        first
    }

    /// The next `N` bytes, zero-padded past the end.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let take = N.min(self.0.len());
        out[..take].copy_from_slice(&self.0[..take]);
        self.0 = &self.0[take..];
        out
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A byte string led by its one-byte length (cut short at the end of the input).
    pub fn bytes(&mut self) -> &'a [u8] {
        let len = usize::from(self.u8()).min(self.0.len());
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// Writes the fuzz-input encoding that [`ByteReader::bytes`] reads.
///
/// # Panics
///
/// If `bytes` is longer than 255.
pub fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(u8::try_from(bytes.len()).expect("at most 255 bytes"));
    out.extend_from_slice(bytes);
}

/// The small prepared ledger that `segment_recovery` damages, built the same way every time
/// (fixed keys and a fixed clock), so the committed seeds match it byte for byte.
pub mod recovery {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use vouch_ledger_core::HashAlg;
    use vouch_ledger_core::entry::{EntryDraft, EntryKind};
    use vouch_storage::{
        CheckpointCadence, Clock, DataDir, Durability, LedgerConfig, LedgerOptions,
    };

    use crate::{LOG_ORIGIN, Snapshot, log_signer, snapshot};

    /// The prepared ledger's name.
    pub const LEDGER: &str = "fuzz";

    /// Every entry of the prepared ledger has this timestamp.
    #[derive(Debug)]
    struct FixedClock;

    impl Clock for FixedClock {
        fn now_unix_ns(&self) -> u64 {
            1_750_000_000_000_000_000
        }
    }

    /// How the prepared ledger is opened: no syncs (tmpfs), checkpoints only on demand, and
    /// small segments so that it has sealed ones and an active one.
    pub fn options() -> LedgerOptions {
        LedgerOptions {
            durability: Durability::NoneUnsafe,
            checkpoints: CheckpointCadence {
                every_entries: None,
                every: None,
            },
            segment_target_size: 256,
            head_interval: Duration::from_secs(3600),
            clock: Arc::new(FixedClock),
            ..LedgerOptions::default()
        }
    }

    /// The `i`-th entry appended.
    ///
    /// # Panics
    ///
    /// Never: the fields are valid.
    pub fn draft(i: u64) -> EntryDraft {
        let key = (i % 2 == 0).then(|| format!("key-{i}"));
        let kind = EntryKind::ALL[usize::try_from(i % 5).unwrap_or(0)];
        EntryDraft::new(
            kind,
            key,
            "application/json".into(),
            format!("{{\"n\":{i}}}").into_bytes(),
        )
        .expect("valid draft")
    }

    /// The timestamp of the prepared ledger's entries.
    pub fn timestamp() -> vouch_ledger_core::Timestamp {
        vouch_ledger_core::Timestamp(FixedClock.now_unix_ns())
    }

    /// Builds the prepared data directory at `root` (which must not exist) and returns its
    /// files: six entries over several segments, checkpoints at sizes 2 and 4.
    ///
    /// # Panics
    ///
    /// If the ledger cannot be built.
    pub fn template(root: &Path) -> Snapshot {
        let data = DataDir::open(root).expect("data dir");
        let config = LedgerConfig {
            hash: HashAlg::Sha256,
            origin: LOG_ORIGIN.into(),
            leaf_hash_index: true,
        };
        data.create_ledger(LEDGER, &config, &log_signer().verifier(), 1)
            .expect("create");
        let ledger = data
            .open_ledger(LEDGER, log_signer(), options())
            .expect("open");
        for i in 0..5 {
            ledger.append(draft(i)).expect("append");
            if i % 2 == 1 {
                ledger.checkpoint_now().expect("checkpoint");
            }
        }
        ledger.append(draft(5)).expect("append");
        ledger.close();
        drop(ledger);
        snapshot(root)
    }

    /// The active segment (the one with the greatest first index) of a snapshot.
    ///
    /// # Panics
    ///
    /// If the snapshot has no segment.
    pub fn active_segment(files: &Snapshot) -> PathBuf {
        files
            .iter()
            .map(|(p, _)| p)
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .max()
            .expect("a segment")
            .clone()
    }
}

/// The small policy ledger whose decisions `proof_pack` and its seeds export as proof packs,
/// signed with [`log_signer`] and built the same way every time (fixed clock, fixed inputs),
/// so the committed seeds match it byte for byte.
pub mod proof_pack {
    use std::sync::Arc;
    use std::time::Duration;

    use vouch_ledger_core::HashAlg;
    use vouch_ledger_core::entry::{EntryDraft, EntryKind};
    use vouch_query::pack::ProofPack;
    use vouch_query::{BundleRef, DecideOptions, DecisionRef, Format, Governance, GovernanceTerms};
    use vouch_storage::{
        CheckpointCadence, Clock, DataDir, Durability, LedgerConfig, LedgerOptions,
    };

    use crate::{LOG_ORIGIN, log_signer, scratch_dir};

    const BUNDLE: &str = include_str!("../../examples/policies/high-risk-production/bundle.yaml");
    const BLOCKED: &str = include_str!(
        "../../examples/policies/high-risk-production/requests/block-one-approval.json"
    );
    const ALLOWED: &str =
        include_str!("../../examples/policies/high-risk-production/requests/allow-low-risk.json");
    const BUNDLE_NAME: &str = "high-risk-production-release";

    /// Every entry of the ledger has this timestamp.
    #[derive(Debug)]
    struct FixedClock;

    impl Clock for FixedClock {
        fn now_unix_ns(&self) -> u64 {
            1_750_000_000_000_000_000
        }
    }

    fn exception(id: &str) -> String {
        format!(
            r#"{{"id": "{id}", "policy": "high-risk-production", "requirements": ["approvals"], "kind": "temporary", "owner_role": "EngineeringManager", "scope": {{"repository": ["acme/payments"]}}, "expires_at": "2025-06-04T12:00:00Z", "remediation_plan": "second reviewer back on Monday", "author": "alice", "approvers": [{{"approver": "erin", "roles": ["EngineeringManager"]}}]}}"#
        )
    }

    fn override_request(decision: &str, key: &str, approver: &str) -> String {
        format!(
            r#"{{"decision": "{decision}", "requester": "rita", "approver": "{approver}", "approver_roles": ["ReleaseManager"], "justification": "incident INC-88", "expires_at": "2025-06-03T20:00:00Z", "idempotency_key": "{key}", "now": "2025-06-03T10:05:00Z"}}"#
        )
    }

    /// The packs exported from the ledger.
    #[derive(Debug, Clone)]
    pub struct Packs {
        /// The blocked decision (two exceptions, a granted and a denied override) anchored at
        /// the checkpoint signed right after its overrides, with a consistency proof to the
        /// latest checkpoint.
        pub anchored: ProofPack,
        /// The same decision anchored at the latest checkpoint (empty consistency proof).
        pub latest: ProofPack,
        /// A later, allowed decision without exceptions, with a denied override.
        pub allowed: ProofPack,
    }

    /// Builds the ledger in a scratch directory (removed again) and exports its packs: a
    /// bundle, two exceptions, a blocked decision that saw them, a granted and a denied
    /// override of it, a checkpoint, an allowed decision with a denied override, five plain
    /// records and a later checkpoint.
    ///
    /// # Panics
    ///
    /// If the ledger cannot be built or a pack cannot be exported.
    pub fn packs() -> Packs {
        let scratch = scratch_dir("pack");
        let data = DataDir::open(scratch.path()).expect("data dir");
        let config = LedgerConfig {
            hash: HashAlg::Sha256,
            origin: LOG_ORIGIN.into(),
            leaf_hash_index: true,
        };
        data.create_ledger("pack", &config, &log_signer().verifier(), 0)
            .expect("create");
        let options = LedgerOptions {
            durability: Durability::NoneUnsafe,
            checkpoints: CheckpointCadence {
                every_entries: None,
                every: None,
            },
            head_interval: Duration::from_secs(3600),
            extractor: Arc::new(GovernanceTerms),
            clock: Arc::new(FixedClock),
            ..LedgerOptions::default()
        };
        let ledger = Arc::new(
            data.open_ledger("pack", log_signer(), options)
                .expect("open"),
        );
        let gov = Governance::new(ledger.clone());
        gov.publish(BUNDLE, Format::Yaml, false).expect("publish");
        for id in ["EXC-2", "EXC-1"] {
            gov.record_exception(exception(id).as_bytes(), false)
                .expect("exception");
        }
        let bundle = BundleRef::Name(BUNDLE_NAME.into());
        let blocked = gov
            .decide(&bundle, BLOCKED.as_bytes(), &DecideOptions::default())
            .expect("decide");
        for (key, approver) in [("ovr-1", "rm-rosa"), ("ovr-2", "rita")] {
            gov.record_override(
                override_request(&blocked.id, key, approver).as_bytes(),
                false,
            )
            .expect("override");
        }
        let first = ledger.checkpoint_now().expect("checkpoint").size();
        let allowed = gov
            .decide(&bundle, ALLOWED.as_bytes(), &DecideOptions::default())
            .expect("decide");
        gov.record_override(
            override_request(&allowed.id, "ovr-3", "rm-rosa").as_bytes(),
            false,
        )
        .expect("override");
        for i in 0..5 {
            let draft = EntryDraft::new(
                EntryKind::Record,
                None,
                "text/plain".into(),
                format!("record {i}").into_bytes(),
            )
            .expect("valid draft");
            ledger.append(draft).expect("append");
        }
        ledger.checkpoint_now().expect("checkpoint");
        let export = |id: &str, anchor| {
            gov.export_pack(&DecisionRef::Id(id.to_owned()), anchor)
                .expect("export")
                .pack
        };
        let packs = Packs {
            anchored: export(&blocked.id, Some(first)),
            latest: export(&blocked.id, None),
            allowed: export(&allowed.id, None),
        };
        drop(gov);
        ledger.close();
        packs
    }
}
