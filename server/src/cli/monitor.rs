//! `vouch monitor`: follows a server's signed checkpoints and checks that the log only ever
//! grows.
//!
//! Each checkpoint the server sends (through `WatchCheckpoints`, by polling `GetCheckpoint`
//! with `--poll`, or once with `--once`) must be signed by a trusted key, and must extend the
//! last checkpoint verified, which the state file keeps across runs ([`state`]): a smaller
//! tree is a rollback, the same size with another root a fork, and a larger tree needs a
//! consistency proof that joins the two roots. With `--entries`, every new entry is fetched
//! and the tree rebuilt from the leaf hashes must reach the signed root; the compact range
//! (frontier) of the verified tree is kept in the state file, so each run reads only the new
//! entries (a state without one is rebuilt from entry 0). The watch filters report the
//! recorded decisions among the new entries that match them, each backed by the rebuilt tree
//! or by an inclusion proof against the verified checkpoint.
//!
//! Every verified checkpoint and every match is one output line (`key=value` text, or a JSON
//! object with `--json`); a failed check is an `ALERT` line, the state is left at the last
//! verified checkpoint, and the exit code says what was found ([`check::Alert::exit_code`]).
//! The rules themselves are pure functions in [`check`].

pub mod check;
pub mod state;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio::time::Instant;
use tokio_stream::StreamExt as _;
use vouch_ledger_core::checkpoint::{Checkpoint, open_checkpoint};
use vouch_ledger_core::note::Verifiers;
use vouch_ledger_core::proof::verify_inclusion_bytes;
use vouch_ledger_core::{EntryIndex, Frontier, Hash, HashAlg, TreeSize};

use self::check::{Alert, DecisionMatch, Rebuild, Step, Watch};
use self::state::MonitorState;
use super::GlobalArgs;
use super::client::{alg_of, bad_answer, connect_error, status_error};
use super::exit::{Coded, FAILURE};
use super::output;
use super::verify::{TrustArgs, trusted};
use crate::client::{Client, ClientTls};
use crate::proto::v1 as pb;

/// The exit codes of `vouch monitor`, as its `--help` shows them.
const MONITOR_EXIT_CODES: &str = "\
Exit codes:
  0  every checkpoint verified (--once, --max-checkpoints or --duration reached)
  1  error: the state file is corrupt, of another version, in use, or cannot be written
  2  usage: a missing or malformed argument, no trusted key
  3  connection: the server cannot be reached, or the stream ended
  4  ALERT bad-signature: a checkpoint is not signed by a trusted key
  5  the server refused a request (unknown ledger, permission denied, ...)
  7  ALERT rollback, fork, inconsistent, entries or identity: the log contradicts what was
     verified before; the state file still holds the last verified checkpoint";

/// `vouch monitor`.
#[derive(Debug, Args)]
#[command(after_help = MONITOR_EXIT_CODES)]
pub struct MonitorArgs {
    /// The trusted verifier keys.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// The state file: the last verified checkpoint, read at start and replaced atomically
    /// after each new one; created if missing (trusting the first checkpoint seen).
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// Check the latest checkpoint once and exit.
    #[arg(long, conflicts_with_all = ["max_checkpoints", "duration", "poll"])]
    pub once: bool,
    /// Exit 0 after this many checkpoint lines (the first, the latest when the monitor
    /// starts, counts).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_checkpoints: Option<u64>,
    /// Exit 0 after this long, for example `90s`, `15m` or `1h`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Poll `GetCheckpoint` at this interval instead of following `WatchCheckpoints`, for example
    /// `30s`.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_duration)]
    pub poll: Option<Duration>,
    /// Fetch every new entry and check that its leaf hashes rebuild the signed root (the
    /// first run, and a state kept without this flag, read the ledger from entry 0).
    #[arg(long)]
    pub entries: bool,
    /// Report new decisions about this subject (repeat for several).
    #[arg(long, value_name = "SUBJECT", help_heading = "Watch filters")]
    pub watch_subject: Vec<String>,
    /// Report new decisions with this outcome: allow, block or skipped (repeat for several).
    #[arg(long, value_name = "OUTCOME", value_parser = check::parse_outcome, help_heading = "Watch filters")]
    pub watch_outcome: Vec<vouch_query::evaluation::Outcome>,
    /// Report new decisions this policy matched (repeat for several).
    #[arg(long, value_name = "POLICY", help_heading = "Watch filters")]
    pub watch_policy: Vec<String>,
}

