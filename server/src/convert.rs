//! Conversions between the `vouch.v1` protobuf messages and the storage and core types.
//!
//! Inbound conversions check every field and name the field in their [`InputError`];
//! outbound conversions cannot fail except on bytes read from disk, which are reported as
//! corruption.

use vouch_ledger_core::entry::{EntryDraft, EntryKind, EntryView};
use vouch_ledger_core::hash::HASH_LEN;
use vouch_ledger_core::proof::{ConsistencyProof, InclusionProof};
use vouch_ledger_core::{Hash, HashAlg};
use vouch_storage::{Corruption, Ledger, ReadError, StoredCheckpoint};

use crate::proto::v1 as pb;
use crate::status::{InputError, envelope_input, over_limit};

/// The proto enum value of a hash function.
pub fn hash_to_proto(alg: HashAlg) -> pb::HashAlgorithm {
    match alg {
        HashAlg::Blake3 => pb::HashAlgorithm::Blake3,
        HashAlg::Sha256 => pb::HashAlgorithm::Sha256,
    }
}

/// The hash function a request asks for; `None` for unspecified (the server's default).
///
/// # Errors
///
/// [`InputError`] on `field` for a value the proto does not define.
pub fn hash_from_proto(value: i32, field: &str) -> Result<Option<HashAlg>, InputError> {
    match pb::HashAlgorithm::try_from(value) {
        Ok(pb::HashAlgorithm::Unspecified) => Ok(None),
        Ok(pb::HashAlgorithm::Blake3) => Ok(Some(HashAlg::Blake3)),
        Ok(pb::HashAlgorithm::Sha256) => Ok(Some(HashAlg::Sha256)),
        Err(_) => Err(InputError::new(
            field,
            format!(
                "unknown hash algorithm {value}; use HASH_ALGORITHM_BLAKE3 or HASH_ALGORITHM_SHA256"
            ),
        )),
    }
}

/// The proto enum value of an entry kind.
pub fn kind_to_proto(kind: EntryKind) -> pb::EntryKind {
    match kind {
        EntryKind::Record => pb::EntryKind::Record,
        EntryKind::Policy => pb::EntryKind::Policy,
        EntryKind::Decision => pb::EntryKind::Decision,
        EntryKind::Override => pb::EntryKind::Override,
        EntryKind::Exception => pb::EntryKind::Exception,
    }
}

/// A 32-byte hash from a request field.
///
/// # Errors
///
/// [`InputError`] on `field` for any other length.
pub fn hash_from_bytes(bytes: &[u8], field: &str) -> Result<Hash, InputError> {
    Hash::from_slice(bytes).map_err(|_| {
        InputError::new(
            field,
            format!(
                "a hash is {HASH_LEN} bytes, got {} (base64 in grpcurl JSON)",
                bytes.len()
            ),
        )
    })
}

/// Checks an entry of an append request and turns it into a draft. `prefix` is the entry's
/// path in the request (`entry` or `entries[3]`), used in every error. Only records may be
/// appended through the ledger service; the other kinds are written by the policy service.
///
/// # Errors
///
/// [`InputError`] naming the field: a kind other than RECORD, a payload over
/// `max_payload_bytes`, or any envelope rule (key length and characters, content type).
pub fn draft_from_proto(
    input: Option<pb::EntryInput>,
    prefix: &str,
    max_payload_bytes: usize,
) -> Result<EntryDraft, tonic::Status> {
    use crate::status::IntoStatus as _;
    let input = input.ok_or_else(|| InputError::new(prefix, "missing").into_status())?;
    match pb::EntryKind::try_from(input.kind) {
        Ok(pb::EntryKind::Unspecified | pb::EntryKind::Record) => {}
        Ok(other) => {
            return Err(InputError::new(
                format!("{prefix}.kind"),
                format!(
                    "{} entries are written only by the policy service; Append and AppendBatch accept ENTRY_KIND_RECORD (or unspecified)",
                    other.as_str_name()
                ),
            )
            .into_status());
        }
        Err(_) => {
            return Err(InputError::new(
                format!("{prefix}.kind"),
                format!("unknown entry kind {}", input.kind),
            )
            .into_status());
        }
    }
    if input.payload.len() > max_payload_bytes {
        return Err(over_limit(
            &format!("{prefix}.payload"),
            "limits.max_payload_bytes",
            max_payload_bytes,
            input.payload.len(),
        ));
    }
    let key = (!input.idempotency_key.is_empty()).then_some(input.idempotency_key);
    EntryDraft::new(EntryKind::Record, key, input.content_type, input.payload)
        .map_err(|e| envelope_input(prefix, &e).into_status())
}

/// The receipt message of a storage receipt.
pub fn receipt_to_proto(r: &vouch_storage::Receipt) -> pb::Receipt {
    pb::Receipt {
        index: r.index.0,
        leaf_hash: r.leaf_hash.0.to_vec(),
        timestamp_unix_nanos: r.timestamp.0,
        tree_size: r.tree_size.0,
        duplicate: r.duplicate,
    }
}

