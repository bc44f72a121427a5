//! Offline verification of a proof pack, check by check.
//!
//! [`verify`] runs the checks of `docs/proofs.md` ("Proof packs") in order and stops at the
//! first that fails. Trust comes only from the verifier keys the caller passes: the pack's own
//! `verifier_keys` are checked for consistency with the notes (every signature on them is by a
//! listed key, every listed key signed one of them) and reported, never used to accept a note.

use std::collections::BTreeSet;
use std::fmt;

use vouch_ledger_core::checkpoint::{Checkpoint, OpenCheckpointError, open_checkpoint};
use vouch_ledger_core::entry::{EntryKind, EntryView, Timestamp};
use vouch_ledger_core::note::{self, NoteError, Verifiers};
use vouch_ledger_core::proof::{
    ConsistencyProof, InclusionProof, verify_consistency, verify_inclusion,
};
use vouch_ledger_core::{EntryIndex, HashAlg};

use super::{PackEntry, ProofPack};
use crate::bundle::SourceBundle;
use crate::canonical;
use crate::compiler::{CompiledBundle, compile};
use crate::decision::DecisionRecord;
use crate::governance::record::{
    BUNDLE_CONTENT_TYPE, BundleEntry, DECISION_CONTENT_TYPE, DecisionEntry, EXCEPTION_CONTENT_TYPE,
    ExceptionEntry, OVERRIDE_CONTENT_TYPE, OverrideEntry, PromotionFacts,
};
use crate::governance::replay::replay_with;
use crate::overrides::{OverrideOutcome, OverrideStatus, evaluate_override};

/// A check of [`verify`], in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PackCheck {
    /// The pack's checkpoint note opens with the trusted keys.
    Checkpoint,
    /// The latest checkpoint note opens with the trusted keys.
    LatestCheckpoint,
    /// Both notes name the pack's origin (and the expected one, when given).
    Origin,
    /// The listed verifier keys are the keys that signed the two notes.
    VerifierKeys,
    /// The consistency proof from the pack's checkpoint to the latest one.
    Consistency,
    /// An entry's bytes hash to its leaf hash and are a valid envelope of the expected kind at
    /// its index.
    Leaf,
    /// An entry's inclusion proof leads to the signed root.
    Inclusion,
    /// The decision entry holds a canonical record that hashes to the decision id.
    DecisionRecord,
    /// The pack's `request` is the snapshot inside the decision record.
    Request,
    /// The bundle entry is the one the decision names, and compiles to the recorded hash.
    Bundle,
    /// An exception entry is one of the decision's context, recorded before it; every
    /// exception of the context has an entry.
    Exception,
    /// An override entry names this decision and its bundle, and evaluates to its recorded
    /// outcome again.
    Override,
    /// The decision, replayed with the bundle, gives the recorded evaluation byte for byte.
    Replay,
}

impl PackCheck {
    /// The check's stable kebab-case name, as reports print it.
    pub const fn name(self) -> &'static str {
        match self {
            PackCheck::Checkpoint => "checkpoint",
            PackCheck::LatestCheckpoint => "latest-checkpoint",
            PackCheck::Origin => "origin",
            PackCheck::VerifierKeys => "verifier-keys",
            PackCheck::Consistency => "consistency",
            PackCheck::Leaf => "leaf",
            PackCheck::Inclusion => "inclusion",
            PackCheck::DecisionRecord => "decision-record",
            PackCheck::Request => "request",
            PackCheck::Bundle => "bundle",
            PackCheck::Exception => "exception",
            PackCheck::Override => "override",
            PackCheck::Replay => "replay",
        }
    }
}

impl fmt::Display for PackCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A check that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Which check.
    pub check: PackCheck,
    /// The entry it is about (`decision`, `bundle`, `exceptions[0]`, `overrides[1]`), if any.
    pub subject: Option<String>,
    /// What was established, in words.
    pub detail: String,
}

