//! Exporting a recorded decision as a proof pack (`vouch.proof-pack.v1`, see
//! [`crate::pack`]).
//!
//! The pack holds the decision entry, the bundle entry it names, the exception entries of its
//! snapshot's `context.exceptions` (each found by its key `exception:<id>` and checked to
//! record that very exception before the decision), and the override entries recorded for the
//! decision within the pack's checkpoint. Every entry is proven against one signed checkpoint:
//! by default the latest, signed on the spot when it does not cover every entry yet; or, when
//! the caller names a size, the checkpoint signed at exactly that size. The latest checkpoint
//! and the consistency proof to it come along. Before it is returned, the pack is verified
//! with the ledger's own keys, so a pack that would not verify is never handed out.

use std::sync::Arc;

use vouch_ledger_core::entry::EntryKind;
use vouch_ledger_core::note::{Verifier, Verifiers};
use vouch_ledger_core::{EntryIndex, TreeSize};
use vouch_storage::{CheckpointError, ProveError, ReadError, StoredCheckpoint};

use super::error::{DecisionRef, GetDecisionError, InvalidEntry};
use super::record::{ExceptionEntry, OverrideEntry};
use super::{Governance, search};
use crate::pack::{
    CheckFailure, MAX_PACK_BYTES, MAX_PACK_OVERRIDES, PackEntry, ProofPack, VerifiedPack, verify,
};

