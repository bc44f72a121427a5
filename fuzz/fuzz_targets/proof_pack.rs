//! Proof packs (`vouch_query::pack`) on hostile bytes, and genuine packs changed member by
//! member.
//!
//! The first byte picks the mode. `0`: the next byte picks one of the genuine packs that
//! `vouch_fuzz::proof_pack` exports from a fixed ledger signed with the fixed log key, and the
//! rest is a list of structural changes applied to it in turn: entries removed, copied over
//! each other, exchanged, moved between the lists or renumbered; a byte of a leaf, a note or
//! the request flipped (the leaf hash recomputed or not), or the request replaced by any
//! text; inclusion and consistency paths cut, lengthened, reordered or emptied; the two notes
//! exchanged or made equal; verifier keys removed, repeated or added; the hash function, the
//! origin or the decision id changed; or a member taken from another genuine pack. Any other
//! first byte: the whole input is a document.
//!
//! What must hold:
//!
//! - `ProofPack::parse` never panics, whatever the bytes;
//! - a parsed pack written back with `to_json` parses to an equal pack (so writing that pack
//!   gives the same text again): `to_json` is canonical for every pack `parse` accepts;
//! - `verify` against the fixed trusted keys (`vouch_fuzz::trusted`) never panics, neither on
//!   parsed packs nor on changed packs that do not parse back; it fails at its first check,
//!   `checkpoint`, exactly when the checkpoint note does not open with those keys;
//! - a verification that succeeds is confirmed independently: both notes open with a trusted
//!   key and name the pack's origin, and the report holds what they say; the consistency path
//!   verifies from the checkpoint's root to the latest one's (`verify_consistency`); every
//!   entry's leaf bytes hash to its leaf hash and are an envelope of its member's kind at its
//!   index, below the checkpoint's size, and its inclusion path verifies against the
//!   checkpoint's root (`verify_inclusion`); the SHA-256 of the decision payload's record bytes
//!   is the decision id, and the record's request snapshot is the pack's `request`; the bundle
//!   and exceptions precede the decision and the overrides follow it; the report names the
//!   pack's entries; and the pack fails the `origin` check when another origin is expected;
//! - a changed genuine pack that verifies (as a document written back and parsed, or as it is
//!   when it does not parse back as itself) is a genuine pack with some overrides left out, or
//!   with its latest checkpoint replaced by its own checkpoint and an empty consistency path:
//!   the changes no signature or hash can detect (a ledger has no proof that an override is
//!   absent, and a pack may stop at its own checkpoint); a pack verified as it is may also hold
//!   its lists out of order or with repeats, which only `parse` refuses. An unchanged genuine
//!   pack verifies.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use vouch_fuzz::proof_pack::{Packs, packs};
use vouch_fuzz::{ByteReader, rotated_signer, trusted, witness_verifier};
use vouch_ledger_core::checkpoint::open_checkpoint;
use vouch_ledger_core::entry::{EntryKind, EntryView};
use vouch_ledger_core::proof::{
    ConsistencyProof, InclusionProof, verify_consistency, verify_inclusion,
};
use vouch_ledger_core::{EntryIndex, HashAlg};
use vouch_query::governance::DecisionEntry;
use vouch_query::pack::{PackCheck, PackEntry, ProofPack, VerifiedPack, verify};

/// The genuine packs, exported once per process.
fn genuine() -> &'static [ProofPack; 3] {
    static PACKS: OnceLock<[ProofPack; 3]> = OnceLock::new();
    PACKS.get_or_init(|| {
        let Packs {
            anchored,
            latest,
            allowed,
        } = packs();
        [anchored, latest, allowed]
    })
}

