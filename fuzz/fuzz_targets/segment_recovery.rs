//! Recovery from hostile files: fuzz bytes replace one file of a small prepared ledger (the
//! active segment, `checkpoints.dat`, `offsets.dat`, `index.head`, a Merkle node file or
//! `ledger.json`), then the ledger is opened.
//!
//! Opening must either fail with an error or succeed; it must never panic or hang. A normal
//! open checks derived files only where it needs them, so damage in the middle of a derived
//! file or a sealed segment may open and then fail `verify`; an open in strict mode (the top
//! bit of the first byte) must refuse such a ledger. After an open, every entry that reads
//! reads as a valid envelope at its index, and the ledger never signs a root its log does not
//! give. When the ledger verifies, every entry reads, the latest checkpoint opens with the
//! ledger's key and matches the log, and one more append and checkpoint succeed and keep the
//! ledger verifiable.
//!
//! The first input byte picks the file and how the rest is written: raw, after a prefix of
//! the genuine file, or as records framed with valid CRCs (so the fuzzer gets past the
//! checksums to what recovery does with well-framed but hostile contents).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vouch_fuzz::recovery::{self, LEDGER, draft, options};
use vouch_fuzz::{Snapshot, log_signer, restore, scratch_dir, trusted};
use vouch_ledger_core::checkpoint::open_checkpoint;
use vouch_ledger_core::entry::EntryView;
use vouch_ledger_core::{EntryIndex, MemoryTree};
use vouch_storage::{DataDir, LedgerOptions};

struct Fixture {
    /// The whole data directory of the prepared ledger.
    files: Snapshot,
    /// Where iterations build their data directories.
    scratch: tempfile::TempDir,
    /// The active segment's path, relative to the data directory.
    active_segment: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let scratch = scratch_dir("recovery");
        let files = recovery::template(&scratch.path().join("template"));
        let active_segment = recovery::active_segment(&files);
        Fixture {
            files,
            scratch,
            active_segment,
        }
    })
}

/// `len ‖ CRC-32C(len ‖ body) ‖ body`, as `docs/format.md` frames records.
fn frame(body: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), body);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(body);
}

/// Splits `data` into records, each led by one length byte.
fn records(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = data.split_first() {
        let (record, rest) = rest.split_at(usize::from(len).min(rest.len()));
        out.push(record);
        data = rest;
    }
    out
}

/// Fixes the CRC of a 32-byte file header in place.
fn fix_header_crc(bytes: &mut [u8]) {
    if bytes.len() >= 32 {
        let crc = crc32c::crc32c(&bytes[..28]);
        bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    }
}

fn original<'a>(files: &'a Snapshot, path: &Path) -> &'a [u8] {
    files
        .iter()
        .find(|(p, _)| p == path)
        .map_or(&[][..], |(_, bytes)| bytes.as_slice())
}

/// The file to replace and its new contents.
fn hostile_file(fixture: &Fixture, data: &[u8]) -> Option<(PathBuf, Vec<u8>)> {
    let (&selector, rest) = data.split_first()?;
    let (cut, payload) = match rest.split_first_chunk::<2>() {
        Some((cut, payload)) => (usize::from(u16::from_le_bytes(*cut)), payload),
        None => (0, rest),
    };
    let ledger = PathBuf::from("ledgers").join(LEDGER);
    let segment = fixture.active_segment.clone();
    let prefix = |path: &Path, keep: usize| {
        let bytes = original(&fixture.files, path);
        bytes[..keep.min(bytes.len())].to_vec()
    };
    let (path, bytes) = match (selector & 0x7f) % 12 {
        // The active segment, raw.
        0 => (segment, payload.to_vec()),
        // A prefix of the genuine active segment, then raw bytes: torn and garbage tails.
        1 => {
            let mut bytes = prefix(&segment, cut);
            bytes.extend_from_slice(payload);
            (segment, bytes)
        }
        // The genuine active segment (or a prefix of it), then well-framed records.
        2 => {
            let mut bytes = prefix(&segment, cut.max(32));
            for record in records(payload) {
                frame(record, &mut bytes);
            }
            (segment, bytes)
        }
        // A segment header with a fuzz-chosen first index (CRC fixed), then framed records.
        3 => {
            let mut bytes = prefix(&segment, 32);
            let (word, payload) = payload.split_first_chunk::<8>()?;
            bytes[16..24].copy_from_slice(word);
            fix_header_crc(&mut bytes);
            for record in records(payload) {
                frame(record, &mut bytes);
            }
            (segment, bytes)
        }
        // checkpoints.dat, raw.
        4 => (ledger.join("checkpoints.dat"), payload.to_vec()),
        // A prefix of the genuine checkpoints.dat, then raw bytes.
        5 => {
            let path = ledger.join("checkpoints.dat");
            let mut bytes = prefix(&path, cut);
            bytes.extend_from_slice(payload);
            (path, bytes)
        }
        // A prefix of the genuine checkpoints.dat, then well-framed notes.
        6 => {
            let path = ledger.join("checkpoints.dat");
            let mut bytes = prefix(&path, cut.max(32));
            for record in records(payload) {
                frame(record, &mut bytes);
            }
            (path, bytes)
        }
        // offsets.dat: the genuine file with fuzz bytes written over it from `cut`.
        7 => {
            let path = ledger.join("offsets.dat");
            let mut bytes = original(&fixture.files, &path).to_vec();
            overwrite(&mut bytes, cut, payload);
            (path, bytes)
        }
        // offsets.dat, raw.
        8 => (ledger.join("offsets.dat"), payload.to_vec()),
        // index.head: fuzz bytes over the genuine head, CRC fixed when `cut` is even.
        9 => {
            let path = ledger.join("index.head");
            let mut bytes = original(&fixture.files, &path).to_vec();
            overwrite(&mut bytes, cut % 40, payload);
            if cut % 2 == 0 {
                fix_header_crc(&mut bytes);
            }
            (path, bytes)
        }
        // The first Merkle node file: fuzz bytes over the genuine file.
        10 => {
            let path = ledger.join("tree").join("level-01.dat");
            let mut bytes = original(&fixture.files, &path).to_vec();
            overwrite(&mut bytes, cut, payload);
            if cut % 2 == 0 {
                fix_header_crc(&mut bytes);
            }
            (path, bytes)
        }
        // ledger.json, raw.
        _ => (ledger.join("ledger.json"), payload.to_vec()),
    };
    Some((path, bytes))
}

