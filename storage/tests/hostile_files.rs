//! Regression tests for damaged files that `fuzz/fuzz_targets/segment_recovery.rs` found: each
//! builds a small ledger, damages one file the way the fuzz input did, and checks that opening
//! it returns an error or a ledger that verifies, and never panics.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use support::{config, draft, signer};
use vouch_ledger_core::{EntryIndex, HashAlg};
use vouch_storage::{DataDir, Durability, LedgerOptions};

const NAME: &str = "hostile";

fn options() -> LedgerOptions {
    LedgerOptions {
        durability: Durability::NoneUnsafe,
        ..LedgerOptions::default()
    }
}

/// A data directory with one ledger of `entries` entries, closed; returns the ledger's
/// directory.
fn ledger_with(root: &Path, entries: u64) -> PathBuf {
    let data = DataDir::open(root).unwrap();
    data.create_ledger(NAME, &config(HashAlg::Sha256), &signer().verifier(), 1)
        .unwrap();
    let ledger = data.open_ledger(NAME, signer(), options()).unwrap();
    for n in 0..entries {
        ledger.append(draft(n, None)).unwrap();
    }
    ledger.close();
    root.join("ledgers").join(NAME)
}

/// Opens the ledger again: an error is fine; a ledger that opens must verify and read back.
fn open_must_not_panic(root: &Path) {
    let data = DataDir::open(root).unwrap();
    let Ok(ledger) = data.open_ledger(NAME, signer(), options()) else {
        return;
    };
    ledger.verify(&mut |_| {}).unwrap();
    for i in 0..ledger.size().get() {
        ledger.get(EntryIndex(i)).unwrap();
    }
}

/// `index.head` claiming `0x7600_0000_0000_0006` entries (with a valid checksum): the error
/// for the missing offset record computed its file offset as `32 + 8 * (covered - 1)`, which
/// overflows `u64`.
#[test]
fn an_index_head_covering_more_entries_than_offsets_can_address() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_with(dir.path(), 6);
    let path = ledger.join("index.head");
    let mut head = fs::read(&path).unwrap();
    head[16..24].copy_from_slice(&0x7600_0000_0000_0006_u64.to_le_bytes());
    let crc = crc32c::crc32c(&head[..28]);
    head[28..32].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &head).unwrap();
    open_must_not_panic(dir.path());
}
