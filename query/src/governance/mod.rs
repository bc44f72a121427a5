//! Governance: the policy layer on a ledger.
//!
//! [`Governance`] publishes bundles, makes and records decisions with the context the ledger
//! holds, records overrides and exceptions, replays recorded decisions, simulates candidate
//! bundles over recorded decisions, and answers decision queries. It reaches the ledger only
//! through [`vouch_storage::Ledger`]: entries are appended with the sequencer's group commit
//! and found again through the secondary index that [`GovernanceTerms`] feeds, and every hit
//! is re-read and re-checked. The entry payloads are specified in [`record`] and in
//! `docs/policy.md` ("Recording decisions").
//!
//! Every method blocks on the ledger (reads, and appends waiting for their acknowledgement):
//! call them from a blocking thread in async code.

mod context;
mod error;
mod pack;
pub mod record;
pub(crate) mod replay;
mod search;
mod simulation;
mod summary;
pub mod terms;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use vouch_ledger_core::entry::{Entry, EntryDraft, EntryKind, Timestamp as LedgerTimestamp};
use vouch_ledger_core::proof::InclusionProof;
use vouch_ledger_core::{EntryIndex, Hash};
use vouch_storage::{AppendError, Ledger, ProveError, ReadError, Receipt, StoredCheckpoint};

pub use error::{
    BundleError, BundleRef, DecideError, DecisionRef, EvaluateError, ExceptionError,
    GetDecisionError, InvalidEntry, ListBundlesError, OverrideError, PublishError, QueryError,
    ReplayError, SimulateError,
};
pub use pack::{ExportPackError, ExportedPack};
pub use record::{
    BundleEntry, DecisionEntry, EntryError, ExceptionEntry, OverrideEntry, PromotionFacts,
};
pub use replay::{Difference, ReplayReport, replay_entries};
pub use search::{DecisionPage, DecisionQuery, OverrideSummary, RecordedDecision};
pub use simulation::{
    DEFAULT_CACHED_DECISIONS, MAX_SIMULATED_DECISIONS, OutcomeCounts, PolicyImpact,
    SimulatedChange, SimulationCache, SimulationOptions, SimulationReport, SimulationScope,
};
pub use terms::GovernanceTerms;

use crate::bundle::SourceBundle;
use crate::compiler::{CompiledBundle, compile};
use crate::decision::DecisionRecord;
use crate::document::Format;
use crate::lint::Finding;
use crate::overrides::{OverrideRequest, OverrideStatus, evaluate_override};
use crate::request::{ExceptionRecord, Request, limits::MAX_REQUEST_BYTES};

/// Most compiled bundles kept in memory per ledger.
const BUNDLE_CACHE_CAPACITY: usize = 256;

/// An inclusion proof of an entry against a signed checkpoint.
#[derive(Clone, Debug)]
pub struct Proof {
    /// The checkpoint the proof leads to.
    pub checkpoint: Arc<StoredCheckpoint>,
    /// The proof.
    pub proof: InclusionProof,
    /// The entry's leaf hash.
    pub leaf_hash: Hash,
}

/// A published bundle, compiled from its entry.
#[derive(Debug)]
pub struct PublishedBundle {
    /// The entry's index.
    pub index: EntryIndex,
    /// When it was published.
    pub timestamp: LedgerTimestamp,
    /// The entry's record.
    pub entry: BundleEntry,
    /// The bundle compiled from the recorded source; its hash is the recorded hash.
    pub compiled: CompiledBundle,
}

/// One line of a bundle listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleListing {
    /// The entry's index.
    pub index: EntryIndex,
    /// When it was published.
    pub timestamp: LedgerTimestamp,
    /// The bundle hash.
    pub hash: String,
    /// The bundle name.
    pub name: String,
    /// The source format.
    pub format: Format,
}

/// The result of [`Governance::publish`].
#[derive(Debug)]
pub struct Published {
    /// The bundle.
    pub bundle: Arc<PublishedBundle>,
    /// The append's receipt (the original one when the bundle was published before).
    pub receipt: Receipt,
    /// Whether the bundle had been published before: nothing new was appended.
    pub duplicate: bool,
    /// Lint warnings of the source.
    pub warnings: Vec<Finding>,
    /// The inclusion proof, when asked for.
    pub proof: Option<Proof>,
}

