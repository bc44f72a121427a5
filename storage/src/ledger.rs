//! An open ledger: the handle callers append through and read from.
//!
//! Reads (entries, roots, proofs, checkpoints, index look-ups) run on the caller's thread,
//! concurrently with appends, against the tree size last published by the sequencer. Appends
//! are handed to the ledger's single sequencer thread (see [`crate::sequencer`]) and answered
//! through an [`AppendTicket`] that can be waited on or awaited.

use std::fmt;
use std::fs::File;
use std::future::{Future, IntoFuture};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use vouch_ledger_core::entry::{Entry, EntryDraft, EntryView, Timestamp};
use vouch_ledger_core::merkle::Frontier;
use vouch_ledger_core::note::Verifiers;
use vouch_ledger_core::proof::{
    ConsistencyProof, InclusionProof, NodeSource, ProveError as CoreProveError, RightEdge,
    prove_consistency, prove_consistency_at_edge, prove_inclusion, prove_inclusion_at_edge,
    verify_consistency, verify_inclusion,
};
use vouch_ledger_core::{EntryIndex, Hash, HashAlg, NodeId, TreeSize};

use crate::checkpoints::{CheckpointLog, StoredCheckpoint};
use crate::error::{AppendError, CheckpointError, Corruption, ProveError, ReadError};
use crate::frame::FILE_HEADER_LEN;
use crate::leafidx::{LeafIndex, LeafIndexStatus};
use crate::mapped::RecordFile;
use crate::meta::LedgerMeta;
use crate::segment::{ScanStop, Scanner, Segment};
use crate::sequencer::Command;
use crate::terms::{NS_IDEMPOTENCY_KEY, TermExtractor, TermIndex};
use crate::tree::NodeStore;
use crate::vfs::{RealVfs, Vfs};

/// When an append is acknowledged relative to `fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledge only after the entry's bytes are durable (the default).
    #[default]
    Fsync,
    /// Sync at most once per interval; entries acknowledged within the last interval can be
    /// lost by a power failure (not by a process crash).
    Interval(Duration),
    /// Never sync on the append path. For benchmarks only: a power failure loses everything
    /// since the last checkpoint or index head.
    NoneUnsafe,
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Fsync => f.write_str("fsync"),
            Durability::Interval(d) => write!(f, "interval ({} ms)", d.as_millis()),
            Durability::NoneUnsafe => f.write_str("none (UNSAFE: benchmarks only)"),
        }
    }
}

/// When the sequencer signs a checkpoint on its own. A checkpoint is also made on demand and
/// whenever an appender asks to wait for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointCadence {
    /// After this many new entries.
    pub every_entries: Option<u64>,
    /// After this much time, if there are new entries.
    pub every: Option<Duration>,
}

impl Default for CheckpointCadence {
    fn default() -> Self {
        Self {
            every_entries: Some(10_000),
            every: Some(Duration::from_secs(1)),
        }
    }
}

/// The source of entry timestamps.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in Unix nanoseconds.
    fn now_unix_ns(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ns(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// How a ledger is opened.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// When appends are acknowledged.
    pub durability: Durability,
    /// When checkpoints are made.
    pub checkpoints: CheckpointCadence,
    /// Roll over to a new segment once the active one reaches this size.
    pub segment_target_size: u64,
    /// The most entries one group commit takes.
    pub max_group_entries: usize,
    /// The most envelope bytes one group commit takes (a single larger entry still goes alone).
    pub max_group_bytes: usize,
    /// The most entries one batch may hold.
    pub max_batch_entries: usize,
    /// Verify the whole ledger before opening it, and refuse to open on any error.
    pub strict: bool,
    /// Verify every proof against the trusted root before returning it.
    pub self_check_proofs: bool,
    /// How often the index head is written while entries arrive.
    pub head_interval: Duration,
    /// The file system.
    pub vfs: Arc<dyn Vfs>,
    /// Index terms of the layers above storage.
    pub extractor: Arc<dyn TermExtractor>,
    /// The source of timestamps.
    pub clock: Arc<dyn Clock>,
    /// Entries per in-memory chunk and per smallest run of the leaf-hash index
    /// ([`crate::leafidx::CHUNK_ENTRIES`] by default; tests use small ones to exercise runs).
    pub leaf_index_chunk: u64,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Fsync,
            checkpoints: CheckpointCadence::default(),
            segment_target_size: 64 << 20,
            max_group_entries: 4096,
            max_group_bytes: 8 << 20,
            max_batch_entries: 10_000,
            strict: false,
            self_check_proofs: true,
            head_interval: Duration::from_secs(1),
            vfs: Arc::new(RealVfs),
            extractor: Arc::new(crate::terms::NoTerms),
            clock: Arc::new(SystemClock),
            leaf_index_chunk: crate::leafidx::CHUNK_ENTRIES,
        }
    }
}

