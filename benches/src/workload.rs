//! The storage engine workload shared by `benches/benches/storage.rs` and the `storage-bench`
//! binary: 256-byte JSON payloads, a fixed signing key, ledger creation, fast bulk loading,
//! and the exact segment bytes the engine writes for a group, for raw write+fsync baselines.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use vouch_ledger_core::HashAlg;
use vouch_ledger_core::entry::{EntryDraft, EntryKind};
use vouch_ledger_core::note::Signer;
use vouch_storage::{DataDir, Durability, Ledger, LedgerConfig, LedgerOptions};

/// The payload length of every benchmark entry.
pub const PAYLOAD_LEN: usize = 256;

/// The content type of every benchmark entry.
pub const CONTENT_TYPE: &str = "application/json";

/// The checkpoint origin (and key name) of benchmark ledgers.
pub const ORIGIN: &str = "bench.vouch.invalid/storage";

/// The bytes a segment file holds before its first frame.
pub const SEGMENT_HEADER_LEN: u64 = 32;

/// A JSON object of exactly [`PAYLOAD_LEN`] bytes that differs for every `seq`.
pub fn payload(seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(PAYLOAD_LEN);
    out.extend_from_slice(format!("{{\"seq\":{seq:020},\"pad\":\"").as_bytes());
    let mut x = seq ^ 0x9e37_79b9_7f4a_7c15;
    while out.len() < PAYLOAD_LEN - 2 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.push(b'a' + u8::try_from((x >> 59) % 26).unwrap_or(0));
    }
    out.extend_from_slice(b"\"}");
    out
}

/// The draft of benchmark entry `seq`: a record without idempotency key.
///
/// # Panics
///
/// Never: the fields are within every envelope limit.
pub fn draft(seq: u64) -> EntryDraft {
    EntryDraft::new(
        EntryKind::Record,
        None,
        CONTENT_TYPE.to_owned(),
        payload(seq),
    )
    .expect("a 256-byte JSON payload is a valid entry")
}

/// `count` drafts starting at `first`.
pub fn drafts(first: u64, count: usize) -> Vec<EntryDraft> {
    (first..first + count as u64).map(draft).collect()
}

/// The fixed signing key of benchmark ledgers.
///
/// # Panics
///
/// Never: the origin is a valid key name.
pub fn signer() -> Signer {
    Signer::from_seed(ORIGIN, &[42u8; 32]).expect("a valid key name")
}

/// The configuration of a benchmark ledger: the hash, with or without the leaf-hash index.
pub fn config(hash: HashAlg, leaf_hash_index: bool) -> LedgerConfig {
    LedgerConfig {
        hash,
        origin: ORIGIN.to_owned(),
        leaf_hash_index,
    }
}

/// Options with the given durability and everything else at its default.
pub fn options(durability: Durability) -> LedgerOptions {
    LedgerOptions {
        durability,
        ..LedgerOptions::default()
    }
}

/// Creates ledger `name` in `dd` with `config` and opens it.
///
/// # Panics
///
/// If the ledger cannot be created or opened: a benchmark cannot go on without it.
pub fn create_and_open(
    dd: &DataDir,
    name: &str,
    config: &LedgerConfig,
    options: LedgerOptions,
) -> Ledger {
    dd.create_ledger(name, config, &signer().verifier(), 1)
        .expect("create the benchmark ledger");
    dd.open_ledger(name, signer(), options)
        .expect("open the benchmark ledger")
}

