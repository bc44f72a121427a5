//! `vouch verify inclusion|consistency|checkpoint`: offline verification of proof files.
//!
//! These commands never open a network connection: they read a file and the verifier keys
//! the user trusts, and check signatures and Merkle paths with `vouch-ledger-core`.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use vouch_ledger_core::Hash;
use vouch_ledger_core::note::{Verifier, Verifiers};

use super::exit::Coded;
use super::output;
use crate::proof_file::{
    CheckFailed, CheckpointFile, ConsistencyProofFile, InclusionProofFile, OldRoot, ProofFileError,
    Verified, verify_checkpoint_file, verify_checkpoint_note, verify_consistency_file,
    verify_inclusion_file,
};

/// `vouch verify …`.
#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// Verifies an inclusion proof file (`vouch prove inclusion --json`): the checkpoint's
    /// signature, the leaf bytes, and the path to the signed root.
    Inclusion(VerifyInclusionArgs),
    /// Verifies a consistency proof file (`vouch prove consistency --json`): both
    /// checkpoints' signatures and the path between the two signed roots.
    Consistency(VerifyConsistencyArgs),
    /// Verifies a checkpoint: a signed note (`vouch checkpoint`) or a checkpoint file
    /// (`vouch checkpoint --json`).
    Checkpoint(VerifyCheckpointArgs),
}

/// The keys a verification trusts.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// A trusted verifier key, `<name>+<key id>+<base64>` (the server prints its keys at
    /// startup and in `vouch ledger list`); repeat it to trust several keys.
    #[arg(long = "vkey", value_name = "VKEY")]
    pub vkeys: Vec<String>,
    /// A file of trusted verifier keys, one per line; blank lines and lines starting with
    /// `#` are skipped.
    #[arg(long = "vkey-file", value_name = "FILE")]
    pub vkey_files: Vec<PathBuf>,
}

/// `vouch verify inclusion`.
#[derive(Debug, Args)]
pub struct VerifyInclusionArgs {
    /// The proof file, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The trusted verifier keys.
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// `vouch verify consistency`.
#[derive(Debug, Args)]
pub struct VerifyConsistencyArgs {
    /// The proof file, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The trusted verifier keys.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// The checkpoint of the old size that you kept (a note or a checkpoint file); it is
    /// used instead of the one in the proof file.
    #[arg(long, value_name = "FILE", conflicts_with = "old_root")]
    pub old_checkpoint: Option<PathBuf>,
    /// A root hash of the old size that you trust (64 hex digits).
    #[arg(long, value_name = "HEX")]
    pub old_root: Option<String>,
}

/// `vouch verify checkpoint`.
#[derive(Debug, Args)]
pub struct VerifyCheckpointArgs {
    /// The note or checkpoint file, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The trusted verifier keys.
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// Reads a file, or standard input for `-`.
fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        Ok(bytes)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// The trusted keys from `--vkey` and `--vkey-file`.
///
/// # Errors
///
/// A usage error for no key or a malformed one, and an unreadable key file.
pub(crate) fn trusted(args: &TrustArgs) -> anyhow::Result<Verifiers> {
    let mut keys: Vec<(String, String)> = args
        .vkeys
        .iter()
        .map(|k| ("--vkey".to_owned(), k.trim().to_owned()))
        .collect();
    for path in &args.vkey_files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                keys.push((
                    format!("{} line {}", path.display(), n + 1),
                    line.to_owned(),
                ));
            }
        }
    }
    if keys.is_empty() {
        return Err(Coded::usage(
            "no verifier key: pass --vkey or --vkey-file (the server prints its verifier key at startup; `vouch ledger list` shows every ledger's keys)",
        )
        .into());
    }
    let mut verifiers = Verifiers::new();
    for (source, key) in keys {
        let verifier = Verifier::from_vkey(&key)
            .map_err(|e| Coded::usage(format!("{source}: {key:?} is not a verifier key: {e}")))?;
        verifiers.insert(verifier);
    }
    Ok(verifiers)
}

fn malformed(path: &Path, e: &ProofFileError) -> anyhow::Error {
    Coded::verification(format!(
        "verification failed: {} is not a valid proof file: {e}",
        path.display()
    ))
    .with_check("file")
    .into()
}

fn failed(e: &CheckFailed) -> anyhow::Error {
    Coded::verification(format!("verification failed: {e}"))
        .with_check(e.check())
        .into()
}

fn utf8(path: &Path, bytes: Vec<u8>) -> anyhow::Result<String> {
    String::from_utf8(bytes).map_err(|_| {
        Coded::verification(format!(
            "verification failed: {} is not UTF-8 text",
            path.display()
        ))
        .with_check("file")
        .into()
    })
}

