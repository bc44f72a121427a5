//! Opening a ledger: checks, torn-tail recovery, and catching the derived files up.
//!
//! The steps are those of `docs/format.md` ("Recovery"). Only the active segment's torn tail
//! and an incomplete last checkpoint frame are ever truncated; anything else that is wrong in
//! the log or the checkpoint file is an error naming the file and offset. Derived files
//! (offsets, Merkle nodes, index head, sled) that are missing or damaged are rebuilt from the
//! log, with a warning saying why.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::Instant;

use tokio::sync::watch;
use vouch_ledger_core::checkpoint::open_checkpoint;
use vouch_ledger_core::entry::EntryView;
use vouch_ledger_core::merkle::Frontier;
use vouch_ledger_core::note::{Signer, Verifiers};
use vouch_ledger_core::proof::NodeSource as _;
use vouch_ledger_core::{Hash, HashAlg, NodeId, TreeSize};

use crate::checkpoints::CheckpointLog;
use crate::error::{Corruption, IoFailure, OpenError, ReadError};
use crate::frame::{FILE_HEADER_LEN, FileHeader, FrameHeader, HeaderError, OFFSETS_MAGIC};
use crate::leafidx::LeafIndex;
use crate::ledger::{Ledger, LedgerOptions, Shared, StoreSource};
use crate::mapped::RecordFile;
use crate::meta::{LedgerMeta, valid_ledger_name};
use crate::segment::{self, ScanStop, Scanner, Segment, SegmentOpenError};
use crate::sequencer::Writer;
use crate::terms::{TermIndex, entry_terms, rules_version};
use crate::tree::NodeStore;
use crate::vfs::{OpenMode, Vfs};

/// Name of the offsets file.
pub(crate) const OFFSETS_FILE: &str = "offsets.dat";
/// How many entries recovery handles between writes of derived data.
const CHUNK: usize = 1 << 16;

/// The trusted verifier keys of a ledger.
pub(crate) fn verifiers_of(meta: &LedgerMeta, display: &Path) -> Result<Verifiers, OpenError> {
    let mut v = Verifiers::new();
    for k in &meta.keys {
        let verifier = k.vkey.parse().map_err(|e| {
            OpenError::Corrupted(Corruption::file(
                display.join(crate::meta::LEDGER_FILE),
                format!("invalid verifier key {:?}: {e}", k.vkey),
            ))
        })?;
        v.insert(verifier);
    }
    Ok(v)
}

/// Opens (or creates) `offsets.dat`.
pub(crate) fn open_offsets(
    vfs: &dyn Vfs,
    dir: &Path,
    display_dir: &Path,
    hash: HashAlg,
    mode: OpenMode,
) -> Result<RecordFile<8>, OpenError> {
    let path = dir.join(OFFSETS_FILE);
    let display = display_dir.join(OFFSETS_FILE);
    if !vfs.exists(&path) && mode != OpenMode::Read {
        let f = vfs
            .open(&path, OpenMode::CreateNew)
            .map_err(|e| IoFailure::new(&display, "create", e))?;
        let header = FileHeader {
            magic: OFFSETS_MAGIC,
            hash,
            byte11: 0,
            word: 0,
        };
        f.write_all_at(&header.encode(), 0)
            .map_err(|e| IoFailure::new(&display, "write", e))?;
        f.sync_data()
            .map_err(|e| IoFailure::new(&display, "fsync", e))?;
        vfs.sync_dir(dir)
            .map_err(|e| IoFailure::new(display_dir, "fsync", e))?;
    }
    let file = vfs
        .open(
            &path,
            if mode == OpenMode::Read {
                OpenMode::Read
            } else {
                OpenMode::ReadWrite
            },
        )
        .map_err(|e| IoFailure::new(&display, "open", e))?;
    let mut hdr = [0u8; FILE_HEADER_LEN];
    file.read_exact_at(&mut hdr, 0).map_err(|_| {
        OpenError::Corrupted(Corruption::at(&display, 0, "file shorter than its header"))
    })?;
    match FileHeader::decode(&hdr, OFFSETS_MAGIC) {
        Ok(h) if h.hash == hash => {}
        Ok(_) => {
            return Err(OpenError::Corrupted(Corruption::at(
                &display,
                10,
                "hash function does not match the ledger's",
            )));
        }
        Err(HeaderError::Version(v)) => {
            return Err(OpenError::UnsupportedFormat {
                file: display,
                found: u64::from(v),
                supported: u64::from(crate::frame::FORMAT_VERSION),
            });
        }
        Err(e) => {
            return Err(OpenError::Corrupted(Corruption::at(
                &display,
                0,
                e.to_string(),
            )));
        }
    }
    Ok(RecordFile::new(&display, file)?)
}

