//! Real process crashes: a process appending to a ledger is killed with `SIGKILL` at random
//! moments, and nothing it acknowledged may be lost.
//!
//! The test binary runs itself again as the appending process: with `VOUCH_KILL_CHILD_DIR`
//! set, the test below opens the ledger in that directory and appends from a few threads
//! (single entries and small batches, some with idempotency keys), printing `ACK <index>
//! <leaf hash>` for every acknowledged entry, one flushed line each. The parent reads those
//! lines, kills the child after a random delay, verifies the crashed directory offline,
//! reopens the ledger and checks that every acknowledged index holds the acknowledged leaf
//! hash and that `verify` passes; then the next child continues the same ledger. The children
//! rotate through the durability modes: `SIGKILL` keeps the page cache, so even entries
//! acknowledged before an `fsync` must survive it.
//!
//! `VOUCH_KILL_CYCLES` sets the number of kills (20 by default), `VOUCH_KILL_SEED` the random
//! seed (printed by every run).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use support::{config, draft, signer};
use vouch_ledger_core::{EntryIndex, Hash, HashAlg};
use vouch_storage::{
    CheckpointCadence, DataDir, Durability, LedgerOptions, Receipt, verify_ledger_dir,
};

const LEDGER: &str = "killed";
/// The name of the test below, which is also the child's entry point.
const TEST_NAME: &str = "sigkill_loses_no_acknowledged_entry";
const CHILD_DIR: &str = "VOUCH_KILL_CHILD_DIR";
const CHILD_CYCLE: &str = "VOUCH_KILL_CHILD_CYCLE";
/// How long a child may take to acknowledge its first entry.
const STARTUP_LIMIT: Duration = Duration::from_secs(20);

fn durability(cycle: u64) -> Durability {
    match cycle % 3 {
        0 => Durability::Fsync,
        1 => Durability::Interval(Duration::from_millis(5)),
        _ => Durability::NoneUnsafe,
    }
}

fn options(cycle: u64) -> LedgerOptions {
    LedgerOptions {
        durability: durability(cycle),
        checkpoints: CheckpointCadence {
            every_entries: Some(150),
            every: Some(Duration::from_millis(25)),
        },
        segment_target_size: 32 << 10,
        head_interval: Duration::from_millis(15),
        leaf_index_chunk: LEAF_CHUNK,
        ..LedgerOptions::default()
    }
}

/// A small leaf-index chunk, so that runs are written and merged while the child is killed.
const LEAF_CHUNK: u64 = 64;

#[test]
fn sigkill_loses_no_acknowledged_entry() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        let cycle = std::env::var(CHILD_CYCLE)
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        child(Path::new(&dir), cycle);
    }
    parent();
}

