//! Arbitrary bytes through `note::open` and `open_checkpoint` against a fixed trusted set.
//!
//! Success must mean what it says: every signature reported as verified names a trusted key
//! and independently verifies over the returned text, the text is the note's prefix up to
//! the last blank line, and `open_checkpoint` succeeds exactly when `open` does and the text
//! parses as a checkpoint.
//!
//! Inputs whose first byte is odd are signed first: the rest is split at its first `0xff`
//! into a text (signed with the log key) and extra bytes appended after the signature line,
//! so the fuzzer also explores notes that carry one genuine signature.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vouch_fuzz::{log_signer, split_selector, trusted};
use vouch_ledger_core::checkpoint::{Checkpoint, OpenCheckpointError, open_checkpoint};
use vouch_ledger_core::note::{self, Signer, Verifiers, sign_note};

fn check(note_bytes: &[u8], known: &Verifiers) {
    let opened = note::open(note_bytes, known);
    let as_checkpoint = open_checkpoint(note_bytes, known);
    match &opened {
        Ok(verified) => {
            let text = verified.text();
            assert!(text.ends_with('\n'));
            let rest = note_bytes
                .strip_prefix(text.as_bytes())
                .expect("the text is the note's prefix");
            assert!(rest.starts_with(b"\n"), "the text ends at a blank line");
            assert!(!verified.verified().is_empty());
            for signature in verified.verified() {
                let mut matching = known
                    .iter()
                    .filter(|v| v.name() == signature.name && v.key_id() == signature.key_id);
                let verifier = matching
                    .next()
                    .expect("a verified signature names a trusted key");
                assert!(matching.next().is_none(), "an ambiguous key verified");
                let blob = BASE64.decode(&signature.base64).expect("valid base64");
                let raw = blob.get(4..).expect("a key ID and a signature");
                assert!(
                    verifier.verify(text.as_bytes(), raw),
                    "a signature reported as verified does not verify"
                );
                assert!(verified.is_verified_by(&signature.name, signature.key_id));
            }
            for signature in verified.unverified() {
                assert!(
                    !known
                        .iter()
                        .any(|v| v.name() == signature.name && v.key_id() == signature.key_id),
                    "a trusted key's signature was left unverified"
                );
            }
            match (&as_checkpoint, Checkpoint::parse(text)) {
                (Ok((checkpoint, again)), Ok(parsed)) => {
                    assert_eq!(checkpoint, &parsed);
                    assert_eq!(again, verified);
                }
                (Err(OpenCheckpointError::Checkpoint(a)), Err(b)) => assert_eq!(a, &b),
                (a, b) => panic!("open_checkpoint disagrees with open: {a:?} vs {b:?}"),
            }
        }
        Err(error) => match &as_checkpoint {
            Err(OpenCheckpointError::Note(e)) => assert_eq!(e, error),
            other => panic!("open failed with {error:?} but open_checkpoint gave {other:?}"),
        },
    }
}

fuzz_target!(|data: &[u8]| {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    let known = trusted();
    let (selector, rest) = split_selector(data);
    if selector & 1 == 0 {
        check(rest, known);
        return;
    }
    let (text, extra) = match rest.iter().position(|&b| b == 0xff) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let signer = SIGNER.get_or_init(log_signer);
    let Ok(mut signed) = sign_note(text, &[signer]) else {
        return;
    };
    signed.extend_from_slice(extra);
    check(&signed, known);
    if extra.is_empty() {
        // A genuinely signed note always opens, with exactly the log key verified.
        let verified = note::open(&signed, known).expect("a signed note opens");
        assert_eq!(verified.text(), text);
        assert_eq!(verified.verified().len(), 1);
    }
});
