//! Known-answer tests for signed notes and checkpoints: the Go `sumdb/note` test vectors,
//! the C2SP signed-note example, and the tessera test log.
//!
//! The vectors live in `tests/vectors/signed_note.json` and `tests/vectors/tlog_tiles.json`
//! (copied unchanged from the shared vector set, `source` fields included) and are compiled
//! in with `include_str!`, so a missing file fails the build instead of skipping. Every
//! case runs, valid and invalid, under the semantics the file states in
//! `expect_semantics`; every published signing key must round-trip and sign to the
//! published bytes; every tessera checkpoint must open with the log's key and carry the
//! RFC 6962 root recomputed from the log's entries.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use sha2::Digest as _;
use vouch_ledger_core::checkpoint::{Checkpoint, open_checkpoint};
use vouch_ledger_core::note::{
    self, KeyId, NoteError, SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519, SignatureType, Signer,
    Verifier, Verifiers,
};
use vouch_ledger_core::{Hash, HashAlg, TreeSize, root_from_leaf_hashes};

const SIGNED_NOTE: &str = include_str!("vectors/signed_note.json");
const TLOG_TILES: &str = include_str!("vectors/tlog_tiles.json");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteVectors {
    description: String,
    source: Vec<serde_json::Value>,
    verification: String,
    format: Format,
    expect_semantics: ExpectSemantics,
    vkeys: Vec<VkeyVector>,
    cases: Vec<Case>,
    signing_keys: Vec<SigningKeyVector>,
    derived_cosignature_v1: Cosignature,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Format {
    signature_line: String,
    key_id_ed25519: String,
    vkey: String,
    skey_go: String,
    signed_bytes: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectSemantics {
    ok: String,
    verified: String,
    unverified: String,
    error: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VkeyVector {
    vkey: String,
    source: serde_json::Value,
    name: String,
    sig_type_hex: String,
    ed25519_pubkey_hex: String,
    key_id_hex: String,
    key_id_preimage_hex: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    source: serde_json::Value,
    provenance: String,
    verifier_keys: Vec<String>,
    note_hex: String,
    note_utf8: Option<String>,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    ok: bool,
    verified: Option<Vec<String>>,
    unverified: Option<Vec<String>>,
    text_utf8: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningKeyVector {
    skey: String,
    vkey: String,
    source: serde_json::Value,
    ed25519_seed_hex: String,
    ed25519_pubkey_hex: String,
    sign_text_utf8: Option<String>,
    expected_signature_line_utf8: Option<String>,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cosignature {
    provenance: String,
    spec_source: serde_json::Value,
    cosigner_name: String,
    cosigner_vkey: String,
    ed25519_seed_hex: String,
    ed25519_pubkey_hex: String,
    key_id_hex: String,
    key_id_rule: String,
    timestamp: u64,
    checkpoint_body_utf8: String,
    signed_message_utf8: String,
    ed25519_signature_hex: String,
    signature_blob_hex: String,
    signature_line_utf8: String,
    full_cosigned_checkpoint_utf8: String,
    c2sp_example_framing: CosignatureFraming,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CosignatureFraming {
    source: serde_json::Value,
    signature_line_utf8: String,
    decoded: CosignatureDecoded,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CosignatureDecoded {
    key_id_hex: String,
    timestamp: u64,
    ed25519_signature_hex: String,
    verifiable: bool,
    why: String,
}

// The tile path encodings are data for tile storage; only the tessera log is used here.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TileVectors {
    description: String,
    source: Vec<serde_json::Value>,
    verification: String,
    tile_path_vectors: serde_json::Value,
    entries_path_vectors_from_tessera: serde_json::Value,
    index_encoding_c2sp_example: serde_json::Value,
    partial_tiles_c2sp_example: serde_json::Value,
    tessera_testdata_log: TesseraLog,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TesseraLog {
    origin: String,
    vkey: String,
    entries_utf8: Vec<String>,
    entry_bundle_path: String,
    entry_bundle_hex: String,
    level0_tile_path: String,
    level0_tile_hex: String,
    checkpoints: Vec<TesseraCheckpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TesseraCheckpoint {
    size: u64,
    root_hex: String,
    checkpoint_utf8: String,
}

fn note_vectors() -> NoteVectors {
    let v: NoteVectors = serde_json::from_str(SIGNED_NOTE).expect("signed_note.json parses");
    assert!(!v.description.is_empty() && !v.verification.is_empty());
    assert!(
        v.source.len() >= 3,
        "the sources must stay with the vectors"
    );
    v
}

fn tile_vectors() -> TileVectors {
    let v: TileVectors = serde_json::from_str(TLOG_TILES).expect("tlog_tiles.json parses");
    assert!(!v.description.is_empty() && !v.verification.is_empty());
    assert!(
        !v.source.is_empty(),
        "the sources must stay with the vectors"
    );
    v
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_else(|e| panic!("bad hex {text:?}: {e}"))
}

fn key_id(hex_text: &str) -> KeyId {
    KeyId(u32::from_str_radix(hex_text, 16).expect("8 hex digits"))
}

/// The file's stated semantics are the ones this test implements; a change to them must
/// be read before the test can pass again.
#[test]
fn stated_semantics_are_the_ones_implemented() {
    let v = note_vectors();
    let s = &v.expect_semantics;
    assert!(s.ok.contains("at least one signature from a known (name, key ID) verified"));
    assert!(s.ok.contains("none from a known key failed"));
    assert!(s.verified.contains("in note order, duplicates dropped"));
    assert!(
        s.unverified
            .contains("unknown (name, key ID) pairs, identical lines dropped")
    );
    assert!(s.error.contains("golang.org/x/mod/sumdb/note error string"));
    let f = &v.format;
    assert!(
        f.signature_line
            .starts_with("U+2014 U+0020 <key name> U+0020 base64(")
    );
    assert!(
        f.key_id_ed25519
            .contains("SHA-256(key name || 0x0A || 0x01 || 32-byte")
    );
    assert!(f.vkey.contains("<8 lowercase hex key ID>"));
    assert!(
        f.skey_go
            .starts_with("PRIVATE+KEY+<key name>+<8 hex key ID>+base64(0x01")
    );
    assert!(
        f.signed_bytes
            .contains("up to and including the newline before the LAST blank")
    );
}

#[test]
fn key_ids_come_from_their_preimages() {
    let v = note_vectors();
    assert_eq!(v.vkeys.len(), 4);
    for vk in &v.vkeys {
        assert!(!vk.source.is_null());
        let verifier = Verifier::from_vkey(&vk.vkey).unwrap_or_else(|e| panic!("{}: {e}", vk.vkey));
        let sig_type = unhex(&vk.sig_type_hex);
        let public_key = unhex(&vk.ed25519_pubkey_hex);
        assert_eq!(sig_type, [SIG_TYPE_ED25519]);
        assert_eq!(verifier.name(), vk.name);
        assert_eq!(verifier.signature_type(), SignatureType::Ed25519);
        assert_eq!(verifier.public_key().as_slice(), public_key.as_slice());
        assert_eq!(verifier.key_id(), key_id(&vk.key_id_hex));
        assert_eq!(verifier.key_id().to_string(), vk.key_id_hex);
        assert_eq!(verifier.to_vkey(), vk.vkey);

        // The preimage is name ‖ 0x0a ‖ type ‖ key, and its SHA-256 starts with the ID.
        let preimage = unhex(&vk.key_id_preimage_hex);
        let expected = [vk.name.as_bytes(), b"\n", &sig_type, &public_key].concat();
        assert_eq!(preimage, expected);
        let digest = sha2::Sha256::digest(&preimage);
        assert_eq!(hex::encode(&digest[..4]), vk.key_id_hex);
        assert_eq!(
            KeyId::compute(&vk.name, SIG_TYPE_ED25519, &public_key),
            verifier.key_id()
        );
    }
}

/// Checks an `open` failure against the Go error string the case expects.
fn assert_go_error(case: &str, err: &NoteError, expected: &str) {
    let shown = err.to_string();
    match expected {
        // Go says only "malformed note"; Vouch appends where.
        "malformed note" => {
            assert!(
                matches!(err, NoteError::Malformed(_)),
                "{case}: want malformed, got {err:?}"
            );
            assert!(shown.starts_with("malformed note: "), "{case}: {shown}");
        }
        _ => assert_eq!(shown, expected, "{case}"),
    }
}

#[test]
fn every_case_opens_as_expected() {
    let v = note_vectors();
    assert_eq!(v.cases.len(), 32, "every case in the file runs");
    let (mut passed_ok, mut passed_err) = (0, 0);
    for case in &v.cases {
        let name = &case.name;
        assert!(
            !case.source.is_null() && !case.provenance.is_empty(),
            "{name}"
        );
        let note = unhex(&case.note_hex);
        if let Some(utf8) = &case.note_utf8 {
            assert_eq!(
                note,
                utf8.as_bytes(),
                "{name}: note_hex and note_utf8 agree"
            );
        } else {
            assert!(
                std::str::from_utf8(&note).is_err(),
                "{name}: null utf8 means invalid"
            );
        }
        let known: Verifiers = case
            .verifier_keys
            .iter()
            .map(|k| Verifier::from_vkey(k).unwrap_or_else(|e| panic!("{name}: {k}: {e}")))
            .collect();
        assert_eq!(known.len(), case.verifier_keys.len(), "{name}");

        let result = note::open(&note, &known);
        if case.expect.ok {
            let opened = result.unwrap_or_else(|e| panic!("{name}: want ok, got {e}"));
            let verified: Vec<&str> = opened.verified().iter().map(|s| s.name.as_str()).collect();
            let unverified: Vec<&str> = opened
                .unverified()
                .iter()
                .map(|s| s.name.as_str())
                .collect();
            assert_eq!(
                Some(verified),
                case.expect
                    .verified
                    .as_ref()
                    .map(|v| v.iter().map(String::as_str).collect()),
                "{name}: verified"
            );
            assert_eq!(
                Some(unverified),
                case.expect
                    .unverified
                    .as_ref()
                    .map(|v| v.iter().map(String::as_str).collect()),
                "{name}: unverified"
            );
            assert_eq!(
                Some(opened.text()),
                case.expect.text_utf8.as_deref(),
                "{name}"
            );
            assert!(case.expect.error.is_none(), "{name}");
            passed_ok += 1;
        } else {
            let err = result.expect_err(name);
            let expected = case
                .expect
                .error
                .as_deref()
                .expect("a failing case names its error");
            assert_go_error(name, &err, expected);
            assert!(case.expect.verified.is_none() && case.expect.text_utf8.is_none());
            passed_err += 1;
        }
    }
    assert_eq!((passed_ok, passed_err), (20, 12));
}

#[test]
fn signing_keys_round_trip_and_sign_deterministically() {
    let v = note_vectors();
    assert_eq!(v.signing_keys.len(), 2);
    let mut signed_published_text = false;
    for sk in &v.signing_keys {
        assert!(!sk.source.is_null());
        let signer = Signer::from_skey(&sk.skey).unwrap_or_else(|e| panic!("{}: {e}", sk.skey));
        assert_eq!(signer.to_skey(), sk.skey);
        assert_eq!(signer.verifier().to_vkey(), sk.vkey);
        assert_eq!(hex::encode(signer.public_key()), sk.ed25519_pubkey_hex);
        let seed: [u8; 32] = unhex(&sk.ed25519_seed_hex)
            .try_into()
            .expect("32-byte seed");
        let from_seed = Signer::from_seed(signer.name(), &seed).expect("valid name");
        assert_eq!(from_seed.to_skey(), sk.skey);

        if let Some(text) = &sk.sign_text_utf8 {
            let line = signer.sign(text).expect("valid text");
            assert_eq!(Some(&line), sk.expected_signature_line_utf8.as_ref());
            let note = note::sign_note(text, &[&signer]).expect("signs");
            assert_eq!(note, format!("{text}\n{line}").into_bytes());
            signed_published_text = true;
        }
        if sk.note.is_some() {
            assert!(
                sk.note
                    .as_deref()
                    .is_some_and(|n| n.contains("byte-for-byte"))
            );
        }
    }
    assert!(signed_published_text);
}

/// The level-0 leaf hashes of the tessera log, recomputed with RFC 6962 SHA-256.
fn tessera_leaf_hashes(log: &TesseraLog) -> Vec<Hash> {
    log.entries_utf8
        .iter()
        .map(|e| HashAlg::Sha256.leaf_hash(e.as_bytes()))
        .collect()
}

/// The RFC 6962 tree hash, written out independently of the crate's Merkle code.
fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => HashAlg::Sha256.empty_root(),
        [leaf] => *leaf,
        _ => {
            let split = leaves.len().next_power_of_two() / 2;
            let (left, right) = leaves.split_at(split);
            HashAlg::Sha256.node_hash(&naive_root(left), &naive_root(right))
        }
    }
}

#[test]
fn tessera_log_entries_match_its_bundle_and_tile() {
    let log = tile_vectors().tessera_testdata_log;
    assert_eq!(log.entries_utf8.len(), 15);
    assert_eq!(log.entry_bundle_path, "tile/entries/000.p/15");
    assert_eq!(log.level0_tile_path, "tile/0/000.p/15");
    // The entry bundle is big-endian u16 length-prefixed entries.
    let mut bundle = Vec::new();
    for entry in &log.entries_utf8 {
        bundle.extend_from_slice(&u16::try_from(entry.len()).unwrap().to_be_bytes());
        bundle.extend_from_slice(entry.as_bytes());
    }
    assert_eq!(hex::encode(bundle), log.entry_bundle_hex);
    let tile: Vec<u8> = tessera_leaf_hashes(&log).iter().flat_map(|h| h.0).collect();
    assert_eq!(hex::encode(tile), log.level0_tile_hex);
}

#[test]
fn tessera_checkpoints_open_and_carry_the_recomputed_roots() {
    let log = tile_vectors().tessera_testdata_log;
    let verifier = Verifier::from_vkey(&log.vkey).expect("the log's vkey parses");
    assert_eq!(verifier.name(), log.origin);
    let known: Verifiers = [verifier.clone()].into_iter().collect();
    let leaves = tessera_leaf_hashes(&log);
    assert_eq!(log.checkpoints.len(), 16, "sizes 0 through 15");
    for (expected_size, cp) in (0u64..).zip(&log.checkpoints) {
        assert_eq!(cp.size, expected_size);
        let (checkpoint, opened) = open_checkpoint(cp.checkpoint_utf8.as_bytes(), &known)
            .unwrap_or_else(|e| panic!("size {}: {e}", cp.size));
        assert_eq!(checkpoint.origin, log.origin);
        assert_eq!(checkpoint.size, TreeSize(cp.size));
        assert_eq!(checkpoint.root.to_hex(), cp.root_hex);
        assert!(checkpoint.extensions.is_empty());
        assert!(opened.is_verified_by(&log.origin, verifier.key_id()));

        let prefix = &leaves[..usize::try_from(cp.size).unwrap()];
        assert_eq!(
            root_from_leaf_hashes(HashAlg::Sha256, prefix),
            checkpoint.root
        );
        assert_eq!(naive_root(prefix), checkpoint.root);

        // Re-encoding gives back the signed text byte for byte.
        assert_eq!(checkpoint.encode().unwrap(), opened.text());
    }
}

#[test]
fn tessera_checkpoints_are_reproduced_byte_for_byte() {
    let v = note_vectors();
    let log = tile_vectors().tessera_testdata_log;
    let key = v
        .signing_keys
        .iter()
        .find(|k| k.vkey == log.vkey)
        .expect("the tessera signing key is published");
    let signer = Signer::from_skey(&key.skey).expect("parses");
    let leaves = tessera_leaf_hashes(&log);
    for cp in &log.checkpoints {
        let size = usize::try_from(cp.size).unwrap();
        let checkpoint = Checkpoint::new(
            log.origin.clone(),
            TreeSize(cp.size),
            root_from_leaf_hashes(HashAlg::Sha256, &leaves[..size]),
        );
        let signed = checkpoint.sign(&[&signer]).expect("signs");
        assert_eq!(
            String::from_utf8(signed).unwrap(),
            cp.checkpoint_utf8,
            "size {size}"
        );
    }
}

#[test]
fn tampered_tessera_checkpoints_are_rejected() {
    let log = tile_vectors().tessera_testdata_log;
    let known: Verifiers = [Verifier::from_vkey(&log.vkey).unwrap()]
        .into_iter()
        .collect();
    let original = &log.checkpoints[5].checkpoint_utf8;
    let root_line = original.lines().nth(2).unwrap();
    let other_root = log.checkpoints[6].checkpoint_utf8.lines().nth(2).unwrap();
    for tampered in [
        original.replacen("\n5\n", "\n6\n", 1),
        original.replacen(root_line, other_root, 1),
        original.replacen(
            "example.com/log/testdata\n",
            "example.com/log/testdatb\n",
            1,
        ),
    ] {
        assert!(
            matches!(
                open_checkpoint(tampered.as_bytes(), &known),
                Err(vouch_ledger_core::OpenCheckpointError::Note(
                    NoteError::InvalidSignature { .. }
                ))
            ),
            "{tampered}"
        );
    }
}

#[test]
fn derived_cosignature_verifies() {
    let v = note_vectors();
    let c = &v.derived_cosignature_v1;
    assert!(c.provenance.starts_with("DERIVED") && !c.spec_source.is_null());
    assert_eq!(c.key_id_rule, "SHA-256(name || 0x0A || 0x04 || pubkey)[:4]");

    let cosigner = Verifier::from_vkey(&c.cosigner_vkey).expect("type 0x04 vkey parses");
    assert_eq!(cosigner.name(), c.cosigner_name);
    assert_eq!(cosigner.signature_type(), SignatureType::CosignatureV1);
    assert_eq!(hex::encode(cosigner.public_key()), c.ed25519_pubkey_hex);
    assert_eq!(cosigner.key_id(), key_id(&c.key_id_hex));
    let public_key = unhex(&c.ed25519_pubkey_hex);
    assert_eq!(
        KeyId::compute(&c.cosigner_name, SIG_TYPE_COSIGNATURE_V1, &public_key),
        cosigner.key_id()
    );
    assert_eq!(cosigner.to_vkey(), c.cosigner_vkey);
    // The same key material under type 0x01 has a different ID.
    let seed: [u8; 32] = unhex(&c.ed25519_seed_hex).try_into().unwrap();
    let plain = Signer::from_seed(&c.cosigner_name, &seed).unwrap();
    assert_eq!(plain.public_key(), cosigner.public_key());
    assert_ne!(plain.key_id(), cosigner.key_id());

    // The blob is key ID ‖ big-endian timestamp ‖ Ed25519 signature over the message.
    let blob = unhex(&c.signature_blob_hex);
    assert_eq!(&blob[..4], cosigner.key_id().to_be_bytes());
    assert_eq!(blob[4..12], c.timestamp.to_be_bytes());
    assert_eq!(hex::encode(&blob[12..]), c.ed25519_signature_hex);
    assert_eq!(
        c.signed_message_utf8,
        format!(
            "cosignature/v1\ntime {}\n{}",
            c.timestamp, c.checkpoint_body_utf8
        )
    );
    assert_eq!(
        c.signature_line_utf8,
        format!("— {} {}\n", c.cosigner_name, BASE64.encode(&blob))
    );
    assert!(cosigner.verify(c.checkpoint_body_utf8.as_bytes(), &blob[4..]));
    let mut later = blob[4..].to_vec();
    later[7] ^= 1;
    assert!(!cosigner.verify(c.checkpoint_body_utf8.as_bytes(), &later));

    // The cosigned checkpoint opens with the log key, the cosigner key, or both.
    let log = tile_vectors().tessera_testdata_log;
    let log_key = Verifier::from_vkey(&log.vkey).unwrap();
    let note = c.full_cosigned_checkpoint_utf8.as_bytes();
    assert!(
        c.full_cosigned_checkpoint_utf8
            .ends_with(&c.signature_line_utf8)
    );
    let both: Verifiers = [log_key.clone(), cosigner.clone()].into_iter().collect();
    let (checkpoint, opened) = open_checkpoint(note, &both).unwrap();
    assert_eq!(checkpoint.size, TreeSize(15));
    assert_eq!(opened.verified().len(), 2);
    assert!(opened.is_verified_by(&c.cosigner_name, cosigner.key_id()));
    let only_witness: Verifiers = [cosigner.clone()].into_iter().collect();
    let opened = note::open(note, &only_witness).unwrap();
    assert_eq!(opened.unverified().len(), 1);
    assert_eq!(opened.text(), c.checkpoint_body_utf8);

    // A cosignature over a different body fails.
    let forged = c
        .full_cosigned_checkpoint_utf8
        .replacen("\n15\n", "\n14\n", 1);
    assert!(matches!(
        note::open(forged.as_bytes(), &only_witness),
        Err(NoteError::InvalidSignature { .. })
    ));

    // The spec's example cosignature decodes as documented (its key is unpublished).
    let framing = &c.c2sp_example_framing;
    assert!(!framing.source.is_null() && !framing.decoded.verifiable);
    assert!(!framing.decoded.why.is_empty());
    let b64 = framing
        .signature_line_utf8
        .strip_prefix("— witness.example.com/w1 ")
        .unwrap();
    let blob = BASE64.decode(b64).unwrap();
    assert_eq!(hex::encode(&blob[..4]), framing.decoded.key_id_hex);
    assert_eq!(blob[4..12], framing.decoded.timestamp.to_be_bytes());
    assert_eq!(
        hex::encode(&blob[12..]),
        framing.decoded.ed25519_signature_hex
    );
}

/// The signed checkpoint of `docs/proofs.md`: a one-entry SHA-256 ledger
/// whose only leaf is the documented envelope, signed with the documented test key.
#[test]
fn documented_checkpoint_example() {
    let seed: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap());
    let signer = Signer::from_seed("example.com/vouch/default", &seed).unwrap();
    assert_eq!(
        signer.to_skey(),
        "PRIVATE+KEY+example.com/vouch/default+2be07c0d+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"
    );
    assert_eq!(
        signer.verifier().to_vkey(),
        "example.com/vouch/default+2be07c0d+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
    );
    assert_eq!(
        hex::encode(signer.public_key()),
        "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    );
    let envelope = unhex(
        "01030000000000000000000057c07e6816180b10130000006465706c6f792d37663361\
         6170706c69636174696f6e2f6a736f6e7b226f7574636f6d65223a22414c4c4f57227d",
    );
    let root = HashAlg::Sha256.leaf_hash(&envelope);
    assert_eq!(root_from_leaf_hashes(HashAlg::Sha256, &[root]), root);
    let checkpoint = Checkpoint::new("example.com/vouch/default", TreeSize(1), root);
    let note = checkpoint.sign(&[&signer]).unwrap();
    let expected = "example.com/vouch/default\n\
                    1\n\
                    5vWW6EiS/MSnhMjdA5mqQSZvuxmj95lBC+3LvbNGoj8=\n\
                    \n\
                    — example.com/vouch/default K+B8DeQmsn/qHjCPL3xWdinLIhhYrgnFqSqJ7KFwYU8/LUqzVFothfYuKjHgN7l3+7/HbIrwaQyyvKEJ85S2Ci3p9w8=\n";
    assert_eq!(String::from_utf8(note.clone()).unwrap(), expected);
    let blob = BASE64
        .decode(expected.trim_end().rsplit(' ').next().unwrap())
        .unwrap();
    assert_eq!(
        hex::encode(&blob),
        "2be07c0d\
         e426b27fea1e308f2f7c567629cb221858ae09c5a92a89eca170614f3f2d4ab3\
         545a2d85f62e2a31e037b977fbbfc76c8af0690cb2bca109f394b60a2de9f70f"
    );
    let known: Verifiers = [signer.verifier()].into_iter().collect();
    let (opened, _) = open_checkpoint(&note, &known).unwrap();
    assert_eq!(opened, checkpoint);

    // The same ledger under BLAKE3 has another root, so another checkpoint text.
    let blake3_root = HashAlg::Blake3.leaf_hash(&envelope);
    let text = Checkpoint::new("example.com/vouch/default", TreeSize(1), blake3_root)
        .encode()
        .unwrap();
    assert_eq!(
        text,
        "example.com/vouch/default\n1\ngex4j8EjmFKgSORJU8cyKx7ecSfaTcsVJfrGedfaPbc=\n"
    );
}