/// Appends until killed (or, should the parent vanish, until stdout breaks or a minute passed).
fn child(root: &Path, cycle: u64) -> ! {
    let dd = DataDir::open(root).expect("child: data directory");
    let ledger = Arc::new(
        dd.open_ledger(LEDGER, signer(), options(cycle))
            .expect("child: open the ledger"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let print = |receipts: &[Receipt]| -> bool {
        let mut out = std::io::stdout().lock();
        for r in receipts.iter().filter(|r| !r.duplicate) {
            if writeln!(out, "ACK {} {}", r.index.0, r.leaf_hash.to_hex()).is_err() {
                return false;
            }
        }
        out.flush().is_ok()
    };
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let ledger = ledger.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let n = (cycle << 40) | (t << 32) | i;
                    let key = (i % 5 == 0).then(|| format!("c{cycle}-t{t}-{i}"));
                    let receipts = if i % 3 == 0 {
                        let batch = (0..2 + i % 3).map(|j| draft(n + (j << 20), None)).collect();
                        ledger
                            .submit(batch, false)
                            .and_then(vouch_storage::AppendTicket::wait)
                            .map(|o| o.receipts)
                    } else {
                        ledger.append(draft(n, key.as_deref())).map(|r| vec![r])
                    };
                    let printed = match receipts {
                        Ok(receipts) => print(&receipts),
                        Err(e) => {
                            // The parent fails the test on this line.
                            let _ = writeln!(std::io::stdout().lock(), "\nERR {e}");
                            false
                        }
                    };
                    if !printed {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    std::process::exit(0);
}

fn parent() {
    let cycles: u64 = std::env::var("VOUCH_KILL_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("VOUCH_KILL_SEED")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| u64::from(d.subsec_nanos()) ^ d.as_secs())
        });
    eprintln!("VOUCH_KILL_SEED={seed} VOUCH_KILL_CYCLES={cycles}");
    let mut rng = support::Rng::new(seed);

    let scratch = support::scratch_dir();
    let root = scratch.path().join("data");
    let dd = DataDir::open(&root).unwrap();
    dd.create_ledger(LEDGER, &config(HashAlg::Blake3), &signer().verifier(), 1)
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let stderr_path = scratch.path().join("child.stderr");

    let mut acked: BTreeMap<u64, Hash> = BTreeMap::new();
    for cycle in 0..cycles {
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, &root)
            .env(CHILD_CYCLE, cycle.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match lines.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    // A line cut short by the kill was never fully reported: skip it.
                    Ok(_) if !line.ends_with('\n') => break,
                    Ok(_) => {}
                }
                let sent = if let Some(at) = line.find("ACK ") {
                    let mut words = line[at + 4..].split_whitespace();
                    let index: u64 = words.next().unwrap().parse().unwrap();
                    let hash = Hash::from_hex(words.next().unwrap()).unwrap();
                    tx.send(Ok((index, hash)))
                } else if let Some(at) = line.find("ERR ") {
                    tx.send(Err(line[at..].trim().to_owned()))
                } else {
                    Ok(())
                };
                if sent.is_err() {
                    break;
                }
            }
        });
        let first = rx.recv_timeout(STARTUP_LIMIT);
        if first.is_ok() {
            std::thread::sleep(Duration::from_millis(5 + rng.below(100)));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        let child_stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        assert!(
            first.is_ok(),
            "cycle {cycle}: the child acknowledged nothing ({status}); its stderr:\n{child_stderr}"
        );
        let mut new = 0;
        for line in first.into_iter().chain(rx.try_iter()) {
            let (index, hash) = line.unwrap_or_else(|e| {
                panic!("cycle {cycle}: the child's append failed: {e}\n{child_stderr}")
            });
            if let Some(before) = acked.insert(index, hash) {
                assert_eq!(
                    before, hash,
                    "cycle {cycle}: entry {index} was acknowledged twice with different contents"
                );
            } else {
                new += 1;
            }
        }

        let offline = verify_ledger_dir(&root, LEDGER, &mut |_| {})
            .unwrap_or_else(|e| panic!("cycle {cycle}: offline verification: {e}"));
        let ledger = dd
            .open_ledger(
                LEDGER,
                signer(),
                LedgerOptions {
                    leaf_index_chunk: LEAF_CHUNK,
                    ..LedgerOptions::default()
                },
            )
            .unwrap_or_else(|e| panic!("cycle {cycle}: reopening after the kill: {e}"));
        let size = ledger.size().0;
        let max = acked.keys().next_back().copied().unwrap_or(0);
        assert!(
            size > max,
            "cycle {cycle} ({:?}): entry {max} was acknowledged but the ledger holds {size}",
            durability(cycle)
        );
        for (&index, &hash) in &acked {
            assert_eq!(
                ledger.leaf_hash(EntryIndex(index)).unwrap(),
                hash,
                "cycle {cycle}: entry {index}"
            );
            assert_eq!(
                ledger.find_by_leaf_hash(&hash).unwrap(),
                Some(EntryIndex(index)),
                "cycle {cycle}: entry {index} by its leaf hash"
            );
        }
        support::assert_leaf_index_covers(&ledger, &format!("cycle {cycle}"));
        let report = ledger
            .verify(&mut |_| {})
            .unwrap_or_else(|e| panic!("cycle {cycle}: verify: {e}"));
        assert_eq!(report.entries, size);
        assert_eq!(
            offline.entries, size,
            "cycle {cycle}: the torn tail was not all"
        );
        if let Some(cp) = ledger.latest_checkpoint() {
            assert!(cp.size().0 <= size);
        }
        ledger.close();
        eprintln!(
            "cycle {cycle} ({}): {new} new acknowledged entries, {size} in the ledger",
            durability(cycle)
        );
    }
    assert!(
        acked.len() as u64 >= cycles,
        "too few appends to test anything"
    );
}
