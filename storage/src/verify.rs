//! Full verification: re-derive everything from the segment bytes and compare.
//!
//! Every frame is read from the segments (not through the offsets file), its checksum and
//! envelope checked, its leaf hash recomputed and the tree rebuilt. Every stored Merkle node
//! and offset is compared with the recomputed one, and every checkpoint's root, origin and
//! signature is checked against the rebuilt tree and the ledger's keys. Strict mode runs this
//! before a ledger opens; `vouch verify-ledger` runs it offline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vouch_ledger_core::checkpoint::open_checkpoint;
use vouch_ledger_core::entry::EntryView;
use vouch_ledger_core::merkle::Frontier;
use vouch_ledger_core::note::Verifiers;
use vouch_ledger_core::{Hash, HashAlg};

use crate::checkpoints::CheckpointLog;
use crate::error::{Corruption, IoFailure, OpenError, ReadError};
use crate::frame::FILE_HEADER_LEN;
use crate::ledger::{Ledger, Shared};
use crate::mapped::RecordFile;
use crate::meta::{KeyRecord, LedgerMeta, valid_ledger_name};
use crate::segment::{ScanStop, Scanner, Segment};
use crate::tree::NodeStore;
use crate::vfs::{OpenMode, RealVfs, Vfs};

/// What a verification checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries re-hashed.
    pub entries: u64,
    /// Envelope bytes read.
    pub envelope_bytes: u64,
    /// Segments read.
    pub segments: usize,
    /// Checkpoints checked (root, origin, signature).
    pub checkpoints: usize,
    /// Stored Merkle nodes compared with recomputed ones.
    pub nodes_compared: u64,
    /// The root of the verified tree.
    pub root: Hash,
    /// An incomplete tail of the active segment that the next open will truncate (offline
    /// verification of a ledger that crashed); never acknowledged data.
    pub torn_tail: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Progress of a verification, reported every few thousand entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyProgress {
    /// Entries verified so far.
    pub entries: u64,
    /// Segment bytes read so far.
    pub bytes: u64,
    /// Total segment bytes to read.
    pub total_bytes: u64,
}

/// Why a verification failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Something on disk is wrong.
    #[error("corrupted: {0}")]
    Corrupted(Corruption),
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] IoFailure),
    /// The ledger's files could not be opened.
    #[error(transparent)]
    Open(Box<OpenError>),
}

impl From<OpenError> for VerifyError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Corrupted(c) => VerifyError::Corrupted(c),
            OpenError::Io(io) => VerifyError::Io(io),
            other => VerifyError::Open(Box::new(other)),
        }
    }
}

impl From<ReadError> for VerifyError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Corrupted(c) => VerifyError::Corrupted(c),
            ReadError::Io(io) => VerifyError::Io(io),
            other => VerifyError::Corrupted(Corruption::file("", other.to_string())),
        }
    }
}

/// What a verification reads.
struct Inputs<'a> {
    hash: HashAlg,
    origin: &'a str,
    keys: &'a [KeyRecord],
    segments: &'a [Arc<Segment>],
    offsets: Option<&'a RecordFile<8>>,
    nodes: Option<&'a NodeStore>,
    /// `None` for a ledger that was never opened, which has no checkpoint file yet.
    checkpoints: Option<&'a CheckpointLog>,
    /// Verify at most this many entries (an open ledger's published size); `None` reads to
    /// the end of the log and reports a torn tail instead of failing on it.
    log_limit: Option<u64>,
    /// Offsets and nodes are compared for entries below this.
    derived_limit: u64,
    /// Entries below this were durable (the index head or a checkpoint says so): a bad frame
    /// among them is corruption even at the end of the active segment.
    durable: u64,
}