/// The ledger's segments, opened and checked, in order. The last one is opened for writing
/// when `mode` allows; a torn new active segment (shorter than its header or failing its
/// header checksum, and holding no frame) is removed in write mode.
pub(crate) fn open_segments(
    vfs: &dyn Vfs,
    dir: &Path,
    display_dir: &Path,
    hash: HashAlg,
    mode: OpenMode,
) -> Result<Vec<Arc<Segment>>, OpenError> {
    let seg_dir = dir.join("segments");
    let seg_display = display_dir.join("segments");
    let names = vfs
        .read_dir(&seg_dir)
        .map_err(|e| IoFailure::new(&seg_display, "list", e))?;
    let mut firsts = Vec::with_capacity(names.len());
    for name in &names {
        let Some(first) = segment::parse_name(name) else {
            return Err(OpenError::Corrupted(Corruption::file(
                seg_display.join(name),
                "unexpected file in the segment directory",
            )));
        };
        firsts.push(first);
    }
    firsts.sort_unstable();
    if firsts.first().is_some_and(|f| *f != 0) {
        return Err(OpenError::Corrupted(Corruption::file(
            &seg_display,
            format!(
                "the first segment starts at entry {}, not 0: segments are missing",
                firsts[0]
            ),
        )));
    }
    let mut segments = Vec::with_capacity(firsts.len());
    let count = firsts.len();
    for (i, first) in firsts.into_iter().enumerate() {
        let last = i + 1 == count;
        let seg_mode = if last && mode != OpenMode::Read {
            OpenMode::ReadWrite
        } else {
            OpenMode::Read
        };
        match Segment::open(vfs, &seg_dir, &seg_display, first, hash, seg_mode) {
            Ok(s) => segments.push(Arc::new(s)),
            Err(SegmentOpenError::BadHeader {
                display: seg_file,
                len,
                reason,
            }) if last && len <= FILE_HEADER_LEN as u64 && mode == OpenMode::Read && i > 0 => {
                // Read-only (offline verification): leave it for the next open to remove.
                let shown = seg_file.display().to_string();
                tracing::warn!(file = %shown, %reason, "ignoring a segment whose creation was interrupted");
            }
            Err(SegmentOpenError::BadHeader {
                display: seg_file,
                len,
                reason,
            }) if last && len <= FILE_HEADER_LEN as u64 && mode != OpenMode::Read && i > 0 => {
                let shown = seg_file.display().to_string();
                tracing::warn!(file = %shown, %reason, "removing a segment whose creation was interrupted");
                vfs.remove_file(&seg_dir.join(segment::file_name(first)))
                    .map_err(|e| IoFailure::new(&seg_file, "remove", e))?;
                vfs.sync_dir(&seg_dir)
                    .map_err(|e| IoFailure::new(&seg_display, "fsync", e))?;
                // The previous segment is active again: reopen it for writing.
                if let Some(prev) = segments.pop() {
                    let prev: Arc<Segment> = prev;
                    let reopened = Segment::open(
                        vfs,
                        &seg_dir,
                        &seg_display,
                        prev.first,
                        hash,
                        OpenMode::ReadWrite,
                    )
                    .map_err(OpenError::from)?;
                    segments.push(Arc::new(reopened));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(segments)
}

fn io<'a>(display: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> IoFailure + 'a {
    move |e| IoFailure::new(display, op, e)
}

/// Removes the derived files so that they are rebuilt from the log.
///
/// The index head stays until the rebuild succeeds (it is then replaced): the size it records
/// was durable, so recovery must not take anything below it for a torn tail, however often
/// the rebuild is tried.
fn wipe_derived(vfs: &dyn Vfs, dir: &Path, display_dir: &Path) -> Result<(), IoFailure> {
    let p = dir.join(OFFSETS_FILE);
    if vfs.exists(&p) {
        vfs.remove_file(&p)
            .map_err(io(&display_dir.join(OFFSETS_FILE), "remove"))?;
    }
    let tree = dir.join("tree");
    if vfs.exists(&tree) {
        vfs.remove_dir_all(&tree)
            .map_err(io(&display_dir.join("tree"), "remove"))?;
    }
    vfs.sync_dir(dir).map_err(io(display_dir, "fsync"))
}

/// Why the derived files could not be used: rebuild them, or give up.
enum DerivedProblem {
    /// The derived files are damaged; rebuilding from the log fixes it.
    Rebuild(String),
    /// The log or the checkpoint file is damaged: an error for the operator.
    Fatal(OpenError),
}

impl From<OpenError> for DerivedProblem {
    fn from(e: OpenError) -> Self {
        DerivedProblem::Fatal(e)
    }
}

impl From<IoFailure> for DerivedProblem {
    fn from(e: IoFailure) -> Self {
        DerivedProblem::Fatal(OpenError::Io(e))
    }
}

/// A ledger directory whose files are open, before its sequencer starts.
struct Opened {
    shared: Shared,
    frontier: Frontier,
    active_len: u64,
    last_timestamp: u64,
    covered: u64,
}

/// Opens a ledger for writing: the whole open path.
pub(crate) fn open_ledger(
    root: &Path,
    vfs: &Arc<dyn Vfs>,
    name: &str,
    signer: Signer,
    options: &LedgerOptions,
) -> Result<Ledger, OpenError> {
    if !valid_ledger_name(name) {
        return Err(OpenError::InvalidName(name.to_owned()));
    }
    let dir = root.join("ledgers").join(name);
    let display_dir = PathBuf::from("ledgers").join(name);
    if !vfs.exists(&dir.join(crate::meta::LEDGER_FILE)) {
        return Err(OpenError::NotFound(name.to_owned()));
    }
    let lock_path = dir.join("LOCK");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&display_dir.join("LOCK"), "open"))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(OpenError::Locked(display_dir.join("LOCK")));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(IoFailure::new(display_dir.join("LOCK"), "lock", e).into());
        }
    }
    let meta = LedgerMeta::read(&**vfs, &dir, name)?;
    let given = signer.verifier().to_string();
    if given != meta.current_vkey() {
        return Err(OpenError::KeyMismatch {
            expected: meta.current_vkey().to_owned(),
            given,
        });
    }
    let verifiers = verifiers_of(&meta, &display_dir)?;
    let started = Instant::now();
    if options.strict {
        // The files as found, before recovery truncates a torn tail or rebuilds a damaged
        // derived file: anything but an incomplete tail of the active segment stops the open.
        let report = crate::verify::verify_files(vfs, &dir, &display_dir, name, &mut |_| {})?;
        tracing::info!(
            ledger = name,
            entries = report.entries,
            checkpoints = report.checkpoints,
            nodes_compared = report.nodes_compared,
            elapsed_ms = report.elapsed.as_millis(),
            "strict mode: verified every entry, stored node and checkpoint"
        );
    }

    let mut rebuild = false;
    let opened = loop {
        match open_files(
            vfs,
            &dir,
            &display_dir,
            &meta,
            &verifiers,
            options,
            &lock,
            rebuild,
        ) {
            Ok(o) => break o,
            Err(DerivedProblem::Rebuild(why)) if !rebuild => {
                tracing::warn!(ledger = name, reason = %why, "rebuilding offsets and Merkle nodes from the log");
                wipe_derived(&**vfs, &dir, &display_dir)?;
                rebuild = true;
            }
            Err(DerivedProblem::Rebuild(why)) => {
                return Err(OpenError::Corrupted(Corruption::file(&display_dir, why)));
            }
            Err(DerivedProblem::Fatal(e)) => return Err(e),
        }
    };
    let Opened {
        shared,
        frontier,
        active_len,
        last_timestamp,
        covered,
    } = opened;
    let shared = Arc::new(shared);
    let size = frontier.size().0;
    if covered != size || rebuild {
        crate::head::write(&**vfs, &dir, meta.hash, size)?;
    }
    let active = shared
        .segments
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .last()
        .cloned()
        .ok_or_else(|| {
            OpenError::Corrupted(Corruption::file(display_dir.join("segments"), "no segment"))
        })?;
    let latest = shared.checkpoints.latest();
    tracing::info!(
        ledger = name,
        entries = size,
        checkpoints = shared.checkpoints.len(),
        durability = %options.durability,
        elapsed_ms = started.elapsed().as_millis(),
        "ledger open"
    );
    if options.durability == crate::ledger::Durability::NoneUnsafe {
        tracing::warn!(
            ledger = name,
            "durability is NONE: acknowledged entries can be lost on power failure; use only for benchmarks"
        );
    }
    let now = Instant::now();
    let (tx, rx) = mpsc::channel();
    let writer = Writer {
        shared: shared.clone(),
        rx,
        signer,
        active,
        active_len,
        frontier,
        last_timestamp,
        last_checkpoint_size: latest.as_ref().map_or(0, |c| c.checkpoint.size.0),
        last_checkpoint_at: now,
        last_head_size: size,
        last_head_at: now,
        unsynced_since: None,
        last_sync_at: now,
        terms_behind: false,
        terms_failed: None,
        rules_version: rules_version(&*options.extractor),
    };
    if let Some(index) = &shared.leaf_index {
        index
            .start(name)
            .map_err(|e| IoFailure::new(&display_dir, "spawn leaf indexer", e))?;
    }
    let thread = std::thread::Builder::new()
        .name(format!("vouch-seq-{name}"))
        .spawn(move || writer.run())
        .map_err(|e| IoFailure::new(&display_dir, "spawn sequencer", e))?;
    Ok(Ledger {
        shared,
        tx: Mutex::new(Some(tx)),
        thread: Mutex::new(Some(thread)),
    })
}