/// Parses `500ms`, `30s`, `15m`, `2h` or `1d` (one number and one unit; a bare number is
/// seconds).
///
/// # Errors
///
/// A message saying what is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 30s, 15m, 2h or 1d"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => {
            return Err(format!(
                "{text:?} is not a duration such as 500ms, 30s, 15m, 2h or 1d"
            ));
        }
    };
    if d.is_zero() {
        return Err(format!("{text:?}: the duration must be positive"));
    }
    Ok(d)
}

/// Why a check stopped: an alert about the log, or an error of the monitor itself.
enum Stop {
    Alert(Alert),
    Error(anyhow::Error),
}

impl From<Alert> for Stop {
    fn from(a: Alert) -> Self {
        Stop::Alert(a)
    }
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Error(e)
    }
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Error(e.into())
    }
}

/// A value for a `key=value` text line: as is if it is a plain word, else quoted.
fn word(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=')
    {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

fn now() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}

/// Holds `<state>.lock` while the monitor runs, so two monitors never share a state file.
struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    fn acquire(state: &Path) -> anyhow::Result<Self> {
        let path = state::lock_path(state);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                Coded::new(
                    FAILURE,
                    format!("cannot open the lock file {}: {e}", path.display()),
                )
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Coded::new(
                FAILURE,
                format!(
                    "another monitor is using the state file {} (it holds {})",
                    state.display(),
                    path.display()
                ),
            )
            .into()),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(Coded::new(FAILURE, format!("cannot lock {}: {e}", path.display())).into())
            }
        }
    }
}

/// What one verified checkpoint line says.
struct Verified<'a> {
    checkpoint: &'a Checkpoint,
    step: Step,
    entries_rebuilt: bool,
}

/// The monitor of one ledger on one server.
struct Monitor {
    client: Client,
    url: String,
    ledger: String,
    hash: HashAlg,
    trust: Verifiers,
    state_path: PathBuf,
    state: Option<MonitorState>,
    entries: bool,
    watch: Watch,
    json: bool,
    /// Checkpoint lines printed in this run.
    printed: u64,
    /// The note of the last checkpoint checked in this run (polling skips repeats).
    last_note: Option<Vec<u8>>,
}

impl Monitor {
    fn fail(&self, status: &tonic::Status) -> anyhow::Error {
        status_error(status, &self.url)
    }

    /// Checks one checkpoint from the server, prints its line (and matches), and saves the
    /// state. Returns whether a checkpoint line was printed.
    async fn check(&mut self, cp: &pb::SignedCheckpoint) -> Result<bool, Stop> {
        if self.last_note.as_deref() == Some(cp.note.as_slice()) {
            return Ok(false);
        }
        let (checkpoint, _) =
            open_checkpoint(&cp.note, &self.trust).map_err(|e| Alert::BadSignature {
                reason: format!("the checkpoint of tree size {}: {e}", cp.tree_size),
            })?;
        let note = String::from_utf8(cp.note.clone())
            .map_err(|_| bad_answer("a checkpoint note is not UTF-8"))?;
        let step = check::compare(self.state.as_ref(), self.hash, &checkpoint)?;
        let new_size = checkpoint.size;
        // Matches are reported once: for entries beyond what an earlier run verified.
        let report_from = self.state.as_ref().map_or(0, |s| s.tree_size.0);
        let stored = self.state.as_ref().and_then(|s| s.frontier.clone());
        let (frontier, matches) = match step {
            Step::Unchanged => {
                if self.entries && stored.is_none() {
                    let mut rebuild =
                        Rebuild::new(Frontier::new(self.hash), vec![(new_size, checkpoint.root)]);
                    let matches = self
                        .read_entries(0, new_size.0, Some(&mut rebuild), report_from, &checkpoint)
                        .await?;
                    (Some(rebuild.finish()?), matches)
                } else {
                    (stored, Vec::new())
                }
            }
            Step::First | Step::Grew { .. } => {
                let (old_size, old_root) = match step {
                    Step::Grew { old_size, old_root } => (old_size, old_root),
                    _ => (TreeSize(0), self.hash.empty_root()),
                };
                if old_size.0 > 0 {
                    let path = self.consistency_path(old_size, new_size).await?;
                    check::check_consistency(self.hash, old_size, &old_root, &checkpoint, &path)?;
                }
                if self.entries {
                    // Continue from the stored frontier, or rebuild from entry 0 through the
                    // root verified before.
                    let (start, mut rebuild) = match stored {
                        Some(f) => (
                            f.size().0,
                            Rebuild::new(f, vec![(new_size, checkpoint.root)]),
                        ),
                        None => (
                            0,
                            Rebuild::new(
                                Frontier::new(self.hash),
                                vec![(old_size, old_root), (new_size, checkpoint.root)],
                            ),
                        ),
                    };
                    let matches = self
                        .read_entries(
                            start,
                            new_size.0,
                            Some(&mut rebuild),
                            report_from,
                            &checkpoint,
                        )
                        .await?;
                    (Some(rebuild.finish()?), matches)
                } else if !self.watch.is_empty() && step != Step::First {
                    let matches = self
                        .read_entries(old_size.0, new_size.0, None, report_from, &checkpoint)
                        .await?;
                    (None, matches)
                } else {
                    (None, Vec::new())
                }
            }
        };
        let rebuilt = frontier.is_some();
        let print = self.printed == 0 || step != Step::Unchanged;
        if print {
            self.print_checkpoint(&Verified {
                checkpoint: &checkpoint,
                step,
                entries_rebuilt: rebuilt,
            })?;
            self.printed += 1;
        }
        for m in &matches {
            self.print_match(m, new_size, rebuilt)?;
        }
        let state = MonitorState::new(&self.ledger, self.hash, &checkpoint, &note, frontier);
        if self.state.as_ref() != Some(&state) {
            state
                .save(&self.state_path)
                .map_err(|e| Coded::new(FAILURE, e.to_string()))
                .map_err(anyhow::Error::from)?;
        }
        self.state = Some(state);
        self.last_note = Some(cp.note.clone());
        Ok(print)
    }

