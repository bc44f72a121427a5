//! `vouch.v1.LedgerService`: appends, reads, proofs and checkpoints over the storage engine.
//!
//! No call blocks a tokio worker thread: appends are awaited through their tickets, and every
//! read that touches the disk (entries, proofs, checkpoint look-ups, ledger creation) runs on
//! the blocking pool. `StreamEntries` reads in bounded chunks and waits for the client before
//! reading more (back-pressure), so a range of any length uses bounded memory.
//! `WatchCheckpoints` follows the ledger's watch channel, which keeps only the newest
//! checkpoint: a slow watcher skips intermediate checkpoints (each one is consistent with the
//! ones before, so nothing is lost for an auditor) and never slows the sequencer.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use vouch_ledger_core::{EntryIndex, Hash, TreeSize};
use vouch_storage::{Ledger, StoredCheckpoint};

use crate::config::LimitsConfig;
use crate::convert;
use crate::metrics::Metrics;
use crate::proto::v1 as pb;
use crate::proto::v1::get_inclusion_proof_request::Target;
use crate::proto::v1::ledger_service_server::LedgerService as LedgerApi;
use crate::registry::Registry;
use crate::status::{self, IntoStatus};

/// Bytes of entries `StreamEntries` reads from disk at a time (at least one entry). With the
/// one-entry channel below, a consumer that stops reading holds at most one chunk, one entry
/// and the connection's flow-control window on the server.
const STREAM_CHUNK_BYTES: usize = 1 << 20;
/// Entries `StreamEntries` reads from disk at a time, at most.
const STREAM_CHUNK_ENTRIES: usize = 256;

/// The ledger service; see the module documentation.
#[derive(Debug, Clone)]
pub struct LedgerService {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    max_payload_bytes: usize,
    max_batch_entries: usize,
    max_open_streams: usize,
    streams: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
}

/// A boxed stream of responses.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl LedgerService {
    /// A service over `registry`. Streams end with `UNAVAILABLE` once `shutdown` turns true.
    pub fn new(
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        limits: &LimitsConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            registry,
            metrics,
            max_payload_bytes: limits.max_payload_bytes,
            max_batch_entries: limits.max_batch_entries,
            max_open_streams: limits.max_open_streams,
            streams: Arc::new(Semaphore::new(limits.max_open_streams)),
            shutdown,
        }
    }

    fn ledger(&self, name: &str) -> Result<Arc<Ledger>, Status> {
        self.registry.get(name).map_err(IntoStatus::into_status)
    }

    fn stream_permit(&self) -> Result<OwnedSemaphorePermit, Status> {
        if *self.shutdown.borrow() {
            return Err(status::shutting_down());
        }
        self.streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| status::too_many_streams(self.max_open_streams))
    }

    /// Submits drafts, awaits the acknowledgement, and with `wait` proves every entry against
    /// the checkpoint that covers them.
    async fn append_drafts(
        &self,
        ledger: Arc<Ledger>,
        drafts: Vec<vouch_ledger_core::entry::EntryDraft>,
        wait: bool,
    ) -> Result<
        (
            Vec<pb::Receipt>,
            Option<pb::SignedCheckpoint>,
            Vec<pb::InclusionProof>,
        ),
        Status,
    > {
        self.metrics.record_batch(drafts.len());
        let ticket = ledger
            .submit(drafts, wait)
            .map_err(IntoStatus::into_status)?;
        let outcome = ticket.await.map_err(IntoStatus::into_status)?;
        let receipts: Vec<pb::Receipt> = outcome
            .receipts
            .iter()
            .map(convert::receipt_to_proto)
            .collect();
        let Some(cp) = outcome.checkpoint.filter(|_| wait) else {
            return Ok((receipts, None, Vec::new()));
        };
        let metrics = self.metrics.clone();
        let targets: Vec<(EntryIndex, Hash)> = outcome
            .receipts
            .iter()
            .map(|r| (r.index, r.leaf_hash))
            .collect();
        let size = cp.size();
        let proofs = blocking(move || {
            targets
                .iter()
                .map(|(index, leaf)| {
                    let started = Instant::now();
                    let proof = ledger
                        .inclusion_proof(*index, size)
                        .map_err(IntoStatus::into_status)?;
                    metrics.record_inclusion_proof(started.elapsed());
                    Ok(convert::inclusion_to_proto(&proof, leaf, None))
                })
                .collect::<Result<Vec<_>, Status>>()
        })
        .await?;
        Ok((receipts, Some(convert::checkpoint_to_proto(&cp)), proofs))
    }

    /// The latest checkpoint; every served ledger has one (the server signs one at start).
    fn latest(ledger: &Ledger) -> Result<Arc<StoredCheckpoint>, Status> {
        ledger.latest_checkpoint().ok_or_else(|| {
            Status::failed_precondition(format!(
                "ledger {:?} has no signed checkpoint yet; retry shortly",
                ledger.name()
            ))
        })
    }
}