/// Opens every file, recovers the torn tail and catches the derived files up. With `rebuild`,
/// the derived files were removed and are rebuilt from the start of the log.
#[allow(clippy::too_many_arguments)]
fn open_files(
    vfs: &Arc<dyn Vfs>,
    dir: &Path,
    display_dir: &Path,
    meta: &LedgerMeta,
    verifiers: &Verifiers,
    options: &LedgerOptions,
    lock: &std::fs::File,
    rebuild: bool,
) -> Result<Opened, DerivedProblem> {
    let hash = meta.hash;
    let segments = open_segments(&**vfs, dir, display_dir, hash, OpenMode::ReadWrite)?;
    let segments = if segments.is_empty() {
        let seg_dir = dir.join("segments");
        let seg = Segment::create(&**vfs, &seg_dir, &display_dir.join("segments"), 0, hash)?;
        vfs.sync_dir(&seg_dir)
            .map_err(io(&display_dir.join("segments"), "fsync"))?;
        vec![Arc::new(seg)]
    } else {
        segments
    };
    crate::head::remove_stale_tmp(&**vfs, dir, &display_dir.join(crate::head::HEAD_FILE))?;
    let head = crate::head::read(&**vfs, dir, &display_dir.join(crate::head::HEAD_FILE), hash)?;
    // When rebuilding, the derived files are gone and the head only bounds the torn tail.
    let covered = match &head {
        _ if rebuild => 0,
        Ok(w) => *w,
        Err(why) => {
            if vfs.exists(&dir.join(OFFSETS_FILE)) {
                return Err(DerivedProblem::Rebuild(why.clone()));
            }
            0
        }
    };
    let offsets = open_offsets(&**vfs, dir, display_dir, hash, OpenMode::ReadWrite)
        .map_err(rebuild_unless_format)?;
    let nodes = NodeStore::open(
        vfs.clone(),
        &dir.join("tree"),
        &display_dir.join("tree"),
        hash,
        OpenMode::ReadWrite,
    )
    .map_err(rebuild_unless_format)?;
    let (checkpoints, truncated) =
        CheckpointLog::open(&**vfs, dir, display_dir, hash, OpenMode::ReadWrite)?;
    if let Some(t) = truncated {
        tracing::warn!("{t}");
    }
    let sled_path = dir.join("sled");
    let sled_display = display_dir.join("sled");
    let terms = match TermIndex::open(&sled_path, &sled_display) {
        Ok(t) => t,
        Err(why) => {
            tracing::warn!(reason = %why, "the secondary index cannot be opened; rebuilding it from the log");
            if vfs.exists(&sled_path) {
                vfs.remove_dir_all(&sled_path)
                    .map_err(io(&sled_display, "remove"))?;
            }
            TermIndex::open(&sled_path, &sled_display)
                .map_err(|e| DerivedProblem::Fatal(OpenError::Index(e)))?
        }
    };
    let (checkpoint_tx, _) = watch::channel(checkpoints.latest());
    let mut shared = Shared {
        name: meta.name.clone(),
        dir: dir.to_path_buf(),
        display_dir: display_dir.to_path_buf(),
        vfs: vfs.clone(),
        meta: meta.clone(),
        hash,
        size: AtomicU64::new(0),
        segments: RwLock::new(segments),
        offsets,
        nodes,
        checkpoints,
        terms,
        leaf_index: None,
        extractor: options.extractor.clone(),
        poison: Mutex::new(None),
        checkpoint_tx,
        verifiers: verifiers.clone(),
        options: options.clone(),
        stats: crate::stats::LedgerStats::default(),
        edges: crate::ledger::EdgeCache::default(),
        _lock: lock.try_clone().map_err(io(display_dir, "dup lock"))?,
    };

    // Entries below the head's size or a checkpoint's were durable: never a torn tail.
    let durable = head.unwrap_or(0).max(
        shared
            .checkpoints
            .latest()
            .map_or(0, |c| c.checkpoint.size.0),
    );
    check_sealed_ends(&shared, covered)?;
    check_derived_cover(&shared, covered)?;
    let frontier = restore_frontier(&shared, covered)?;
    let (frontier, active_len, last_timestamp) = recover_tail(&shared, frontier, covered, durable)?;
    let size = frontier.size().0;
    shared.size.store(size, Ordering::Release);
    check_latest_checkpoint(&shared, size)?;
    catch_up_terms(&shared, size)?;
    if meta.leaf_hash_index {
        shared.leaf_index = Some(open_leaf_index(&shared, size)?);
    }
    Ok(Opened {
        shared,
        frontier,
        active_len,
        last_timestamp,
        covered,
    })
}