/// The check that failed, the entry it was about, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check}: {}{reason}", subject_prefix(.subject.as_deref()))]
pub struct CheckFailure {
    /// Which check failed.
    pub check: PackCheck,
    /// The entry or member it was about, if any.
    pub subject: Option<String>,
    /// Why, in words.
    pub reason: String,
}

fn subject_prefix(subject: Option<&str>) -> String {
    subject.map_or_else(String::new, |s| format!("{s}: "))
}

fn fail(check: PackCheck, subject: Option<&str>, reason: impl Into<String>) -> CheckFailure {
    CheckFailure {
        check,
        subject: subject.map(str::to_owned),
        reason: reason.into(),
    }
}

/// A checkpoint note that opened with the trusted keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The trusted keys that signed it, as `name+keyid`.
    pub signed_by: Vec<String>,
}

/// An override of the decision, as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedOverride {
    /// The override entry's index.
    pub index: EntryIndex,
    /// When it was recorded.
    pub timestamp: Timestamp,
    /// Its outcome: granted or denied, reproduced by evaluating its request again.
    pub outcome: OverrideOutcome,
}

/// What a successful verification established.
#[derive(Debug, Clone)]
pub struct VerifiedPack {
    /// Every check that passed, in order.
    pub checks: Vec<Check>,
    /// The checkpoint every inclusion proof leads to.
    pub checkpoint: SignedCheckpoint,
    /// The latest checkpoint, consistent with it.
    pub latest: SignedCheckpoint,
    /// The decision entry's index.
    pub decision_index: EntryIndex,
    /// When the ledger recorded the decision.
    pub decision_timestamp: Timestamp,
    /// The decision id.
    pub decision_id: String,
    /// The decision record: bundle hash, request snapshot, evaluation.
    pub record: DecisionRecord,
    /// The bundle entry's index.
    pub bundle_index: EntryIndex,
    /// The bundle's name.
    pub bundle_name: String,
    /// The exception entries, with their ids.
    pub exceptions: Vec<(EntryIndex, String)>,
    /// The overrides.
    pub overrides: Vec<VerifiedOverride>,
}

/// "1 path hash", "3 path hashes".
fn hashes(n: usize) -> String {
    if n == 1 {
        "1 path hash".to_owned()
    } else {
        format!("{n} path hashes")
    }
}

fn open_trusted(
    check: PackCheck,
    note: &str,
    trusted: &Verifiers,
) -> Result<SignedCheckpoint, CheckFailure> {
    match open_checkpoint(note.as_bytes(), trusted) {
        Ok((checkpoint, verified)) => Ok(SignedCheckpoint {
            checkpoint,
            signed_by: verified
                .verified()
                .iter()
                .map(|s| format!("{}+{}", s.name, s.key_id))
                .collect(),
        }),
        Err(e) => {
            let hint = match &e {
                OpenCheckpointError::Note(NoteError::UnverifiedNote { unverified }) => format!(
                    " (signed by {}, which no trusted verifier key names)",
                    unverified
                        .iter()
                        .map(|s| format!("{}+{}", s.name, s.key_id))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => String::new(),
            };
            Err(fail(check, None, format!("{e}{hint}")))
        }
    }
}

fn checkpoint_detail(cp: &SignedCheckpoint) -> String {
    format!(
        "signature by {} verified: origin {}, tree size {}, root {}",
        cp.signed_by.join(", "),
        cp.checkpoint.origin,
        cp.checkpoint.size,
        cp.checkpoint.root
    )
}

/// "a decision entry", "an override entry".
fn a_kind(kind: EntryKind) -> String {
    let name = kind.name();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name} entry")
}

/// An entry that passed the leaf check: its envelope, read.
struct Leaf<'a> {
    view: EntryView<'a>,
}