/// The result of [`Governance::evaluate`]: a decision that is not recorded.
#[derive(Debug)]
pub struct Evaluated {
    /// The bundle the request was evaluated with.
    pub bundle: Arc<PublishedBundle>,
    /// The record a decision would store: the snapshot with its injected context, and the
    /// evaluation.
    pub record: DecisionRecord,
}

/// Options of [`Governance::decide`].
#[derive(Clone, Debug, Default)]
pub struct DecideOptions {
    /// The client's idempotency key: a retry with the same key and request returns the
    /// original decision. Without one, a decision identical to a recorded one (same bundle,
    /// same snapshot) returns the recorded one.
    pub idempotency_key: Option<String>,
    /// Wait for a signed checkpoint that covers the decision and return its inclusion proof.
    pub wait_for_checkpoint: bool,
}

/// The result of [`Governance::decide`].
#[derive(Debug)]
pub struct Decided {
    /// The decision id (`sha256:` of the record's canonical JSON).
    pub id: String,
    /// The decision entry's index.
    pub index: EntryIndex,
    /// The append's receipt (the original one for a retry).
    pub receipt: Receipt,
    /// The bundle the decision was made with.
    pub bundle: Arc<PublishedBundle>,
    /// The recorded decision.
    pub record: DecisionRecord,
    /// Whether the decision had been recorded before: nothing new was appended.
    pub duplicate: bool,
    /// The inclusion proof, when asked for.
    pub proof: Option<Proof>,
}

/// The result of [`Governance::record_override`].
#[derive(Debug)]
pub struct RecordedOverride {
    /// The override entry's index.
    pub index: EntryIndex,
    /// The append's receipt.
    pub receipt: Receipt,
    /// The recorded override (its outcome says granted or denied).
    pub entry: OverrideEntry,
    /// The id of the decision it is for.
    pub decision: String,
    /// Whether it had been recorded before: nothing new was appended.
    pub duplicate: bool,
    /// The inclusion proof, when asked for.
    pub proof: Option<Proof>,
}

/// The result of [`Governance::record_exception`].
#[derive(Debug)]
pub struct RecordedException {
    /// The exception entry's index.
    pub index: EntryIndex,
    /// The append's receipt.
    pub receipt: Receipt,
    /// The exception.
    pub exception: ExceptionRecord,
    /// Whether it had been recorded before: nothing new was appended.
    pub duplicate: bool,
    /// The inclusion proof, when asked for.
    pub proof: Option<Proof>,
}

/// Where the latest bundle of a name was last looked up to.
#[derive(Debug, Clone, Copy, Default)]
struct NameCursor {
    latest: Option<EntryIndex>,
    scanned: Option<EntryIndex>,
}

/// The policy layer on one ledger; see the module documentation.
#[derive(Debug)]
pub struct Governance {
    ledger: Arc<Ledger>,
    bundles: Mutex<HashMap<u64, Arc<PublishedBundle>>>,
    names: Mutex<HashMap<String, NameCursor>>,
    simulation: SimulationCache,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Parses and compiles a bundle text, returning the bundle and its lint warnings.
///
/// # Errors
///
/// [`PublishError::Parse`] or [`PublishError::Compile`].
fn compile_text(
    text: &str,
    format: Format,
) -> Result<(CompiledBundle, Vec<Finding>), PublishError> {
    let source = SourceBundle::parse(text, format)?;
    let warnings = source.lint();
    let compiled = compile(&source)?;
    Ok((compiled, warnings))
}

impl Governance {
    /// The policy layer on `ledger`. The ledger should be opened with [`GovernanceTerms`] as
    /// its extractor; without it, nothing recorded can be found again.
    pub fn new(ledger: Arc<Ledger>) -> Governance {
        Governance::with_simulation_cache(ledger, DEFAULT_CACHED_DECISIONS)
    }