fn rebuild_unless_format(e: OpenError) -> DerivedProblem {
    match e {
        OpenError::Corrupted(c) => DerivedProblem::Rebuild(c.to_string()),
        other => DerivedProblem::Fatal(other),
    }
}

fn read_problem(e: ReadError) -> DerivedProblem {
    match e {
        ReadError::Io(io) => DerivedProblem::Fatal(OpenError::Io(io)),
        other => DerivedProblem::Rebuild(other.to_string()),
    }
}

/// The byte just after entry `index`'s frame, found through the offsets file.
fn end_of_entry(shared: &Shared, seg: &Segment, index: u64) -> Result<u64, DerivedProblem> {
    let offset = shared.offset_of(index).map_err(read_problem)?;
    let mut hdr = [0u8; 8];
    seg.file.read_exact_at(&mut hdr, offset).map_err(|_| {
        DerivedProblem::Rebuild(format!(
            "{}: entry {index}'s offset {offset} lies beyond the end of {}",
            shared.offsets.path().display(),
            seg.display.display()
        ))
    })?;
    Ok(offset + FrameHeader::parse(hdr).total_len())
}

/// Step 3: every sealed segment whose entries are all covered ends exactly after its last
/// frame.
fn check_sealed_ends(shared: &Shared, covered: u64) -> Result<(), DerivedProblem> {
    let segs = shared
        .segments
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for pair in segs.windows(2) {
        let (seg, next) = (&pair[0], &pair[1]);
        if next.first == seg.first {
            continue;
        }
        let last = next.first - 1;
        if last >= covered {
            break;
        }
        let end = end_of_entry(shared, seg, last)?;
        let len = seg.len()?;
        if end != len {
            // Either the offsets file is wrong or the sealed segment changed: tell them
            // apart by re-deriving; if the rebuilt offsets agree, the segment is at fault.
            return Err(DerivedProblem::Rebuild(format!(
                "{}: sealed segment is {len} bytes, but its last entry {last} ends at byte {end}",
                seg.display.display()
            )));
        }
    }
    Ok(())
}

