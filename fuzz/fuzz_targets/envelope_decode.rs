//! Arbitrary bytes through `EntryView::parse` and `Entry::decode`: either both reject the
//! bytes with the same error, or both accept them and re-encoding gives the same bytes back
//! (decoding is canonical: one entry has exactly one envelope).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_ledger_core::HashAlg;
use vouch_ledger_core::entry::{Entry, EntryDraft, EntryView};

fuzz_target!(|bytes: &[u8]| {
    let view = EntryView::parse(bytes);
    let owned = Entry::decode(bytes);
    match (view, owned) {
        (Err(a), Err(b)) => assert_eq!(a, b, "parse and decode disagree on the error"),
        (Ok(view), Ok(entry)) => {
            assert_eq!(view.as_bytes(), bytes);
            assert_eq!(view.encoded_len(), bytes.len());
            assert_eq!(view.to_owned(), entry);
            // Canonical: the decoded fields encode to exactly the input bytes.
            let encoded = entry.encode().expect("a decoded entry is valid");
            assert_eq!(encoded, bytes, "re-encoding changed the bytes");
            assert_eq!(entry.encoded_len(), bytes.len());
            for alg in HashAlg::ALL {
                assert_eq!(entry.leaf_hash(alg).ok(), Some(view.leaf_hash(alg)));
            }
            // The same fields through the draft path give the same envelope too.
            let draft = EntryDraft::new(
                entry.kind,
                entry.idempotency_key.clone(),
                entry.content_type.clone(),
                entry.payload.clone(),
            )
            .expect("a decoded entry's fields are valid");
            let mut via_draft = Vec::new();
            draft.encode_at(entry.index, entry.timestamp, &mut via_draft);
            assert_eq!(via_draft, bytes, "the draft path encodes differently");
        }
        (view, owned) => panic!("parse and decode disagree: {view:?} vs {owned:?}"),
    }
});
