//! The entry envelope through the public API: the worked example of
//! `docs/proofs.md` as a known answer, and properties of the encoder and the
//! decoder (round trip, one encoding per entry, every limit at its boundary, truncation and
//! trailing bytes, no panic on arbitrary bytes).

use proptest::prelude::*;
use vouch_ledger_core::entry::{
    CONTENT_TYPE_LEN_OFFSET, ENVELOPE_VERSION, HEADER_LEN, KEY_LEN_OFFSET, MAX_CONTENT_TYPE_LEN,
    MAX_IDEMPOTENCY_KEY_LEN, PAYLOAD_LEN_OFFSET,
};
use vouch_ledger_core::{
    Entry, EntryDraft, EntryIndex, EntryKind, EntryView, EnvelopeError, HashAlg, Timestamp,
};

/// The entry of the documentation's worked example.
fn documented_entry() -> Entry {
    Entry {
        index: EntryIndex(0),
        timestamp: Timestamp(1_735_689_600_000_000_000),
        kind: EntryKind::Decision,
        idempotency_key: Some("deploy-7f3a".to_owned()),
        content_type: "application/json".to_owned(),
        payload: br#"{"outcome":"ALLOW"}"#.to_vec(),
    }
}

#[test]
fn documented_example() {
    let entry = documented_entry();
    let bytes = entry.encode().unwrap();
    // Field by field, as annotated in docs/proofs.md.
    let fields = [
        "01",
        "03",
        "0000000000000000",
        "000057c07e681618",
        "0b",
        "10",
        "13000000",
        "6465706c6f792d37663361",
        "6170706c69636174696f6e2f6a736f6e",
        "7b226f7574636f6d65223a22414c4c4f57227d",
    ];
    assert_eq!(hex::encode(&bytes), fields.concat());
    assert_eq!(bytes.len(), 70);
    assert_eq!(
        entry.timestamp.to_string(),
        "2025-01-01T00:00:00.000000000Z"
    );
    assert_eq!(
        entry.leaf_hash(HashAlg::Sha256).unwrap().to_hex(),
        "e6f596e84892fcc4a784c8dd0399aa41266fbb19a3f799410bedcbbdb346a23f"
    );
    assert_eq!(
        entry.leaf_hash(HashAlg::Blake3).unwrap().to_hex(),
        "81ec788fc1239852a048e44953c7322b1ede7127da4dcb1525fac679d7da3db7"
    );
    let view = EntryView::parse(&bytes).unwrap();
    assert_eq!(view.kind(), EntryKind::Decision);
    assert_eq!(view.idempotency_key(), Some("deploy-7f3a"));
    assert_eq!(view.content_type(), "application/json");
    assert_eq!(view.payload(), br#"{"outcome":"ALLOW"}"#);
}

/// A hand-built envelope with the given declared lengths and fill bytes.
fn envelope(kind: u8, key: &[u8], content_type: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![ENVELOPE_VERSION, kind];
    out.extend_from_slice(&5u64.to_le_bytes());
    out.extend_from_slice(&6u64.to_le_bytes());
    out.push(u8::try_from(key.len()).unwrap());
    out.push(u8::try_from(content_type.len()).unwrap());
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(content_type);
    out.extend_from_slice(payload);
    out
}

#[test]
fn every_kind_byte() {
    for byte in 0..=u8::MAX {
        let result = Entry::decode(&envelope(byte, b"", b"", b""));
        match EntryKind::from_u8(byte) {
            Some(kind) => assert_eq!(result.unwrap().kind, kind),
            None => assert_eq!(result, Err(EnvelopeError::UnknownKind(byte))),
        }
        assert_eq!((1..=5).contains(&byte), EntryKind::from_u8(byte).is_some());
    }
}

#[test]
fn every_version_byte() {
    let mut bytes = envelope(1, b"", b"", b"");
    for version in 0..=u8::MAX {
        bytes[0] = version;
        let result = Entry::decode(&bytes);
        if version == 1 {
            assert!(result.is_ok());
        } else {
            assert_eq!(result, Err(EnvelopeError::UnsupportedVersion(version)));
        }
    }
}

#[test]
fn key_length_boundaries() {
    for len in 0..=255usize {
        let key = vec![b'k'; len];
        let decoded = Entry::decode(&envelope(1, &key, b"", b""));
        let mut entry = documented_entry();
        entry.idempotency_key = Some(String::from_utf8(key).unwrap());
        let encoded = entry.encode();
        match len {
            0 => {
                assert_eq!(decoded.unwrap().idempotency_key, None);
                assert_eq!(encoded, Err(EnvelopeError::EmptyIdempotencyKey));
            }
            1..=MAX_IDEMPOTENCY_KEY_LEN => {
                assert_eq!(decoded.unwrap().idempotency_key.unwrap().len(), len);
                assert_eq!(Entry::decode(&encoded.unwrap()).unwrap(), entry);
            }
            _ => {
                assert_eq!(decoded, Err(EnvelopeError::IdempotencyKeyTooLong(len)));
                assert_eq!(encoded, Err(EnvelopeError::IdempotencyKeyTooLong(len)));
            }
        }
    }
}

#[test]
fn content_type_length_boundaries() {
    for len in 0..=255usize {
        let content_type = vec![b't'; len];
        let decoded = Entry::decode(&envelope(1, b"", &content_type, b""));
        let mut entry = documented_entry();
        entry.content_type = String::from_utf8(content_type).unwrap();
        let encoded = entry.encode();
        if len <= MAX_CONTENT_TYPE_LEN {
            assert_eq!(decoded.unwrap().content_type.len(), len);
            assert_eq!(Entry::decode(&encoded.unwrap()).unwrap(), entry);
        } else {
            assert_eq!(decoded, Err(EnvelopeError::ContentTypeTooLong(len)));
            assert_eq!(encoded, Err(EnvelopeError::ContentTypeTooLong(len)));
        }
    }
}

#[test]
fn content_type_bytes() {
    for byte in 0..=u8::MAX {
        let decoded = Entry::decode(&envelope(1, b"", &[b'a', byte], b""));
        if (0x20..=0x7e).contains(&byte) {
            assert!(decoded.is_ok(), "0x{byte:02x}");
        } else {
            assert_eq!(
                decoded,
                Err(EnvelopeError::ContentTypeNotPrintable { at: 1, byte })
            );
        }
    }
}

#[test]
fn key_control_characters() {
    // Every C0 and C1 control character and DEL, in UTF-8.
    for code in (0u32..0x20).chain(0x7f..0xa0) {
        let c = char::from_u32(code).unwrap();
        let key = format!("k{c}");
        let expected = EnvelopeError::IdempotencyKeyControl { at: 1, code };
        assert_eq!(
            Entry::decode(&envelope(1, key.as_bytes(), b"", b"")).unwrap_err(),
            expected
        );
        let mut entry = documented_entry();
        entry.idempotency_key = Some(key);
        assert_eq!(entry.encode().unwrap_err(), expected);
    }
}

#[test]
fn payload_length_boundaries_in_the_header() {
    // A declared length over the limit fails before the bytes are needed; one at the limit
    // asks for the bytes.
    let max = u32::try_from(vouch_ledger_core::entry::MAX_PAYLOAD_LEN).unwrap();
    for (declared, expected) in [
        (
            max + 1,
            EnvelopeError::PayloadTooLarge(usize::try_from(max + 1).unwrap()),
        ),
        (
            max,
            EnvelopeError::Truncated {
                need: HEADER_LEN + usize::try_from(max).unwrap(),
                got: HEADER_LEN,
            },
        ),
    ] {
        let mut bytes = envelope(1, b"", b"", b"");
        bytes[PAYLOAD_LEN_OFFSET..HEADER_LEN].copy_from_slice(&declared.to_le_bytes());
        assert_eq!(Entry::decode(&bytes), Err(expected));
    }
    // The length bytes sit where the layout says.
    let bytes = envelope(1, b"ab", b"c", b"defg");
    assert_eq!(bytes[KEY_LEN_OFFSET], 2);
    assert_eq!(bytes[CONTENT_TYPE_LEN_OFFSET], 1);
    assert_eq!(bytes[PAYLOAD_LEN_OFFSET..HEADER_LEN], 4u32.to_le_bytes());
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    (
        any::<u64>(),
        any::<u64>(),
        proptest::sample::select(EntryKind::ALL.to_vec()),
        proptest::option::of(proptest::collection::vec(
            any::<char>().prop_filter("no controls", |c| !c.is_control()),
            1..=32,
        )),
        "[ -~]{0,127}",
        proptest::collection::vec(any::<u8>(), 0..1024),
    )
        .prop_map(
            |(index, timestamp, kind, key, content_type, payload)| Entry {
                index: EntryIndex(index),
                timestamp: Timestamp(timestamp),
                kind,
                idempotency_key: key
                    .map(|chars| chars.into_iter().collect::<String>())
                    .filter(|k| k.len() <= MAX_IDEMPOTENCY_KEY_LEN),
                content_type,
                payload,
            },
        )
}

proptest! {
    #[test]
    fn round_trip_through_every_form(entry in arb_entry()) {
        let bytes = entry.encode().unwrap();
        prop_assert_eq!(bytes.len(), entry.encoded_len());
        prop_assert_eq!(Entry::decode(&bytes).unwrap(), entry.clone());
        let view = EntryView::parse(&bytes).unwrap();
        prop_assert_eq!(view.to_owned(), entry.clone());
        prop_assert_eq!(Entry::from(view), entry.clone());
        for alg in HashAlg::ALL {
            prop_assert_eq!(view.leaf_hash(alg), alg.leaf_hash(&bytes));
            prop_assert_eq!(entry.leaf_hash(alg).unwrap(), alg.leaf_hash(&bytes));
        }
        let draft = EntryDraft::new(
            entry.kind,
            entry.idempotency_key.clone(),
            entry.content_type.clone(),
            entry.payload.clone(),
        )
        .unwrap();
        let mut from_draft = Vec::new();
        draft.encode_at(entry.index, entry.timestamp, &mut from_draft);
        prop_assert_eq!(from_draft, bytes);
    }

    #[test]
    fn every_truncation_and_extension_fails(entry in arb_entry(), extra in 1usize..8) {
        let bytes = entry.encode().unwrap();
        for len in 0..bytes.len() {
            let err = Entry::decode(&bytes[..len]).unwrap_err();
            if len < HEADER_LEN {
                prop_assert_eq!(err, EnvelopeError::TruncatedHeader { got: len });
            } else {
                prop_assert_eq!(err, EnvelopeError::Truncated { need: bytes.len(), got: len });
            }
        }
        let mut longer = bytes;
        longer.extend(std::iter::repeat_n(0u8, extra));
        prop_assert_eq!(Entry::decode(&longer), Err(EnvelopeError::TrailingBytes(extra)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(entry) = Entry::decode(&bytes) {
            prop_assert_eq!(entry.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn valid_headers_with_random_bodies_decode_canonically(
        kind in 1u8..=5,
        key in proptest::collection::vec(any::<u8>(), 0..40),
        content_type in proptest::collection::vec(any::<u8>(), 0..40),
        payload in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let bytes = envelope(kind, &key, &content_type, &payload);
        if let Ok(entry) = Entry::decode(&bytes) {
            prop_assert_eq!(entry.encode().unwrap(), bytes);
        }
    }
}