/// The derived files hold every record the head vouches for: the offset of the last covered
/// entry and the last node of every level of the covered tree (a missing or truncated node
/// file is rebuilt, not found later by a failing proof).
fn check_derived_cover(shared: &Shared, covered: u64) -> Result<(), DerivedProblem> {
    let Some(last) = covered.checked_sub(1) else {
        return Ok(());
    };
    shared.offset_of(last).map_err(read_problem)?;
    for level in 1..=crate::tree::MAX_LEVEL {
        let nodes = covered >> level;
        if nodes == 0 {
            break;
        }
        shared
            .nodes
            .get(NodeId::new(level, nodes - 1))
            .map_err(read_problem)?;
    }
    Ok(())
}

/// Step 4: the frontier at the covered size, from the stored nodes.
fn restore_frontier(shared: &Shared, covered: u64) -> Result<Frontier, DerivedProblem> {
    let ids: Vec<NodeId> = Frontier::ids_for(TreeSize(covered)).collect();
    let source = StoreSource { shared };
    let hashes: Vec<Hash> = source.nodes(&ids).map_err(read_problem)?;
    Frontier::restore(shared.hash, TreeSize(covered), hashes)
        .map_err(|e| DerivedProblem::Rebuild(e.to_string()))
}

/// Step 5: scans the log from entry `covered`, writing offsets and nodes, and truncates the
/// active segment's torn tail. Returns the frontier, the active segment's length and the last
/// timestamp.
///
/// Entries below `durable` were durable (an index head or a checkpoint covered them): a bad
/// frame among them is corruption, not a torn tail, and nothing is truncated.
fn recover_tail(
    shared: &Shared,
    mut frontier: Frontier,
    covered: u64,
    durable: u64,
) -> Result<(Frontier, u64, u64), DerivedProblem> {
    let segs = shared
        .segments
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut next = covered;
    let mut last_ts = if covered > 0 {
        let raw = shared.read_raw(covered - 1).map_err(read_problem)?;
        EntryView::parse(&raw)
            .map_err(|e| DerivedProblem::Rebuild(e.to_string()))?
            .timestamp()
            .0
    } else {
        0
    };
    let mut offsets: Vec<[u8; 8]> = Vec::new();
    let mut nodes: Vec<(NodeId, Hash)> = Vec::new();
    let mut chunk_start = next;
    let mut active_len = FILE_HEADER_LEN as u64;
    let count = segs.len();
    for (si, seg) in segs.iter().enumerate() {
        let is_active = si + 1 == count;
        let seg_end = segs.get(si + 1).map(|s| s.first);
        if seg_end.is_some_and(|e| e <= next) {
            continue;
        }
        if next < seg.first {
            return Err(DerivedProblem::Fatal(OpenError::Corrupted(
                Corruption::file(
                    &seg.display,
                    format!("entries {next}..{} are missing from the log", seg.first),
                ),
            )));
        }
        let start_offset = if next == seg.first {
            FILE_HEADER_LEN as u64
        } else {
            end_of_entry(shared, seg, next - 1)?
        };
        let len = seg.len()?;
        let mut scanner = Scanner::new(seg, start_offset, len);
        let mut torn = None;
        loop {
            match scanner.next_frame() {
                Ok(Some((offset, body))) => {
                    let view = EntryView::parse(body).map_err(|e| {
                        DerivedProblem::Fatal(OpenError::Corrupted(Corruption::at(
                            &seg.display,
                            offset,
                            format!("a frame with a valid checksum holds an invalid envelope: {e}"),
                        )))
                    })?;
                    if view.index().0 != next || seg_end.is_some_and(|e| next >= e) {
                        return Err(DerivedProblem::Fatal(OpenError::Corrupted(Corruption::at(
                            &seg.display,
                            offset,
                            format!("holds entry {} where entry {next} belongs", view.index()),
                        ))));
                    }
                    if view.timestamp().0 < last_ts {
                        return Err(DerivedProblem::Fatal(OpenError::Corrupted(Corruption::at(
                            &seg.display,
                            offset,
                            format!("entry {next}'s timestamp goes backwards"),
                        ))));
                    }
                    last_ts = view.timestamp().0;
                    offsets.push(offset.to_le_bytes());
                    frontier.push(shared.hash.leaf_hash(body), |id, h| {
                        if id.level > 0 {
                            nodes.push((id, h));
                        }
                    });
                    next += 1;
                    if offsets.len() >= CHUNK {
                        flush_derived(shared, chunk_start, &mut offsets, &mut nodes)?;
                        chunk_start = next;
                    }
                }
                Ok(None) => break,
                Err(ScanStop::Io(e)) => return Err(e.into()),
                Err(ScanStop::Bad { offset, reason }) => {
                    if !is_active {
                        return Err(DerivedProblem::Fatal(OpenError::Corrupted(Corruption::at(
                            &seg.display,
                            offset,
                            format!("{reason} in a sealed segment"),
                        ))));
                    }
                    torn = Some((offset, reason));
                    break;
                }
            }
        }
        if let Some(end) = seg_end
            && next != end
        {
            return Err(DerivedProblem::Fatal(OpenError::Corrupted(
                Corruption::file(
                    &seg.display,
                    format!(
                        "sealed segment ends after entry {} but the next segment starts at entry {end}",
                        next.saturating_sub(1)
                    ),
                ),
            )));
        }
        if is_active {
            active_len = scanner.position();
            if let Some((offset, reason)) = &torn
                && next < durable
            {
                return Err(DerivedProblem::Fatal(OpenError::Corrupted(Corruption::at(
                    &seg.display,
                    *offset,
                    format!(
                        "{reason} at entry {next}, but the index head or a checkpoint says {durable} entries were durable: this is corruption, not a torn tail, and nothing was truncated"
                    ),
                ))));
            }
            if let Some((offset, reason)) = torn {
                tracing::warn!(
                    file = %seg.display.display(),
                    offset,
                    dropped_bytes = len - offset,
                    %reason,
                    "truncating the torn tail of the active segment (never acknowledged)"
                );
                seg.file
                    .set_len(offset)
                    .map_err(io(&seg.display, "truncate"))?;
                seg.file.sync_data().map_err(io(&seg.display, "fsync"))?;
                active_len = offset;
            }
        }
    }
    if next < durable {
        return Err(DerivedProblem::Fatal(OpenError::Corrupted(
            Corruption::file(
                shared.display_dir.join("segments"),
                format!(
                    "the log ends after {next} entries, but the index head or a checkpoint says {durable} were durable: segments are missing or truncated"
                ),
            ),
        )));
    }
    flush_derived(shared, chunk_start, &mut offsets, &mut nodes)?;
    Ok((frontier, active_len, last_ts))
}

