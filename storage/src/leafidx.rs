//! The leaf-hash index: which entry has a given leaf hash.
//!
//! A ledger created with the leaf-hash index answers "which entry has leaf hash H" (proofs by
//! leaf hash) from this index, which is derived from the segments like the node files and can
//! be deleted and rebuilt at any time. Its layout is specified in `docs/format.md`
//! ("Leaf-hash index").
//!
//! It is built like a small log-structured merge tree, specialised to keys that are uniformly
//! distributed and never updated:
//!
//! - The newest entries live in memory, in **chunks** of [`CHUNK_ENTRIES`] consecutive entries
//!   (a hash map from the first eight bytes of the leaf hash to the entry index). The sequencer
//!   adds a group's leaf hashes before it publishes the group, so every published entry can be
//!   found at once: the index never lags behind the log for readers.
//! - A background thread writes every full chunk to an immutable, sorted **run** file
//!   (`leaf-index/<first>-<end>.run`: 8 bytes per entry and a fence every 512 records), and
//!   merges two runs of the same size into one when they are aligned like the two halves of a
//!   perfect subtree, so a ledger of `n` entries has at most `log2(n / CHUNK_ENTRIES) + 1` runs
//!   (more only beyond [`MAX_RUN_ENTRIES`]).
//! - A look-up searches the in-memory chunks, then each run's fences (in memory) and one or
//!   two 4 KiB blocks of its file. Hits are candidates: the caller re-reads each entry and
//!   keeps only the one whose leaf hash matches, so a prefix shared by two entries, or a
//!   damaged record, can never produce a wrong answer.
//!
//! A run is written to a temporary name, synced and renamed, so a run file that exists is
//! complete. On open every run is checked in full (checksum, order, index range, fences); a
//! run that fails, ends beyond the log, or is covered by a larger run is deleted, and the
//! entries past the last run that remains are re-read from the log. The in-memory chunks are
//! never written anywhere else, so a crash loses nothing the log does not hold.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use vouch_ledger_core::{Hash, HashAlg};

use crate::error::{Corruption, IoFailure, ReadError};
use crate::frame::{FILE_HEADER_LEN, FileHeader};
use crate::vfs::{OpenMode, Vfs, VfsFile};

/// The directory of the run files, inside the ledger's directory.
pub const LEAF_INDEX_DIR: &str = "leaf-index";
/// The magic of a run file.
pub const RUN_MAGIC: [u8; 8] = *b"VOUCHLHX";
/// Entries per in-memory chunk, and per smallest run.
pub const CHUNK_ENTRIES: u64 = 1 << 15;
/// Runs are not merged beyond this many entries (a 1 GiB file), so that no single merge
/// rewrites more than that.
pub const MAX_RUN_ENTRIES: u64 = 1 << 26;
/// The largest run a rebuild from the log writes at once (64 MiB of records in memory).
const MAX_BUILD_ENTRIES: u64 = 1 << 22;
/// One record: the first four bytes of the leaf hash, then the entry index minus the run's
/// first index (four bytes, little-endian).
const RECORD_LEN: usize = 8;
/// A fence (the prefix of the first record of a block) every this many records.
const FENCE_EVERY: usize = 512;
/// The bytes of one fence.
const FENCE_LEN: usize = 4;
const _: () = assert!(
    MAX_RUN_ENTRIES <= 1 << 32,
    "an index within a run must fit in 4 bytes"
);
const BLOCK_LEN: usize = RECORD_LEN * FENCE_EVERY;
const TRAILER_LEN: usize = 32;
/// How long the background thread waits before it tries a failed run write again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The key of a leaf hash in the index: its first four bytes.
type Prefix = u32;

/// The key of a leaf hash, read as a big-endian number, so that the numeric order is the byte
/// order.
fn prefix_of(leaf: &Hash) -> Prefix {
    let mut p = [0u8; 4];
    p.copy_from_slice(&leaf.0[..4]);
    Prefix::from_be_bytes(p)
}

/// The file name of the run covering entries `first..end`.
pub fn run_file_name(first: u64, end: u64) -> String {
    format!("{first:020}-{end:020}.run")
}

fn parse_run_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".run")?;
    let (a, b) = stem.split_once('-')?;
    if a.len() != 20 || b.len() != 20 || !a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The entries of one in-memory chunk.
#[derive(Debug)]
struct Chunk {
    first: u64,
    len: u64,
    map: HashMap<Prefix, Slot>,
}

/// The entries whose leaf hashes share a prefix (almost always one).
#[derive(Debug)]
enum Slot {
    One(u64),
    Many(Vec<u64>),
}

impl Chunk {
    fn new(first: u64) -> Self {
        Self {
            first,
            len: 0,
            map: HashMap::new(),
        }
    }