/// Verifies an open ledger up to `size` entries.
pub(crate) fn verify_shared(
    shared: &Shared,
    size: u64,
    progress: &mut dyn FnMut(&VerifyProgress),
) -> Result<VerifyReport, VerifyError> {
    let segments = shared
        .segments
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    run(
        &Inputs {
            hash: shared.hash,
            origin: &shared.meta.origin,
            keys: &shared.meta.keys,
            segments: &segments,
            offsets: Some(&shared.offsets),
            nodes: Some(&shared.nodes),
            checkpoints: Some(&shared.checkpoints),
            log_limit: Some(size),
            derived_limit: size,
            // Every entry below the published size is read, and any bad frame is an error.
            durable: 0,
        },
        progress,
    )
}

impl Ledger {
    /// Verifies the ledger up to its current size while it keeps serving.
    ///
    /// # Errors
    ///
    /// [`VerifyError`] naming the first problem found: file, offset and what was wrong.
    pub fn verify(
        &self,
        progress: &mut dyn FnMut(&VerifyProgress),
    ) -> Result<VerifyReport, VerifyError> {
        verify_shared(&self.shared, self.shared.size(), progress)
    }
}

/// Verifies a ledger's files offline, without opening it for writing (and without its
/// secondary index). Takes a shared lock: a ledger open in a running server is refused, verify
/// it through the server instead.
///
/// # Errors
///
/// [`VerifyError`] naming the first problem found; [`OpenError::Locked`] (inside
/// [`VerifyError::Open`]) if a server holds the ledger.
pub fn verify_ledger_dir(
    root: &Path,
    name: &str,
    progress: &mut dyn FnMut(&VerifyProgress),
) -> Result<VerifyReport, VerifyError> {
    let vfs: Arc<dyn Vfs> = Arc::new(RealVfs);
    if !valid_ledger_name(name) {
        return Err(OpenError::InvalidName(name.to_owned()).into());
    }
    crate::meta::check_marker(&*vfs, root)?;
    let dir = root.join("ledgers").join(name);
    let display_dir = PathBuf::from("ledgers").join(name);
    if !vfs.exists(&dir.join(crate::meta::LEDGER_FILE)) {
        return Err(OpenError::NotFound(name.to_owned()).into());
    }
    // A ledger that was never opened (or a copy made without it) has no lock file yet.
    let lock = match std::fs::File::open(dir.join("LOCK")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("LOCK")),
        other => other,
    }
    .map_err(|e| IoFailure::new(display_dir.join("LOCK"), "open", e))?;
    match lock.try_lock_shared() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(OpenError::Locked(display_dir.join("LOCK")).into());
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(IoFailure::new(display_dir.join("LOCK"), "lock", e).into());
        }
    }
    verify_files(&vfs, &dir, &display_dir, name, progress)
}

/// Verifies a ledger's files as they are on disk, without opening the ledger: the log to its
/// end (an incomplete tail of the active segment above what was durable is reported, not an
/// error), the derived offsets and Merkle nodes the index head vouches for, and every
/// checkpoint. The caller holds the ledger's lock. Strict mode runs this before recovery
/// changes anything, so that a damaged file stops the open instead of being rebuilt.
///
/// # Errors
///
/// [`VerifyError`] naming the first problem found: file, offset and what was wrong.
pub(crate) fn verify_files(
    vfs: &Arc<dyn Vfs>,
    dir: &Path,
    display_dir: &Path,
    name: &str,
    progress: &mut dyn FnMut(&VerifyProgress),
) -> Result<VerifyReport, VerifyError> {
    let meta = LedgerMeta::read(&**vfs, dir, name)?;
    let hash = meta.hash;
    let segments = crate::recovery::open_segments(&**vfs, dir, display_dir, hash, OpenMode::Read)?;
    let head = crate::head::read(&**vfs, dir, &display_dir.join(crate::head::HEAD_FILE), hash)?
        .unwrap_or(0);
    // Derived files are checked only if they can be opened; damaged ones are reported. The
    // offsets vouch for nothing without a head (they may be a crash's half-created file).
    let offsets = if head > 0 && vfs.exists(&dir.join(crate::recovery::OFFSETS_FILE)) {
        Some(crate::recovery::open_offsets(
            &**vfs,
            dir,
            display_dir,
            hash,
            OpenMode::Read,
        )?)
    } else {
        None
    };
    let nodes = NodeStore::open(
        vfs.clone(),
        &dir.join("tree"),
        &display_dir.join("tree"),
        hash,
        OpenMode::Read,
    )?;
    let checkpoints = if vfs.exists(&dir.join(crate::checkpoints::CHECKPOINTS_FILE)) {
        Some(CheckpointLog::open(&**vfs, dir, display_dir, hash, OpenMode::Read)?.0)
    } else {
        None
    };
    let derived_limit = if offsets.is_some() { head } else { 0 };
    run(
        &Inputs {
            hash,
            origin: &meta.origin,
            keys: &meta.keys,
            segments: &segments,
            offsets: offsets.as_ref(),
            nodes: Some(&nodes),
            checkpoints: checkpoints.as_ref(),
            log_limit: None,
            derived_limit,
            durable: head.max(
                checkpoints
                    .as_ref()
                    .and_then(|c| c.entries().last().map(|&(size, _)| size))
                    .unwrap_or(0),
            ),
        },
        progress,
    )
}