fn flush_derived(
    shared: &Shared,
    first: u64,
    offsets: &mut Vec<[u8; 8]>,
    nodes: &mut Vec<(NodeId, Hash)>,
) -> Result<(), IoFailure> {
    let end = first + offsets.len() as u64;
    shared.offsets.reserve(end)?;
    shared.nodes.reserve(end)?;
    shared.offsets.write_many(first, offsets)?;
    nodes.sort_unstable_by_key(|(id, _)| (id.level, id.index));
    shared.nodes.write_sorted(nodes)?;
    offsets.clear();
    nodes.clear();
    Ok(())
}

/// Step 6: the last checkpoint fits the log, matches the node store and is signed by a
/// trusted key.
fn check_latest_checkpoint(shared: &Shared, size: u64) -> Result<(), DerivedProblem> {
    let Some(cp) = shared.checkpoints.latest() else {
        return Ok(());
    };
    let display = shared.checkpoints.display();
    if cp.checkpoint.size.0 > size {
        return Err(DerivedProblem::Fatal(OpenError::Corrupted(
            Corruption::file(
                display,
                format!(
                    "the latest checkpoint covers {} entries but the log holds only {size}: acknowledged entries are missing",
                    cp.checkpoint.size
                ),
            ),
        )));
    }
    if let Err(e) = open_checkpoint(&cp.note, &shared.verifiers) {
        return Err(DerivedProblem::Fatal(OpenError::Corrupted(
            Corruption::file(
                display,
                format!("the latest checkpoint's signature does not verify: {e}"),
            ),
        )));
    }
    if cp.checkpoint.origin != shared.meta.origin {
        return Err(DerivedProblem::Fatal(OpenError::Corrupted(
            Corruption::file(
                display,
                format!(
                    "the latest checkpoint's origin {:?} is not the ledger's {:?}",
                    cp.checkpoint.origin, shared.meta.origin
                ),
            ),
        )));
    }
    let root = shared.root_at(cp.checkpoint.size.0).map_err(read_problem)?;
    if root != cp.checkpoint.root {
        return Err(DerivedProblem::Rebuild(format!(
            "the Merkle nodes give root {root} at size {}, but the latest checkpoint says {}",
            cp.checkpoint.size, cp.checkpoint.root
        )));
    }
    Ok(())
}