    async fn consistency_path(
        &mut self,
        old_size: TreeSize,
        new_size: TreeSize,
    ) -> Result<Vec<Vec<u8>>, Stop> {
        let request = pb::GetConsistencyProofRequest {
            ledger: self.ledger.clone(),
            old_size: old_size.0,
            new_size: new_size.0,
        };
        let proof = match self.client.get_consistency_proof(request).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s).into()),
        };
        if proof.old_size != old_size.0 || proof.new_size != new_size.0 {
            return Err(bad_answer(format!(
                "asked for the consistency proof from {old_size} to {new_size}, got one from {} to {}",
                proof.old_size, proof.new_size
            ))
            .into());
        }
        Ok(proof.path)
    }

    /// Reads entries `start..end`, checks each, feeds `rebuild`, and returns the decisions
    /// at `report_from` or later that the watch filters match. Without `rebuild`, each match
    /// is proved included in `checkpoint`.
    async fn read_entries(
        &mut self,
        start: u64,
        end: u64,
        mut rebuild: Option<&mut Rebuild>,
        report_from: u64,
        checkpoint: &Checkpoint,
    ) -> Result<Vec<DecisionMatch>, Stop> {
        let mut matches = Vec::new();
        if start >= end {
            return Ok(matches);
        }
        let request = pb::StreamEntriesRequest {
            ledger: self.ledger.clone(),
            start,
            end,
        };
        let mut stream = match self.client.stream_entries(request).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s).into()),
        };
        let mut next = start;
        let mut leaves = Vec::new();
        while let Some(item) = stream.next().await {
            let e = item.map_err(|s| self.fail(&s))?;
            if next >= end {
                return Err(Alert::Entries {
                    reason: format!(
                        "the server sent entry {} past the end {end} asked for",
                        e.index
                    ),
                }
                .into());
            }
            let (view, leaf) =
                check::check_entry(self.hash, next, e.index, &e.leaf_bytes, &e.leaf_hash)?;
            if let Some(r) = rebuild.as_deref_mut() {
                r.push(leaf)?;
            }
            if next >= report_from
                && let Some(m) = self.watch.matches(&view)
            {
                leaves.push(leaf);
                matches.push(m);
            }
            next += 1;
        }
        if next != end {
            return Err(bad_answer(format!(
                "the entry stream {start}..{end} ended after entry {}",
                next.saturating_sub(1)
            ))
            .into());
        }
        if rebuild.is_none() {
            for (m, leaf) in matches.iter().zip(&leaves) {
                self.prove_included(m.index, leaf, checkpoint).await?;
            }
        }
        Ok(matches)
    }

    /// Checks that entry `index` with leaf hash `leaf` is in `checkpoint`'s tree.
    async fn prove_included(
        &mut self,
        index: u64,
        leaf: &Hash,
        checkpoint: &Checkpoint,
    ) -> Result<(), Stop> {
        let request = pb::GetInclusionProofRequest {
            ledger: self.ledger.clone(),
            target: Some(pb::get_inclusion_proof_request::Target::Index(index)),
            tree_size: checkpoint.size.0,
        };
        let proof = match self.client.get_inclusion_proof(request).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s).into()),
        };
        verify_inclusion_bytes(
            self.hash,
            EntryIndex(index),
            checkpoint.size,
            leaf.as_bytes(),
            &proof.path,
            checkpoint.root.as_bytes(),
        )
        .map_err(|e| Alert::Entries {
            reason: format!(
                "entry {index} as served is not in the signed checkpoint of tree size {}: {e}",
                checkpoint.size
            ),
        })?;
        Ok(())
    }

    fn print_checkpoint(&self, v: &Verified<'_>) -> std::io::Result<()> {
        let (status, old_size) = match v.step {
            Step::First => ("first", None),
            Step::Unchanged => ("unchanged", None),
            Step::Grew { old_size, .. } => ("grew", Some(old_size.0)),
        };
        let consistency = match old_size {
            Some(s) if s > 0 => "verified",
            _ => "not-needed",
        };
        let entries = if v.entries_rebuilt {
            "rebuilt"
        } else {
            "not-checked"
        };
        if self.json {
            return output::json(&json!({
                "time": now(),
                "event": "checkpoint",
                "ledger": self.ledger,
                "origin": v.checkpoint.origin,
                "tree_size": v.checkpoint.size.0,
                "root_hash": v.checkpoint.root.to_hex(),
                "status": status,
                "old_size": old_size,
                "consistency": consistency,
                "entries": entries,
            }));
        }
        let mut line = format!(
            "{} checkpoint ledger={} tree_size={} root={} status={status}",
            now(),
            word(&self.ledger),
            v.checkpoint.size,
            v.checkpoint.root
        );
        if let Some(s) = old_size {
            let _ = write!(line, " old_size={s} consistency={consistency}");
        }
        let _ = write!(line, " entries={entries}");
        output::line(&line)
    }

    fn print_match(&self, m: &DecisionMatch, size: TreeSize, rebuilt: bool) -> std::io::Result<()> {
        let proof = if rebuilt { "rebuilt" } else { "inclusion" };
        if self.json {
            return output::json(&json!({
                "time": now(),
                "event": "match",
                "ledger": self.ledger,
                "index": m.index,
                "decision_id": m.id,
                "subject": m.subject,
                "environment": m.environment,
                "outcome": m.outcome.to_string(),
                "policies": m.policies,
                "bundle": m.bundle,
                "tree_size": size.0,
                "proof": proof,
            }));
        }
        output::line(&format!(
            "{} match ledger={} index={} outcome={} subject={} environment={} policies={} decision={} proof={proof}",
            now(),
            word(&self.ledger),
            m.index,
            m.outcome,
            word(&m.subject),
            word(&m.environment),
            word(&m.policies.join(",")),
            word(&m.id),
        ))
    }

    /// Prints the `ALERT` line and returns the error the process ends with.
    fn alert(&self, alert: &Alert, server_note: Option<&[u8]>) -> anyhow::Error {
        let server_checkpoint = server_note.map(|n| String::from_utf8_lossy(n).into_owned());
        let line = if self.json {
            json!({
                "time": now(),
                "event": "alert",
                "alert": alert.kind(),
                "ledger": self.ledger,
                "message": alert.to_string(),
                "exit_code": alert.exit_code(),
                "verified_checkpoint": self.state.as_ref().map(|s| s.checkpoint.clone()),
                "server_checkpoint": server_checkpoint,
                "state": self.state_path.display().to_string(),
            })
            .to_string()
        } else {
            format!(
                "{} ALERT {} ledger={}: {alert}",
                now(),
                alert.kind(),
                word(&self.ledger)
            )
        };
        // The alert is the result: even a closed standard output must not hide the exit code.
        let _ = output::line(&line);
        Coded::new(
            alert.exit_code(),
            format!("ALERT {}: ledger {}: {alert}", alert.kind(), self.ledger),
        )
        .with_check(alert.kind())
        .reported()
        .into()
    }

    /// Checks `cp`, turning an alert into its line and error.
    async fn step(&mut self, cp: &pb::SignedCheckpoint) -> anyhow::Result<bool> {
        match self.check(cp).await {
            Ok(printed) => Ok(printed),
            Err(Stop::Alert(a)) => Err(self.alert(&a, Some(&cp.note))),
            Err(Stop::Error(e)) => Err(e),
        }
    }

    async fn latest(&mut self) -> anyhow::Result<pb::SignedCheckpoint> {
        let request = pb::GetCheckpointRequest {
            ledger: self.ledger.clone(),
            tree_size: 0,
        };
        match self.client.get_checkpoint(request).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.fail(&s)),
        }
    }
}