    fn insert(&mut self, prefix: Prefix, index: u64) {
        match self.map.entry(prefix) {
            MapEntry::Vacant(v) => {
                v.insert(Slot::One(index));
            }
            MapEntry::Occupied(mut o) => {
                let slot = o.get_mut();
                match slot {
                    Slot::One(a) => *slot = Slot::Many(vec![*a, index]),
                    Slot::Many(v) => v.push(index),
                }
            }
        }
        self.len += 1;
    }

    fn get(&self, prefix: Prefix, out: &mut Vec<u64>) {
        match self.map.get(&prefix) {
            Some(Slot::One(i)) => out.push(*i),
            Some(Slot::Many(v)) => out.extend_from_slice(v),
            None => {}
        }
    }

    /// The records in run order: by prefix, then index.
    fn sorted_records(&self) -> Vec<(Prefix, u64)> {
        let mut recs = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        for (p, slot) in &self.map {
            match slot {
                Slot::One(i) => recs.push((*p, *i)),
                Slot::Many(v) => recs.extend(v.iter().map(|i| (*p, *i))),
            }
        }
        recs.sort_unstable();
        recs
    }
}

/// One run file, open for reading.
#[derive(Debug)]
struct Run {
    first: u64,
    end: u64,
    file: Arc<dyn VfsFile>,
    path: PathBuf,
    display: PathBuf,
    /// How many records it holds: one per entry of its range, less any entry that could not
    /// be read when the run was rebuilt from a damaged log.
    records: u64,
    /// The prefix of record `FENCE_EVERY · i`, for every block `i`.
    fences: Vec<Prefix>,
}

impl Run {
    fn count(&self) -> u64 {
        self.records
    }

    /// The length of its entry range.
    fn span(&self) -> u64 {
        self.end - self.first
    }

    fn corrupt(&self, offset: u64, reason: impl Into<String>) -> ReadError {
        ReadError::Corrupted(Corruption::at(&self.display, offset, reason))
    }

    /// Adds the indexes of the records with this prefix to `out`.
    fn lookup(&self, prefix: Prefix, out: &mut Vec<u64>) -> Result<(), ReadError> {
        // Records with this prefix start at or after the block before the first fence that is
        // not smaller than the prefix.
        let mut block = self
            .fences
            .partition_point(|f| *f < prefix)
            .saturating_sub(1);
        let count = usize::try_from(self.count()).unwrap_or(usize::MAX);
        let mut buf = [0u8; BLOCK_LEN];
        while block < self.fences.len() {
            let first_rec = block * FENCE_EVERY;
            let n = (count - first_rec).min(FENCE_EVERY);
            let offset = (FILE_HEADER_LEN + first_rec * RECORD_LEN) as u64;
            let bytes = &mut buf[..n * RECORD_LEN];
            self.file
                .read_exact_at(bytes, offset)
                .map_err(|e| ReadError::Io(IoFailure::new(&self.display, "read", e)))?;
            for rec in bytes.chunks_exact(RECORD_LEN) {
                let (p, i) = decode_record(rec, self.first);
                if p > prefix {
                    return Ok(());
                }
                if p == prefix {
                    if !(self.first..self.end).contains(&i) {
                        return Err(self.corrupt(
                            offset,
                            format!("a record names entry {i}, outside the run"),
                        ));
                    }
                    out.push(i);
                }
            }
            block += 1;
        }
        Ok(())
    }
}

/// A record's prefix and entry index, in a run starting at entry `first`.
fn decode_record(rec: &[u8], first: u64) -> (Prefix, u64) {
    let mut p = [0u8; 4];
    let mut i = [0u8; 4];
    p.copy_from_slice(&rec[..4]);
    i.copy_from_slice(&rec[4..8]);
    (
        Prefix::from_be_bytes(p),
        first.saturating_add(u64::from(u32::from_le_bytes(i))),
    )
}

/// The runs and chunks, replaced as a whole under one lock.
#[derive(Debug, Default)]
struct State {
    /// Contiguous runs covering `0..runs_end`, in order.
    runs: Arc<Vec<Arc<Run>>>,
    /// Contiguous chunks covering `runs_end..`, in order; all but the last are full.
    chunks: VecDeque<Chunk>,
    /// A merge found a damaged run: no more merges until the ledger is reopened.
    merges_stopped: bool,
}

impl State {
    fn runs_end(&self) -> u64 {
        self.runs.last().map_or(0, |r| r.end)
    }
}

#[derive(Debug)]
struct Inner {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    display: PathBuf,
    hash: HashAlg,
    chunk_entries: u64,
    state: RwLock<State>,
}