/// Step 7: brings the secondary index up to the log, rebuilding it if it cannot be trusted.
fn catch_up_terms(shared: &Shared, size: u64) -> Result<(), DerivedProblem> {
    catch_up_terms_to(shared, size).map_err(|e| match e {
        CatchUpError::Index(e) => DerivedProblem::Fatal(OpenError::Index(e.to_string())),
        CatchUpError::Read(e) => read_problem(e),
    })
}

/// Why [`catch_up_terms_to`] failed.
#[derive(Debug)]
pub(crate) enum CatchUpError {
    /// The secondary index could not be read or written.
    Index(IoFailure),
    /// The log could not be read.
    Read(ReadError),
}

/// Indexes the terms of the entries from the secondary index's watermark up to `size`, from
/// the log; clears the index first if its watermark is missing, from other rules, or beyond
/// `size`. Used at open, and by the sequencer after it reopened a failed index.
pub(crate) fn catch_up_terms_to(shared: &Shared, size: u64) -> Result<(), CatchUpError> {
    let version = rules_version(&*shared.extractor);
    let wm = shared.terms.watermark().ok().flatten();
    let from = match wm {
        Some(w) if w.version == version && w.indexed <= size => w.indexed,
        other => {
            if other.is_some() || size > 0 {
                tracing::warn!(
                    ledger = %shared.name,
                    watermark = ?other,
                    entries = size,
                    "rebuilding the secondary index from the log"
                );
            }
            shared.terms.clear().map_err(|e| {
                CatchUpError::Index(IoFailure::new(
                    shared.display_dir.join("sled"),
                    "clear",
                    std::io::Error::other(e),
                ))
            })?;
            0
        }
    };
    if from == size {
        return Ok(());
    }
    let mut batch: Vec<Vec<crate::terms::Term>> = Vec::new();
    let mut batch_start = from;
    let mut fail: Option<IoFailure> = None;
    shared
        .scan_range(from, size, |i, _off, body| {
            let mut t = Vec::new();
            if let Ok(view) = EntryView::parse(body) {
                entry_terms(&view, &*shared.extractor, &mut t);
            }
            batch.push(t);
            if batch.len() >= 10_000 {
                if fail.is_none()
                    && let Err(e) = shared.terms.apply(batch_start, &batch, version)
                {
                    fail = Some(e);
                }
                batch.clear();
                batch_start = i + 1;
            }
            Ok(())
        })
        .map_err(CatchUpError::Read)?;
    if let Some(e) = fail {
        return Err(CatchUpError::Index(e));
    }
    shared
        .terms
        .apply(batch_start, &batch, version)
        .map_err(CatchUpError::Index)
}