/// Whether a bounded run is over.
fn done(args: &MonitorArgs, printed: u64) -> bool {
    args.max_checkpoints.is_some_and(|n| printed >= n)
}

async fn connect(global: &GlobalArgs) -> anyhow::Result<Client> {
    let tls = if global.tls_ca.is_some() || global.tls_cert.is_some() {
        let pair = global.tls_cert.as_deref().zip(global.tls_key.as_deref());
        Some(ClientTls::from_files(global.tls_ca.as_deref(), pair).map_err(|e| connect_error(&e))?)
    } else {
        None
    };
    crate::client::connect(&global.server, global.token.clone(), tls)
        .await
        .map_err(|e| connect_error(&e))
}

/// Runs `vouch monitor`.
///
/// # Errors
///
/// An alert (exit code 4 or 7, after its `ALERT` line), a state file that cannot be used
/// (1), bad arguments (2), a lost connection (3), or a refused request (5).
pub fn run(global: &GlobalArgs, args: &MonitorArgs) -> anyhow::Result<()> {
    let trust = trusted(&args.trust)?;
    let watch = Watch {
        subjects: args.watch_subject.clone(),
        outcomes: args.watch_outcome.clone(),
        policies: args.watch_policy.clone(),
    };
    let _lock = StateLock::acquire(&args.state)?;
    let state =
        MonitorState::load(&args.state, &trust).map_err(|e| Coded::new(FAILURE, e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut client = connect(global).await?;
        let requested = global.ledger.clone().unwrap_or_default();
        let info = match client
            .get_ledger(pb::GetLedgerRequest {
                ledger: requested.clone(),
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(status_error(&s, &global.server)),
        };
        if let Some(s) = &state
            && s.ledger != info.name
        {
            return Err(Coded::new(
                FAILURE,
                format!(
                    "state file {} follows ledger {:?}, not {:?}: use one state file per ledger and server",
                    args.state.display(),
                    s.ledger,
                    info.name
                ),
            )
            .into());
        }
        let mut monitor = Monitor {
            client: client.clone(),
            url: global.server.clone(),
            ledger: info.name.clone(),
            hash: alg_of(info.hash)?,
            trust,
            state_path: args.state.clone(),
            state,
            entries: args.entries,
            watch,
            json: global.json,
            printed: 0,
            last_note: None,
        };
        let deadline = args.duration.map(|d| Instant::now() + d);
        if args.once {
            let cp = monitor.latest().await?;
            monitor.step(&cp).await?;
            return Ok(());
        }
        if let Some(interval) = args.poll {
            loop {
                let cp = monitor.latest().await?;
                monitor.step(&cp).await?;
                if done(args, monitor.printed) {
                    return Ok(());
                }
                let wake = Instant::now() + interval;
                match deadline {
                    Some(d) if d <= wake => {
                        tokio::time::sleep_until(d).await;
                        return Ok(());
                    }
                    _ => tokio::time::sleep_until(wake).await,
                }
            }
        }
        let mut stream = match client
            .watch_checkpoints(pb::WatchCheckpointsRequest {
                ledger: info.name.clone(),
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(status_error(&s, &global.server)),
        };
        loop {
            let item = match deadline {
                Some(d) => match tokio::time::timeout_at(d, stream.next()).await {
                    Ok(item) => item,
                    Err(_) => return Ok(()),
                },
                None => stream.next().await,
            };
            let cp = match item {
                Some(Ok(cp)) => cp,
                Some(Err(s)) => return Err(status_error(&s, &global.server)),
                None => {
                    return Err(Coded::new(
                        super::exit::CONNECTION,
                        format!("the server at {} ended the checkpoint stream", global.server),
                    )
                    .into());
                }
            };
            monitor.step(&cp).await?;
            if done(args, monitor.printed) {
                return Ok(());
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "s", "5 minutes", "1.5s", "-1s", "0s", "10w"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn text_values_are_words_or_quoted() {
        assert_eq!(word("CHG-1042"), "CHG-1042");
        assert_eq!(word("a b"), "\"a b\"");
        assert_eq!(word(""), "\"\"");
        assert_eq!(word("k=v"), "\"k=v\"");
    }
}