/// Why a proof pack could not be exported (`ExportProofPack`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportPackError {
    /// No decision has that id, or no decision entry is at that index.
    #[error("no {0} is recorded in this ledger")]
    NotFound(DecisionRef),
    /// An entry of the decision cannot be read as its record (written around the policy
    /// layer).
    #[error(transparent)]
    Invalid(#[from] InvalidEntry),
    /// An exception of the decision's context is not recorded as the context holds it.
    #[error("the decision's context holds exception {id}, but {reason}")]
    ContextException {
        /// The exception id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The requested anchor size is beyond the ledger.
    #[error("tree_size {requested} is beyond the ledger's size {size}")]
    SizeBeyondLedger {
        /// The size asked for.
        requested: TreeSize,
        /// The ledger's size.
        size: TreeSize,
    },
    /// No checkpoint was signed at exactly the requested size.
    #[error(
        "no checkpoint was signed at exactly tree size {0}; ask for 0 (the latest) or a size a checkpoint has"
    )]
    NoCheckpointAt(TreeSize),
    /// The requested checkpoint does not cover the decision.
    #[error("the checkpoint of tree size {size} does not cover the decision (entry {decision})")]
    CheckpointTooOld {
        /// The checkpoint's size.
        size: TreeSize,
        /// The decision entry's index.
        decision: EntryIndex,
    },
    /// More overrides than a pack holds.
    #[error("the decision has {count} overrides; a proof pack holds at most {max}")]
    TooManyOverrides {
        /// How many were recorded.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The document would be larger than a pack may be.
    #[error("the proof pack would be {size} bytes; a proof pack is at most {max} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The assembled pack does not verify with the ledger's own keys.
    #[error("the assembled proof pack does not verify: {0}")]
    SelfCheck(CheckFailure),
    /// A checkpoint could not be signed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The ledger could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A proof could not be made.
    #[error(transparent)]
    Prove(#[from] ProveError),
}

/// An exported pack, with what verifying it established.
#[derive(Debug)]
pub struct ExportedPack {
    /// The pack.
    pub pack: ProofPack,
    /// The pack verified with the ledger's keys: the decision, its overrides and exceptions,
    /// both checkpoints.
    pub verified: VerifiedPack,
}

impl Governance {
    /// Exports a recorded decision as a proof pack; see the module documentation. With
    /// `anchor`, the pack's checkpoint is the one signed at exactly that size, and only the
    /// overrides recorded before it are included; without, it is the latest checkpoint,
    /// signed now if it does not cover every entry.
    ///
    /// # Errors
    ///
    /// [`ExportPackError`]: no such decision, an unusable anchor, entries that are not
    /// readable as their records, more overrides or bytes than a pack holds, ledger errors.
    pub fn export_pack(
        &self,
        which: &DecisionRef,
        anchor: Option<TreeSize>,
    ) -> Result<ExportedPack, ExportPackError> {
        let ledger = &self.ledger;
        let index = self
            .find_decision(which)?
            .ok_or_else(|| ExportPackError::NotFound(which.clone()))?;
        let decision = match search::read_decision(ledger, index, None) {
            Ok(d) => d,
            Err(GetDecisionError::Invalid(InvalidEntry::Kind { .. })) => {
                return Err(ExportPackError::NotFound(which.clone()));
            }
            Err(GetDecisionError::Invalid(e)) => return Err(e.into()),
            Err(GetDecisionError::Read(e)) => return Err(e.into()),
            Err(GetDecisionError::Prove(e)) => return Err(e.into()),
            Err(GetDecisionError::NotFound(r)) => return Err(ExportPackError::NotFound(r)),
        };
        if let DecisionRef::Id(id) = which
            && decision.id != *id
        {
            return Err(ExportPackError::NotFound(which.clone()));
        }

        // The anchor, and the overrides it covers.
        let explicit = match anchor {
            None => None,
            Some(size) => {
                if size > ledger.size() {
                    return Err(ExportPackError::SizeBeyondLedger {
                        requested: size,
                        size: ledger.size(),
                    });
                }
                let cp = ledger
                    .checkpoint_at(size)?
                    .ok_or(ExportPackError::NoCheckpointAt(size))?;
                if !cp.size().contains(index) {
                    return Err(ExportPackError::CheckpointTooOld {
                        size,
                        decision: index,
                    });
                }
                Some(Arc::new(cp))
            }
        };
        let mut overrides = Vec::new();
        for o in &decision.overrides {
            if explicit
                .as_ref()
                .is_some_and(|cp| !cp.size().contains(o.index))
            {
                continue;
            }
            let entry = ledger.get(o.index)?;
            let recorded = OverrideEntry::from_json(&entry.payload).map_err(|source| {
                InvalidEntry::Payload {
                    index: o.index,
                    source,
                }
            })?;
            // The same record can be decided twice under two client keys; an override
            // belongs to the entry it names.
            if recorded.decision_index == index {
                overrides.push(o.index);
            }
        }
        if overrides.len() > MAX_PACK_OVERRIDES {
            return Err(ExportPackError::TooManyOverrides {
                count: overrides.len(),
                max: MAX_PACK_OVERRIDES,
            });
        }
        let last = overrides.last().copied().unwrap_or(index);
        let checkpoint = match explicit {
            Some(cp) => cp,
            None => match ledger.latest_checkpoint() {
                Some(cp) if cp.size().contains(last) => cp,
                _ => ledger.checkpoint_now()?,
            },
        };
        let latest = match ledger.latest_checkpoint() {
            Some(cp) if cp.size() >= checkpoint.size() => cp,
            _ => checkpoint.clone(),
        };

        // The exceptions of the snapshot's context, each the first record of its id.
        let mut exceptions = Vec::new();
        for e in &decision.record.request.context().exceptions {
            let key = ExceptionEntry::idempotency_key(&e.id);
            let missing = |reason: String| ExportPackError::ContextException {
                id: e.id.clone(),
                reason,
            };
            let at = ledger
                .find_by_idempotency_key(&key)?
                .ok_or_else(|| missing(format!("no entry holds the key {key}")))?;
            if at >= index {
                return Err(missing(format!(
                    "its entry {at} is not before the decision (entry {index})"
                )));
            }
            let entry = ledger.get(at)?;
            let recorded = (entry.kind == EntryKind::Exception)
                .then(|| ExceptionEntry::from_json(&entry.payload).ok())
                .flatten();
            if recorded.is_none_or(|r| r.exception.canonical_json() != e.canonical_json()) {
                return Err(missing(format!(
                    "entry {at} does not record it as the context holds it"
                )));
            }
            exceptions.push(at);
        }
        exceptions.sort_unstable();

        let size = checkpoint.size();
        let pack_entry = |at: EntryIndex| -> Result<PackEntry, ExportPackError> {
            let leaf_bytes = ledger.get_raw(at)?;
            Ok(PackEntry {
                index: at,
                leaf_hash: ledger.hash_alg().leaf_hash(&leaf_bytes),
                leaf_bytes,
                inclusion_path: ledger.inclusion_proof(at, size)?.path,
            })
        };
        let consistency_path = if latest.size() == size {
            Vec::new()
        } else {
            ledger.consistency_proof(size, latest.size())?.path
        };
        let note = |cp: &StoredCheckpoint| String::from_utf8_lossy(&cp.note).into_owned();
        let pack = ProofPack {
            origin: checkpoint.checkpoint.origin.clone(),
            hash: ledger.hash_alg(),
            decision_id: decision.id.clone(),
            request: decision.record.request.canonical_json(),
            decision: pack_entry(index)?,
            bundle: pack_entry(decision.bundle_index)?,
            exceptions: exceptions
                .iter()
                .map(|&i| pack_entry(i))
                .collect::<Result<_, _>>()?,
            overrides: overrides
                .iter()
                .map(|&i| pack_entry(i))
                .collect::<Result<_, _>>()?,
            checkpoint: note(&checkpoint),
            latest_checkpoint: note(&latest),
            consistency_path,
            verifier_keys: signing_keys(ledger.verifiers(), &[&checkpoint, &latest]),
        };
        let size = pack.to_json().len();
        if size > MAX_PACK_BYTES {
            return Err(ExportPackError::TooLarge {
                size,
                max: MAX_PACK_BYTES,
            });
        }
        let verified =
            verify(&pack, ledger.verifiers(), None).map_err(ExportPackError::SelfCheck)?;
        Ok(ExportedPack { pack, verified })
    }
}

/// The ledger's keys that signed one of the checkpoints, oldest first.
fn signing_keys(keys: &Verifiers, checkpoints: &[&StoredCheckpoint]) -> Vec<Verifier> {
    keys.iter()
        .filter(|key| {
            let mut one = Verifiers::new();
            one.insert((*key).clone());
            checkpoints
                .iter()
                .any(|cp| vouch_ledger_core::note::open(&cp.note, &one).is_ok())
        })
        .cloned()
        .collect()
}