/// The message of a stored checkpoint: the exact signed note and its parsed fields.
pub fn checkpoint_to_proto(cp: &StoredCheckpoint) -> pb::SignedCheckpoint {
    pb::SignedCheckpoint {
        note: cp.note.to_vec(),
        origin: cp.checkpoint.origin.clone(),
        tree_size: cp.checkpoint.size.0,
        root_hash: cp.checkpoint.root.0.to_vec(),
    }
}

/// The message of an inclusion proof.
pub fn inclusion_to_proto(
    proof: &InclusionProof,
    leaf_hash: &Hash,
    checkpoint: Option<&StoredCheckpoint>,
) -> pb::InclusionProof {
    pb::InclusionProof {
        index: proof.index.0,
        tree_size: proof.size.0,
        leaf_hash: leaf_hash.0.to_vec(),
        path: proof.path.iter().map(|h| h.0.to_vec()).collect(),
        checkpoint: checkpoint.map(checkpoint_to_proto),
    }
}

/// The message of a consistency proof.
pub fn consistency_to_proto(
    proof: &ConsistencyProof,
    old: Option<&StoredCheckpoint>,
    new: Option<&StoredCheckpoint>,
) -> pb::ConsistencyProof {
    pb::ConsistencyProof {
        old_size: proof.old_size.0,
        new_size: proof.new_size.0,
        path: proof.path.iter().map(|h| h.0.to_vec()).collect(),
        old_checkpoint: old.map(checkpoint_to_proto),
        new_checkpoint: new.map(checkpoint_to_proto),
    }
}

/// The entry message of envelope bytes read from a ledger of hash function `alg`.
///
/// # Errors
///
/// [`ReadError::Corrupted`] if the bytes are not a valid envelope (the engine checked their
/// frame checksum, so this means corruption before the checksum was computed).
pub fn entry_to_proto(raw: &[u8], alg: HashAlg) -> Result<pb::Entry, ReadError> {
    let view = EntryView::parse(raw).map_err(|e| {
        ReadError::Corrupted(Corruption::file(
            "segments",
            format!("an entry read back is not a valid envelope: {e}"),
        ))
    })?;
    Ok(pb::Entry {
        index: view.index().0,
        timestamp_unix_nanos: view.timestamp().0,
        kind: kind_to_proto(view.kind()).into(),
        idempotency_key: view.idempotency_key().unwrap_or_default().to_owned(),
        content_type: view.content_type().to_owned(),
        payload: view.payload().to_vec(),
        leaf_bytes: raw.to_vec(),
        leaf_hash: alg.leaf_hash(raw).0.to_vec(),
    })
}

/// The description of a ledger.
pub fn ledger_info(ledger: &Ledger) -> pb::LedgerInfo {
    let meta = ledger.meta();
    pb::LedgerInfo {
        name: ledger.name().to_owned(),
        hash: hash_to_proto(ledger.hash_alg()).into(),
        origin: meta.origin.clone(),
        size: ledger.size().0,
        verifier_keys: meta.keys.iter().map(|k| k.vkey.clone()).collect(),
        latest_checkpoint: ledger
            .latest_checkpoint()
            .as_deref()
            .map(checkpoint_to_proto),
        leaf_hash_index: ledger.has_leaf_hash_index(),
        durability: ledger.durability().to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use tonic::Code;

    use super::*;

    fn input(kind: pb::EntryKind, payload: usize) -> pb::EntryInput {
        pb::EntryInput {
            kind: kind.into(),
            idempotency_key: String::new(),
            content_type: "text/plain".into(),
            payload: vec![b'x'; payload],
        }
    }

    #[test]
    fn only_records_are_accepted() {
        draft_from_proto(Some(input(pb::EntryKind::Unspecified, 1)), "entry", 10).unwrap();
        draft_from_proto(Some(input(pb::EntryKind::Record, 1)), "entry", 10).unwrap();
        let e = draft_from_proto(Some(input(pb::EntryKind::Decision, 1)), "entry", 10).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with("entry.kind:"), "{}", e.message());
        assert!(e.message().contains("policy service"), "{}", e.message());
        let mut bad = input(pb::EntryKind::Record, 1);
        bad.kind = 99;
        let e = draft_from_proto(Some(bad), "entries[2]", 10).unwrap_err();
        assert!(
            e.message().starts_with("entries[2].kind:"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn fields_are_named() {
        let e =
            draft_from_proto(Some(input(pb::EntryKind::Record, 11)), "entries[1]", 10).unwrap_err();
        assert!(
            e.message().starts_with("entries[1].payload:"),
            "{}",
            e.message()
        );
        assert!(
            e.message().contains("limits.max_payload_bytes = 10"),
            "{}",
            e.message()
        );
        let mut bad = input(pb::EntryKind::Record, 1);
        bad.content_type = "a\u{7f}".into();
        let e = draft_from_proto(Some(bad), "entry", 10).unwrap_err();
        assert!(
            e.message().starts_with("entry.content_type:"),
            "{}",
            e.message()
        );
        let e = hash_from_bytes(&[0; 31], "leaf_hash").unwrap_err();
        assert!(e.to_string().starts_with("leaf_hash:"), "{e}");
        assert!(draft_from_proto(None, "entry", 10).is_err());
    }
}