enum Wake {
    Work,
    Stop,
}

/// The leaf-hash index of one ledger.
#[derive(Debug)]
pub(crate) struct LeafIndex {
    inner: Arc<Inner>,
    worker: Mutex<Option<(mpsc::Sender<Wake>, JoinHandle<()>)>>,
}

/// What the index holds, for tests and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafIndexStatus {
    /// The runs on disk, as `(first, end)` entry ranges.
    pub runs: Vec<(u64, u64)>,
    /// Entries held only in memory.
    pub in_memory: u64,
}

impl LeafIndex {
    /// Opens the index of a ledger whose log holds `size` entries: keeps every sound run that
    /// belongs to the longest chain of runs from entry 0, deletes every other run file, and
    /// returns the index and the first entry it does not hold yet (see [`Rebuilder`]).
    pub(crate) fn open(
        vfs: &Arc<dyn Vfs>,
        ledger_dir: &Path,
        display_dir: &Path,
        hash: HashAlg,
        chunk_entries: u64,
        size: u64,
    ) -> Result<(Self, u64), IoFailure> {
        let dir = ledger_dir.join(LEAF_INDEX_DIR);
        let display = display_dir.join(LEAF_INDEX_DIR);
        if !vfs.exists(&dir) {
            vfs.create_dir_all(&dir)
                .map_err(|e| IoFailure::new(&display, "create", e))?;
            vfs.sync_dir(ledger_dir)
                .map_err(|e| IoFailure::new(display_dir, "fsync", e))?;
        }
        let names = vfs
            .read_dir(&dir)
            .map_err(|e| IoFailure::new(&display, "list", e))?;
        let inner = Inner {
            vfs: vfs.clone(),
            dir: dir.clone(),
            display: display.clone(),
            hash,
            chunk_entries: chunk_entries.max(1),
            state: RwLock::new(State::default()),
        };
        let mut sound: Vec<Run> = Vec::new();
        let mut doomed: Vec<String> = Vec::new();
        for name in names {
            if Path::new(&name).extension().is_some_and(|e| e == "tmp") {
                doomed.push(name);
                continue;
            }
            let Some((first, end)) = parse_run_name(&name) else {
                continue;
            };
            let why = if end > size {
                Some(format!(
                    "it covers entries up to {end}, beyond the log's {size}"
                ))
            } else if !inner.aligned(first, end) {
                Some("its entry range is not one the engine writes".to_owned())
            } else {
                match inner.open_run(first, end) {
                    Ok(run) => {
                        sound.push(run);
                        None
                    }
                    Err(e) => Some(e.to_string()),
                }
            };
            if let Some(why) = why {
                let file = display.join(&name);
                tracing::warn!(file = %file.display(), reason = %why, "removing a leaf-index run; its entries are indexed again from the log");
                doomed.push(name);
            }
        }
        // The chain from entry 0, taking the largest run at each step.
        sound.sort_by_key(|r| (r.first, std::cmp::Reverse(r.end)));
        let mut chain: Vec<Arc<Run>> = Vec::new();
        let mut at = 0u64;
        for run in sound {
            if run.first == at && run.end > at {
                at = run.end;
                chain.push(Arc::new(run));
            } else {
                doomed.push(run_file_name(run.first, run.end));
            }
        }
        for name in &doomed {
            vfs.remove_file(&dir.join(name))
                .map_err(|e| IoFailure::new(display.join(name), "remove", e))?;
        }
        if !doomed.is_empty() {
            vfs.sync_dir(&dir)
                .map_err(|e| IoFailure::new(&display, "fsync", e))?;
        }
        {
            let mut st = inner.write();
            st.runs = Arc::new(chain);
        }
        Ok((
            Self {
                inner: Arc::new(inner),
                worker: Mutex::new(None),
            },
            at,
        ))
    }