/// The `leaf` check of one entry: its bytes hash to its leaf hash and are a valid envelope of
/// `kind` with `content_type` at its index.
fn check_leaf<'a>(
    alg: HashAlg,
    subject: &str,
    entry: &'a PackEntry,
    kind: EntryKind,
    content_type: &str,
    checks: &mut Vec<Check>,
) -> Result<Leaf<'a>, CheckFailure> {
    let failed = |reason: String| fail(PackCheck::Leaf, Some(subject), reason);
    let computed = alg.leaf_hash(&entry.leaf_bytes);
    if computed != entry.leaf_hash {
        return Err(failed(format!(
            "the leaf bytes hash to {computed}, not to the leaf hash {} ({alg})",
            entry.leaf_hash
        )));
    }
    let view = EntryView::parse(&entry.leaf_bytes)
        .map_err(|e| failed(format!("not a valid entry envelope: {e}")))?;
    if view.index() != entry.index {
        return Err(failed(format!(
            "the envelope is entry {}, not entry {}",
            view.index(),
            entry.index
        )));
    }
    if view.kind() != kind {
        return Err(failed(format!(
            "entry {} is {}, not {}",
            entry.index,
            a_kind(view.kind()),
            a_kind(kind)
        )));
    }
    if view.content_type() != content_type {
        return Err(failed(format!(
            "entry {} has content type {:?}, not {content_type:?}",
            entry.index,
            view.content_type()
        )));
    }
    checks.push(Check {
        check: PackCheck::Leaf,
        subject: Some(subject.to_owned()),
        detail: format!(
            "{} bytes hash to the leaf hash {}: {}, index {}, recorded {}",
            entry.leaf_bytes.len(),
            entry.leaf_hash,
            a_kind(kind),
            entry.index,
            view.timestamp()
        ),
    });
    Ok(Leaf { view })
}

/// The `inclusion` check of one entry against the pack's checkpoint.
fn check_inclusion(
    alg: HashAlg,
    subject: &str,
    entry: &PackEntry,
    anchor: &Checkpoint,
    checks: &mut Vec<Check>,
) -> Result<(), CheckFailure> {
    let proof = InclusionProof {
        index: entry.index,
        size: anchor.size,
        path: entry.inclusion_path.clone(),
    };
    verify_inclusion(alg, &entry.leaf_hash, &proof, &anchor.root)
        .map_err(|e| fail(PackCheck::Inclusion, Some(subject), e.to_string()))?;
    checks.push(Check {
        check: PackCheck::Inclusion,
        subject: Some(subject.to_owned()),
        detail: format!(
            "entry {} is in the tree of size {} with the signed root ({})",
            entry.index,
            anchor.size,
            hashes(entry.inclusion_path.len())
        ),
    });
    Ok(())
}

/// Both checks of one entry.
fn check_entry<'a>(
    alg: HashAlg,
    subject: &str,
    entry: &'a PackEntry,
    kind: EntryKind,
    content_type: &str,
    anchor: &Checkpoint,
    checks: &mut Vec<Check>,
) -> Result<Leaf<'a>, CheckFailure> {
    let leaf = check_leaf(alg, subject, entry, kind, content_type, checks)?;
    check_inclusion(alg, subject, entry, anchor, checks)?;
    Ok(leaf)
}