/// Writes `payload` over `bytes` from `at` (clamped to the end), growing it as needed.
fn overwrite(bytes: &mut Vec<u8>, at: usize, payload: &[u8]) {
    let at = at.min(bytes.len());
    let end = at + payload.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[at..end].copy_from_slice(payload);
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let Some((path, bytes)) = hostile_file(fixture, data) else {
        return;
    };
    let root = fixture.scratch.path().join("iteration");
    if root.exists() {
        std::fs::remove_dir_all(&root).expect("clean up");
    }
    restore(&root, &fixture.files);
    std::fs::write(root.join(&path), &bytes).expect("write the hostile file");

    let Ok(data_dir) = DataDir::open(&root) else {
        return;
    };
    // The top bit of the first byte opens in strict mode (verify everything first).
    let strict = data.first().is_some_and(|b| b & 0x80 != 0);
    let options = LedgerOptions {
        strict,
        ..options()
    };
    let Ok(ledger) = data_dir.open_ledger(LEDGER, log_signer(), options) else {
        return;
    };
    // A normal open checks the derived files only where it needs them (the nodes of the
    // right edge, the offsets it scans from), so damage in the middle of a derived file or a
    // sealed segment may open and is found by `verify`; a strict open must refuse it.
    let verified = ledger.verify(&mut |_| {});
    assert!(
        !strict || verified.is_ok(),
        "a strict open accepted a ledger that does not verify: {verified:?}"
    );
    // Every entry that reads at all reads as a valid envelope at its index.
    let size = ledger.size().get();
    let alg = ledger.hash_alg();
    let mut leaves = Vec::new();
    for i in 0..size {
        match ledger.get_raw(EntryIndex(i)) {
            Ok(raw) => {
                let view = EntryView::parse(&raw).expect("a stored entry is a valid envelope");
                assert_eq!(view.index(), EntryIndex(i));
                leaves.push(alg.leaf_hash(&raw));
            }
            Err(e) => assert!(verified.is_err(), "entry {i} of a verified ledger: {e}"),
        }
    }
    let whole = leaves.len() as u64 == size;
    let truth = MemoryTree::from_leaf_hashes(alg, leaves);
    // Whatever the ledger holds, it never signs a root that its log does not give.
    let check_checkpoint = |ledger: &vouch_storage::Ledger, truth: &MemoryTree| {
        if let Some(latest) = ledger.latest_checkpoint() {
            let (checkpoint, _) =
                open_checkpoint(&latest.note, trusted()).expect("the latest checkpoint opens");
            assert_eq!(checkpoint, latest.checkpoint);
            assert!(
                checkpoint.size.get() <= ledger.size().get(),
                "a checkpoint beyond the log"
            );
            if whole && verified.is_ok() {
                assert_eq!(truth.root_at(checkpoint.size).ok(), Some(checkpoint.root));
            }
        }
    };
    check_checkpoint(&ledger, &truth);
    if verified.is_err() {
        // Appending to a damaged ledger may fail; if it signs a checkpoint over the entries
        // that read, its root must be theirs.
        if ledger.append(draft(size + 100)).is_ok() && whole {
            if let (Ok(cp), Ok(raw)) = (ledger.checkpoint_now(), ledger.get_raw(EntryIndex(size))) {
                let mut truth = truth;
                truth.push(alg.leaf_hash(&raw));
                assert_eq!(
                    truth.root_at(cp.size()).ok(),
                    Some(cp.checkpoint.root),
                    "signed a root the log does not give"
                );
            }
        }
        ledger.close();
        return;
    }
    let receipt = ledger.append(draft(size + 100));
    assert!(receipt.is_ok(), "append after recovery failed: {receipt:?}");
    let report = ledger.verify(&mut |_| {});
    assert!(
        report.is_ok(),
        "append after recovery broke the ledger: {report:?}"
    );
    let cp = ledger
        .checkpoint_now()
        .expect("a checkpoint after the append");
    let mut truth = truth;
    truth.push(receipt.expect("appended").leaf_hash);
    assert_eq!(truth.root_at(cp.size()).ok(), Some(cp.checkpoint.root));
    ledger.close();
});