    /// A builder for the entries from `from` (what [`LeafIndex::open`] returned) to `size`,
    /// fed with their leaf hashes in order.
    pub(crate) fn rebuilder(&self, from: u64, size: u64) -> Rebuilder<'_> {
        let mut b = Rebuilder {
            index: self,
            size,
            next: from,
            start: from,
            target: from,
            records: Vec::new(),
        };
        b.plan();
        b
    }

    /// Starts the background thread that writes full chunks to runs and merges runs.
    pub(crate) fn start(&self, ledger: &str) -> std::io::Result<()> {
        let (tx, rx) = mpsc::channel();
        let inner = self.inner.clone();
        let handle = std::thread::Builder::new()
            .name(format!("vouch-leafidx-{ledger}"))
            .spawn(move || worker(&inner, &rx))?;
        let _ = tx.send(Wake::Work);
        *self.lock_worker() = Some((tx, handle));
        Ok(())
    }

    fn lock_worker(
        &self,
    ) -> std::sync::MutexGuard<'_, Option<(mpsc::Sender<Wake>, JoinHandle<()>)>> {
        self.worker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds the leaf hashes of entries `first..first + leaves.len()`, which must follow the
    /// entries already added. Called by the sequencer before it publishes them.
    pub(crate) fn insert(&self, first: u64, leaves: &[Hash]) {
        let mut filled = false;
        {
            let mut st = self.inner.write();
            for (n, leaf) in leaves.iter().enumerate() {
                filled |= self.inner.add(&mut st, first + n as u64, Some(leaf));
            }
        }
        if filled {
            self.wake();
        }
    }

    /// Adds one entry (`None`: an entry that could not be read, which is skipped).
    fn insert_one(&self, index: u64, leaf: Option<&Hash>) {
        let filled = {
            let mut st = self.inner.write();
            self.inner.add(&mut st, index, leaf)
        };
        if filled {
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some((tx, _)) = self.lock_worker().as_ref() {
            let _ = tx.send(Wake::Work);
        }
    }

    /// The entries that may have this leaf hash (a superset of those that do).
    pub(crate) fn candidates(&self, leaf: &Hash) -> Result<Vec<u64>, ReadError> {
        let prefix = prefix_of(leaf);
        let mut out = Vec::new();
        let runs = {
            let st = self.inner.read();
            for c in st.chunks.iter().rev() {
                c.get(prefix, &mut out);
            }
            st.runs.clone()
        };
        for run in runs.iter().rev() {
            run.lookup(prefix, &mut out)?;
        }
        Ok(out)
    }

    /// The runs on disk and the count of entries held only in memory.
    pub(crate) fn status(&self) -> LeafIndexStatus {
        let st = self.inner.read();
        LeafIndexStatus {
            runs: st.runs.iter().map(|r| (r.first, r.end)).collect(),
            in_memory: st.chunks.iter().map(|c| c.len).sum(),
        }
    }

    /// Stops the background thread after the run write or merge it is doing. Entries still in
    /// memory are indexed again from the log at the next open.
    pub(crate) fn close(&self) {
        let worker = self.lock_worker().take();
        if let Some((tx, handle)) = worker {
            let _ = tx.send(Wake::Stop);
            let _ = handle.join();
        }
    }
}

impl Drop for LeafIndex {
    fn drop(&mut self) {
        self.close();
    }
}

/// Indexes the entries of the log that no run holds, when a ledger is opened: writes runs for
/// whole aligned ranges and keeps the rest in memory.
pub(crate) struct Rebuilder<'a> {
    index: &'a LeafIndex,
    size: u64,
    next: u64,
    /// The first entry of the run being collected.
    start: u64,
    /// The end of the run being collected, or `next` when the entries go to memory.
    target: u64,
    records: Vec<(Prefix, u64)>,
}