/// The `verifier-keys` check: every signature on both notes is by a listed key and verifies
/// with it, and every listed key signed one of them. This checks the list against the notes;
/// it makes no key trusted.
fn check_verifier_keys(
    pack: &ProofPack,
    trusted: &Verifiers,
    checks: &mut Vec<Check>,
) -> Result<(), CheckFailure> {
    let mut listed = Verifiers::new();
    for v in &pack.verifier_keys {
        listed.insert(v.clone());
    }
    let mut signed = vec![false; pack.verifier_keys.len()];
    for (member, text) in [
        ("checkpoint", &pack.checkpoint),
        ("latest_checkpoint", &pack.latest_checkpoint),
    ] {
        let opened = note::open(text.as_bytes(), &listed).map_err(|e| {
            fail(
                PackCheck::VerifierKeys,
                Some(member),
                format!("the note does not open with the listed keys: {e}"),
            )
        })?;
        if let Some(s) = opened.unverified().first() {
            return Err(fail(
                PackCheck::VerifierKeys,
                Some(member),
                format!(
                    "the note carries a signature by {}+{}, which verifier_keys does not list",
                    s.name, s.key_id
                ),
            ));
        }
        for (i, v) in pack.verifier_keys.iter().enumerate() {
            if opened.is_verified_by(v.name(), v.key_id())
                && let Some(flag) = signed.get_mut(i)
            {
                *flag = true;
            }
        }
    }
    if let Some(i) = signed.iter().position(|s| !s) {
        let key = pack
            .verifier_keys
            .get(i)
            .map_or_else(String::new, |v| format!("{}+{}", v.name(), v.key_id()));
        return Err(fail(
            PackCheck::VerifierKeys,
            Some(&format!("verifier_keys[{i}]")),
            format!("the key {key} signed neither checkpoint"),
        ));
    }
    let described: Vec<String> = pack
        .verifier_keys
        .iter()
        .map(|v| {
            let is_trusted = trusted.iter().any(|t| t == v);
            format!(
                "{}+{}{}",
                v.name(),
                v.key_id(),
                if is_trusted {
                    " (trusted)"
                } else {
                    " (not among the keys you trust; ignored)"
                }
            )
        })
        .collect();
    checks.push(Check {
        check: PackCheck::VerifierKeys,
        subject: None,
        detail: format!(
            "every signature on both notes is by a listed key: {}",
            described.join(", ")
        ),
    });
    Ok(())
}

/// Compiles a bundle entry's source, checking it against the entry's and the decision's hash.
fn check_bundle(
    pack: &ProofPack,
    payload: &[u8],
    decision: &DecisionEntry,
    checks: &mut Vec<Check>,
) -> Result<(BundleEntry, CompiledBundle), CheckFailure> {
    let failed = |reason: String| fail(PackCheck::Bundle, Some("bundle"), reason);
    if pack.bundle.index != decision.bundle_index {
        return Err(failed(format!(
            "the decision was made with the bundle entry {}, but the pack's bundle is entry {}",
            decision.bundle_index, pack.bundle.index
        )));
    }
    if pack.bundle.index >= pack.decision.index {
        return Err(failed(format!(
            "entry {} is not before the decision (entry {})",
            pack.bundle.index, pack.decision.index
        )));
    }
    let entry = BundleEntry::from_json(payload)
        .map_err(|e| failed(format!("the payload is not a bundle record: {e}")))?;
    let source = SourceBundle::parse(&entry.source, entry.format)
        .map_err(|e| failed(format!("the bundle source does not parse: {e}")))?;
    let compiled =
        compile(&source).map_err(|e| failed(format!("the bundle does not compile: {e}")))?;
    if compiled.hash() != entry.hash {
        return Err(failed(format!(
            "the bundle entry says hash {}, but its source compiles to {}",
            entry.hash,
            compiled.hash()
        )));
    }
    if entry.hash != decision.record.bundle {
        return Err(failed(format!(
            "the decision was made with bundle {}, not with {}",
            decision.record.bundle, entry.hash
        )));
    }
    checks.push(Check {
        check: PackCheck::Bundle,
        subject: Some("bundle".into()),
        detail: format!(
            "entry {} is the bundle the decision names: {} ({}), its source compiles to that hash",
            pack.bundle.index, entry.name, entry.hash
        ),
    });
    Ok((entry, compiled))
}