/// What an acknowledged append returns for each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The entry's index.
    pub index: EntryIndex,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// Its timestamp.
    pub timestamp: Timestamp,
    /// A tree size that includes the entry (the size after its group commit).
    pub tree_size: TreeSize,
    /// Whether the idempotency key had been used before: nothing new was appended, and this is
    /// the original entry's receipt.
    pub duplicate: bool,
}

/// The answer to one append request (a single entry or a batch).
#[derive(Debug, Clone)]
pub struct AppendOutcome {
    /// One receipt per entry, in request order.
    pub receipts: Vec<Receipt>,
    /// When the request asked to wait for a checkpoint: the first checkpoint that covers every
    /// entry of the request.
    pub checkpoint: Option<Arc<StoredCheckpoint>>,
}

/// A pending append. Wait for it with [`AppendTicket::wait`] or `.await` it.
#[derive(Debug)]
pub struct AppendTicket(pub(crate) oneshot::Receiver<Result<AppendOutcome, AppendError>>);

impl AppendTicket {
    /// Blocks until the append is acknowledged or refused. Do not call from async code.
    ///
    /// # Errors
    ///
    /// The [`AppendError`] that refused the append; [`AppendError::Closed`] if the ledger
    /// closed first.
    pub fn wait(self) -> Result<AppendOutcome, AppendError> {
        self.0.blocking_recv().unwrap_or(Err(AppendError::Closed))
    }
}

impl IntoFuture for AppendTicket {
    type Output = Result<AppendOutcome, AppendError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.0.await.unwrap_or(Err(AppendError::Closed)) })
    }
}

/// State shared by the handle, its readers and the sequencer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) display_dir: PathBuf,
    pub(crate) vfs: Arc<dyn Vfs>,
    pub(crate) meta: LedgerMeta,
    pub(crate) hash: HashAlg,
    /// The published tree size: every entry below it is durable (per the durability mode),
    /// and its offset and Merkle nodes are written.
    pub(crate) size: AtomicU64,
    pub(crate) segments: RwLock<Vec<Arc<Segment>>>,
    pub(crate) offsets: RecordFile<8>,
    pub(crate) nodes: NodeStore,
    pub(crate) checkpoints: CheckpointLog,
    pub(crate) terms: TermIndex,
    /// The leaf-hash index, if the ledger keeps one (set once recovery knows the log's size).
    pub(crate) leaf_index: Option<LeafIndex>,
    pub(crate) extractor: Arc<dyn TermExtractor>,
    pub(crate) poison: Mutex<Option<String>>,
    pub(crate) checkpoint_tx: watch::Sender<Option<Arc<StoredCheckpoint>>>,
    pub(crate) verifiers: Verifiers,
    pub(crate) options: LedgerOptions,
    pub(crate) stats: crate::stats::LedgerStats,
    /// The right edges (roots and right-edge folds) of the two largest tree sizes that roots
    /// or proofs were asked for; see [`EdgeCache`].
    pub(crate) edges: EdgeCache,
    /// Held for as long as the ledger is open.
    pub(crate) _lock: File,
}

/// An open ledger.
#[derive(Debug)]
pub struct Ledger {
    pub(crate) shared: Arc<Shared>,
    pub(crate) tx: Mutex<Option<mpsc::Sender<Command>>>,
    pub(crate) thread: Mutex<Option<JoinHandle<()>>>,
}