/// `sha256:` and the lowercase hex SHA-256 of `bytes`, computed here rather than by the crate.
fn sha256_id(bytes: &[u8]) -> String {
    let mut out = String::from("sha256:");
    for b in Sha256::digest(bytes) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The entries of a pack with the kind each member must have.
fn members(pack: &ProofPack) -> Vec<(&PackEntry, EntryKind)> {
    let mut out = vec![
        (&pack.decision, EntryKind::Decision),
        (&pack.bundle, EntryKind::Policy),
    ];
    out.extend(pack.exceptions.iter().map(|e| (e, EntryKind::Exception)));
    out.extend(pack.overrides.iter().map(|e| (e, EntryKind::Override)));
    out
}

/// Checks a successful verification without the verifier's code.
fn confirm(pack: &ProofPack, verified: &VerifiedPack) {
    let keys = trusted();
    let (cp, _) = open_checkpoint(pack.checkpoint.as_bytes(), keys).expect("checkpoint opens");
    let (latest, _) =
        open_checkpoint(pack.latest_checkpoint.as_bytes(), keys).expect("latest opens");
    assert_eq!(verified.checkpoint.checkpoint, cp);
    assert_eq!(verified.latest.checkpoint, latest);
    assert!(!verified.checkpoint.signed_by.is_empty());
    assert!(!verified.latest.signed_by.is_empty());
    assert_eq!(cp.origin, pack.origin);
    assert_eq!(latest.origin, pack.origin);
    let consistency = ConsistencyProof {
        old_size: cp.size,
        new_size: latest.size,
        path: pack.consistency_path.clone(),
    };
    assert_eq!(
        verify_consistency(pack.hash, &consistency, &cp.root, &latest.root),
        Ok(())
    );

    for (entry, kind) in members(pack) {
        assert_eq!(pack.hash.leaf_hash(&entry.leaf_bytes), entry.leaf_hash);
        let view = EntryView::parse(&entry.leaf_bytes).expect("a verified leaf is an envelope");
        assert_eq!(view.index(), entry.index);
        assert_eq!(view.kind(), kind);
        assert!(entry.index.0 < cp.size.0);
        let proof = InclusionProof {
            index: entry.index,
            size: cp.size,
            path: entry.inclusion_path.clone(),
        };
        assert_eq!(
            verify_inclusion(pack.hash, &entry.leaf_hash, &proof, &cp.root),
            Ok(())
        );
    }

    let view = EntryView::parse(&pack.decision.leaf_bytes).expect("decision envelope");
    let record_bytes = DecisionEntry::record_bytes(view.payload()).expect("decision payload");
    assert_eq!(sha256_id(record_bytes), pack.decision_id);
    let decision = DecisionEntry::from_json(view.payload()).expect("decision payload");
    assert_eq!(decision.id, pack.decision_id);
    assert_eq!(decision.record.canonical_json(), record_bytes);
    assert_eq!(decision.record.request.canonical_json(), pack.request);
    assert_eq!(decision.bundle_index, pack.bundle.index);
    assert!(pack.bundle.index < pack.decision.index);
    assert!(
        pack.exceptions
            .iter()
            .all(|e| e.index < pack.decision.index)
    );
    assert!(pack.overrides.iter().all(|e| e.index > pack.decision.index));

    assert_eq!(verified.decision_id, pack.decision_id);
    assert_eq!(verified.record, decision.record);
    assert_eq!(verified.decision_index, pack.decision.index);
    assert_eq!(verified.bundle_index, pack.bundle.index);
    let exceptions: Vec<EntryIndex> = verified.exceptions.iter().map(|(i, _)| *i).collect();
    let listed: Vec<EntryIndex> = pack.exceptions.iter().map(|e| e.index).collect();
    assert_eq!(exceptions, listed);
    let overrides: Vec<EntryIndex> = verified.overrides.iter().map(|o| o.index).collect();
    let listed: Vec<EntryIndex> = pack.overrides.iter().map(|e| e.index).collect();
    assert_eq!(overrides, listed);
    let names: Vec<PackCheck> = verified.checks.iter().map(|c| c.check).collect();
    assert_eq!(
        names[..5],
        [
            PackCheck::Checkpoint,
            PackCheck::LatestCheckpoint,
            PackCheck::Origin,
            PackCheck::VerifierKeys,
            PackCheck::Consistency,
        ]
    );
    assert_eq!(names.last(), Some(&PackCheck::Replay));

    let elsewhere = format!("{}/elsewhere", pack.origin);
    let refused = verify(pack, keys, Some(&elsewhere)).expect_err("another origin is refused");
    assert_eq!(refused.check, PackCheck::Origin);
}

/// Verifies a pack: never panics, fails at `checkpoint` exactly when the checkpoint note does
/// not open, and a success is confirmed. Whether it verified.
fn check_verify(pack: &ProofPack) -> bool {
    let opens = open_checkpoint(pack.checkpoint.as_bytes(), trusted()).is_ok();
    match verify(pack, trusted(), None) {
        Ok(verified) => {
            confirm(pack, &verified);
            true
        }
        Err(failure) => {
            assert_eq!(failure.check == PackCheck::Checkpoint, !opens, "{failure}");
            false
        }
    }
}

/// The document checks: parsing, the canonical round trip, verification. The parsed pack and
/// whether it verified.
fn check_document(bytes: &[u8]) -> Option<(ProofPack, bool)> {
    let pack = ProofPack::parse(bytes).ok()?;
    let json = pack.to_json();
    let again = ProofPack::parse(json.as_bytes())
        .unwrap_or_else(|e| panic!("a parsed pack written back does not parse: {e}\n{json}"));
    // Equal packs write equal text, so the written text is a fixed point.
    assert_eq!(again, pack, "the written pack parses differently");
    let verified = check_verify(&pack);
    Some((pack, verified))
}

/// Whether a changed pack that verified is one of the genuine packs up to what a pack cannot
/// prove: overrides left out, or the latest checkpoint replaced by the pack's own with an
/// empty consistency path. A pack that was not `parsed` may also hold its lists out of order
/// or with repeats, which only `parse` refuses: its lists are compared as sets.
fn is_genuine(pack: &ProofPack, parsed: bool) -> bool {
    genuine().iter().any(|g| {
        let subset = |a: &[PackEntry], b: &[PackEntry]| a.iter().all(|e| b.contains(e));
        let (exceptions, keys) = if parsed {
            (
                pack.exceptions == g.exceptions,
                pack.verifier_keys == g.verifier_keys,
            )
        } else {
            (
                subset(&pack.exceptions, &g.exceptions) && subset(&g.exceptions, &pack.exceptions),
                pack.verifier_keys
                    .iter()
                    .all(|k| g.verifier_keys.contains(k))
                    && g.verifier_keys
                        .iter()
                        .all(|k| pack.verifier_keys.contains(k)),
            )
        };
        let overrides = if parsed {
            pack.overrides.is_sorted_by_key(|e| e.index) && subset(&pack.overrides, &g.overrides)
        } else {
            subset(&pack.overrides, &g.overrides)
        };
        let latest = (pack.latest_checkpoint == g.latest_checkpoint
            && pack.consistency_path == g.consistency_path)
            || (pack.latest_checkpoint == g.checkpoint && pack.consistency_path.is_empty());
        pack.origin == g.origin
            && pack.hash == g.hash
            && pack.decision_id == g.decision_id
            && pack.request == g.request
            && pack.decision == g.decision
            && pack.bundle == g.bundle
            && exceptions
            && overrides
            && pack.checkpoint == g.checkpoint
            && latest
            && keys
    })
}

/// A member entry picked by a byte: the decision, the bundle, an exception or an override.
fn slot(pack: &mut ProofPack, pick: u8) -> &mut PackEntry {
    let count = 2 + pack.exceptions.len() + pack.overrides.len();
    match usize::from(pick) % count {
        0 => &mut pack.decision,
        1 => &mut pack.bundle,
        i if i < 2 + pack.exceptions.len() => &mut pack.exceptions[i - 2],
        i => {
            let at = i - 2 - pack.exceptions.len();
            &mut pack.overrides[at]
        }
    }
}

fn flip(bytes: &mut [u8], at: u16, mask: u8) {
    if !bytes.is_empty() {
        let at = usize::from(at) % bytes.len();
        bytes[at] ^= mask | 1;
    }
}

fn flip_text(text: &mut String, at: u16, mask: u8) {
    let mut bytes = std::mem::take(text).into_bytes();
    flip(&mut bytes, at, mask);
    *text = String::from_utf8_lossy(&bytes).into_owned();
}

fn remove_at<T>(list: &mut Vec<T>, pick: u8) {
    if !list.is_empty() {
        list.remove(usize::from(pick) % list.len());
    }
}

/// Applies one change read from `r`.
fn change(pack: &mut ProofPack, r: &mut ByteReader<'_>) {
    match r.u8() % 17 {
        0 => remove_at(&mut pack.exceptions, r.u8()),
        1 => remove_at(&mut pack.overrides, r.u8()),
        2 => {
            let from = slot(pack, r.u8()).clone();
            *slot(pack, r.u8()) = from;
        }
        3 => {
            let (a, b) = (r.u8(), r.u8());
            let first = slot(pack, a).clone();
            let second = std::mem::replace(slot(pack, b), first);
            *slot(pack, a) = second;
        }
        4 => {
            let pick = r.u8();
            if r.u8().is_multiple_of(2) && !pack.exceptions.is_empty() {
                let e = pack
                    .exceptions
                    .remove(usize::from(pick) % pack.exceptions.len());
                pack.overrides.push(e);
            } else if !pack.overrides.is_empty() {
                let e = pack
                    .overrides
                    .remove(usize::from(pick) % pack.overrides.len());
                pack.exceptions.push(e);
            }
            pack.exceptions.sort_by_key(|e| e.index);
            pack.overrides.sort_by_key(|e| e.index);
        }
        5 => {
            let pick = r.u8();
            let delta = i64::from(r.u8().cast_signed());
            let e = slot(pack, pick);
            e.index = EntryIndex(e.index.0.wrapping_add_signed(delta));
        }
        6 => {
            let (pick, at, mask, rehash) = (r.u8(), r.u16(), r.u8(), r.u8() % 2 == 1);
            let alg = pack.hash;
            let e = slot(pack, pick);
            flip(&mut e.leaf_bytes, at, mask);
            if rehash {
                e.leaf_hash = alg.leaf_hash(&e.leaf_bytes);
            }
        }
        7 => {
            let (pick, how) = (r.u8(), r.u8());
            let e = slot(pack, pick);
            match how % 4 {
                0 => {
                    e.inclusion_path.pop();
                }
                1 => e.inclusion_path.push(e.leaf_hash),
                2 => e.inclusion_path.reverse(),
                _ => e.inclusion_path.clear(),
            }
        }
        8 => match r.u8() % 4 {
            0 => std::mem::swap(&mut pack.checkpoint, &mut pack.latest_checkpoint),
            1 => {
                pack.latest_checkpoint = pack.checkpoint.clone();
                pack.consistency_path.clear();
            }
            2 => pack.checkpoint = pack.latest_checkpoint.clone(),
            _ => {
                std::mem::swap(&mut pack.checkpoint, &mut pack.latest_checkpoint);
                pack.consistency_path.clear();
            }
        },
        9 => {
            let (latest, at, mask) = (r.u8() % 2 == 1, r.u16(), r.u8());
            let note = if latest {
                &mut pack.latest_checkpoint
            } else {
                &mut pack.checkpoint
            };
            flip_text(note, at, mask);
        }
        10 => match r.u8() % 4 {
            0 => {
                pack.consistency_path.pop();
            }
            1 => {
                let extra = pack.decision.leaf_hash;
                pack.consistency_path.push(extra);
            }
            2 => pack.consistency_path.reverse(),
            _ => pack.consistency_path.clear(),
        },
        11 => match r.u8() % 5 {
            0 => pack.verifier_keys.clear(),
            1 => pack.verifier_keys.push(rotated_signer().verifier()),
            2 => pack.verifier_keys.push(witness_verifier()),
            3 => {
                if let Some(first) = pack.verifier_keys.first().cloned() {
                    pack.verifier_keys.push(first);
                }
            }
            _ => pack.verifier_keys = vec![rotated_signer().verifier()],
        },
        12 => {
            pack.hash = match pack.hash {
                HashAlg::Sha256 => HashAlg::Blake3,
                _ => HashAlg::Sha256,
            };
        }
        13 => match r.u8() % 3 {
            0 => pack.origin.push(char::from(r.u8())),
            1 => pack.origin = "vouch.test/other".into(),
            _ => pack.origin.clear(),
        },
        14 => {
            if r.u8().is_multiple_of(2) {
                let (at, mask) = (r.u16(), r.u8());
                flip(&mut pack.request, at, mask);
            } else {
                pack.request = r.bytes().to_vec();
            }
        }
        15 => {
            let (at, mask) = (r.u16(), r.u8());
            flip_text(&mut pack.decision_id, at, mask);
        }
        _ => {
            let other = &genuine()[usize::from(r.u8()) % 3];
            match r.u8() % 4 {
                0 => pack.checkpoint = other.checkpoint.clone(),
                1 => {
                    pack.latest_checkpoint = other.latest_checkpoint.clone();
                    pack.consistency_path = other.consistency_path.clone();
                }
                2 => {
                    let mut source = other.clone();
                    let from = slot(&mut source, r.u8()).clone();
                    *slot(pack, r.u8()) = from;
                }
                _ => pack.overrides = other.overrides.clone(),
            }
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&0, rest)) = bytes.split_first() else {
        check_document(bytes);
        return;
    };
    let mut r = ByteReader(rest);
    let mut pack = genuine()[usize::from(r.u8()) % 3].clone();
    let unchanged = r.is_empty();
    for _ in 0..16 {
        if r.is_empty() {
            break;
        }
        change(&mut pack, &mut r);
    }
    // Through the document; and as it is, when it does not parse back as itself.
    let json = pack.to_json();
    let document = check_document(json.as_bytes());
    if let Some((parsed, true)) = &document {
        assert!(is_genuine(parsed, true), "a changed pack verified:\n{json}");
    }
    let verified = match document {
        Some((parsed, verified)) if parsed == pack => verified,
        _ => check_verify(&pack),
    };
    if unchanged {
        assert!(verified, "a genuine pack does not verify");
    }
    if verified {
        assert!(
            is_genuine(&pack, false),
            "a changed pack verified as it is:\n{json}"
        );
    }
});