/// Whether a file holds JSON (a checkpoint file) rather than a bare note.
fn looks_like_json(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

/// Reads a note or a checkpoint file and verifies it.
fn verify_any_checkpoint(
    path: &Path,
    bytes: Vec<u8>,
    trust: &Verifiers,
) -> anyhow::Result<(Verified, Option<CheckpointFile>)> {
    if looks_like_json(&bytes) {
        let file = CheckpointFile::parse(&bytes).map_err(|e| malformed(path, &e))?;
        let verified = verify_checkpoint_file(&file, trust).map_err(|e| failed(&e))?;
        Ok((verified, Some(file)))
    } else {
        let note = utf8(path, bytes)?;
        let verified = verify_checkpoint_note(&note, trust).map_err(|e| failed(&e))?;
        Ok((verified, None))
    }
}

fn report(title: &str, verified: &Verified, mut extra: Value, json: bool) -> anyhow::Result<()> {
    let cp = &verified.checkpoint.checkpoint;
    if json {
        extra["verified"] = json!(true);
        extra["checks"] = verified
            .checks
            .iter()
            .map(|c| json!({ "check": c.name, "detail": c.detail }))
            .collect();
        extra["checkpoint"] = json!({
            "origin": cp.origin,
            "tree_size": cp.size.0,
            "root_hash": cp.root.to_hex(),
            "signed_by": verified.checkpoint.signed_by,
        });
        output::json(&extra)?;
    } else {
        let width = verified
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0);
        let mut text = format!("verified: {title}\n");
        for c in &verified.checks {
            let _ = writeln!(text, "  ok  {:<width$}  {}", c.name, c.detail);
        }
        output::write_stdout(&text)?;
    }
    Ok(())
}

/// Runs `vouch verify …`.
///
/// # Errors
///
/// Unreadable input or bad keys (usage), and every verification failure (exit code 4),
/// naming the failed check.
pub fn run(command: &VerifyCommand, json: bool) -> anyhow::Result<()> {
    match command {
        VerifyCommand::Inclusion(args) => {
            let trust = trusted(&args.trust)?;
            let bytes = read_input(&args.file)?;
            let file = InclusionProofFile::parse(&bytes).map_err(|e| malformed(&args.file, &e))?;
            let verified = verify_inclusion_file(&file, &trust).map_err(|e| failed(&e))?;
            report(
                &format!(
                    "entry {} is in ledger {} at tree size {}",
                    file.index, file.ledger, file.tree_size
                ),
                &verified,
                json!({
                    "format": crate::proof_file::INCLUSION_FORMAT,
                    "ledger": file.ledger,
                    "hash": file.hash.name(),
                    "index": file.index.0,
                    "tree_size": file.tree_size.0,
                    "leaf_hash": file.leaf_hash.to_hex(),
                }),
                json,
            )
        }
        VerifyCommand::Consistency(args) => {
            let trust = trusted(&args.trust)?;
            let old = match (&args.old_checkpoint, &args.old_root) {
                (Some(path), _) => {
                    let bytes = read_input(path)?;
                    let note = if looks_like_json(&bytes) {
                        CheckpointFile::parse(&bytes)
                            .map_err(|e| malformed(path, &e))?
                            .note
                    } else {
                        utf8(path, bytes)?
                    };
                    Some(OldRoot::Note(note))
                }
                (None, Some(hex)) => {
                    let root = Hash::from_hex(hex).map_err(|_| {
                        Coded::usage(format!("--old-root {hex:?} is not 64 hex digits"))
                    })?;
                    Some(OldRoot::Hash(root))
                }
                (None, None) => None,
            };
            let bytes = read_input(&args.file)?;
            let file =
                ConsistencyProofFile::parse(&bytes).map_err(|e| malformed(&args.file, &e))?;
            let verified =
                verify_consistency_file(&file, &trust, old.as_ref()).map_err(|e| failed(&e))?;
            report(
                &format!(
                    "ledger {} at tree size {} is a prefix of tree size {}",
                    file.ledger, file.old_size, file.new_size
                ),
                &verified,
                json!({
                    "format": crate::proof_file::CONSISTENCY_FORMAT,
                    "ledger": file.ledger,
                    "hash": file.hash.name(),
                    "old_size": file.old_size.0,
                    "new_size": file.new_size.0,
                }),
                json,
            )
        }
        VerifyCommand::Checkpoint(args) => {
            let trust = trusted(&args.trust)?;
            let bytes = read_input(&args.file)?;
            let (verified, file) = verify_any_checkpoint(&args.file, bytes, &trust)?;
            let cp = &verified.checkpoint.checkpoint;
            let extra = match &file {
                Some(f) => json!({
                    "format": crate::proof_file::CHECKPOINT_FORMAT,
                    "ledger": f.ledger,
                    "hash": f.hash.name(),
                }),
                None => json!({ "format": "note" }),
            };
            report(
                &format!("checkpoint of {} at tree size {}", cp.origin, cp.size),
                &verified,
                extra,
                json,
            )
        }
    }
}
