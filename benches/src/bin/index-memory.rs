//! `index-memory`: the resident heap (`RssAnon`) of a process appending to one ledger, as the
//! ledger grows, with or without an idempotency key on every entry.
//!
//! Entries without keys touch only the engine's own files; each key is a term in the
//! secondary index (sled), whose memory grows with the number of terms it holds. The figures
//! are in `docs/operations.md` ("Memory"). Run with
//! `cargo run --release -p vouch-benches --bin index-memory -- --help`.

use clap::Parser;
use vouch_benches::workload;
use vouch_ledger_core::HashAlg;
use vouch_ledger_core::entry::{EntryDraft, EntryKind};
use vouch_storage::{DataDir, Durability};

#[derive(Debug, Parser)]
#[command(
    name = "index-memory",
    about = "The heap of a ledger's process as its secondary index grows"
)]
struct Args {
    /// Entries to append, in batches of 1,000.
    #[arg(long, default_value_t = 3_000_000)]
    entries: u64,
    /// Give every entry an idempotency key (one secondary-index term per entry).
    #[arg(long)]
    keys: bool,
    /// Print a line every this many entries.
    #[arg(long, default_value_t = 250_000)]
    every: u64,
}

/// The process's resident anonymous memory (its heap), in KiB.
fn rss_anon_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// [`rss_anon_kib`] in MiB.
fn heap_mib() -> f64 {
    f64::from(u32::try_from(rss_anon_kib()).unwrap_or(u32::MAX)) / 1024.0
}

fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dd = DataDir::open(dir.path()).expect("a data directory");
    dd.create_ledger(
        "main",
        &workload::config(HashAlg::Blake3, true),
        &workload::signer().verifier(),
        1,
    )
    .expect("create the ledger");
    // Durability `none`: the build is not what is measured, and memory does not depend on it.
    let ledger = dd
        .open_ledger(
            "main",
            workload::signer(),
            workload::options(Durability::NoneUnsafe),
        )
        .expect("open the ledger");
    println!("entries\theap_mib\t(keys: {})", args.keys);
    println!("0\t{:.1}", heap_mib());
    let mut next = 0u64;
    while next < args.entries {
        let end = (next + 1000).min(args.entries);
        let drafts: Vec<EntryDraft> = (next..end)
            .map(|n| {
                EntryDraft::new(
                    EntryKind::Record,
                    args.keys.then(|| format!("client-7-request-{n:012}")),
                    "application/json".into(),
                    format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(200)).into_bytes(),
                )
                .expect("a valid draft")
            })
            .collect();
        ledger
            .submit(drafts, false)
            .expect("submit")
            .wait()
            .expect("append");
        if end / args.every > next / args.every {
            println!("{end}\t{:.1}", heap_mib());
        }
        next = end;
    }
}