/// Runs blocking storage work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| status::task_failed(&e))?
}

/// Sends `item` unless the client is gone or the server shuts down first; `false` to stop.
async fn send_or_stop<T>(
    tx: &mpsc::Sender<Result<T, Status>>,
    item: T,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        sent = tx.send(Ok(item)) => sent.is_ok(),
        () = stopped(shutdown) => {
            let _ = tx.try_send(Err(status::shutting_down()));
            false
        }
    }
}

/// Resolves once the server starts shutting down.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Keeps the stream's permit and the open-streams gauge for the stream's life.
struct StreamSlot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl StreamSlot {
    fn new(permit: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.stream_opened();
        Self {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.metrics.stream_closed();
    }
}

#[tonic::async_trait]
impl LedgerApi for LedgerService {
    async fn create_ledger(
        &self,
        request: Request<pb::CreateLedgerRequest>,
    ) -> Result<Response<pb::LedgerInfo>, Status> {
        let req = request.into_inner();
        let hash = convert::hash_from_proto(req.hash, "hash").map_err(IntoStatus::into_status)?;
        let origin = (!req.origin.is_empty()).then_some(req.origin);
        let leaf_index = req.disable_leaf_hash_index.then_some(false);
        let registry = self.registry.clone();
        let ledger = blocking(move || {
            let ledger = registry
                .create(&req.name, hash, origin, leaf_index)
                .map_err(IntoStatus::into_status)?;
            if ledger.latest_checkpoint().is_none() {
                ledger.checkpoint_now().map_err(IntoStatus::into_status)?;
            }
            Ok(ledger)
        })
        .await?;
        Ok(Response::new(convert::ledger_info(&ledger)))
    }

    async fn list_ledgers(
        &self,
        _request: Request<pb::ListLedgersRequest>,
    ) -> Result<Response<pb::ListLedgersResponse>, Status> {
        let ledgers = self
            .registry
            .list()
            .iter()
            .map(|l| convert::ledger_info(l))
            .collect();
        Ok(Response::new(pb::ListLedgersResponse { ledgers }))
    }

    async fn get_ledger(
        &self,
        request: Request<pb::GetLedgerRequest>,
    ) -> Result<Response<pb::LedgerInfo>, Status> {
        let ledger = self.ledger(&request.get_ref().ledger)?;
        Ok(Response::new(convert::ledger_info(&ledger)))
    }

    async fn append(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let req = request.into_inner();
        let ledger = self.ledger(&req.ledger)?;
        let draft = convert::draft_from_proto(req.entry, "entry", self.max_payload_bytes)?;
        let (receipts, checkpoint, proofs) = self
            .append_drafts(ledger, vec![draft], req.wait_for_checkpoint)
            .await?;
        let receipt = receipts.into_iter().next().ok_or_else(|| {
            Status::internal("the ledger acknowledged the append without a receipt")
        })?;
        let inclusion_proof = proofs.into_iter().next().map(|mut p| {
            p.checkpoint.clone_from(&checkpoint);
            p
        });
        Ok(Response::new(pb::AppendResponse {
            receipt: Some(receipt),
            checkpoint,
            inclusion_proof,
        }))
    }

    async fn append_batch(
        &self,
        request: Request<pb::AppendBatchRequest>,
    ) -> Result<Response<pb::AppendBatchResponse>, Status> {
        let req = request.into_inner();
        let ledger = self.ledger(&req.ledger)?;
        if req.entries.is_empty() {
            return Err(Status::invalid_argument(
                "entries: the batch is empty; send at least one entry",
            ));
        }
        if req.entries.len() > self.max_batch_entries {
            return Err(status::over_limit(
                "entries",
                "limits.max_batch_entries",
                self.max_batch_entries,
                req.entries.len(),
            ));
        }
        let drafts = req
            .entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                convert::draft_from_proto(Some(e), &format!("entries[{i}]"), self.max_payload_bytes)
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let (receipts, checkpoint, inclusion_proofs) = self
            .append_drafts(ledger, drafts, req.wait_for_checkpoint)
            .await?;
        Ok(Response::new(pb::AppendBatchResponse {
            receipts,
            checkpoint,
            inclusion_proofs,
        }))
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let req = request.into_inner();
        let ledger = self.ledger(&req.ledger)?;
        let entry = blocking(move || {
            let raw = ledger
                .get_raw(EntryIndex(req.index))
                .map_err(IntoStatus::into_status)?;
            convert::entry_to_proto(&raw, ledger.hash_alg()).map_err(IntoStatus::into_status)
        })
        .await?;
        Ok(Response::new(entry))
    }