impl Rebuilder<'_> {
    /// Chooses the largest aligned run that starts at `next` and fits in the log.
    fn plan(&mut self) {
        let r = self.index.inner.chunk_entries;
        let mut len = 0;
        let mut cand = r;
        while cand <= MAX_BUILD_ENTRIES.max(r)
            && self.next.is_multiple_of(cand)
            && self.next + cand <= self.size
        {
            len = cand;
            cand *= 2;
        }
        self.start = self.next;
        self.target = self.next + len;
        self.records.clear();
        if len > 0 {
            self.records.reserve(usize::try_from(len).unwrap_or(0));
        }
    }

    /// Takes the leaf hash of entry `index`, which must be the next one; `None` for an entry
    /// that cannot be read (a damaged log), which then cannot be found by its leaf hash.
    pub(crate) fn push(&mut self, index: u64, leaf: Option<&Hash>) -> Result<(), IoFailure> {
        debug_assert_eq!(index, self.next);
        self.next = index + 1;
        if index < self.target {
            if let Some(leaf) = leaf {
                self.records.push((prefix_of(leaf), index));
            }
            if self.next == self.target {
                self.records.sort_unstable();
                let run = self.index.inner.write_run(
                    self.start,
                    self.target,
                    self.records.iter().copied(),
                )?;
                {
                    let mut st = self.index.inner.write();
                    let mut runs = (*st.runs).clone();
                    runs.push(Arc::new(run));
                    st.runs = Arc::new(runs);
                }
                self.plan();
            }
        } else {
            self.index.insert_one(index, leaf);
        }
        Ok(())
    }
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds entry `index` to the last chunk (a new one if it is full); whether that filled it.
    fn add(&self, st: &mut State, index: u64, leaf: Option<&Hash>) -> bool {
        let r = self.chunk_entries;
        if st.chunks.back().is_none_or(|c| c.len >= r) {
            st.chunks.push_back(Chunk::new(index));
        }
        match st.chunks.back_mut() {
            Some(c) => {
                match leaf {
                    Some(leaf) => c.insert(prefix_of(leaf), index),
                    None => c.len += 1,
                }
                c.len >= r
            }
            None => false,
        }
    }

    /// Whether `first..end` is a range the engine writes: a multiple of the chunk size in
    /// length, and aligned to it.
    fn aligned(&self, first: u64, end: u64) -> bool {
        let len = end.saturating_sub(first);
        len > 0
            && len.is_multiple_of(self.chunk_entries)
            && (len / self.chunk_entries).is_power_of_two()
            && first.is_multiple_of(len)
    }

    /// Writes a run holding `records` (sorted) for entries `first..end`: to a temporary name,
    /// synced, renamed, directory synced.
    fn write_run(
        &self,
        first: u64,
        end: u64,
        records: impl Iterator<Item = (Prefix, u64)>,
    ) -> Result<Run, IoFailure> {
        let name = run_file_name(first, end);
        let path = self.dir.join(&name);
        let display = self.display.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let tmp_display = self.display.join(format!("{name}.tmp"));
        if self.vfs.exists(&tmp) {
            self.vfs
                .remove_file(&tmp)
                .map_err(|e| IoFailure::new(&tmp_display, "remove", e))?;
        }
        let file = self
            .vfs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(|e| IoFailure::new(&tmp_display, "create", e))?;
        let result = (|| {
            let mut w = RunWriter::new(&*file, &tmp_display, self.hash, first, end);
            for (p, i) in records {
                w.push(p, i)?;
            }
            let (records, fences) = w.finish()?;
            file.sync_data()
                .map_err(|e| IoFailure::new(&tmp_display, "fsync", e))?;
            self.vfs
                .rename(&tmp, &path)
                .map_err(|e| IoFailure::new(&display, "rename", e))?;
            self.vfs
                .sync_dir(&self.dir)
                .map_err(|e| IoFailure::new(&self.display, "fsync", e))?;
            Ok((records, fences))
        })();
        match result {
            Ok((records, fences)) => Ok(Run {
                first,
                end,
                file,
                path,
                display,
                records,
                fences,
            }),
            Err(e) => {
                let _ = self.vfs.remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Opens and checks a run file in full: header, length, trailer, checksum, record order,
    /// every index of the range exactly once, fences.
    fn open_run(&self, first: u64, end: u64) -> Result<Run, ReadError> {
        let name = run_file_name(first, end);
        let path = self.dir.join(&name);
        let display = self.display.join(&name);
        let file = self
            .vfs
            .open(&path, OpenMode::Read)
            .map_err(|e| ReadError::Io(IoFailure::new(&display, "open", e)))?;
        let (records, fences) = check_run(&file, &display, self.hash, first, end)?;
        Ok(Run {
            first,
            end,
            file,
            path,
            display,
            records,
            fences,
        })
    }

    /// One step of the background work: writes the oldest full chunk, or merges one pair of
    /// runs. `Ok(false)` when there is nothing to do.
    fn step(&self) -> Result<bool, IoFailure> {
        let full = {
            let st = self.read();
            st.chunks
                .front()
                .filter(|c| c.len >= self.chunk_entries)
                .map(|c| (c.first, c.first + c.len, c.sorted_records()))
        };
        if let Some((first, end, records)) = full {
            let run = self.write_run(first, end, records.into_iter())?;
            let mut st = self.write();
            if st.chunks.front().is_some_and(|c| c.first == first) && st.runs_end() == first {
                st.chunks.pop_front();
                let mut runs = (*st.runs).clone();
                runs.push(Arc::new(run));
                st.runs = Arc::new(runs);
            }
            return Ok(true);
        }
        let pair = {
            let st = self.read();
            if st.merges_stopped {
                None
            } else {
                st.runs.windows(2).rev().find_map(|w| {
                    let (a, b) = (&w[0], &w[1]);
                    let len = a.span();
                    (len == b.span()
                        && len.saturating_mul(2) <= MAX_RUN_ENTRIES.max(self.chunk_entries)
                        && a.first.is_multiple_of(len * 2))
                    .then(|| (a.clone(), b.clone()))
                })
            }
        };
        let Some((a, b)) = pair else {
            return Ok(false);
        };
        let merged = match self.merge(&a, &b) {
            Ok(run) => run,
            Err(MergeError::Io(e)) => return Err(e),
            Err(MergeError::Damaged(c)) => {
                tracing::error!(error = %c, "a leaf-index run is damaged; merging stops until the ledger is reopened, which rebuilds it from the log");
                self.write().merges_stopped = true;
                return Ok(true);
            }
        };
        {
            let mut st = self.write();
            let mut merged = Some(Arc::new(merged));
            let mut runs: Vec<Arc<Run>> = Vec::with_capacity(st.runs.len());
            for r in st.runs.iter() {
                if Arc::ptr_eq(r, &a) {
                    runs.extend(merged.take());
                } else if !Arc::ptr_eq(r, &b) {
                    runs.push(r.clone());
                }
            }
            if merged.is_none() {
                st.runs = Arc::new(runs);
            }
        }
        for old in [&a, &b] {
            if let Err(e) = self.vfs.remove_file(&old.path) {
                tracing::warn!(file = %old.display.display(), error = %e, "cannot remove a merged leaf-index run; the next open removes it");
            }
        }
        Ok(true)
    }

    /// Merges two adjacent runs of the same size into one, checking both as it reads them.
    fn merge(&self, a: &Run, b: &Run) -> Result<Run, MergeError> {
        let mut ra = RunReader::new(a);
        let mut rb = RunReader::new(b);
        let mut next_a = ra.next()?;
        let mut next_b = rb.next()?;
        let merged = std::iter::from_fn(|| {
            // Errors are carried out through the readers' `error` slots.
            match (next_a, next_b) {
                (Some(x), Some(y)) => {
                    if x <= y {
                        next_a = ra.next_or_stash();
                        Some(x)
                    } else {
                        next_b = rb.next_or_stash();
                        Some(y)
                    }
                }
                (Some(x), None) => {
                    next_a = ra.next_or_stash();
                    Some(x)
                }
                (None, Some(y)) => {
                    next_b = rb.next_or_stash();
                    Some(y)
                }
                (None, None) => None,
            }
        });
        let run = self.write_run(a.first, b.end, merged);
        if let Some(e) = ra.error.take().or_else(|| rb.error.take()) {
            let _ = self
                .vfs
                .remove_file(&self.dir.join(run_file_name(a.first, b.end)));
            return Err(e);
        }
        ra.finish()?;
        rb.finish()?;
        Ok(run?)
    }
}

enum MergeError {
    Io(IoFailure),
    Damaged(Corruption),
}

impl From<ReadError> for MergeError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(io) => MergeError::Io(io),
            ReadError::Corrupted(c) => MergeError::Damaged(c),
            other => MergeError::Damaged(Corruption::file("leaf-index", other.to_string())),
        }
    }
}

