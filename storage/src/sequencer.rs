//! The sequencer: the one thread per ledger that writes.
//!
//! It takes every waiting append request, commits them as one group (write, sync, derived
//! files, index terms, publish, acknowledge — the steps of `docs/format.md`), and makes
//! checkpoints, rolls segments over and writes the index head when they are due. Nothing else
//! writes a ledger's files, so there are no write locks: readers only see what the sequencer
//! published.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use vouch_ledger_core::checkpoint::Checkpoint;
use vouch_ledger_core::entry::{EntryDraft, EntryView, Timestamp};
use vouch_ledger_core::merkle::Frontier;
use vouch_ledger_core::note::Signer;
use vouch_ledger_core::proof::{prove_consistency, verify_consistency};
use vouch_ledger_core::{EntryIndex, Hash, NodeId, TreeSize};

use crate::checkpoints::{CheckpointWriteError, StoredCheckpoint};
use crate::error::{AppendError, CheckpointError, Corruption, IoFailure, ReadError};
use crate::frame::encode_frame;
use crate::ledger::{AppendOutcome, Durability, Receipt, Shared};
use crate::recovery::{CatchUpError, catch_up_terms_to};
use crate::segment::Segment;
use crate::terms::{NS_IDEMPOTENCY_KEY, Term, entry_terms};

/// A request to the sequencer.
pub(crate) enum Command {
    /// Append entries.
    Append(AppendJob),
    /// Make a checkpoint now.
    Checkpoint(oneshot::Sender<Result<Arc<StoredCheckpoint>, CheckpointError>>),
    /// Finish, write the head, and stop.
    Close(mpsc::Sender<()>),
}

/// Entries to append together.
pub(crate) struct AppendJob {
    pub(crate) drafts: Vec<EntryDraft>,
    pub(crate) wait_for_checkpoint: bool,
    pub(crate) reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

/// Where a draft of an accepted job ends up.
enum Slot {
    /// A new entry, at this position of the group's new entries.
    New(usize),
    /// An entry that exists already.
    Existing(Receipt),
    /// The same key as another draft of this group, at this position of the new entries.
    SameAs(usize),
}

impl Slot {
    fn is_new(&self) -> bool {
        match self {
            Slot::New(_) => true,
            Slot::Existing(_) | Slot::SameAs(_) => false,
        }
    }
}

/// The sequencer's state. It owns the active segment and the frontier.
pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) rx: Receiver<Command>,
    pub(crate) signer: Signer,
    pub(crate) active: Arc<Segment>,
    pub(crate) active_len: u64,
    pub(crate) frontier: Frontier,
    pub(crate) last_timestamp: u64,
    pub(crate) last_checkpoint_size: u64,
    pub(crate) last_checkpoint_at: Instant,
    pub(crate) last_head_size: u64,
    pub(crate) last_head_at: Instant,
    /// When the oldest write not yet synced was made (interval and none modes).
    pub(crate) unsynced_since: Option<Instant>,
    pub(crate) last_sync_at: Instant,
    /// Groups without index terms were committed since the watermark was last written.
    pub(crate) terms_behind: bool,
    /// The version of the index rules, written with the watermark.
    pub(crate) rules_version: u64,
    /// A write to the secondary index failed: the failure, and when the index was last
    /// reopened (or the failure happened). See [`Writer::repair_terms`].
    pub(crate) terms_failed: Option<(IoFailure, Instant)>,
}

/// How long the sequencer waits between tries to reopen a secondary index whose write failed.
const TERMS_RETRY: Duration = Duration::from_secs(1);