/// The `exception` checks: each entry is an exception of the decision's context, recorded
/// before the decision, and each exception of the context has an entry.
fn check_exceptions(
    pack: &ProofPack,
    payloads: &[&[u8]],
    record: &DecisionRecord,
    checks: &mut Vec<Check>,
) -> Result<Vec<(EntryIndex, String)>, CheckFailure> {
    let context = &record.request.context().exceptions;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, (entry, payload)) in pack.exceptions.iter().zip(payloads).enumerate() {
        let subject = format!("exceptions[{i}]");
        let failed = |reason: String| fail(PackCheck::Exception, Some(&subject), reason);
        if entry.index >= pack.decision.index {
            return Err(failed(format!(
                "entry {} is not before the decision (entry {}), so the decision cannot have seen it",
                entry.index, pack.decision.index
            )));
        }
        let recorded = ExceptionEntry::from_json(payload)
            .map_err(|e| failed(format!("the payload is not an exception record: {e}")))?;
        let id = recorded.exception.id.clone();
        if !seen.insert(id.clone()) {
            return Err(failed(format!(
                "exception {id} has two entries in the pack"
            )));
        }
        match context.iter().find(|c| c.id == id) {
            None => {
                return Err(failed(format!(
                    "exception {id} is not in the decision's context.exceptions"
                )));
            }
            Some(c) if c.canonical_json() != recorded.exception.canonical_json() => {
                return Err(failed(format!(
                    "entry {} records exception {id} differently from the decision's context",
                    entry.index
                )));
            }
            Some(_) => {}
        }
        checks.push(Check {
            check: PackCheck::Exception,
            subject: Some(subject.clone()),
            detail: format!(
                "entry {} records exception {id} (policy {}) exactly as the decision's context holds it",
                entry.index, recorded.exception.policy
            ),
        });
        out.push((entry.index, id));
    }
    if let Some(missing) = context.iter().find(|c| !seen.contains(&c.id)) {
        return Err(fail(
            PackCheck::Exception,
            Some("exceptions"),
            format!(
                "the decision's context holds exception {}, but the pack has no entry for it",
                missing.id
            ),
        ));
    }
    Ok(out)
}