impl From<IoFailure> for MergeError {
    fn from(e: IoFailure) -> Self {
        MergeError::Io(e)
    }
}

fn worker(inner: &Inner, rx: &mpsc::Receiver<Wake>) {
    let mut failing = false;
    loop {
        let wake = if failing {
            match rx.recv_timeout(RETRY_AFTER) {
                Ok(w) => Some(w),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(w) => Some(w),
                Err(_) => return,
            }
        };
        if matches!(wake, Some(Wake::Stop)) {
            return;
        }
        failing = false;
        loop {
            // A stop request waits only for the step in progress.
            if let Ok(Wake::Stop) = rx.try_recv() {
                return;
            }
            match inner.step() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write the leaf-hash index; its newest entries stay in memory and the write is tried again");
                    failing = true;
                    break;
                }
            }
        }
    }
}

/// Streams records into a run file after its header, keeping the checksum and fences.
struct RunWriter<'a> {
    file: &'a dyn VfsFile,
    display: &'a Path,
    first: u64,
    end: u64,
    offset: u64,
    buf: Vec<u8>,
    crc: u32,
    fences: Vec<Prefix>,
    count: u64,
}

impl<'a> RunWriter<'a> {
    fn new(file: &'a dyn VfsFile, display: &'a Path, hash: HashAlg, first: u64, end: u64) -> Self {
        let header = FileHeader {
            magic: RUN_MAGIC,
            hash,
            byte11: 0,
            word: first,
        }
        .encode();
        let mut buf = Vec::with_capacity(1 << 20);
        buf.extend_from_slice(&header);
        Self {
            file,
            display,
            first,
            end,
            offset: 0,
            buf,
            crc: 0,
            fences: Vec::new(),
            count: 0,
        }
    }