/// The right edges of the two largest tree sizes asked for.
///
/// A root or a proof at size `n` needs the hashes along the tree's right edge: the fold of
/// `n`'s compact range (the root), or of a suffix of it (the sibling of a path that reaches
/// past the end of the tree). Those never change once the entries exist, and callers ask for
/// the same few sizes over and over (the latest checkpoint's, the current size), so the
/// edges of the two largest sizes seen are kept; a smaller size does not displace them.
#[derive(Debug, Default)]
pub(crate) struct EdgeCache {
    slots: Mutex<[Option<Arc<RightEdge>>; 2]>,
}

impl EdgeCache {
    fn slots(&self) -> std::sync::MutexGuard<'_, [Option<Arc<RightEdge>>; 2]> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached edge of `size`, if any.
    fn get(&self, size: u64) -> Option<Arc<RightEdge>> {
        self.slots()
            .iter()
            .flatten()
            .find(|edge| edge.size().0 == size)
            .cloned()
    }

    /// Whether [`EdgeCache::offer`] would keep an edge of `size`.
    fn would_keep(&self, size: u64) -> bool {
        self.slots()
            .iter()
            .any(|slot| slot.as_ref().is_none_or(|edge| edge.size().0 < size))
    }

    /// Keeps `edge` in an empty slot, or in place of the smallest size if that is smaller.
    fn offer(&self, edge: &Arc<RightEdge>) {
        let mut slots = self.slots();
        if slots.iter().flatten().any(|e| e.size() == edge.size()) {
            return;
        }
        let victim = slots
            .iter_mut()
            .min_by_key(|slot| slot.as_ref().map(|e| e.size()));
        if let Some(slot) = victim
            && slot.as_ref().is_none_or(|e| e.size() < edge.size())
        {
            *slot = Some(Arc::clone(edge));
        }
    }
}

/// Reads perfect nodes of a ledger's tree; level 0 by re-hashing the entry.
pub(crate) struct StoreSource<'a> {
    pub(crate) shared: &'a Shared,
}

impl NodeSource for StoreSource<'_> {
    type Error = ReadError;

    fn node(&self, id: NodeId) -> Result<Hash, ReadError> {
        if id.level == 0 {
            let bytes = self.shared.read_raw(id.index)?;
            Ok(self.shared.hash.leaf_hash(&bytes))
        } else {
            self.shared.nodes.get(id)
        }
    }
}

impl Shared {
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// The segment holding entry `index`.
    pub(crate) fn segment_for(&self, index: u64) -> Option<Arc<Segment>> {
        let segs = self
            .segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let i = segs.partition_point(|s| s.first <= index);
        i.checked_sub(1).and_then(|i| segs.get(i)).cloned()
    }

    /// The frame offset of entry `index`, which must be published or covered.
    pub(crate) fn offset_of(&self, index: u64) -> Result<u64, ReadError> {
        self.offsets
            .read(index)
            .map(u64::from_le_bytes)
            .ok_or_else(|| {
                ReadError::Corrupted(Corruption::at(
                    self.offsets.path(),
                    offsets_record_at(index),
                    format!("the file ends before the offset of entry {index}"),
                ))
            })
    }