    type StreamEntriesStream = ResponseStream<pb::Entry>;

    async fn stream_entries(
        &self,
        request: Request<pb::StreamEntriesRequest>,
    ) -> Result<Response<Self::StreamEntriesStream>, Status> {
        let req = request.into_inner();
        let ledger = self.ledger(&req.ledger)?;
        let size = ledger.size().0;
        let end = if req.end == 0 { size } else { req.end };
        if end > size {
            return Err(Status::out_of_range(format!(
                "end: {end} is beyond the ledger's size {size}"
            )));
        }
        if req.start > end {
            return Err(Status::invalid_argument(format!(
                "start: {} is after end {end}",
                req.start
            )));
        }
        let slot = StreamSlot::new(self.stream_permit()?, self.metrics.clone());
        let chunk =
            (STREAM_CHUNK_BYTES / self.max_payload_bytes.max(1)).clamp(1, STREAM_CHUNK_ENTRIES);
        let (tx, rx) = mpsc::channel(1);
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut next = req.start;
            while next < end {
                let chunk_end = end.min(next.saturating_add(chunk as u64));
                let reader = ledger.clone();
                let read = blocking(move || {
                    let alg = reader.hash_alg();
                    let mut out = Vec::with_capacity(chunk);
                    let mut bad = None;
                    reader
                        .scan(EntryIndex(next), EntryIndex(chunk_end), |_, raw| {
                            match convert::entry_to_proto(raw, alg) {
                                Ok(e) => out.push(e),
                                Err(e) => bad = Some(e),
                            }
                            Ok(())
                        })
                        .map_err(IntoStatus::into_status)?;
                    if let Some(e) = bad {
                        return Err(e.into_status());
                    }
                    Ok(out)
                })
                .await;
                let entries = match read {
                    Ok(entries) if !entries.is_empty() => entries,
                    Ok(_) => {
                        let _ = tx
                            .send(Err(Status::internal(format!(
                                "reading entries from {next} returned nothing"
                            ))))
                            .await;
                        return;
                    }
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                next += entries.len() as u64;
                for e in entries {
                    if !send_or_stop(&tx, e, &mut shutdown).await {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let req = request.into_inner();
        let ledger = self.ledger(&req.ledger)?;
        let target = req
            .target
            .ok_or_else(|| Status::invalid_argument("target: set either index or leaf_hash"))?;
        let leaf_hash = match &target {
            Target::LeafHash(bytes) => Some(
                convert::hash_from_bytes(bytes, "leaf_hash").map_err(IntoStatus::into_status)?,
            ),
            Target::Index(_) => None,
        };
        if leaf_hash.is_some() && !ledger.has_leaf_hash_index() {
            return Err(Status::failed_precondition(format!(
                "leaf_hash: ledger {:?} was created without the leaf-hash index; ask by index",
                ledger.name()
            )));
        }
        let metrics = self.metrics.clone();
        let proof = blocking(move || {
            let index = match (target, leaf_hash) {
                (Target::Index(i), _) => EntryIndex(i),
                (Target::LeafHash(_), Some(h)) => ledger
                    .find_by_leaf_hash(&h)
                    .map_err(IntoStatus::into_status)?
                    .ok_or_else(|| {
                        Status::not_found(format!("leaf_hash: no entry has leaf hash {h}"))
                    })?,
                (Target::LeafHash(_), None) => {
                    return Err(Status::internal("leaf hash lost while proving"));
                }
            };
            let size = ledger.size();
            if !size.contains(index) {
                return Err(Status::out_of_range(format!(
                    "index: entry {index} does not exist yet; the ledger holds {size} entries"
                )));
            }
            let (tree_size, checkpoint) = if req.tree_size == 0 {
                let cp = LedgerService::latest(&ledger)?;
                if !cp.size().contains(index) {
                    return Err(Status::out_of_range(format!(
                        "index: entry {index} is not covered by the latest checkpoint (size {}) yet; retry after the next checkpoint, or append with wait_for_checkpoint",
                        cp.size()
                    )));
                }
                (cp.size(), Some((*cp).clone()))
            } else {
                let size = TreeSize(req.tree_size);
                let cp = if size <= ledger.size() {
                    ledger.checkpoint_at(size).map_err(IntoStatus::into_status)?
                } else {
                    None
                };
                (size, cp)
            };
            let started = Instant::now();
            let proof = ledger
                .inclusion_proof(index, tree_size)
                .map_err(IntoStatus::into_status)?;
            metrics.record_inclusion_proof(started.elapsed());
            let leaf = ledger.leaf_hash(index).map_err(IntoStatus::into_status)?;
            Ok(convert::inclusion_to_proto(&proof, &leaf, checkpoint.as_ref()))
        })
        .await?;
        Ok(Response::new(proof))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let req = request.into_inner();
        let ledger = self.ledger(&req.ledger)?;
        if req.old_size == 0 {
            return Err(Status::invalid_argument(
                "old_size: must be at least 1; nothing about the empty tree needs proving",
            ));
        }
        let metrics = self.metrics.clone();
        let proof = blocking(move || {
            let (new_size, new_cp) = if req.new_size == 0 {
                let cp = LedgerService::latest(&ledger)?;
                (cp.size(), Some((*cp).clone()))
            } else {
                let size = TreeSize(req.new_size);
                if size > ledger.size() {
                    return Err(Status::out_of_range(format!(
                        "new_size: {size} is beyond the ledger's size {}",
                        ledger.size()
                    )));
                }
                (
                    size,
                    ledger
                        .checkpoint_at(size)
                        .map_err(IntoStatus::into_status)?,
                )
            };
            let old_size = TreeSize(req.old_size);
            if old_size > new_size {
                return Err(Status::invalid_argument(format!(
                    "old_size: {old_size} is greater than new_size {new_size}"
                )));
            }
            let started = Instant::now();
            let proof = ledger
                .consistency_proof(old_size, new_size)
                .map_err(IntoStatus::into_status)?;
            metrics.record_consistency_proof(started.elapsed());
            let old_cp = ledger
                .checkpoint_at(old_size)
                .map_err(IntoStatus::into_status)?;
            Ok(convert::consistency_to_proto(
                &proof,
                old_cp.as_ref(),
                new_cp.as_ref(),
            ))
        })
        .await?;
        Ok(Response::new(proof))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::SignedCheckpoint>, Status> {
        let req = request.into_inner();
        let ledger = self.ledger(&req.ledger)?;
        if req.tree_size == 0 {
            let cp = Self::latest(&ledger)?;
            return Ok(Response::new(convert::checkpoint_to_proto(&cp)));
        }
        let size = TreeSize(req.tree_size);
        if size > ledger.size() {
            return Err(Status::out_of_range(format!(
                "tree_size: {size} is beyond the ledger's size {}",
                ledger.size()
            )));
        }
        let cp = blocking(move || ledger.checkpoint_at(size).map_err(IntoStatus::into_status))
            .await?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "tree_size: no checkpoint was signed at size {size}; tree_size 0 gives the latest, and consistency proofs link any two sizes"
                ))
            })?;
        Ok(Response::new(convert::checkpoint_to_proto(&cp)))
    }

    type WatchCheckpointsStream = ResponseStream<pb::SignedCheckpoint>;

    async fn watch_checkpoints(
        &self,
        request: Request<pb::WatchCheckpointsRequest>,
    ) -> Result<Response<Self::WatchCheckpointsStream>, Status> {
        let ledger = self.ledger(&request.get_ref().ledger)?;
        let slot = StreamSlot::new(self.stream_permit()?, self.metrics.clone());
        let mut rx = ledger.watch_checkpoints();
        let (tx, out) = mpsc::channel(4);
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let first = rx
                .borrow_and_update()
                .clone()
                .or_else(|| ledger.latest_checkpoint());
            let mut last_size = None;
            if let Some(cp) = first {
                last_size = Some(cp.size());
                if !send_or_stop(&tx, convert::checkpoint_to_proto(&cp), &mut shutdown).await {
                    return;
                }
            }
            // Bounded by the client: the loop ends when it goes away, the ledger closes, or
            // the server shuts down.
            loop {
                let changed = tokio::select! {
                    changed = rx.changed() => changed,
                    () = tx.closed() => return,
                    () = stopped(&mut shutdown) => {
                        let _ = tx.try_send(Err(status::shutting_down()));
                        return;
                    }
                };
                if changed.is_err() {
                    let _ = tx.try_send(Err(Status::unavailable("the ledger was closed")));
                    return;
                }
                let Some(cp) = rx.borrow_and_update().clone() else {
                    continue;
                };
                if last_size.is_some_and(|s| s >= cp.size()) {
                    continue;
                }
                last_size = Some(cp.size());
                if !send_or_stop(&tx, convert::checkpoint_to_proto(&cp), &mut shutdown).await {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
}