    fn push(&mut self, prefix: Prefix, index: u64) -> Result<(), IoFailure> {
        let Some(rel) = index
            .checked_sub(self.first)
            .filter(|_| index < self.end)
            .and_then(|r| u32::try_from(r).ok())
        else {
            return Err(IoFailure::new(
                self.display,
                "write",
                std::io::Error::other(format!(
                    "entry {index} is outside the run {}..{}",
                    self.first, self.end
                )),
            ));
        };
        if self.count.is_multiple_of(FENCE_EVERY as u64) {
            self.fences.push(prefix);
        }
        let at = self.buf.len();
        self.buf.extend_from_slice(&prefix.to_be_bytes());
        self.buf.extend_from_slice(&rel.to_le_bytes());
        self.crc = crc32c::crc32c_append(self.crc, &self.buf[at..]);
        self.count += 1;
        if self.buf.len() >= 1 << 20 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoFailure> {
        self.file
            .write_all_at(&self.buf, self.offset)
            .map_err(|e| IoFailure::new(self.display, "write", e))?;
        self.offset += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes the fences and the trailer; returns the record count and the fences.
    fn finish(mut self) -> Result<(u64, Vec<Prefix>), IoFailure> {
        if self.count > self.end - self.first {
            return Err(IoFailure::new(
                self.display,
                "write",
                std::io::Error::other(format!(
                    "{} records for a run of {} entries",
                    self.count,
                    self.end - self.first
                )),
            ));
        }
        let at = self.buf.len();
        for f in &self.fences {
            self.buf.extend_from_slice(&f.to_be_bytes());
        }
        self.buf.extend_from_slice(&self.end.to_le_bytes());
        self.buf.extend_from_slice(&self.count.to_le_bytes());
        self.buf.extend_from_slice(&[0u8; 12]);
        self.crc = crc32c::crc32c_append(self.crc, &self.buf[at..]);
        self.buf.extend_from_slice(&self.crc.to_le_bytes());
        self.flush()?;
        Ok((self.count, self.fences))
    }
}

/// The byte length of a run file of `count` records.
fn run_len(count: u64) -> u64 {
    let fences = count.div_ceil(FENCE_EVERY as u64);
    FILE_HEADER_LEN as u64
        + count * RECORD_LEN as u64
        + fences * FENCE_LEN as u64
        + TRAILER_LEN as u64
}

/// Streams the records of a run, checking order, range and uniqueness of indexes as it goes;
/// [`RunReader::finish`] checks the fences, trailer and checksum.
struct RunReader<'a> {
    run: &'a Run,
    count: u64,
    read: u64,
    buf: Vec<u8>,
    pos: usize,
    crc: u32,
    last: Option<(Prefix, u64)>,
    seen: Vec<u64>,
    fences: Vec<Prefix>,
    error: Option<MergeError>,
}

impl<'a> RunReader<'a> {
    fn new(run: &'a Run) -> Self {
        let count = run.count();
        Self {
            run,
            count,
            read: 0,
            buf: Vec::new(),
            pos: 0,
            crc: 0,
            last: None,
            seen: vec![0u64; usize::try_from(run.span().div_ceil(64)).unwrap_or(0)],
            fences: Vec::new(),
            error: None,
        }
    }

    fn next(&mut self) -> Result<Option<(Prefix, u64)>, ReadError> {
        if self.read == self.count {
            return Ok(None);
        }
        if self.pos == self.buf.len() {
            let left = self.count - self.read;
            let n = left.min(1 << 16) as usize;
            self.buf.resize(n * RECORD_LEN, 0);
            let offset = FILE_HEADER_LEN as u64 + self.read * RECORD_LEN as u64;
            self.run
                .file
                .read_exact_at(&mut self.buf, offset)
                .map_err(|e| ReadError::Io(IoFailure::new(&self.run.display, "read", e)))?;
            self.crc = crc32c::crc32c_append(self.crc, &self.buf);
            self.pos = 0;
        }
        let rec = decode_record(&self.buf[self.pos..self.pos + RECORD_LEN], self.run.first);
        let offset = FILE_HEADER_LEN as u64 + self.read * RECORD_LEN as u64;
        if self.read.is_multiple_of(FENCE_EVERY as u64) {
            self.fences.push(rec.0);
        }
        if self.last.is_some_and(|l| l >= rec) {
            return Err(self.run.corrupt(offset, "records are not in order"));
        }
        let Some(rel) = rec
            .1
            .checked_sub(self.run.first)
            .filter(|r| *r < self.run.span())
        else {
            return Err(self.run.corrupt(
                offset,
                format!("a record names entry {}, outside the run", rec.1),
            ));
        };
        let (word, bit) = ((rel / 64) as usize, rel % 64);
        if self.seen[word] & (1 << bit) != 0 {
            return Err(self
                .run
                .corrupt(offset, format!("entry {} appears twice", rec.1)));
        }
        self.seen[word] |= 1 << bit;
        self.last = Some(rec);
        self.pos += RECORD_LEN;
        self.read += 1;
        Ok(Some(rec))
    }