    /// The envelope bytes of entry `index`, checked: frame CRC and the index inside.
    pub(crate) fn read_raw(&self, index: u64) -> Result<Vec<u8>, ReadError> {
        let seg = self.segment_for(index).ok_or_else(|| {
            ReadError::Corrupted(Corruption::file(
                self.display_dir.join("segments"),
                format!("no segment holds entry {index}"),
            ))
        })?;
        let offset = self.offset_of(index)?;
        let record_at = offsets_record_at(index);
        if offset < FILE_HEADER_LEN as u64 {
            return Err(ReadError::Corrupted(Corruption::at(
                self.offsets.path(),
                record_at,
                format!("entry {index} has impossible offset {offset}"),
            )));
        }
        // The frame's length is known from the next entry's offset when that entry is
        // published in the same segment (its offset is then greater): one read instead of
        // two. Anything unexpected falls back to reading the header first.
        let known_len = (index + 1 < self.size())
            .then(|| self.offsets.read(index + 1).map(u64::from_le_bytes))
            .flatten()
            .filter(|&next| next > offset)
            .map(|next| next - offset);
        let fast = known_len.and_then(|len| seg.read_frame_of_len(offset, len));
        let body = match fast {
            Some(body) => Ok(body),
            None => seg.read_frame(offset),
        }
        .map_err(|e| match e {
            ReadError::Corrupted(c) => ReadError::Corrupted(Corruption {
                reason: format!(
                    "{} (reading entry {index} at the offset {} gives in {} at byte {record_at})",
                    c.reason,
                    offset,
                    self.offsets.path().display()
                ),
                ..c
            }),
            other => other,
        })?;
        match EntryView::parse(&body) {
            Ok(v) if v.index().0 == index => Ok(body),
            Ok(v) => Err(ReadError::Corrupted(Corruption::at(
                self.offsets.path(),
                record_at,
                format!(
                    "entry {index} points to byte {offset} of {}, which holds entry {}",
                    seg.display.display(),
                    v.index()
                ),
            ))),
            Err(e) => Err(ReadError::Corrupted(Corruption::at(
                &seg.display,
                offset,
                format!("the frame of entry {index} holds an invalid envelope: {e}"),
            ))),
        }
    }

    /// The root of the tree of `size` leaves, from the stored perfect nodes.
    pub(crate) fn root_at(&self, size: u64) -> Result<Hash, ReadError> {
        Ok(self.right_edge(size)?.root())
    }

    /// The right edge of the tree of `size` leaves: from the cache, or read from the stored
    /// perfect nodes and then offered to the cache.
    pub(crate) fn right_edge(&self, size: u64) -> Result<Arc<RightEdge>, ReadError> {
        match self.edges.get(size) {
            Some(edge) => Ok(edge),
            None => self.load_right_edge(size),
        }
    }

    /// Reads the right edge of the tree of `size` leaves from the stored perfect nodes and
    /// offers it to the cache.
    fn load_right_edge(&self, size: u64) -> Result<Arc<RightEdge>, ReadError> {
        let ids: Vec<NodeId> = Frontier::ids_for(TreeSize(size)).collect();
        let hashes = StoreSource { shared: self }.nodes(&ids)?;
        let frontier = Frontier::restore(self.hash, TreeSize(size), hashes).map_err(|e| {
            ReadError::Corrupted(Corruption::file(&self.display_dir, e.to_string()))
        })?;
        let edge = Arc::new(RightEdge::new(&frontier));
        self.edges.offer(&edge);
        Ok(edge)
    }

    /// The right edge to build proofs at `size` with: cached, or computed when the cache
    /// would keep it (a size at least as large as one it holds). Proofs at other sizes fold
    /// only the part of the edge they need instead.
    fn edge_for_proofs(&self, size: u64) -> Result<Option<Arc<RightEdge>>, ReadError> {
        if let Some(edge) = self.edges.get(size) {
            return Ok(Some(edge));
        }
        if self.edges.would_keep(size) {
            return self.load_right_edge(size).map(Some);
        }
        Ok(None)
    }

    /// The root of `size` that proofs are checked against: a checkpoint's root when there is
    /// one at that size (and it must agree with the node store), else the node store's.
    fn trusted_root(&self, size: u64) -> Result<Hash, ProveError> {
        let computed = self.root_at(size)?;
        if let Some(cp) = self.checkpoints.at_size(TreeSize(size))?
            && cp.checkpoint.root != computed
        {
            return Err(ProveError::SelfCheck(Corruption::file(
                self.display_dir.join("tree"),
                format!(
                    "the node store's root at size {size} is {computed}, but the signed checkpoint says {}",
                    cp.checkpoint.root
                ),
            )));
        }
        Ok(computed)
    }

