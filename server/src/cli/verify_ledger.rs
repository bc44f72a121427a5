//! `vouch verify-ledger`: the offline full audit of a data directory.
//!
//! Every ledger (or the one named) is verified with `vouch_storage::verify_ledger_dir`: each
//! frame's checksum and envelope, each leaf hash, the rebuilt tree against every stored node,
//! and each checkpoint's root, origin and signature. Every checkpoint's root is compared with
//! the root of the tree rebuilt from the log at its size, so any two checkpoints are
//! consistent: each is a prefix of the same log. A progress bar with rate and ETA is drawn on
//! standard error when standard error is a terminal and `--json` is off.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use indicatif::{BinaryBytes, HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use vouch_storage::{VerifyError, VerifyProgress, VerifyReport, verify_ledger_dir};

use super::exit::{Coded, FAILURE};
use super::output::{self, Block};

/// `vouch verify-ledger`.
#[derive(Debug, Args)]
pub struct VerifyLedgerArgs {
    /// The data directory (the server must not be running on it). Defaults to the embedded
    /// default's, `./vouch-data`.
    #[arg(long, value_name = "DIR", env = "VOUCH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The ledgers of a data directory, sorted, without opening (or creating) anything.
fn ledger_names(root: &Path) -> anyhow::Result<Vec<String>> {
    let dir = root.join("ledgers");
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        Coded::new(
            FAILURE,
            format!(
                "{} is not a Vouch data directory: cannot list {}: {e}",
                root.display(),
                dir.display()
            ),
        )
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry
            .map_err(|e| Coded::new(FAILURE, format!("cannot list {}: {e}", dir.display())))?;
        if let Some(name) = entry.file_name().to_str()
            && vouch_storage::valid_ledger_name(name)
            && entry.path().join("ledger.json").exists()
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn progress_bar(name: &str, visible: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        None,
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let style = ProgressStyle::with_template(
        "{prefix} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}, eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("verifying {name}"));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn failure(name: &str, e: &VerifyError) -> anyhow::Error {
    match e {
        VerifyError::Corrupted(_) => Coded::verification(format!("ledger {name}: {e}"))
            .with_check("ledger")
            .into(),
        VerifyError::Open(open) => {
            let hint = if let vouch_storage::OpenError::Locked(_) = **open {
                "; stop the server first, or audit a copy of the data directory"
            } else {
                ""
            };
            Coded::new(FAILURE, format!("ledger {name}: {e}{hint}")).into()
        }
        _ => Coded::new(FAILURE, format!("ledger {name}: {e}")).into(),
    }
}

/// A duration for people: milliseconds below a second.
fn took(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Entries verified per second, rounded; 0 for an empty ledger.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "a rate for people and scripts: a rounded, non-negative float is enough"
)]
fn rate(r: &VerifyReport) -> u64 {
    let secs = r.elapsed.as_secs_f64();
    if r.entries == 0 || secs <= 0.0 {
        0
    } else {
        (r.entries as f64 / secs).round() as u64
    }
}

fn report_json(name: &str, r: &VerifyReport) -> serde_json::Value {
    json!({
        "ledger": name,
        "verified": true,
        "entries": r.entries,
        "envelope_bytes": r.envelope_bytes,
        "segments": r.segments,
        "checkpoints": r.checkpoints,
        "nodes_compared": r.nodes_compared,
        "root_hash": r.root.to_hex(),
        "torn_tail": r.torn_tail,
        "elapsed_ms": u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
        "entries_per_second": rate(r),
    })
}

fn report_text(name: &str, r: &VerifyReport) -> Block {
    Block::titled(format!("ledger {name}: verified"))
        .row(
            "entries",
            format!(
                "{} ({} of envelopes in {})",
                HumanCount(r.entries),
                BinaryBytes(r.envelope_bytes),
                output::count(r.segments as u64, "segment", "segments")
            ),
        )
        .row(
            "checkpoints",
            format!("{} (root, origin and signature)", r.checkpoints),
        )
        .row(
            "merkle nodes",
            format!(
                "{} compared with the rebuilt tree",
                HumanCount(r.nodes_compared)
            ),
        )
        .row("root", r.root)
        .row_opt(
            "torn tail",
            r.torn_tail
                .as_ref()
                .map(|t| format!("{t} (never acknowledged; the next open truncates it)")),
        )
        .row(
            "took",
            format!("{} ({} entries/s)", took(r.elapsed), HumanCount(rate(r))),
        )
}

/// Runs `vouch verify-ledger`.
///
/// # Errors
///
/// A ledger that does not verify (exit code 4, naming file and offset), a directory that is
/// not a data directory or is in use, or an unknown ledger.
pub fn run(args: &VerifyLedgerArgs, ledger: Option<&str>, json: bool) -> anyhow::Result<()> {
    let root = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::config::Config::embedded_default().data_dir);
    if !root.is_dir() {
        return Err(Coded::new(FAILURE, format!("{} is not a directory", root.display())).into());
    }
    let names = match ledger {
        Some(name) => vec![name.to_owned()],
        None => ledger_names(&root)?,
    };
    if names.is_empty() {
        return Err(Coded::new(FAILURE, format!("{} holds no ledgers", root.display())).into());
    }
    let visible = !json && std::io::stderr().is_terminal();
    let mut reports = Vec::new();
    for name in &names {
        let bar = progress_bar(name, visible);
        let mut on_progress = |p: &VerifyProgress| {
            bar.set_length(p.total_bytes);
            bar.set_position(p.bytes);
        };
        let result = verify_ledger_dir(&root, name, &mut on_progress);
        bar.finish_and_clear();
        let report = result.map_err(|e| failure(name, &e))?;
        if json {
            reports.push(report_json(name, &report));
        } else {
            report_text(name, &report).print()?;
        }
    }
    if json {
        output::json(
            &json!({ "verified": true, "data_dir": root.display().to_string(), "ledgers": reports }),
        )?;
    } else {
        output::line(&format!(
            "verified {} in {}",
            output::count(names.len() as u64, "ledger", "ledgers"),
            root.display()
        ))?;
    }
    Ok(())
}