/// Step 8: opens the leaf-hash index, keeping its sound runs, and indexes the entries past them
/// from the log.
fn open_leaf_index(shared: &Shared, size: u64) -> Result<LeafIndex, DerivedProblem> {
    let fatal = |e: IoFailure| DerivedProblem::Fatal(OpenError::Io(e));
    let (index, from) = LeafIndex::open(
        &shared.vfs,
        &shared.dir,
        &shared.display_dir,
        shared.hash,
        shared.options.leaf_index_chunk,
        size,
    )
    .map_err(fatal)?;
    let mut builder = index.rebuilder(from, size);
    let mut failed = None;
    let mut next = from;
    while next < size {
        let scanned = shared.scan_range(next, size, |i, _off, body| {
            if failed.is_none()
                && let Err(e) = builder.push(i, Some(&shared.hash.leaf_hash(body)))
            {
                failed = Some(e);
            }
            next = i + 1;
            Ok(())
        });
        match scanned {
            Ok(()) => break,
            // A damaged entry is an error for whoever reads it, not for the open: it is left
            // out of the index, and indexing goes on with the next entry.
            Err(ReadError::Corrupted(c)) => {
                tracing::warn!(ledger = %shared.name, entry = next, error = %c, "an entry that cannot be read is left out of the leaf-hash index");
                if let Err(e) = builder.push(next, None) {
                    failed.get_or_insert(e);
                }
                next += 1;
            }
            Err(e) => return Err(read_problem(e)),
        }
    }
    if let Some(e) = failed {
        return Err(fatal(e));
    }
    Ok(index)
}