/// Appends `count` entries in batches of `batch`, keeping up to `in_flight` batches
/// submitted so that the sequencer always has the next group waiting (it commits all waiting
/// batches as one group, up to its group limits). `progress` is called with the number of
/// entries acknowledged after every batch; when it returns false, no more batches are
/// submitted. Returns the number of entries appended.
///
/// # Panics
///
/// If an append fails.
pub fn load(
    ledger: &Ledger,
    count: u64,
    batch: usize,
    in_flight: usize,
    progress: &mut dyn FnMut(u64) -> bool,
) -> u64 {
    let first = ledger.size().0;
    let end = first + count;
    let mut next = first;
    let mut acked = 0u64;
    let mut go_on = true;
    let mut pending = std::collections::VecDeque::new();
    while (go_on && next < end) || !pending.is_empty() {
        while go_on && next < end && pending.len() < in_flight.max(1) {
            let n = usize::try_from((end - next).min(batch as u64)).unwrap_or(batch);
            let ticket = ledger
                .submit(drafts(next, n), false)
                .expect("submit a benchmark batch");
            pending.push_back((ticket, n));
            next += n as u64;
        }
        if let Some((ticket, n)) = pending.pop_front() {
            ticket.wait().expect("append a benchmark batch");
            acked += n as u64;
            go_on = progress(acked);
        }
    }
    acked
}

/// One round of concurrent single-entry appends: `threads` threads append `per_thread`
/// entries each, one at a time, waiting for each acknowledgement. Returns the time from the
/// moment every thread is ready (threads are started and drafts made before) to the last
/// acknowledgement.
///
/// # Panics
///
/// If an append fails.
pub fn concurrent_round(ledger: &Arc<Ledger>, threads: usize, per_thread: usize) -> Duration {
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let ledger = ledger.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let first = (t * per_thread) as u64;
                let drafts = drafts(first, per_thread);
                start.wait();
                for d in drafts {
                    ledger.append(d).expect("append");
                }
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    for h in handles {
        h.join().expect("appending thread");
    }
    t.elapsed()
}

/// The exact bytes the engine appends to its segment for a group of `count` benchmark
/// entries (frames of 256-byte payload entries), taken from a throw-away ledger's segment.
///
/// # Panics
///
/// If the throw-away ledger cannot be written or read.
pub fn group_bytes(count: usize) -> Vec<u8> {
    frames(drafts(0, count))
}

/// The exact bytes the engine appends to its segment for `drafts` committed as one group,
/// taken from a throw-away ledger's segment.
///
/// # Panics
///
/// If the throw-away ledger cannot be written or read.
pub fn frames(drafts: Vec<EntryDraft>) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let dd = DataDir::open(dir.path()).expect("data directory");
    let ledger = create_and_open(
        &dd,
        "bytes",
        &config(HashAlg::Blake3, false),
        options(Durability::NoneUnsafe),
    );
    ledger
        .submit(drafts, false)
        .expect("submit")
        .wait()
        .expect("append");
    ledger.close();
    let seg = dir
        .path()
        .join("ledgers/bytes/segments")
        .join(format!("{:020}.seg", 0));
    let bytes = std::fs::read(seg).expect("read the segment");
    let header = usize::try_from(SEGMENT_HEADER_LEN).unwrap_or(32);
    bytes[header..].to_vec()
}

/// The envelope length of a benchmark entry: the 24-byte fixed part, the content type and the
/// payload (see `docs/proofs.md`).
pub fn envelope_len() -> usize {
    draft(0).encoded_len()
}

/// A file that is appended to like the engine's active segment, with or without a
/// `fdatasync` after each write: the raw baseline of the append benchmarks.
#[derive(Debug)]
pub struct RawLog {
    file: File,
    len: u64,
}

impl RawLog {
    /// Creates `path` (truncating it) with a 32-byte header, synced, like a new segment.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.write_all_at(&[0u8; 32], 0)?;
        file.sync_data()?;
        Ok(Self {
            file,
            len: SEGMENT_HEADER_LEN,
        })
    }

    /// Appends `bytes` with one positional write, then `fdatasync`s if `sync`.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn append(&mut self, bytes: &[u8], sync: bool) -> io::Result<()> {
        self.file.write_all_at(bytes, self.len)?;
        if sync {
            self.file.sync_data()?;
        }
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// A fixed pseudo-random sequence of `count` values below `bound` (a 64-bit LCG), the same
/// in every run.
pub fn targets(bound: u64, count: usize, seed: u64) -> Vec<u64> {
    let mut x = seed;
    (0..count)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 11) % bound.max(1)
        })
        .collect()
}