/// The verifier for a checkpoint of `size`: the key in force at that size.
fn key_for(keys: &[KeyRecord], size: u64) -> Option<&KeyRecord> {
    keys.iter().rev().find(|k| k.from_size <= size)
}

fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> VerifyError {
    VerifyError::Corrupted(Corruption::at(file, offset, reason))
}

fn run(
    inp: &Inputs<'_>,
    progress: &mut dyn FnMut(&VerifyProgress),
) -> Result<VerifyReport, VerifyError> {
    let started = Instant::now();
    let mut total_bytes = 0u64;
    for s in inp.segments {
        total_bytes += s.len()?;
    }
    let checkpoints = inp
        .checkpoints
        .map(CheckpointLog::entries)
        .unwrap_or_default();
    let mut ck_iter = checkpoints.iter().peekable();
    let mut frontier = Frontier::new(inp.hash);
    let mut next = 0u64;
    let mut last_ts = 0u64;
    let mut bytes_done = 0u64;
    let mut envelope_bytes = 0u64;
    let mut nodes_compared = 0u64;
    let mut checkpoints_checked = 0usize;
    let mut torn_tail = None;
    let mut mismatch: Option<VerifyError> = None;
    let limit = inp.log_limit.unwrap_or(u64::MAX);

    // Checks every checkpoint whose size the rebuilt tree has reached.
    let mut check_checkpoints =
        |frontier: &Frontier,
         ck_iter: &mut std::iter::Peekable<std::slice::Iter<'_, (u64, u64)>>|
         -> Result<(), VerifyError> {
            while let (Some(&&(size, offset)), Some(log)) = (ck_iter.peek(), inp.checkpoints) {
                if size != frontier.size().0 {
                    break;
                }
                ck_iter.next();
                let display = log.display();
                let stored = log.read_at(offset)?;
                if stored.checkpoint.root != frontier.root() {
                    return Err(corrupt(
                        display,
                        offset,
                        format!(
                            "the checkpoint of size {size} has root {} but the log gives {}",
                            stored.checkpoint.root,
                            frontier.root()
                        ),
                    ));
                }
                if stored.checkpoint.origin != inp.origin {
                    return Err(corrupt(
                        display,
                        offset,
                        format!(
                            "the checkpoint of size {size} has origin {:?}, not the ledger's {:?}",
                            stored.checkpoint.origin, inp.origin
                        ),
                    ));
                }
                let key = key_for(inp.keys, size).ok_or_else(|| {
                    corrupt(
                        display,
                        offset,
                        format!("no signing key covers size {size}"),
                    )
                })?;
                let mut verifiers = Verifiers::new();
                let verifier = key.vkey.parse().map_err(|e| {
                    corrupt(
                        display,
                        offset,
                        format!("invalid verifier key {:?}: {e}", key.vkey),
                    )
                })?;
                verifiers.insert(verifier);
                open_checkpoint(&stored.note, &verifiers).map_err(|e| {
                    corrupt(
                        display,
                        offset,
                        format!(
                            "the checkpoint of size {size} is not validly signed by {}: {e}",
                            key.vkey
                        ),
                    )
                })?;
                checkpoints_checked += 1;
            }
            Ok(())
        };
    check_checkpoints(&frontier, &mut ck_iter)?;

    let count = inp.segments.len();
    'segments: for (si, seg) in inp.segments.iter().enumerate() {
        let is_active = si + 1 == count;
        let seg_end = inp.segments.get(si + 1).map(|s| s.first);
        if seg.first != next {
            return Err(VerifyError::Corrupted(Corruption::file(
                &seg.display,
                format!("starts at entry {} but entry {next} is next", seg.first),
            )));
        }
        let len = seg.len()?;
        let mut scanner = Scanner::new(seg, FILE_HEADER_LEN as u64, len);
        loop {
            if next >= limit {
                break 'segments;
            }
            let (offset, body) = match scanner.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(ScanStop::Io(e)) => return Err(e.into()),
                Err(ScanStop::Bad { offset, reason }) => {
                    if next < inp.durable {
                        return Err(corrupt(
                            &seg.display,
                            offset,
                            format!(
                                "{reason} at entry {next}, but the index head or a checkpoint says {} entries were durable",
                                inp.durable
                            ),
                        ));
                    }
                    if is_active && inp.log_limit.is_none() {
                        torn_tail = Some(format!(
                            "{} at byte {offset}: {reason} ({} bytes the next open will truncate)",
                            seg.display.display(),
                            len - offset
                        ));
                        break;
                    }
                    return Err(corrupt(&seg.display, offset, reason));
                }
            };
            let view = EntryView::parse(body)
                .map_err(|e| corrupt(&seg.display, offset, format!("invalid envelope: {e}")))?;
            if view.index().0 != next || seg_end.is_some_and(|e| next >= e) {
                return Err(corrupt(
                    &seg.display,
                    offset,
                    format!("holds entry {} where entry {next} belongs", view.index()),
                ));
            }
            if view.timestamp().0 < last_ts {
                return Err(corrupt(
                    &seg.display,
                    offset,
                    format!("entry {next}'s timestamp goes backwards"),
                ));
            }
            last_ts = view.timestamp().0;
            if let Some(offs) = inp.offsets
                && next < inp.derived_limit
            {
                let stored = offs.read(next).map(u64::from_le_bytes);
                if stored != Some(offset) {
                    return Err(corrupt(
                        offs.path(),
                        FILE_HEADER_LEN as u64 + next * 8,
                        format!(
                            "entry {next} is at byte {offset} of {}, but the offsets file says {}",
                            seg.display.display(),
                            stored.map_or_else(|| "nothing".to_owned(), |s| s.to_string())
                        ),
                    ));
                }
            }
            let leaf = inp.hash.leaf_hash(body);
            let derived_limit = inp.derived_limit;
            frontier.push(leaf, |id, h| {
                if id.level == 0 || id.end_leaf() > derived_limit || mismatch.is_some() {
                    return;
                }
                let Some(nodes) = inp.nodes else { return };
                nodes_compared += 1;
                match nodes.get(id) {
                    Ok(stored) if stored == h => {}
                    Ok(stored) => {
                        mismatch = Some(corrupt(
                            &nodes.level_path(id.level),
                            FILE_HEADER_LEN as u64 + id.index * 32,
                            format!("{id} is stored as {stored}, but the log gives {h}"),
                        ));
                    }
                    Err(e) => mismatch = Some(e.into()),
                }
            });
            if let Some(e) = mismatch.take() {
                return Err(e);
            }
            next += 1;
            envelope_bytes += body.len() as u64;
            check_checkpoints(&frontier, &mut ck_iter)?;
            if next.is_multiple_of(65_536) {
                progress(&VerifyProgress {
                    entries: next,
                    bytes: bytes_done + (scanner.position()),
                    total_bytes,
                });
            }
        }
        if let Some(end) = seg_end
            && next != end
        {
            return Err(VerifyError::Corrupted(Corruption::file(
                &seg.display,
                format!(
                    "sealed segment ends after {} entries but the next segment starts at entry {end}",
                    next - seg.first
                ),
            )));
        }
        bytes_done += len;
    }
    if inp.log_limit.is_none()
        && next < inp.durable
        && let Some(seg) = inp.segments.last()
    {
        return Err(VerifyError::Corrupted(Corruption::file(
            seg.display.parent().unwrap_or(&seg.display),
            format!(
                "the log ends after {next} entries, but the index head or a checkpoint says {} were durable: segments are missing or truncated",
                inp.durable
            ),
        )));
    }
    if let (Some(&&(size, offset)), Some(log)) = (ck_iter.peek(), inp.checkpoints)
        && inp.log_limit.is_none_or(|l| size <= l)
    {
        return Err(corrupt(
            log.display(),
            offset,
            format!("a checkpoint covers {size} entries but the log holds only {next}"),
        ));
    }
    progress(&VerifyProgress {
        entries: next,
        bytes: total_bytes,
        total_bytes,
    });
    Ok(VerifyReport {
        entries: next,
        envelope_bytes,
        segments: inp.segments.len(),
        checkpoints: checkpoints_checked,
        nodes_compared,
        root: frontier.root(),
        torn_tail,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use vouch_ledger_core::checkpoint::Checkpoint;
    use vouch_ledger_core::entry::{EntryDraft, EntryKind};
    use vouch_ledger_core::{MemoryTree, Signer, TreeSize};

    use super::*;
    use crate::{DataDir, LedgerConfig, LedgerOptions};

    const NAME: &str = "v";
    const ORIGIN: &str = "example.com/v";
    const HASH: HashAlg = HashAlg::Sha256;
    const ENTRIES: u64 = 5;

    fn signer(seed: u8) -> Signer {
        Signer::from_seed(ORIGIN, &[seed; 32]).unwrap()
    }

    /// A closed ledger of [`ENTRIES`] entries; returns the tree of its leaves.
    fn build(root: &Path) -> MemoryTree {
        let dd = DataDir::open(root).unwrap();
        let config = LedgerConfig {
            hash: HASH,
            origin: ORIGIN.to_owned(),
            leaf_hash_index: false,
        };
        dd.create_ledger(NAME, &config, &signer(RIGHT).verifier(), 1)
            .unwrap();
        let ledger = dd
            .open_ledger(NAME, signer(RIGHT), LedgerOptions::default())
            .unwrap();
        let mut tree = MemoryTree::new(HASH);
        for n in 0..ENTRIES {
            let draft = EntryDraft::new(
                EntryKind::Record,
                None,
                String::new(),
                format!("entry {n}").into_bytes(),
            )
            .unwrap();
            tree.push(ledger.append(draft).unwrap().leaf_hash);
        }
        ledger.close();
        tree
    }

    /// The seeds of the ledger's key and of another key of the same name.
    const RIGHT: u8 = 1;
    const OTHER: u8 = 2;

    /// The honest checkpoint of `size` leaves of `tree`.
    fn good(tree: &MemoryTree, size: u64) -> Checkpoint {
        Checkpoint::new(
            ORIGIN,
            TreeSize(size),
            tree.root_at(TreeSize(size)).unwrap(),
        )
    }

    /// Checkpoints to forge over a ledger's tree, each with the seed of the key that signs it.
    type Forgery = Box<dyn Fn(&MemoryTree) -> Vec<(Checkpoint, u8)>>;

    /// Replaces the checkpoint file with one holding `checkpoints`, each signed by the key of
    /// the seed beside it.
    fn forge(root: &Path, checkpoints: &[(Checkpoint, u8)]) {
        let dir = root.join("ledgers").join(NAME);
        std::fs::remove_file(dir.join(crate::checkpoints::CHECKPOINTS_FILE)).unwrap();
        let display = PathBuf::from("ledgers").join(NAME);
        let (log, _) =
            CheckpointLog::open(&RealVfs, &dir, &display, HASH, OpenMode::ReadWrite).unwrap();
        for (cp, by) in checkpoints {
            log.append(cp.clone(), cp.sign(&[&signer(*by)]).unwrap())
                .unwrap();
        }
    }

    #[test]
    fn every_checkpoint_needs_the_rebuilt_root_the_origin_and_a_valid_signature() {
        let cases: Vec<(&str, Forgery, &str)> = vec![
            (
                "another key of the same name",
                Box::new(|t| vec![(good(t, 2), RIGHT), (good(t, ENTRIES), OTHER)]),
                "the checkpoint of size 5 is not validly signed by example.com/v+",
            ),
            (
                "a root the log does not give",
                Box::new(|t| {
                    let mut cp = good(t, ENTRIES);
                    cp.root = t.root_at(TreeSize(4)).unwrap();
                    vec![(good(t, 2), RIGHT), (cp, RIGHT)]
                }),
                "the checkpoint of size 5 has root",
            ),
            (
                "another origin",
                Box::new(|t| {
                    let mut cp = good(t, ENTRIES);
                    cp.origin = "example.com/w".to_owned();
                    vec![(good(t, 2), RIGHT), (cp, RIGHT)]
                }),
                "the checkpoint of size 5 has origin \"example.com/w\"",
            ),
        ];
        for (name, checkpoints, expected) in cases {
            let tmp = tempfile::tempdir().unwrap();
            let tree = build(tmp.path());
            verify_ledger_dir(tmp.path(), NAME, &mut |_| {}).unwrap();
            forge(tmp.path(), &checkpoints(&tree));
            let e = verify_ledger_dir(tmp.path(), NAME, &mut |_| {}).unwrap_err();
            let VerifyError::Corrupted(c) = &e else {
                panic!("{name}: not corruption: {e}");
            };
            assert_eq!(
                c.file,
                PathBuf::from("ledgers/v/checkpoints.dat"),
                "{name}: {e}"
            );
            // The second frame: the first one (size 2) verified.
            assert!(
                c.offset.is_some_and(|o| o > FILE_HEADER_LEN as u64),
                "{name}: {e}"
            );
            assert!(e.to_string().contains(expected), "{name}: {e}");

            // Strict mode refuses to open the ledger for the same reason.
            let dd = DataDir::open(tmp.path()).unwrap();
            let strict = LedgerOptions {
                strict: true,
                ..LedgerOptions::default()
            };
            let refused = dd.open_ledger(NAME, signer(RIGHT), strict).unwrap_err();
            assert!(
                refused.to_string().contains(expected),
                "{name}: strict open: {refused}"
            );
        }
    }

    #[test]
    fn strict_mode_refuses_a_damaged_merkle_node_file() {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        // The root of the first two leaves: level 1, index 0, the first record of level 1. It
        // is not on the frontier of 5 leaves, so a normal open does not read it.
        let level1 = tmp.path().join("ledgers/v/tree/level-01.dat");
        let mut bytes = std::fs::read(&level1).unwrap();
        bytes[FILE_HEADER_LEN] ^= 1;
        std::fs::write(&level1, bytes).unwrap();
        let damage = "ledgers/v/tree/level-01.dat at byte 32: node(level 1, index 0) is stored as";
        let dd = DataDir::open(tmp.path()).unwrap();
        let strict = LedgerOptions {
            strict: true,
            ..LedgerOptions::default()
        };
        let refused = dd.open_ledger(NAME, signer(RIGHT), strict).unwrap_err();
        assert!(refused.to_string().contains(damage), "{refused}");
        // Without strict mode the ledger opens, and only a verification finds the damage.
        let ledger = dd
            .open_ledger(NAME, signer(RIGHT), LedgerOptions::default())
            .unwrap();
        let found = ledger.verify(&mut |_| {}).unwrap_err();
        assert!(found.to_string().contains(damage), "{found}");
        ledger.close();
    }
}