/// The `override` checks of every override entry.
fn check_overrides(
    pack: &ProofPack,
    leaves: &[Leaf<'_>],
    decision: &DecisionEntry,
    compiled: &CompiledBundle,
    checks: &mut Vec<Check>,
) -> Result<Vec<VerifiedOverride>, CheckFailure> {
    let mut out = Vec::new();
    for (i, (entry, leaf)) in pack.overrides.iter().zip(leaves).enumerate() {
        let subject = format!("overrides[{i}]");
        let failed = |reason: String| fail(PackCheck::Override, Some(&subject), reason);
        if entry.index <= pack.decision.index {
            return Err(failed(format!(
                "entry {} is not after the decision (entry {})",
                entry.index, pack.decision.index
            )));
        }
        let recorded = OverrideEntry::from_json(leaf.view.payload())
            .map_err(|e| failed(format!("the payload is not an override record: {e}")))?;
        if recorded.outcome.decision != decision.id || recorded.request.decision != decision.id {
            return Err(failed(format!(
                "it overrides decision {}, not {}",
                recorded.request.decision, decision.id
            )));
        }
        if recorded.decision_index != pack.decision.index {
            return Err(failed(format!(
                "it names the decision entry {}, not entry {}",
                recorded.decision_index, pack.decision.index
            )));
        }
        if recorded.bundle_index != pack.bundle.index {
            return Err(failed(format!(
                "it names the bundle entry {}, not entry {}",
                recorded.bundle_index, pack.bundle.index
            )));
        }
        let replayed = evaluate_override(compiled, &decision.record, &recorded.request);
        if replayed.canonical_json() != recorded.outcome.canonical_json() {
            return Err(failed(format!(
                "evaluating the override request again gives {}, not the recorded outcome {}",
                String::from_utf8_lossy(&replayed.canonical_json()),
                String::from_utf8_lossy(&recorded.outcome.canonical_json())
            )));
        }
        let promotion = if recorded.outcome.status == OverrideStatus::Granted {
            PromotionFacts::of(&decision.record.request, &decision.id)
        } else {
            None
        };
        if promotion != recorded.promotion {
            return Err(failed(
                "the recorded promotion is not the one the granted override lets through".into(),
            ));
        }
        let status = match recorded.outcome.status {
            OverrideStatus::Granted => format!(
                "granted by {}{}",
                recorded.outcome.approver,
                recorded
                    .outcome
                    .expires_at
                    .map_or_else(String::new, |t| format!(" until {t}"))
            ),
            OverrideStatus::Denied => {
                format!("denied ({} reasons)", recorded.outcome.reasons.len())
            }
        };
        checks.push(Check {
            check: PackCheck::Override,
            subject: Some(subject.clone()),
            detail: format!(
                "entry {} overrides this decision: {status}; evaluating its request again gives the same outcome",
                entry.index
            ),
        });
        out.push(VerifiedOverride {
            index: entry.index,
            timestamp: leaf.view.timestamp(),
            outcome: recorded.outcome,
        });
    }
    Ok(out)
}

/// Verifies a proof pack offline against the verifier keys the caller trusts, and, when
/// `expected_origin` is given, that it is a pack of that ledger. The checks run in the order
/// of [`PackCheck`]; entries are checked in the order decision, bundle, exceptions,
/// overrides.
///
/// # Errors
///
/// [`CheckFailure`] naming the first check that failed, the entry it was about, and why.
pub fn verify(
    pack: &ProofPack,
    trusted: &Verifiers,
    expected_origin: Option<&str>,
) -> Result<VerifiedPack, CheckFailure> {
    let alg = pack.hash;
    let mut checks = Vec::new();

    let anchor = open_trusted(PackCheck::Checkpoint, &pack.checkpoint, trusted)?;
    checks.push(Check {
        check: PackCheck::Checkpoint,
        subject: None,
        detail: checkpoint_detail(&anchor),
    });
    let latest = open_trusted(
        PackCheck::LatestCheckpoint,
        &pack.latest_checkpoint,
        trusted,
    )?;
    checks.push(Check {
        check: PackCheck::LatestCheckpoint,
        subject: None,
        detail: checkpoint_detail(&latest),
    });

    for (member, cp) in [("checkpoint", &anchor), ("latest_checkpoint", &latest)] {
        if cp.checkpoint.origin != pack.origin {
            return Err(fail(
                PackCheck::Origin,
                Some(member),
                format!(
                    "the signed origin is {:?}, but the pack says {:?}",
                    cp.checkpoint.origin, pack.origin
                ),
            ));
        }
    }
    if let Some(expected) = expected_origin
        && expected != pack.origin
    {
        return Err(fail(
            PackCheck::Origin,
            None,
            format!(
                "the pack is from the ledger {:?}, not from {expected:?}",
                pack.origin
            ),
        ));
    }
    checks.push(Check {
        check: PackCheck::Origin,
        subject: None,
        detail: format!(
            "both checkpoints are of {}{}",
            pack.origin,
            if expected_origin.is_some() {
                ", the expected ledger"
            } else {
                ""
            }
        ),
    });

    check_verifier_keys(pack, trusted, &mut checks)?;

    let proof = ConsistencyProof {
        old_size: anchor.checkpoint.size,
        new_size: latest.checkpoint.size,
        path: pack.consistency_path.clone(),
    };
    verify_consistency(
        alg,
        &proof,
        &anchor.checkpoint.root,
        &latest.checkpoint.root,
    )
    .map_err(|e| fail(PackCheck::Consistency, None, e.to_string()))?;
    checks.push(Check {
        check: PackCheck::Consistency,
        subject: None,
        detail: format!(
            "the tree of size {} is a prefix of the tree of size {} ({}, {alg})",
            anchor.checkpoint.size,
            latest.checkpoint.size,
            hashes(pack.consistency_path.len())
        ),
    });

    let cp = &anchor.checkpoint;
    let decision_leaf = check_entry(
        alg,
        "decision",
        &pack.decision,
        EntryKind::Decision,
        DECISION_CONTENT_TYPE,
        cp,
        &mut checks,
    )?;
    let bundle_leaf = check_entry(
        alg,
        "bundle",
        &pack.bundle,
        EntryKind::Policy,
        BUNDLE_CONTENT_TYPE,
        cp,
        &mut checks,
    )?;
    let mut exception_leaves = Vec::with_capacity(pack.exceptions.len());
    for (i, e) in pack.exceptions.iter().enumerate() {
        exception_leaves.push(check_entry(
            alg,
            &format!("exceptions[{i}]"),
            e,
            EntryKind::Exception,
            EXCEPTION_CONTENT_TYPE,
            cp,
            &mut checks,
        )?);
    }
    let mut override_leaves = Vec::with_capacity(pack.overrides.len());
    for (i, e) in pack.overrides.iter().enumerate() {
        override_leaves.push(check_entry(
            alg,
            &format!("overrides[{i}]"),
            e,
            EntryKind::Override,
            OVERRIDE_CONTENT_TYPE,
            cp,
            &mut checks,
        )?);
    }

    // The decision record and the id it is known by.
    let payload = decision_leaf.view.payload();
    let failed = |reason: String| fail(PackCheck::DecisionRecord, Some("decision"), reason);
    let decision = DecisionEntry::from_json(payload)
        .map_err(|e| failed(format!("the payload is not a decision record: {e}")))?;
    if decision.to_json() != payload {
        return Err(failed("the payload is not in canonical form".into()));
    }
    let record_bytes = DecisionEntry::record_bytes(payload)
        .map_err(|e| failed(format!("the payload is not a decision record: {e}")))?;
    let computed = canonical::sha256_tagged(record_bytes);
    if computed != decision.id {
        return Err(failed(format!(
            "the record hashes to {computed}, not to its stored id {}",
            decision.id
        )));
    }
    if decision.id != pack.decision_id {
        return Err(failed(format!(
            "the entry records decision {}, not the pack's decision_id {}",
            decision.id, pack.decision_id
        )));
    }
    checks.push(Check {
        check: PackCheck::DecisionRecord,
        subject: Some("decision".into()),
        detail: format!(
            "the record ({} bytes, canonical) hashes to the decision id {}",
            record_bytes.len(),
            decision.id
        ),
    });

    let snapshot = decision.record.request.canonical_json();
    if pack.request != snapshot {
        let at = pack
            .request
            .iter()
            .zip(&snapshot)
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| pack.request.len().min(snapshot.len()));
        return Err(fail(
            PackCheck::Request,
            None,
            format!(
                "the pack's request differs from the snapshot in the decision record at byte {at} of its canonical form"
            ),
        ));
    }
    checks.push(Check {
        check: PackCheck::Request,
        subject: None,
        detail: format!(
            "the request is the snapshot inside the record (subject {}, {} canonical bytes), bound to the id by its hash",
            decision.record.request.subject,
            snapshot.len()
        ),
    });

    let (bundle, compiled) =
        check_bundle(pack, bundle_leaf.view.payload(), &decision, &mut checks)?;

    let exception_payloads: Vec<&[u8]> =
        exception_leaves.iter().map(|l| l.view.payload()).collect();
    let exceptions = check_exceptions(pack, &exception_payloads, &decision.record, &mut checks)?;

    let overrides = check_overrides(pack, &override_leaves, &decision, &compiled, &mut checks)?;

    let report = replay_with(pack.decision.index, &decision, Ok((&bundle, &compiled)));
    if let Some(first) = report.differences.first() {
        return Err(fail(
            PackCheck::Replay,
            Some("decision"),
            format!(
                "the decision does not replay identically ({} differences); first: {first}",
                report.differences.len()
            ),
        ));
    }
    let evaluation = &decision.record.evaluation;
    checks.push(Check {
        check: PackCheck::Replay,
        subject: Some("decision".into()),
        detail: format!(
            "evaluating the snapshot with the bundle gives the recorded evaluation byte for byte: {} with {} reasons",
            evaluation.outcome,
            evaluation.reasons.len()
        ),
    });

    Ok(VerifiedPack {
        checks,
        checkpoint: anchor,
        latest,
        decision_index: pack.decision.index,
        decision_timestamp: decision_leaf.view.timestamp(),
        decision_id: decision.id,
        record: decision.record,
        bundle_index: pack.bundle.index,
        bundle_name: bundle.name,
        exceptions,
        overrides,
    })
}