    pub(crate) fn poisoned(&self) -> Option<String> {
        self.poison
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Calls `f` with every entry's offset and envelope bytes in `start..end`, reading the
    /// segments sequentially.
    pub(crate) fn scan_range(
        &self,
        start: u64,
        end: u64,
        mut f: impl FnMut(u64, u64, &[u8]) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let mut next = start;
        while next < end {
            let seg = self.segment_for(next).ok_or_else(|| {
                ReadError::Corrupted(Corruption::file(
                    self.display_dir.join("segments"),
                    format!("no segment holds entry {next}"),
                ))
            })?;
            let offset = if next == seg.first {
                FILE_HEADER_LEN as u64
            } else {
                self.offset_of(next)?
            };
            let len = seg.len()?;
            let mut scanner = Scanner::new(&seg, offset, len);
            while next < end {
                match scanner.next_frame() {
                    Ok(Some((off, body))) => {
                        f(next, off, body)?;
                        next += 1;
                    }
                    Ok(None) => break,
                    Err(ScanStop::Io(e)) => return Err(ReadError::Io(e)),
                    Err(ScanStop::Bad { offset, reason }) => {
                        return Err(ReadError::Corrupted(Corruption::at(
                            &seg.display,
                            offset,
                            reason,
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Ledger {
    /// The ledger's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The ledger's metadata.
    pub fn meta(&self) -> &LedgerMeta {
        &self.shared.meta
    }

    /// The ledger's hash function.
    pub fn hash_alg(&self) -> HashAlg {
        self.shared.hash
    }

    /// The ledger's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The current tree size: the number of entries readable now.
    pub fn size(&self) -> TreeSize {
        TreeSize(self.shared.size())
    }

    /// The trusted verifier keys of the ledger's checkpoints.
    pub fn verifiers(&self) -> &Verifiers {
        &self.shared.verifiers
    }

    /// The durability mode the ledger was opened with.
    pub fn durability(&self) -> Durability {
        self.shared.options.durability
    }

    /// Counters of the ledger's work since it was opened.
    pub fn stats(&self) -> crate::stats::StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Why the ledger refuses appends, if it does.
    pub fn poisoned(&self) -> Option<String> {
        self.shared.poisoned()
    }

    /// Submits entries to be appended together (contiguous indexes, one group commit, all or
    /// nothing). With `wait_for_checkpoint`, the answer comes once a signed checkpoint covers
    /// every entry, and carries it.
    ///
    /// # Errors
    ///
    /// [`AppendError`] for an empty or oversized batch, a poisoned or closed ledger. Errors
    /// found while committing come through the ticket.
    pub fn submit(
        &self,
        drafts: Vec<EntryDraft>,
        wait_for_checkpoint: bool,
    ) -> Result<AppendTicket, AppendError> {
        if drafts.is_empty() {
            return Err(AppendError::EmptyBatch);
        }
        let limit = self.shared.options.max_batch_entries;
        if drafts.len() > limit {
            return Err(AppendError::BatchTooLarge {
                got: drafts.len(),
                limit,
            });
        }
        let mut seen = std::collections::HashSet::new();
        for d in &drafts {
            if let Some(k) = d.idempotency_key()
                && !seen.insert(k)
            {
                return Err(AppendError::DuplicateKeyInBatch(k.to_owned()));
            }
        }
        if let Some(cause) = self.shared.poisoned() {
            return Err(AppendError::Poisoned(cause));
        }
        let (reply, rx) = oneshot::channel();
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(tx) = tx.as_ref() else {
            return Err(AppendError::Closed);
        };
        tx.send(Command::Append(crate::sequencer::AppendJob {
            drafts,
            wait_for_checkpoint,
            reply,
        }))
        .map_err(|_| AppendError::Closed)?;
        Ok(AppendTicket(rx))
    }

    /// Appends one entry and blocks until it is acknowledged. Do not call from async code;
    /// use [`Ledger::submit`] and await the ticket there.
    ///
    /// # Errors
    ///
    /// Any [`AppendError`].
    pub fn append(&self, draft: EntryDraft) -> Result<Receipt, AppendError> {
        let outcome = self.submit(vec![draft], false)?.wait()?;
        outcome
            .receipts
            .into_iter()
            .next()
            .ok_or(AppendError::Closed)
    }

    /// The envelope bytes of entry `index` (the leaf bytes), checked against their frame CRC.
    ///
    /// # Errors
    ///
    /// [`ReadError::OutOfRange`] beyond the ledger's size; corruption naming file and offset.
    pub fn get_raw(&self, index: EntryIndex) -> Result<Vec<u8>, ReadError> {
        let size = self.size();
        if !size.contains(index) {
            return Err(ReadError::OutOfRange { index, size });
        }
        self.shared.read_raw(index.0)
    }

    /// Entry `index`, decoded.
    ///
    /// # Errors
    ///
    /// As [`Ledger::get_raw`].
    pub fn get(&self, index: EntryIndex) -> Result<Entry, ReadError> {
        let raw = self.get_raw(index)?;
        Entry::decode(&raw).map_err(|e| {
            ReadError::Corrupted(Corruption::file(
                self.shared.display_dir.join("segments"),
                format!("entry {index}: {e}"),
            ))
        })
    }

    /// Calls `f` with the index and envelope bytes of each entry in `start..end` (clamped to
    /// the current size), in order, reading the segments sequentially. Stop early by returning
    /// an error from `f`.
    ///
    /// # Errors
    ///
    /// The first read error, or the first error `f` returns.
    pub fn scan(
        &self,
        start: EntryIndex,
        end: EntryIndex,
        mut f: impl FnMut(EntryIndex, &[u8]) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let end = end.0.min(self.shared.size());
        self.shared
            .scan_range(start.0, end, |i, _off, body| f(EntryIndex(i), body))
    }

    /// The root hash of the tree of `size` entries.
    ///
    /// # Errors
    ///
    /// [`ProveError::SizeBeyondLedger`] past the current size; read errors.
    pub fn root_at(&self, size: TreeSize) -> Result<Hash, ProveError> {
        self.check_size(size)?;
        Ok(self.shared.root_at(size.0)?)
    }

    fn check_size(&self, size: TreeSize) -> Result<(), ProveError> {
        let current = self.size();
        if size > current {
            return Err(ProveError::SizeBeyondLedger {
                requested: size,
                size: current,
            });
        }
        Ok(())
    }

    /// The leaf hash of entry `index`.
    ///
    /// # Errors
    ///
    /// As [`Ledger::get_raw`].
    pub fn leaf_hash(&self, index: EntryIndex) -> Result<Hash, ReadError> {
        Ok(self.shared.hash.leaf_hash(&self.get_raw(index)?))
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries. Unless disabled in
    /// the options, the proof is verified against the root before it is returned.
    ///
    /// # Errors
    ///
    /// [`ProveError`] for an index not below `size`, a size past the ledger's, read errors, or
    /// a proof that fails its self-check (corruption).
    pub fn inclusion_proof(
        &self,
        index: EntryIndex,
        size: TreeSize,
    ) -> Result<InclusionProof, ProveError> {
        self.check_size(size)?;
        let source = StoreSource {
            shared: &self.shared,
        };
        let proof = match self.shared.edge_for_proofs(size.0)? {
            Some(edge) => prove_inclusion_at_edge(&edge, index, &source),
            None => prove_inclusion(self.shared.hash, index, size, &source),
        }
        .map_err(map_prove)?;
        if self.shared.options.self_check_proofs {
            let root = self.shared.trusted_root(size.0)?;
            let leaf = source.node(NodeId::leaf(index))?;
            verify_inclusion(self.shared.hash, &leaf, &proof, &root).map_err(|e| {
                ProveError::SelfCheck(Corruption::file(
                    self.shared.display_dir.join("tree"),
                    format!(
                        "the inclusion proof of entry {index} at size {size} does not verify ({e}); run a full verification"
                    ),
                ))
            })?;
        }
        Ok(proof)
    }

    /// The consistency proof from the tree of `old` entries to the tree of `new` entries,
    /// self-checked like [`Ledger::inclusion_proof`].
    ///
    /// # Errors
    ///
    /// As [`Ledger::inclusion_proof`].
    pub fn consistency_proof(
        &self,
        old: TreeSize,
        new: TreeSize,
    ) -> Result<ConsistencyProof, ProveError> {
        self.check_size(new)?;
        let source = StoreSource {
            shared: &self.shared,
        };
        let proof = match self.shared.edge_for_proofs(new.0)? {
            Some(edge) => prove_consistency_at_edge(&edge, old, &source),
            None => prove_consistency(self.shared.hash, old, new, &source),
        }
        .map_err(map_prove)?;
        if self.shared.options.self_check_proofs {
            let old_root = self.shared.trusted_root(old.0)?;
            let new_root = self.shared.trusted_root(new.0)?;
            verify_consistency(self.shared.hash, &proof, &old_root, &new_root).map_err(|e| {
                ProveError::SelfCheck(Corruption::file(
                    self.shared.display_dir.join("tree"),
                    format!(
                        "the consistency proof from {old} to {new} does not verify ({e}); run a full verification"
                    ),
                ))
            })?;
        }
        Ok(proof)
    }

    /// The entry with this leaf hash, if the ledger has the leaf-hash index and holds one.
    ///
    /// # Errors
    ///
    /// Read errors.
    pub fn find_by_leaf_hash(&self, leaf_hash: &Hash) -> Result<Option<EntryIndex>, ReadError> {
        let Some(index) = &self.shared.leaf_index else {
            return Ok(None);
        };
        let size = self.shared.size();
        for i in index.candidates(leaf_hash)? {
            if i < size && self.leaf_hash(EntryIndex(i))? == *leaf_hash {
                return Ok(Some(EntryIndex(i)));
            }
        }
        Ok(None)
    }

    /// What the leaf-hash index holds (runs on disk, entries in memory), if the ledger keeps
    /// one. For tests and operators; see `docs/format.md`, "Leaf-hash index".
    pub fn leaf_index_status(&self) -> Option<LeafIndexStatus> {
        self.shared.leaf_index.as_ref().map(LeafIndex::status)
    }

    /// Whether the ledger keeps the leaf-hash index.
    pub fn has_leaf_hash_index(&self) -> bool {
        self.shared.meta.leaf_hash_index
    }

    /// The entry holding this idempotency key, if any.
    ///
    /// # Errors
    ///
    /// Read errors.
    pub fn find_by_idempotency_key(&self, key: &str) -> Result<Option<EntryIndex>, ReadError> {
        let hits = self
            .shared
            .terms
            .lookup(NS_IDEMPOTENCY_KEY, key.as_bytes(), None, 16)?;
        for i in hits {
            if i.0 < self.shared.size() {
                let raw = self.get_raw(i)?;
                let view = EntryView::parse(&raw).map_err(|e| {
                    ReadError::Corrupted(Corruption::file(&self.shared.display_dir, e.to_string()))
                })?;
                if view.idempotency_key() == Some(key) {
                    return Ok(Some(i));
                }
            }
        }
        Ok(None)
    }

    /// Entries carrying an index term of the layer above storage, in index order, after
    /// `after`, at most `limit`. Hits are candidates: the caller re-checks each entry.
    ///
    /// # Errors
    ///
    /// Read errors.
    pub fn lookup_term(
        &self,
        namespace: u8,
        value: &[u8],
        after: Option<EntryIndex>,
        limit: usize,
    ) -> Result<Vec<EntryIndex>, ReadError> {
        let size = self.shared.size();
        let mut hits = self.shared.terms.lookup(namespace, value, after, limit)?;
        hits.retain(|i| i.0 < size);
        Ok(hits)
    }

    /// The newest checkpoint.
    pub fn latest_checkpoint(&self) -> Option<Arc<StoredCheckpoint>> {
        self.shared.checkpoints.latest()
    }

    /// The checkpoint of exactly `size`, if one was made.
    ///
    /// # Errors
    ///
    /// Read errors.
    pub fn checkpoint_at(&self, size: TreeSize) -> Result<Option<StoredCheckpoint>, ReadError> {
        self.shared.checkpoints.at_size(size)
    }

    /// The first checkpoint whose size is at least `size`.
    ///
    /// # Errors
    ///
    /// Read errors.
    pub fn checkpoint_covering(
        &self,
        size: TreeSize,
    ) -> Result<Option<StoredCheckpoint>, ReadError> {
        self.shared.checkpoints.first_at_least(size)
    }

    /// The number of stored checkpoints.
    pub fn checkpoint_count(&self) -> usize {
        self.shared.checkpoints.len()
    }

    /// A receiver that sees every new checkpoint (the latest at any moment).
    pub fn watch_checkpoints(&self) -> watch::Receiver<Option<Arc<StoredCheckpoint>>> {
        self.shared.checkpoint_tx.subscribe()
    }

    /// Signs a checkpoint of the current size now (or returns the latest one if nothing was
    /// appended since), and blocks until it is durable.
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] if the ledger is poisoned, closed, or the write fails.
    pub fn checkpoint_now(&self) -> Result<Arc<StoredCheckpoint>, CheckpointError> {
        let (reply, rx) = oneshot::channel();
        {
            let tx = self
                .tx
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(tx) = tx.as_ref() else {
                return Err(CheckpointError::Closed);
            };
            tx.send(Command::Checkpoint(reply))
                .map_err(|_| CheckpointError::Closed)?;
        }
        rx.blocking_recv().unwrap_or(Err(CheckpointError::Closed))
    }

    /// The last entry whose timestamp is at or before `at`, found by binary search (timestamps
    /// never decrease along the log).
    ///
    /// # Errors
    ///
    /// Read errors.
    pub fn index_at_time(&self, at: Timestamp) -> Result<Option<EntryIndex>, ReadError> {
        let (mut lo, mut hi) = (0u64, self.shared.size());
        // Invariant: entries below `lo` are at or before `at`; entries from `hi` on are after.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let raw = self.shared.read_raw(mid)?;
            let ts = EntryView::parse(&raw)
                .map_err(|e| {
                    ReadError::Corrupted(Corruption::file(&self.shared.display_dir, e.to_string()))
                })?
                .timestamp();
            if ts <= at {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo.checked_sub(1).map(EntryIndex))
    }

    /// Stops the sequencer after the requests already submitted, writes the index head and
    /// flushes the secondary index. Appends after this fail with [`AppendError::Closed`].
    pub fn close(&self) {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(tx) = tx {
            let (done, rx) = mpsc::channel();
            if tx.send(Command::Close(done)).is_ok() {
                let _ = rx.recv();
            }
        }
        if let Some(t) = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = t.join();
        }
        if let Some(index) = &self.shared.leaf_index {
            index.close();
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.close();
    }
}

/// Where entry `index`'s record is in `offsets.dat`, for error messages. The index may come
/// from a damaged file (a head claiming more entries than fit in 64 bits of offsets), so the
/// arithmetic saturates instead of overflowing.
fn offsets_record_at(index: u64) -> u64 {
    (FILE_HEADER_LEN as u64).saturating_add(index.saturating_mul(8))
}

fn map_prove(e: CoreProveError<ReadError>) -> ProveError {
    match e {
        CoreProveError::Plan(p) => ProveError::InvalidRequest(p),
        CoreProveError::Source(r) => ProveError::Read(r),
        CoreProveError::NodeCount(n) => {
            ProveError::SelfCheck(Corruption::file("tree", n.to_string()))
        }
        other => ProveError::SelfCheck(Corruption::file("tree", other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(size: u64) -> Arc<RightEdge> {
        let alg = HashAlg::Sha256;
        let mut frontier = Frontier::new(alg);
        for i in 0..size {
            frontier.push(alg.leaf_hash(&i.to_le_bytes()), |_, _| {});
        }
        Arc::new(RightEdge::new(&frontier))
    }

    #[test]
    fn the_edge_cache_keeps_the_two_largest_sizes() {
        let cache = EdgeCache::default();
        assert!(cache.get(5).is_none());
        assert!(cache.would_keep(1));
        cache.offer(&edge(5));
        cache.offer(&edge(9));
        assert_eq!(cache.get(5).unwrap().size(), TreeSize(5));
        assert_eq!(cache.get(9).unwrap().size(), TreeSize(9));
        // Smaller or equal sizes neither displace nor duplicate what is kept.
        assert!(!cache.would_keep(3));
        assert!(!cache.would_keep(5));
        cache.offer(&edge(3));
        cache.offer(&edge(9));
        assert!(cache.get(3).is_none());
        assert!(cache.get(5).is_some() && cache.get(9).is_some());
        // A larger size displaces the smallest.
        assert!(cache.would_keep(7));
        cache.offer(&edge(7));
        assert!(cache.get(5).is_none());
        assert_eq!(cache.get(7).unwrap().root(), edge(7).root());
        assert!(cache.get(9).is_some());
    }
}