    /// The policy layer on `ledger`, keeping at most `cached_decisions` parsed decisions for
    /// simulations (see [`SimulationCache`]; about 2 KiB of memory each for typical
    /// requests).
    pub fn with_simulation_cache(ledger: Arc<Ledger>, cached_decisions: usize) -> Governance {
        Governance {
            ledger,
            bundles: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            simulation: SimulationCache::new(cached_decisions),
        }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    fn entry(&self, index: EntryIndex) -> Result<Entry, ReadError> {
        self.ledger.get(index)
    }

    /// Appends one draft and waits for its receipt (and checkpoint, when asked).
    fn append(
        &self,
        draft: EntryDraft,
        wait_for_checkpoint: bool,
    ) -> Result<(Receipt, Option<Arc<StoredCheckpoint>>), AppendError> {
        let outcome = self
            .ledger
            .submit(vec![draft], wait_for_checkpoint)?
            .wait()?;
        let receipt = outcome
            .receipts
            .into_iter()
            .next()
            .ok_or(AppendError::Closed)?;
        Ok((receipt, outcome.checkpoint))
    }

    /// The inclusion proof of `index` against `checkpoint` (or the latest checkpoint that
    /// covers it).
    fn prove(
        &self,
        index: EntryIndex,
        checkpoint: Option<Arc<StoredCheckpoint>>,
    ) -> Result<Option<Proof>, ProveError> {
        let checkpoint = match checkpoint {
            Some(cp) if cp.size().contains(index) => cp,
            _ => match self.ledger.latest_checkpoint() {
                Some(cp) if cp.size().contains(index) => cp,
                _ => return Ok(None),
            },
        };
        let proof = self.ledger.inclusion_proof(index, checkpoint.size())?;
        let leaf_hash = self.ledger.leaf_hash(index)?;
        Ok(Some(Proof {
            checkpoint,
            proof,
            leaf_hash,
        }))
    }

    /// Reads, checks and compiles the bundle entry at `index` (cached).
    fn bundle_at(&self, index: EntryIndex) -> Result<Arc<PublishedBundle>, BundleError> {
        if let Some(b) = lock(&self.bundles).get(&index.0) {
            return Ok(b.clone());
        }
        if !self.ledger.size().contains(index) {
            return Err(BundleError::NotFound(BundleRef::Index(index)));
        }
        let entry = self.entry(index)?;
        if entry.kind != EntryKind::Policy {
            return Err(InvalidEntry::Kind {
                index,
                expected: EntryKind::Policy,
                found: entry.kind,
            }
            .into());
        }
        let record = BundleEntry::from_json(&entry.payload)
            .map_err(|source| InvalidEntry::Payload { index, source })?;
        let compiled = SourceBundle::parse(&record.source, record.format)
            .map_err(|e| e.to_string())
            .and_then(|s| compile(&s).map_err(|e| e.to_string()))
            .map_err(|e| InvalidEntry::Bundle {
                index,
                reason: format!("does not compile: {e}"),
            })?;
        if compiled.hash() != record.hash {
            return Err(InvalidEntry::Bundle {
                index,
                reason: format!(
                    "compiles to {}, not to the recorded hash {}",
                    compiled.hash(),
                    record.hash
                ),
            }
            .into());
        }
        let bundle = Arc::new(PublishedBundle {
            index,
            timestamp: entry.timestamp,
            entry: record,
            compiled,
        });
        let mut cache = lock(&self.bundles);
        if cache.len() >= BUNDLE_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(index.0, bundle.clone());
        Ok(bundle)
    }

    /// Resolves a bundle by hash, by name (the latest published bundle of that name) or by
    /// index, and compiles it from its entry.
    ///
    /// # Errors
    ///
    /// [`BundleError::NotFound`] when nothing matches; [`BundleError::Invalid`] when the
    /// entry found is not a bundle entry whose source compiles to its recorded hash.
    pub fn bundle(&self, which: &BundleRef) -> Result<Arc<PublishedBundle>, BundleError> {
        match which {
            BundleRef::Index(index) => self.bundle_at(*index),
            BundleRef::Hash(hash) => {
                for index in
                    context::all_hits(&self.ledger, terms::NS_BUNDLE_HASH, hash.as_bytes(), None)?
                {
                    if let Ok(b) = self.bundle_at(index)
                        && b.entry.hash == *hash
                    {
                        return Ok(b);
                    }
                }
                Err(BundleError::NotFound(which.clone()))
            }
            BundleRef::Name(name) => {
                let latest = self.latest_of_name(name)?;
                match latest {
                    Some(index) => self.bundle_at(index),
                    None => Err(BundleError::NotFound(which.clone())),
                }
            }
        }
    }

    /// The index of the latest bundle entry named `name`, reading only the index terms added
    /// since the last look-up.
    fn latest_of_name(&self, name: &str) -> Result<Option<EntryIndex>, ReadError> {
        let mut cursor = lock(&self.names).get(name).copied().unwrap_or_default();
        loop {
            let hits = self.ledger.lookup_term(
                terms::NS_BUNDLE_NAME,
                name.as_bytes(),
                cursor.scanned,
                256,
            )?;
            let full = hits.len() == 256;
            for index in hits {
                cursor.scanned = Some(index);
                let entry = self.entry(index)?;
                if entry.kind == EntryKind::Policy
                    && summary::read::<summary::BundleSummary>(&entry.payload)
                        .is_some_and(|b| b.name == name)
                {
                    cursor.latest = Some(index);
                }
            }
            if !full {
                break;
            }
        }
        lock(&self.names).insert(name.to_owned(), cursor);
        Ok(cursor.latest)
    }

    /// Lists published bundles in publication order, all or those named `name`, after the
    /// cursor `after`, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`ListBundlesError::Read`] if the ledger cannot be read.
    pub fn list_bundles(
        &self,
        name: Option<&str>,
        after: Option<EntryIndex>,
        limit: usize,
    ) -> Result<Vec<BundleListing>, ListBundlesError> {
        let (namespace, value) = match name {
            Some(n) => (terms::NS_BUNDLE_NAME, n.as_bytes()),
            None => (terms::NS_KIND, &b"policy"[..]),
        };
        let mut out = Vec::new();
        let mut cursor = after;
        while out.len() < limit {
            let hits = self
                .ledger
                .lookup_term(namespace, value, cursor, limit.max(16))?;
            let full = hits.len() == limit.max(16);
            for index in hits {
                cursor = Some(index);
                let entry = self.entry(index)?;
                if entry.kind != EntryKind::Policy {
                    continue;
                }
                let Some(b) = summary::read::<summary::BundleSummary>(&entry.payload) else {
                    continue;
                };
                let Some(format) = Format::from_name(&b.format) else {
                    continue;
                };
                if name.is_some_and(|n| n != b.name) {
                    continue;
                }
                out.push(BundleListing {
                    index,
                    timestamp: entry.timestamp,
                    hash: b.hash,
                    name: b.name,
                    format,
                });
                if out.len() == limit {
                    break;
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Compiles a bundle text and appends it as a `policy` entry, unless a bundle with the
    /// same hash was published before, in which case that entry is returned.
    ///
    /// # Errors
    ///
    /// [`PublishError::Parse`] and [`PublishError::Compile`] with located errors; append,
    /// read and proof errors from the ledger; [`PublishError::KeyTaken`] if another entry
    /// holds the bundle's idempotency key.
    pub fn publish(
        &self,
        text: &str,
        format: Format,
        wait_for_checkpoint: bool,
    ) -> Result<Published, PublishError> {
        let (compiled, warnings) = compile_text(text, format)?;
        let hash = compiled.hash().to_owned();
        let key = BundleEntry::idempotency_key(&hash);
        let record = BundleEntry {
            hash: hash.clone(),
            name: compiled.name().to_owned(),
            format,
            source: text.to_owned(),
        };
        let existing = |this: &Self| -> Result<Option<Published>, PublishError> {
            match this.bundle(&BundleRef::Hash(hash.clone())) {
                Ok(bundle) => {
                    let receipt = this.receipt_of(bundle.index, bundle.timestamp)?;
                    let proof = if wait_for_checkpoint {
                        this.prove_waiting(bundle.index)?
                    } else {
                        None
                    };
                    Ok(Some(Published {
                        bundle,
                        receipt,
                        duplicate: true,
                        warnings: warnings.clone(),
                        proof,
                    }))
                }
                Err(BundleError::Read(e)) => Err(e.into()),
                // Not found; or an entry with this hash that does not compile to it, which
                // is not this bundle.
                Err(_) => Ok(None),
            }
        };
        if let Some(p) = existing(self)? {
            return Ok(p);
        }
        let draft = EntryDraft::new(
            EntryKind::Policy,
            Some(key.clone()),
            record::BUNDLE_CONTENT_TYPE.to_owned(),
            record.to_json(),
        )
        .map_err(PublishError::Entry)?;
        let (receipt, checkpoint) = match self.append(draft, wait_for_checkpoint) {
            Ok(r) => r,
            Err(AppendError::IdempotencyConflict { index, .. }) => {
                // Published concurrently with another text of the same bundle, or the key is
                // held by something else.
                return match existing(self)? {
                    Some(p) => Ok(p),
                    None => Err(PublishError::KeyTaken { key, index }),
                };
            }
            Err(e) => return Err(e.into()),
        };
        let proof = if wait_for_checkpoint {
            self.prove(receipt.index, checkpoint)?
        } else {
            None
        };
        let bundle = Arc::new(PublishedBundle {
            index: receipt.index,
            timestamp: receipt.timestamp,
            entry: record,
            compiled,
        });
        lock(&self.bundles).insert(receipt.index.0, bundle.clone());
        Ok(Published {
            bundle,
            receipt,
            duplicate: receipt.duplicate,
            warnings,
            proof,
        })
    }

    /// The receipt of an entry that exists already.
    fn receipt_of(
        &self,
        index: EntryIndex,
        timestamp: LedgerTimestamp,
    ) -> Result<Receipt, ReadError> {
        Ok(Receipt {
            index,
            leaf_hash: self.ledger.leaf_hash(index)?,
            timestamp,
            tree_size: self.ledger.size(),
            duplicate: true,
        })
    }

    /// The proof of an existing entry, signing a checkpoint first if none covers it yet.
    fn prove_waiting(&self, index: EntryIndex) -> Result<Option<Proof>, ProveError> {
        let covered = self
            .ledger
            .latest_checkpoint()
            .is_some_and(|cp| cp.size().contains(index));
        let checkpoint = if covered {
            None
        } else {
            self.ledger.checkpoint_now().ok()
        };
        self.prove(index, checkpoint)
    }

    /// Parses a request, resolves the bundle and builds the snapshot with its context.
    fn prepare(
        &self,
        which: &BundleRef,
        request_json: &[u8],
    ) -> Result<(Arc<PublishedBundle>, DecisionRecord), EvaluateError> {
        let mut request = Request::from_json(request_json)?;
        let bundle = self.bundle(which)?;
        let context = context::context_for(&self.ledger, &bundle.compiled, &request)?;
        request.set_context(context);
        let size = request.canonical_json().len();
        if size > MAX_REQUEST_BYTES {
            return Err(EvaluateError::SnapshotTooLarge {
                size,
                max: MAX_REQUEST_BYTES,
            });
        }
        let record = DecisionRecord::decide(&bundle.compiled, request);
        Ok((bundle, record))
    }

    /// Evaluates a request as [`Governance::decide`] would, with the context from the
    /// ledger, without recording anything.
    ///
    /// # Errors
    ///
    /// [`EvaluateError`]: an invalid request (located errors), an unknown bundle, a snapshot
    /// too large, a read error.
    pub fn evaluate(
        &self,
        which: &BundleRef,
        request_json: &[u8],
    ) -> Result<Evaluated, EvaluateError> {
        let (bundle, record) = self.prepare(which, request_json)?;
        Ok(Evaluated { bundle, record })
    }

    /// Decides a request and records the decision: parses it, resolves the bundle, replaces
    /// the request's `context` with the facts from the ledger, evaluates, and appends a
    /// `decision` entry binding the bundle hash and index, the snapshot and the evaluation.
    ///
    /// # Errors
    ///
    /// [`DecideError`]: an invalid request (located errors), an unknown bundle, a snapshot
    /// too large, an idempotency key used for another request, ledger errors.
    pub fn decide(
        &self,
        which: &BundleRef,
        request_json: &[u8],
        options: &DecideOptions,
    ) -> Result<Decided, DecideError> {
        let (bundle, record) = self.prepare(which, request_json).map_err(|e| match e {
            EvaluateError::Request(r) => DecideError::Request(r),
            EvaluateError::Bundle(b) => DecideError::Bundle(b),
            EvaluateError::SnapshotTooLarge { size, max } => {
                DecideError::SnapshotTooLarge { size, max }
            }
            EvaluateError::Read(r) => DecideError::Read(r),
        })?;
        let entry = DecisionEntry::new(record, bundle.index);
        let key = match &options.idempotency_key {
            Some(k) => k.clone(),
            None => DecisionEntry::idempotency_key(&entry.id),
        };
        if options.idempotency_key.is_some()
            && let Some(original) = self.retried_decision(&key, &entry, options)?
        {
            return Ok(original);
        }
        let draft = EntryDraft::new(
            EntryKind::Decision,
            Some(key.clone()),
            record::DECISION_CONTENT_TYPE.to_owned(),
            entry.to_json(),
        )
        .map_err(DecideError::InvalidKey)?;
        let (receipt, checkpoint) = match self.append(draft, options.wait_for_checkpoint) {
            Ok(r) => r,
            Err(AppendError::IdempotencyConflict { index, .. }) => {
                return match self.retried_decision(&key, &entry, options)? {
                    Some(original) => Ok(original),
                    None => Err(DecideError::KeyConflict { key, index }),
                };
            }
            Err(e) => return Err(e.into()),
        };
        let proof = if options.wait_for_checkpoint {
            self.prove(receipt.index, checkpoint)?
        } else {
            None
        };
        Ok(Decided {
            id: entry.id,
            index: receipt.index,
            receipt,
            bundle,
            record: entry.record,
            duplicate: receipt.duplicate,
            proof,
        })
    }

    /// The decision recorded under `key`, if `entry` is a retry of it: the same bundle and
    /// the same request apart from the context (which may have changed in between).
    fn retried_decision(
        &self,
        key: &str,
        entry: &DecisionEntry,
        options: &DecideOptions,
    ) -> Result<Option<Decided>, DecideError> {
        let Some(index) = self.ledger.find_by_idempotency_key(key)? else {
            return Ok(None);
        };
        let stored = self.entry(index)?;
        let conflict = || DecideError::KeyConflict {
            key: key.to_owned(),
            index,
        };
        if stored.kind != EntryKind::Decision {
            return Err(conflict());
        }
        let original = DecisionEntry::from_json(&stored.payload)
            .map_err(|source| InvalidEntry::Payload { index, source })?;
        let without_context = |r: &Request| {
            let mut r = r.clone();
            r.set_context(crate::request::Context::default());
            r.canonical_json()
        };
        if original.record.bundle != entry.record.bundle
            || without_context(&original.record.request) != without_context(&entry.record.request)
        {
            return Err(conflict());
        }
        let bundle = self.bundle_at(original.bundle_index)?;
        let receipt = self.receipt_of(index, stored.timestamp)?;
        let proof = if options.wait_for_checkpoint {
            self.prove_waiting(index)?
        } else {
            None
        };
        Ok(Some(Decided {
            id: original.id,
            index,
            receipt,
            bundle,
            record: original.record,
            duplicate: true,
            proof,
        }))
    }

    /// Reads a recorded decision by id or index, with the overrides recorded for it and, on
    /// request, its inclusion proof against the latest checkpoint that covers it.
    ///
    /// # Errors
    ///
    /// [`GetDecisionError::NotFound`]; [`GetDecisionError::Invalid`] for an entry that is not
    /// a decision or whose record does not match its id; ledger errors.
    pub fn decision(
        &self,
        which: &DecisionRef,
        with_proof: bool,
    ) -> Result<RecordedDecision, GetDecisionError> {
        let index = self
            .find_decision(which)?
            .ok_or_else(|| GetDecisionError::NotFound(which.clone()))?;
        let mut decision = search::read_decision(&self.ledger, index, None)?;
        if let DecisionRef::Id(id) = which
            && decision.id != *id
        {
            return Err(GetDecisionError::NotFound(which.clone()));
        }
        if with_proof {
            decision.proof = self.prove(index, None)?;
        }
        Ok(decision)
    }

    /// The index of the decision entry named by `which`, if there is one.
    fn find_decision(&self, which: &DecisionRef) -> Result<Option<EntryIndex>, ReadError> {
        match which {
            DecisionRef::Index(index) => Ok(self.ledger.size().contains(*index).then_some(*index)),
            DecisionRef::Id(id) => {
                for index in
                    context::all_hits(&self.ledger, terms::NS_DECISION_ID, id.as_bytes(), None)?
                {
                    let entry = self.entry(index)?;
                    if entry.kind == EntryKind::Decision
                        && summary::read::<summary::DecisionSummary>(&entry.payload)
                            .is_some_and(|d| d.id == *id)
                    {
                        return Ok(Some(index));
                    }
                }
                Ok(None)
            }
        }
    }

    /// Evaluates an override request against the recorded decision it names (with the
    /// bundle that decision was made with) and records the result, granted or denied, as an
    /// `override` entry under the request's idempotency key.
    ///
    /// # Errors
    ///
    /// [`OverrideError`]: an invalid request, an unknown decision, a key used for another
    /// request, ledger errors.
    pub fn record_override(
        &self,
        override_json: &[u8],
        wait_for_checkpoint: bool,
    ) -> Result<RecordedOverride, OverrideError> {
        let request = OverrideRequest::from_json(override_json)?;
        let key = request.idempotency_key.clone();
        if let Some(original) = self.retried_override(&key, &request, wait_for_checkpoint)? {
            return Ok(original);
        }
        let decision = self.decision(&DecisionRef::Id(request.decision.clone()), false)?;
        let bundle = self.bundle_at(decision.bundle_index)?;
        let outcome = evaluate_override(&bundle.compiled, &decision.record, &request);
        let promotion = if outcome.status == OverrideStatus::Granted {
            PromotionFacts::of(&decision.record.request, &decision.id)
        } else {
            None
        };
        let entry = OverrideEntry {
            bundle_index: decision.bundle_index,
            decision_index: decision.index,
            request,
            outcome,
            promotion,
        };
        let draft = EntryDraft::new(
            EntryKind::Override,
            Some(key.clone()),
            record::OVERRIDE_CONTENT_TYPE.to_owned(),
            entry.to_json(),
        )
        .map_err(OverrideError::InvalidKey)?;
        let (receipt, checkpoint) = match self.append(draft, wait_for_checkpoint) {
            Ok(r) => r,
            Err(AppendError::IdempotencyConflict { index, .. }) => {
                return match self.retried_override(&key, &entry.request, wait_for_checkpoint)? {
                    Some(original) => Ok(original),
                    None => Err(OverrideError::KeyConflict { key, index }),
                };
            }
            Err(e) => return Err(e.into()),
        };
        let proof = if wait_for_checkpoint {
            self.prove(receipt.index, checkpoint)?
        } else {
            None
        };
        Ok(RecordedOverride {
            index: receipt.index,
            receipt,
            decision: decision.id,
            entry,
            duplicate: receipt.duplicate,
            proof,
        })
    }

    /// The override recorded under `key`, if `request` is a retry of it.
    fn retried_override(
        &self,
        key: &str,
        request: &OverrideRequest,
        wait_for_checkpoint: bool,
    ) -> Result<Option<RecordedOverride>, OverrideError> {
        let Some(index) = self.ledger.find_by_idempotency_key(key)? else {
            return Ok(None);
        };
        let stored = self.entry(index)?;
        let conflict = || OverrideError::KeyConflict {
            key: key.to_owned(),
            index,
        };
        if stored.kind != EntryKind::Override {
            return Err(conflict());
        }
        let entry = OverrideEntry::from_json(&stored.payload).map_err(|_| conflict())?;
        if entry.request != *request {
            return Err(conflict());
        }
        let receipt = self.receipt_of(index, stored.timestamp)?;
        let proof = if wait_for_checkpoint {
            self.prove_waiting(index)?
        } else {
            None
        };
        Ok(Some(RecordedOverride {
            index,
            receipt,
            decision: entry.outcome.decision.clone(),
            entry,
            duplicate: true,
            proof,
        }))
    }

    /// Records an exception as an `exception` entry under the key `exception:<id>`, so that
    /// later decisions whose bundle has its policy see it while it is active.
    ///
    /// # Errors
    ///
    /// [`ExceptionError`]: an invalid record, an id recorded before with other contents,
    /// ledger errors.
    pub fn record_exception(
        &self,
        exception_json: &[u8],
        wait_for_checkpoint: bool,
    ) -> Result<RecordedException, ExceptionError> {
        let exception = ExceptionRecord::from_json(exception_json)?;
        let entry = ExceptionEntry { exception };
        let key = ExceptionEntry::idempotency_key(&entry.exception.id);
        let draft = EntryDraft::new(
            EntryKind::Exception,
            Some(key.clone()),
            record::EXCEPTION_CONTENT_TYPE.to_owned(),
            entry.to_json(),
        )
        .map_err(ExceptionError::InvalidId)?;
        let (receipt, checkpoint) = match self.append(draft, wait_for_checkpoint) {
            Ok(r) => r,
            Err(AppendError::IdempotencyConflict { index, .. }) => {
                return Err(ExceptionError::Conflict {
                    id: entry.exception.id,
                    index,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let proof = if wait_for_checkpoint {
            self.prove(receipt.index, checkpoint)?
        } else {
            None
        };
        Ok(RecordedException {
            index: receipt.index,
            receipt,
            exception: entry.exception,
            duplicate: receipt.duplicate,
            proof,
        })
    }

    /// Replays a recorded decision from its stored snapshots: the bundle entry at the
    /// recorded index (recompiled, its hash checked) and the request snapshot. The report
    /// lists every difference; none means the decision is reproduced byte for byte.
    ///
    /// # Errors
    ///
    /// [`ReplayError`]: no such decision, an entry that is not a readable decision, read
    /// errors. A bundle that cannot be read or compiled is a difference, not an error.
    pub fn replay(&self, which: &DecisionRef) -> Result<ReplayReport, ReplayError> {
        let index = self
            .find_decision(which)?
            .ok_or_else(|| ReplayError::NotFound(which.clone()))?;
        let entry = self.entry(index)?;
        if entry.kind != EntryKind::Decision {
            return Err(InvalidEntry::Kind {
                index,
                expected: EntryKind::Decision,
                found: entry.kind,
            }
            .into());
        }
        let decision = DecisionEntry::from_json(&entry.payload)
            .map_err(|source| InvalidEntry::Payload { index, source })?;
        let payload = self.bundle_payload(decision.bundle_index)?;
        // A bundle compiled before from the very same entry bytes is reused: compiling is
        // deterministic, so this is the same as compiling them again.
        let cached = lock(&self.bundles).get(&decision.bundle_index.0).cloned();
        if let (Ok(bytes), Some(cached)) = (&payload, cached)
            && cached.entry.to_json() == *bytes
        {
            return Ok(replay::replay_with(
                index,
                &decision,
                Ok((&cached.entry, &cached.compiled)),
            ));
        }
        Ok(replay::replay(
            index,
            &decision,
            payload.as_deref().map_err(String::as_str),
        ))
    }

    /// The payload of the bundle entry at `index`, or why there is none.
    fn bundle_payload(&self, index: EntryIndex) -> Result<Result<Vec<u8>, String>, ReadError> {
        if !self.ledger.size().contains(index) {
            return Ok(Err(format!("entry {index} does not exist")));
        }
        let entry = self.entry(index)?;
        if entry.kind != EntryKind::Policy {
            return Ok(Err(format!(
                "entry {index} is a {} entry, not a policy entry",
                entry.kind
            )));
        }
        Ok(Ok(entry.payload))
    }

    /// Evaluates the candidate bundle over recorded decisions and reports what would change.
    ///
    /// # Errors
    ///
    /// [`SimulateError`]: a candidate that does not parse or compile, an empty or reversed
    /// range, too many decisions, read errors.
    pub fn simulate(
        &self,
        candidate_text: &str,
        format: Format,
        options: &SimulationOptions,
    ) -> Result<SimulationReport, SimulateError> {
        let source = SourceBundle::parse(candidate_text, format)?;
        let candidate = compile(&source)?;
        simulation::simulate(&self.ledger, &candidate, options, &self.simulation)
    }

    /// Evaluates an already compiled candidate over recorded decisions.
    ///
    /// # Errors
    ///
    /// As [`Governance::simulate`], without the parse and compile errors.
    pub fn simulate_compiled(
        &self,
        candidate: &CompiledBundle,
        options: &SimulationOptions,
    ) -> Result<SimulationReport, SimulateError> {
        simulation::simulate(&self.ledger, candidate, options, &self.simulation)
    }

    /// Answers a decision query; see [`DecisionQuery`].
    ///
    /// # Errors
    ///
    /// [`QueryError`]: a reversed time range, read or proof errors.
    pub fn query(&self, query: &DecisionQuery) -> Result<DecisionPage, QueryError> {
        search::query(&self.ledger, query)
    }
}

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn governance_is_shared_between_threads() {
        assert_send_sync::<super::Governance>();
        assert_send_sync::<super::PublishedBundle>();
    }
}