    /// `next`, keeping an error for [`Inner::merge`] and ending the stream.
    fn next_or_stash(&mut self) -> Option<(Prefix, u64)> {
        match self.next() {
            Ok(r) => r,
            Err(e) => {
                self.error = Some(e.into());
                self.read = self.count;
                None
            }
        }
    }

    /// Checks the fences, trailer and checksum once every record was read.
    fn finish(self) -> Result<Vec<Prefix>, ReadError> {
        let run = self.run;
        let at = FILE_HEADER_LEN as u64 + self.count * RECORD_LEN as u64;
        let fence_len = self.fences.len() * FENCE_LEN;
        let mut tail = vec![0u8; fence_len + TRAILER_LEN];
        run.file
            .read_exact_at(&mut tail, at)
            .map_err(|e| ReadError::Io(IoFailure::new(&run.display, "read", e)))?;
        let crc = crc32c::crc32c_append(self.crc, &tail[..tail.len() - 4]);
        let mut stored = [0u8; 4];
        stored.copy_from_slice(&tail[tail.len() - 4..]);
        if crc != u32::from_le_bytes(stored) {
            return Err(run.corrupt(at, "checksum mismatch"));
        }
        for (k, f) in self.fences.iter().enumerate() {
            let mut b = [0u8; FENCE_LEN];
            b.copy_from_slice(&tail[k * FENCE_LEN..(k + 1) * FENCE_LEN]);
            if Prefix::from_be_bytes(b) != *f {
                return Err(run.corrupt(
                    at + (FENCE_LEN * k) as u64,
                    "a fence does not match its block",
                ));
            }
        }
        let trailer = &tail[fence_len..];
        let mut e = [0u8; 8];
        let mut c = [0u8; 8];
        e.copy_from_slice(&trailer[..8]);
        c.copy_from_slice(&trailer[8..16]);
        if u64::from_le_bytes(e) != run.end || u64::from_le_bytes(c) != self.count {
            return Err(run.corrupt(
                at + fence_len as u64,
                "the trailer does not match the file name",
            ));
        }
        if trailer[16..28].iter().any(|b| *b != 0) {
            return Err(run.corrupt(
                at + fence_len as u64 + 16,
                "reserved trailer bytes are not zero",
            ));
        }
        Ok(self.fences)
    }
}

/// Checks a whole run file; returns its fences.
fn check_run(
    file: &Arc<dyn VfsFile>,
    display: &Path,
    hash: HashAlg,
    first: u64,
    end: u64,
) -> Result<(u64, Vec<Prefix>), ReadError> {
    let corrupt =
        |offset: u64, reason: String| ReadError::Corrupted(Corruption::at(display, offset, reason));
    let len = file
        .len()
        .map_err(|e| ReadError::Io(IoFailure::new(display, "stat", e)))?;
    let span = end - first;
    let Some(trailer_at) = len
        .checked_sub(TRAILER_LEN as u64)
        .filter(|t| *t >= FILE_HEADER_LEN as u64)
    else {
        return Err(corrupt(
            0,
            format!("the file is {len} bytes long, too short for a run"),
        ));
    };
    let mut trailer = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut trailer, trailer_at)
        .map_err(|e| ReadError::Io(IoFailure::new(display, "read", e)))?;
    let mut c = [0u8; 8];
    c.copy_from_slice(&trailer[8..16]);
    let count = u64::from_le_bytes(c);
    if count > span {
        return Err(corrupt(
            trailer_at + 8,
            format!("the trailer claims {count} records for a range of {span} entries"),
        ));
    }
    if len != run_len(count) {
        return Err(corrupt(
            0,
            format!(
                "the file is {len} bytes long; a run of {count} records is {}",
                run_len(count)
            ),
        ));
    }
    let mut header = [0u8; FILE_HEADER_LEN];
    file.read_exact_at(&mut header, 0)
        .map_err(|e| ReadError::Io(IoFailure::new(display, "read", e)))?;
    let h = FileHeader::decode(&header, RUN_MAGIC).map_err(|e| corrupt(0, e.to_string()))?;
    if h.hash != hash {
        return Err(corrupt(
            0,
            format!(
                "the header names hash function {}, the ledger uses {hash}",
                h.hash
            ),
        ));
    }
    if h.word != first || h.byte11 != 0 {
        return Err(corrupt(
            0,
            "the header does not match the file name".to_owned(),
        ));
    }
    let probe = Run {
        first,
        end,
        file: file.clone(),
        path: PathBuf::new(),
        display: display.to_path_buf(),
        records: count,
        fences: Vec::new(),
    };
    let mut reader = RunReader::new(&probe);
    while reader.next()?.is_some() {}
    Ok((count, reader.finish()?))
}