impl Writer {
    /// Runs until closed or until every handle is gone.
    pub(crate) fn run(mut self) {
        loop {
            let received = match self.next_deadline() {
                Some(d) => self.rx.recv_timeout(d),
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(first) => {
                    let mut group = vec![first];
                    let mut entries = group_entries(&group);
                    let mut bytes = group_bytes(&group);
                    let opts = &self.shared.options;
                    while entries < opts.max_group_entries && bytes < opts.max_group_bytes {
                        match self.rx.try_recv() {
                            Ok(cmd) => {
                                let is_close = matches!(cmd, Command::Close(_));
                                entries += command_entries(&cmd);
                                bytes += command_bytes(&cmd);
                                group.push(cmd);
                                if is_close {
                                    break;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    if self.process(group) {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.tick(),
                Err(RecvTimeoutError::Disconnected) => {
                    self.shutdown();
                    return;
                }
            }
        }
    }

    /// Handles one group of commands; returns true when the ledger closes.
    fn process(&mut self, group: Vec<Command>) -> bool {
        let mut jobs = Vec::new();
        let mut checkpoint_waiters = Vec::new();
        let mut close = None;
        for cmd in group {
            match cmd {
                Command::Append(job) => jobs.push(job),
                Command::Checkpoint(reply) => checkpoint_waiters.push(reply),
                Command::Close(done) => close = Some(done),
            }
        }
        if !jobs.is_empty() {
            self.commit(jobs);
        }
        if !checkpoint_waiters.is_empty() {
            let result = self.make_checkpoint();
            for w in checkpoint_waiters {
                let _ = w.send(result.clone());
            }
        }
        self.tick();
        if let Some(done) = close {
            self.shutdown();
            let _ = done.send(());
            return true;
        }
        false
    }

    fn poison(&self, cause: String) {
        tracing::error!(ledger = %self.shared.name, %cause, "ledger poisoned: refusing appends until reopened");
        let mut p = self
            .shared
            .poison
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if p.is_none() {
            *p = Some(cause);
        }
    }

    fn poisoned(&self) -> Option<String> {
        self.shared.poisoned()
    }

    /// The existing entry holding `key`, with its receipt, if any.
    fn existing_for_key(
        &self,
        key: &str,
        draft: &EntryDraft,
    ) -> Result<Option<Receipt>, AppendError> {
        let size = self.frontier.size().0;
        let hits = self
            .shared
            .terms
            .lookup(NS_IDEMPOTENCY_KEY, key.as_bytes(), None, 16)
            .map_err(|e| match e {
                // The index cannot be read now (closed after a failed write): a retry works.
                ReadError::Io(failure) => AppendError::Io(failure),
                e => AppendError::Poisoned(format!("idempotency index: {e}")),
            })?;
        for idx in hits {
            if idx.0 >= size {
                continue;
            }
            let raw = self
                .shared
                .read_raw(idx.0)
                .map_err(|e| AppendError::Poisoned(format!("reading entry {idx}: {e}")))?;
            let Ok(view) = EntryView::parse(&raw) else {
                continue;
            };
            if view.idempotency_key() != Some(key) {
                continue;
            }
            if view.kind() != draft.kind()
                || view.content_type() != draft.content_type()
                || view.payload() != draft.payload()
            {
                return Err(AppendError::IdempotencyConflict {
                    key: key.to_owned(),
                    index: idx,
                });
            }
            return Ok(Some(Receipt {
                index: idx,
                leaf_hash: self.shared.hash.leaf_hash(&raw),
                timestamp: view.timestamp(),
                tree_size: TreeSize(size),
                duplicate: true,
            }));
        }
        Ok(None)
    }

    /// Commits a group of append jobs.
    fn commit(&mut self, jobs: Vec<AppendJob>) {
        if let Some(cause) = self.poisoned() {
            for job in jobs {
                let _ = job.reply.send(Err(AppendError::Poisoned(cause.clone())));
            }
            return;
        }
        // 0. A secondary index whose write failed is reopened and caught up before new
        //    entries go in again; until then they are refused with that failure (repeated
        //    idempotency keys are still answered, from what the index can read).
        let terms_down = self.repair_terms().err();
        // 1. Idempotency and slot assignment. A job with any bad draft is refused whole.
        let mut accepted: Vec<(AppendJob, Vec<Slot>)> = Vec::new();
        let mut new_drafts: Vec<(usize, usize)> = Vec::new(); // (job, draft) of each new entry
        let mut group_keys: HashMap<String, usize> = HashMap::new();
        for job in jobs {
            let mut slots = Vec::with_capacity(job.drafts.len());
            let mut pending_new = Vec::new();
            let mut refused = None;
            for (di, draft) in job.drafts.iter().enumerate() {
                let Some(key) = draft.idempotency_key() else {
                    pending_new.push(di);
                    slots.push(Slot::New(new_drafts.len() + pending_new.len() - 1));
                    continue;
                };
                if let Some(&pos) = group_keys.get(key) {
                    let (oj, od) = new_drafts[pos];
                    let other = &accepted[oj].0.drafts[od];
                    if other.kind() == draft.kind()
                        && other.content_type() == draft.content_type()
                        && other.payload() == draft.payload()
                    {
                        slots.push(Slot::SameAs(pos));
                        continue;
                    }
                    refused = Some(AppendError::IdempotencyConflict {
                        key: key.to_owned(),
                        index: EntryIndex(self.frontier.size().0 + pos as u64),
                    });
                    break;
                }
                match self.existing_for_key(key, draft) {
                    Ok(Some(receipt)) => slots.push(Slot::Existing(receipt)),
                    Ok(None) => {
                        pending_new.push(di);
                        slots.push(Slot::New(new_drafts.len() + pending_new.len() - 1));
                    }
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = refused {
                let _ = job.reply.send(Err(e));
                continue;
            }
            let ji = accepted.len();
            for di in pending_new {
                if let Some(k) = job.drafts[di].idempotency_key() {
                    group_keys.insert(k.to_owned(), new_drafts.len());
                }
                new_drafts.push((ji, di));
            }
            accepted.push((job, slots));
        }
        if new_drafts.is_empty() {
            self.reply(accepted, &[]);
            return;
        }
        if let Some(failure) = terms_down {
            self.fail_jobs(accepted, &AppendError::Io(failure));
            return;
        }

        // 2. Indexes, timestamps, frames, leaf hashes, terms.
        let base = self.frontier.size().0;
        let now = self.shared.options.clock.now_unix_ns();
        let ts = now.max(self.last_timestamp);
        let mut buf = Vec::new();
        let mut envelope = Vec::new();
        let mut offsets = Vec::with_capacity(new_drafts.len());
        let mut leaves = Vec::with_capacity(new_drafts.len());
        let mut terms: Vec<Vec<Term>> = Vec::with_capacity(new_drafts.len());
        for (n, &(ji, di)) in new_drafts.iter().enumerate() {
            let index = EntryIndex(base + n as u64);
            envelope.clear();
            accepted[ji].0.drafts[di].encode_at(index, Timestamp(ts), &mut envelope);
            offsets.push((self.active_len + buf.len() as u64).to_le_bytes());
            encode_frame(&envelope, &mut buf);
            let leaf = self.shared.hash.leaf_hash(&envelope);
            leaves.push(leaf);
            let mut t = Vec::new();
            if let Ok(view) = EntryView::parse(&envelope) {
                entry_terms(&view, &*self.shared.extractor, &mut t);
            }
            terms.push(t);
        }
        let end = base + new_drafts.len() as u64;

        // 3. Reserve space for the derived files, so that nothing after the segment write can
        //    fail for lack of space.
        if let Err(e) = self
            .shared
            .offsets
            .reserve(end)
            .and_then(|()| self.shared.nodes.reserve(end))
        {
            self.fail_jobs(accepted, &AppendError::Io(e));
            return;
        }

        // 4. Write the frames with one write; roll back on failure.
        let commit_started = Instant::now();
        if let Err(cause) = self.check_active_segment(self.active_len) {
            self.poison(cause);
            let cause = self.poisoned().unwrap_or_default();
            self.fail_jobs(accepted, &AppendError::Poisoned(cause));
            return;
        }
        if let Err(e) = self.active.file.write_all_at(&buf, self.active_len) {
            let failure = IoFailure::new(&self.active.display, "write", e);
            match self.active.file.set_len(self.active_len) {
                Ok(()) => self.fail_jobs(accepted, &AppendError::Io(failure)),
                Err(t) => {
                    self.poison(format!("{failure}; rolling back also failed: {t}"));
                    let cause = self.poisoned().unwrap_or_default();
                    self.fail_jobs(accepted, &AppendError::Poisoned(cause));
                }
            }
            return;
        }

        // 5. Durability.
        let sync_now = match self.shared.options.durability {
            Durability::Fsync => true,
            Durability::Interval(d) => self.last_sync_at.elapsed() >= d,
            Durability::NoneUnsafe => false,
        };
        if sync_now {
            let sync_started = Instant::now();
            let synced = self.active.file.sync_data();
            self.shared.stats.fsync.observe(sync_started.elapsed());
            if let Err(e) = synced {
                self.poison(IoFailure::new(&self.active.display, "fsync", e).to_string());
                let cause = self.poisoned().unwrap_or_default();
                self.fail_jobs(accepted, &AppendError::Poisoned(cause));
                return;
            }
            self.last_sync_at = Instant::now();
            self.unsynced_since = None;
        } else if self.unsynced_since.is_none() {
            self.unsynced_since = Some(Instant::now());
        }
        self.active_len += buf.len() as u64;
        // A segment removed or cut short behind the ledger's back would lose these entries
        // once the file is closed: refuse to acknowledge them.
        if let Err(cause) = self.check_active_segment(self.active_len) {
            self.poison(cause);
            let cause = self.poisoned().unwrap_or_default();
            self.fail_jobs(accepted, &AppendError::Poisoned(cause));
            return;
        }

        // 6. Derived files: offsets and Merkle nodes.
        // Only a group with index terms can be rolled back after this step (step 7).
        let has_terms = terms.iter().any(|t| !t.is_empty());
        let frontier_before = has_terms.then(|| self.frontier.clone());
        let mut nodes: Vec<(NodeId, Hash)> = Vec::with_capacity(leaves.len() * 2);
        for leaf in &leaves {
            self.frontier.push(*leaf, |id, h| {
                if id.level > 0 {
                    nodes.push((id, h));
                }
            });
        }
        nodes.sort_unstable_by_key(|(id, _)| (id.level, id.index));
        let derived = self
            .shared
            .offsets
            .write_many(base, &offsets)
            .and_then(|()| self.shared.nodes.write_sorted(&nodes));
        if let Err(e) = derived {
            self.poison(e.to_string());
            let cause = self.poisoned().unwrap_or_default();
            self.fail_jobs(accepted, &AppendError::Poisoned(cause));
            return;
        }

        // 7. Index terms and watermark, in one sled batch; a group without terms leaves the
        //    watermark behind until the next group with terms or the next index head.
        //    If the index cannot be written (a full disk), the group is rolled back: its
        //    entries could not be found by their idempotency keys, so they must not be
        //    acknowledged, and nothing has been published yet.
        if let Some(frontier_before) = frontier_before {
            if let Err(failure) = self.write_terms(base, &terms) {
                let frames_from = self.active_len - buf.len() as u64;
                if let Err(t) = self.active.file.set_len(frames_from) {
                    self.poison(format!(
                        "secondary index: {failure}; rolling the group back also failed: {}",
                        IoFailure::new(&self.active.display, "truncate", t)
                    ));
                    let cause = self.poisoned().unwrap_or_default();
                    self.fail_jobs(accepted, &AppendError::Poisoned(cause));
                    return;
                }
                self.active_len = frames_from;
                self.frontier = frontier_before;
                tracing::error!(ledger = %self.shared.name, error = %failure, "writing the secondary index failed; the group is rolled back and the index is reopened before the next append");
                self.terms_failed = Some((failure.clone(), Instant::now()));
                self.fail_jobs(accepted, &AppendError::Io(failure));
                return;
            }
            self.terms_behind = false;
        } else {
            self.terms_behind = true;
        }
        if let Some(index) = &self.shared.leaf_index {
            index.insert(base, &leaves);
        }

        // 8. Publish, then acknowledge.
        self.last_timestamp = ts;
        self.shared.size.store(end, Ordering::Release);
        let receipts: Vec<Receipt> = leaves
            .iter()
            .enumerate()
            .map(|(n, leaf)| Receipt {
                index: EntryIndex(base + n as u64),
                leaf_hash: *leaf,
                timestamp: Timestamp(ts),
                tree_size: TreeSize(end),
                duplicate: false,
            })
            .collect();
        let stats = &self.shared.stats;
        stats
            .entries_appended
            .fetch_add(receipts.len() as u64, Ordering::Relaxed);
        stats.group_commits.fetch_add(1, Ordering::Relaxed);
        stats.group_commit.observe(commit_started.elapsed());
        self.reply(accepted, &receipts);
    }

    /// Checks that the active segment is still linked in its directory and `expected` bytes
    /// long: nothing but the sequencer may change it (see "Assumptions about the disk" in
    /// `docs/format.md`), but an operator's `rm` or `truncate` is better caught here than at
    /// the next open. One `fstat`.
    fn check_active_segment(&self, expected: u64) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt as _;
        let display = self.active.display.display();
        match self.active.file.std_file().metadata() {
            Ok(m) if m.nlink() == 0 => Err(format!(
                "{display} was removed while the ledger was open; entries written since are not acknowledged"
            )),
            Ok(m) if m.len() != expected => Err(format!(
                "{display} is {} bytes long but the ledger wrote {expected}: it was changed (truncated or written) while the ledger was open",
                m.len()
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(IoFailure::new(&self.active.display, "stat", e).to_string()),
        }
    }

    fn fail_jobs(&self, accepted: Vec<(AppendJob, Vec<Slot>)>, err: &AppendError) {
        self.shared
            .stats
            .append_errors
            .fetch_add(accepted.len() as u64, Ordering::Relaxed);
        for (job, _) in accepted {
            let _ = job.reply.send(Err(err.clone()));
        }
    }

    /// Answers accepted jobs; jobs that wait for a checkpoint get one made first.
    fn reply(&mut self, accepted: Vec<(AppendJob, Vec<Slot>)>, new: &[Receipt]) {
        let mut waiting = Vec::new();
        let duplicates = accepted
            .iter()
            .flat_map(|(_, slots)| slots)
            .filter(|s| !s.is_new())
            .count();
        self.shared
            .stats
            .duplicates
            .fetch_add(duplicates as u64, Ordering::Relaxed);
        for (job, slots) in accepted {
            let receipts: Vec<Receipt> = slots
                .iter()
                .map(|s| match s {
                    Slot::New(p) => new[*p],
                    Slot::SameAs(p) => Receipt {
                        duplicate: true,
                        ..new[*p]
                    },
                    Slot::Existing(r) => *r,
                })
                .collect();
            if job.wait_for_checkpoint {
                waiting.push((job.reply, receipts));
            } else {
                let _ = job.reply.send(Ok(AppendOutcome {
                    receipts,
                    checkpoint: None,
                }));
            }
        }
        if waiting.is_empty() {
            return;
        }
        // Entries of a duplicate may lie beyond the latest checkpoint too: cover them all.
        let needed = waiting
            .iter()
            .flat_map(|(_, r)| r.iter().map(|r| r.index.0 + 1))
            .max()
            .unwrap_or(0);
        let result = match self.shared.checkpoints.latest() {
            Some(cp) if cp.checkpoint.size.0 >= needed => Ok(cp),
            _ => self.make_checkpoint(),
        };
        for (reply, receipts) in waiting {
            let _ = reply.send(match &result {
                Ok(cp) => Ok(AppendOutcome {
                    receipts,
                    checkpoint: Some(cp.clone()),
                }),
                Err(e) => Err(AppendError::NoCheckpoint(e.clone())),
            });
        }
    }

    /// Makes the segment durable if it is not (interval and none modes).
    fn sync_segment(&mut self) -> Result<(), IoFailure> {
        if self.unsynced_since.is_some() {
            self.active
                .file
                .sync_data()
                .map_err(|e| IoFailure::new(&self.active.display, "fsync", e))?;
            self.unsynced_since = None;
            self.last_sync_at = Instant::now();
        }
        Ok(())
    }

    /// Signs and writes a checkpoint of the current size, after checking it is consistent
    /// with the previous one. Returns the latest one if nothing changed.
    pub(crate) fn make_checkpoint(&mut self) -> Result<Arc<StoredCheckpoint>, CheckpointError> {
        if let Some(cause) = self.poisoned() {
            return Err(CheckpointError::Poisoned(cause));
        }
        let size = self.frontier.size();
        let latest = self.shared.checkpoints.latest();
        if let Some(cp) = &latest
            && cp.checkpoint.size == size
        {
            return Ok(cp.clone());
        }
        // A checkpoint may only cover durable entries.
        if let Err(e) = self.sync_segment() {
            self.poison(e.to_string());
            return Err(CheckpointError::Io(e));
        }
        let root = self.frontier.root();
        if let Some(prev) = &latest
            && prev.checkpoint.size.0 > 0
        {
            let source = crate::ledger::StoreSource {
                shared: &self.shared,
            };
            let consistent =
                prove_consistency(self.shared.hash, prev.checkpoint.size, size, &source)
                    .map_err(|e| e.to_string())
                    .and_then(|proof| {
                        verify_consistency(self.shared.hash, &proof, &prev.checkpoint.root, &root)
                            .map_err(|e| e.to_string())
                    });
            if let Err(why) = consistent {
                let c = Corruption::file(
                    self.shared.display_dir.join("tree"),
                    format!(
                        "the tree of size {size} is not consistent with the checkpoint of size {} ({why}); no checkpoint was written",
                        prev.checkpoint.size
                    ),
                );
                self.poison(c.to_string());
                return Err(CheckpointError::Inconsistent(c));
            }
        }
        let checkpoint = Checkpoint {
            origin: self.shared.meta.origin.clone(),
            size,
            root,
            extensions: Vec::new(),
        };
        let note = match checkpoint.sign(&[&self.signer]) {
            Ok(n) => n,
            Err(e) => {
                let c = format!("signing the checkpoint of size {size} failed: {e}");
                self.poison(c.clone());
                return Err(CheckpointError::Poisoned(c));
            }
        };
        match self.shared.checkpoints.append(checkpoint, note) {
            Ok(stored) => {
                self.shared
                    .stats
                    .checkpoints
                    .fetch_add(1, Ordering::Relaxed);
                self.last_checkpoint_size = size.0;
                self.last_checkpoint_at = Instant::now();
                self.shared.checkpoint_tx.send_replace(Some(stored.clone()));
                Ok(stored)
            }
            Err(CheckpointWriteError::RolledBack(e)) => {
                // Typically a full disk: nothing was written, and the cadence tries again
                // after its interval.
                tracing::warn!(ledger = %self.shared.name, error = %e, "checkpoint write failed and was rolled back");
                self.last_checkpoint_at = Instant::now();
                Err(CheckpointError::Io(e))
            }
            Err(CheckpointWriteError::Fatal(e)) => {
                self.poison(e.to_string());
                Err(CheckpointError::Io(e))
            }
        }
    }

    /// Syncs the segment and the derived files, then replaces the index head.
    ///
    /// A failed sync is [`StepError::Fatal`]. A head that cannot be replaced (a full disk) is
    /// [`StepError::Retry`]: the old head stays valid, since it covers less than what was just
    /// synced, and a stray temporary head is removed by the next attempt.
    fn write_head(&mut self) -> Result<(), StepError> {
        let size = self.frontier.size().0;
        self.advance_watermark();
        self.sync_segment().map_err(StepError::Fatal)?;
        self.shared.offsets.sync().map_err(StepError::Fatal)?;
        self.shared.nodes.sync().map_err(StepError::Fatal)?;
        if let Err(e) =
            crate::head::write(&*self.shared.vfs, &self.shared.dir, self.shared.hash, size)
        {
            self.last_head_at = Instant::now();
            return Err(StepError::Retry(e));
        }
        self.last_head_size = size;
        self.last_head_at = Instant::now();
        Ok(())
    }

    /// Writes a group's index terms and the watermark (step 7).
    fn write_terms(&self, base: u64, terms: &[Vec<Term>]) -> Result<(), IoFailure> {
        let display = self.shared.display_dir.join("sled");
        self.shared
            .vfs
            .before_index_write(&self.shared.dir.join("sled"))
            .map_err(|e| IoFailure::new(&display, "write", e))?;
        self.shared.terms.apply(base, terms, self.rules_version)
    }

    /// After a failed write to the secondary index: closes and reopens it (sled refuses every
    /// write after a failed one), then indexes the log from its watermark, at most once per
    /// [`TERMS_RETRY`]. `Err` is the failure appends are refused with meanwhile.
    fn repair_terms(&mut self) -> Result<(), IoFailure> {
        let Some((failure, tried)) = &self.terms_failed else {
            return Ok(());
        };
        if tried.elapsed() < TERMS_RETRY {
            return Err(failure.clone());
        }
        let display = self.shared.display_dir.join("sled");
        let repaired = self
            .shared
            .terms
            .reopen()
            .map_err(|e| IoFailure::new(&display, "open", std::io::Error::other(e)))
            .and_then(|()| {
                catch_up_terms_to(&self.shared, self.frontier.size().0).map_err(|e| match e {
                    CatchUpError::Index(failure) => failure,
                    CatchUpError::Read(e) => {
                        IoFailure::new(&display, "rebuild", std::io::Error::other(e.to_string()))
                    }
                })
            });
        match repaired {
            Ok(()) => {
                tracing::info!(ledger = %self.shared.name, "the secondary index is reopened and caught up with the log; appends resume");
                self.terms_failed = None;
                self.terms_behind = false;
                Ok(())
            }
            Err(again) => {
                tracing::warn!(ledger = %self.shared.name, error = %again, "reopening the secondary index failed; appends stay refused and it is tried again in a second");
                self.terms_failed = Some((again.clone(), Instant::now()));
                Err(again)
            }
        }
    }

    /// Moves the secondary index's watermark up to the log after groups without terms, so
    /// that the next open does not scan them again. Failing is harmless: the open catches up.
    fn advance_watermark(&mut self) {
        if !self.terms_behind || self.terms_failed.is_some() {
            return;
        }
        let size = self.frontier.size().0;
        match self.shared.terms.apply(size, &[], self.rules_version) {
            Ok(()) => self.terms_behind = false,
            Err(e) => {
                tracing::warn!(ledger = %self.shared.name, error = %e, "advancing the secondary index's watermark failed; the next open catches it up");
            }
        }
    }

    /// Starts the next segment.
    ///
    /// A failed sync is [`StepError::Fatal`]. A new segment that cannot be made (a full disk)
    /// is removed again and is [`StepError::Retry`]: the active segment takes the next entries
    /// beyond its target size, and the roll-over is tried again after the next commit.
    fn roll_over(&mut self) -> Result<(), StepError> {
        self.sync_segment().map_err(StepError::Fatal)?;
        let first = self.frontier.size().0;
        let dir = self.shared.dir.join("segments");
        let display_dir = self.shared.display_dir.join("segments");
        let seg = match Segment::create(
            &*self.shared.vfs,
            &dir,
            &display_dir,
            first,
            self.shared.hash,
        ) {
            Ok(seg) => seg,
            Err(e) => {
                // The removal is made durable before more entries go to the active segment,
                // so that no crash can leave a new segment starting inside its entries.
                let path = dir.join(crate::segment::file_name(first));
                if self.shared.vfs.exists(&path) {
                    self.shared
                        .vfs
                        .remove_file(&path)
                        .and_then(|()| self.shared.vfs.sync_dir(&dir))
                        .map_err(|r| {
                            StepError::Fatal(IoFailure::new(
                                &e.path,
                                "remove after a failed creation",
                                r,
                            ))
                        })?;
                }
                return Err(StepError::Retry(e));
            }
        };
        self.shared
            .vfs
            .sync_dir(&dir)
            .map_err(|e| StepError::Fatal(IoFailure::new(&display_dir, "fsync", e)))?;
        let seg = Arc::new(seg);
        self.shared
            .segments
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(seg.clone());
        self.active = seg;
        self.active_len = crate::frame::FILE_HEADER_LEN as u64;
        Ok(())
    }

    /// Timed work: interval syncs, cadence checkpoints, roll-over, the index head.
    fn tick(&mut self) {
        if self.poisoned().is_some() {
            return;
        }
        // Appends resume as soon as the index can be written again, not only at the next
        // append after the retry interval.
        if self.terms_failed.is_some() {
            let _ = self.repair_terms();
        }
        if let Durability::Interval(d) = self.shared.options.durability
            && self.unsynced_since.is_some()
            && self.last_sync_at.elapsed() >= d
            && let Err(e) = self.sync_segment()
        {
            self.poison(e.to_string());
            return;
        }
        let size = self.frontier.size().0;
        let cadence = self.shared.options.checkpoints;
        let new_entries = size.saturating_sub(self.last_checkpoint_size);
        let due = new_entries > 0
            && (cadence.every_entries.is_some_and(|n| new_entries >= n)
                || cadence
                    .every
                    .is_some_and(|t| self.last_checkpoint_at.elapsed() >= t));
        if due && let Err(e) = self.make_checkpoint() {
            tracing::error!(ledger = %self.shared.name, error = %e, "checkpoint failed");
            return;
        }
        if self.active_len >= self.shared.options.segment_target_size {
            match self.roll_over() {
                Ok(()) => {}
                Err(StepError::Retry(e)) => {
                    tracing::warn!(ledger = %self.shared.name, error = %e, "starting a new segment failed; the active one grows until it can");
                }
                Err(StepError::Fatal(e)) => {
                    self.poison(e.to_string());
                    return;
                }
            }
        }
        if size > self.last_head_size
            && self.last_head_at.elapsed() >= self.shared.options.head_interval
        {
            match self.write_head() {
                Ok(()) => {}
                Err(StepError::Retry(e)) => {
                    tracing::warn!(ledger = %self.shared.name, error = %e, "replacing the index head failed; the previous one stays");
                }
                Err(StepError::Fatal(e)) => self.poison(e.to_string()),
            }
        }
    }

    /// How long the sequencer may sleep before timed work is due.
    fn next_deadline(&self) -> Option<Duration> {
        let mut next: Option<Duration> = None;
        let mut consider = |at: Instant| {
            let d = at.saturating_duration_since(Instant::now());
            next = Some(next.map_or(d, |n| n.min(d)));
        };
        let size = self.frontier.size().0;
        if let Some(every) = self.shared.options.checkpoints.every
            && size > self.last_checkpoint_size
        {
            consider(self.last_checkpoint_at + every);
        }
        if let (Durability::Interval(d), Some(_)) =
            (self.shared.options.durability, self.unsynced_since)
        {
            consider(self.last_sync_at + d);
        }
        if size > self.last_head_size {
            consider(self.last_head_at + self.shared.options.head_interval);
        }
        if let Some((_, tried)) = &self.terms_failed {
            consider(*tried + TERMS_RETRY);
        }
        next
    }

    /// Final checkpoint, head and index flush.
    fn shutdown(&mut self) {
        if self.poisoned().is_some() {
            return;
        }
        let size = self.frontier.size().0;
        if size > self.last_checkpoint_size
            && let Err(e) = self.make_checkpoint()
        {
            tracing::error!(ledger = %self.shared.name, error = %e, "final checkpoint failed");
        }
        if let Err(StepError::Retry(e) | StepError::Fatal(e)) = self.write_head() {
            tracing::error!(ledger = %self.shared.name, error = %e, "writing the index head failed");
        }
        if let Err(e) = self.shared.terms.flush() {
            tracing::warn!(ledger = %self.shared.name, error = %e, "flushing the secondary index failed; it will be caught up on open");
        }
    }
}

/// How a step after the commit (index head, roll-over) failed.
enum StepError {
    /// Nothing the ledger relies on changed; the step is tried again later.
    Retry(IoFailure),
    /// A sync failed, or a half-done step could not be undone: the ledger is poisoned.
    Fatal(IoFailure),
}

fn command_entries(cmd: &Command) -> usize {
    match cmd {
        Command::Append(j) => j.drafts.len(),
        _ => 0,
    }
}

fn command_bytes(cmd: &Command) -> usize {
    match cmd {
        Command::Append(j) => j.drafts.iter().map(EntryDraft::encoded_len).sum(),
        _ => 0,
    }
}

fn group_entries(group: &[Command]) -> usize {
    group.iter().map(command_entries).sum()
}

fn group_bytes(group: &[Command]) -> usize {
    group.iter().map(command_bytes).sum()
}
