//! `vouch export-pack` and `vouch verify-pack`: proof packs of recorded decisions.
//!
//! `export-pack` asks the policy service for a `vouch.proof-pack.v1` document (see
//! `docs/proofs.md`, "Proof packs") and writes it to a file or standard output.
//! `verify-pack` never opens a network connection: it reads a pack and the verifier keys the
//! user trusts and runs every check of `vouch_query::pack::verify`, printing each one; the
//! keys listed inside the pack are reported, never trusted.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};
use vouch_query::OverrideStatus;
use vouch_query::pack::{MAX_PACK_BYTES, ProofPack, SignedCheckpoint, VerifiedPack, verify};

use super::GlobalArgs;
use super::client::{bad_answer, connect_error, status_error};
use super::exit::Coded;
use super::output::{self, Block};
use super::verify::{TrustArgs, trusted};
use crate::client::{BearerToken, ClientTls, policy_client};
use crate::proto::v1 as pb;

/// `vouch export-pack`.
#[derive(Debug, Args)]
pub struct ExportPackArgs {
    /// The decision: its id (`sha256:…`) or its entry index.
    #[arg(value_name = "DECISION")]
    pub decision: String,
    /// Write the pack to this file (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Prove the entries against the checkpoint signed at exactly this tree size (one you
    /// already hold) instead of the latest one.
    #[arg(long, value_name = "N")]
    pub tree_size: Option<u64>,
}

/// `vouch verify-pack`.
#[derive(Debug, Args)]
pub struct VerifyPackArgs {
    /// The proof pack file, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The trusted verifier keys (the pack's own `verifier_keys` are never trusted).
    #[command(flatten)]
    pub trust: TrustArgs,
    /// The checkpoint origin of the ledger the pack must come from, e.g.
    /// `vouch.local/default`.
    #[arg(long, value_name = "ORIGIN")]
    pub origin: Option<String>,
}

/// A decision named on the command line: an id or an entry index.
fn decision_ref(text: &str) -> anyhow::Result<pb::DecisionRef> {
    let r = if text.starts_with("sha256:") {
        pb::decision_ref::Ref::Id(text.to_owned())
    } else if let Ok(index) = text.parse::<u64>() {
        pb::decision_ref::Ref::Index(index)
    } else {
        return Err(Coded::usage(format!(
            "{text:?} is neither a decision id (sha256:…) nor an entry index"
        ))
        .into());
    };
    Ok(pb::DecisionRef { r#ref: Some(r) })
}

/// Runs `vouch export-pack`.
///
/// # Errors
///
/// Connection failures (exit code 3), errors the server answers with (5), a bad decision
/// reference (2), an unwritable file (1).
pub fn export(global: &GlobalArgs, args: &ExportPackArgs) -> anyhow::Result<()> {
    let decision = decision_ref(&args.decision)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let r = runtime.block_on(async {
        let tls = if global.tls_ca.is_some() || global.tls_cert.is_some() {
            let pair = global.tls_cert.as_deref().zip(global.tls_key.as_deref());
            Some(
                ClientTls::from_files(global.tls_ca.as_deref(), pair)
                    .map_err(|e| connect_error(&e))?,
            )
        } else {
            None
        };
        let channel = crate::client::channel(&global.server, tls)
            .await
            .map_err(|e| connect_error(&e))?;
        let token = BearerToken::new(global.token.as_deref()).map_err(|e| connect_error(&e))?;
        policy_client(channel, token)
            .export_proof_pack(pb::ExportProofPackRequest {
                ledger: global.ledger.clone().unwrap_or_default(),
                decision: Some(decision),
                tree_size: args.tree_size.unwrap_or(0),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| status_error(&s, &global.server))
    })?;
    // The document is written as received; reading it first catches a server that sent
    // something else.
    ProofPack::parse(r.pack_json.as_bytes())
        .map_err(|e| bad_answer(format!("the proof pack does not parse: {e}")))?;
    let Some(path) = &args.out else {
        return output::write_stdout(&r.pack_json).map_err(Into::into);
    };
    std::fs::write(path, &r.pack_json)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let list = |indexes: &[u64]| {
        if indexes.is_empty() {
            "none".to_owned()
        } else {
            let list: Vec<String> = indexes.iter().map(u64::to_string).collect();
            format!("entries {}", list.join(", "))
        }
    };
    if global.json {
        output::json(&json!({
            "file": path.display().to_string(),
            "bytes": r.pack_json.len(),
            "decision_id": r.decision_id,
            "decision_index": r.decision_index,
            "tree_size": r.tree_size,
            "latest_tree_size": r.latest_tree_size,
            "exception_indexes": r.exception_indexes,
            "override_indexes": r.override_indexes,
        }))?;
    } else {
        Block::titled(format!(
            "wrote the proof pack of decision {} (entry {}) to {}",
            r.decision_id,
            r.decision_index,
            path.display()
        ))
        .row(
            "checkpoint",
            format!("tree size {} (latest {})", r.tree_size, r.latest_tree_size),
        )
        .row(
            "exceptions",
            format!("entries {}", list(&r.exception_indexes)),
        )
        .row(
            "overrides",
            format!("entries {}", list(&r.override_indexes)),
        )
        .row(
            "verify with",
            format!(
                "vouch verify-pack {} --vkey <the ledger's verifier key>",
                path.display()
            ),
        )
        .print()?;
    }
    Ok(())
}

/// Reads the pack file (or standard input for `-`), at most one byte more than a pack may be.
fn read_pack(path: &Path) -> anyhow::Result<Vec<u8>> {
    let limit = u64::try_from(MAX_PACK_BYTES).unwrap_or(u64::MAX) + 1;
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(bytes)
}

fn checkpoint_json(cp: &SignedCheckpoint) -> Value {
    json!({
        "origin": cp.checkpoint.origin,
        "tree_size": cp.checkpoint.size.0,
        "root_hash": cp.checkpoint.root.to_hex(),
        "signed_by": cp.signed_by,
    })
}

fn summary_json(v: &VerifiedPack, pack: &ProofPack) -> Value {
    let e = &v.record.evaluation;
    json!({
        "verified": true,
        "format": vouch_query::pack::FORMAT,
        "origin": pack.origin,
        "hash": pack.hash.name(),
        "decision_id": v.decision_id,
        "decision_index": v.decision_index.0,
        "timestamp": v.decision_timestamp.to_string(),
        "outcome": e.outcome.to_string(),
        "reasons": e.reasons.iter().map(|r| json!({
            "policy": r.policy,
            "requirement": r.requirement,
            "code": r.code,
            "message": r.message,
        })).collect::<Vec<_>>(),
        "bundle": {
            "hash": v.record.bundle,
            "name": v.bundle_name,
            "index": v.bundle_index.0,
        },
        "exceptions": v.exceptions.iter().map(|(i, id)| json!({"index": i.0, "id": id})).collect::<Vec<_>>(),
        "overrides": v.overrides.iter().map(|o| json!({
            "index": o.index.0,
            "status": match o.outcome.status {
                OverrideStatus::Granted => "granted",
                OverrideStatus::Denied => "denied",
            },
            "approver": o.outcome.approver,
            "expires_at": o.outcome.expires_at.map(|t| t.to_string()),
        })).collect::<Vec<_>>(),
        "checkpoint": checkpoint_json(&v.checkpoint),
        "latest_checkpoint": checkpoint_json(&v.latest),
        "checks": v.checks.iter().map(|c| json!({
            "check": c.check.name(),
            "subject": c.subject,
            "detail": c.detail,
        })).collect::<Vec<_>>(),
    })
}

fn summary_text(v: &VerifiedPack, pack: &ProofPack) -> String {
    let e = &v.record.evaluation;
    let width = v
        .checks
        .iter()
        .map(|c| c.check.name().len())
        .max()
        .unwrap_or(0);
    let mut text = format!(
        "verified: decision {} (entry {}) of {}: {}\n",
        v.decision_id, v.decision_index, pack.origin, e.outcome
    );
    for c in &v.checks {
        let subject = c
            .subject
            .as_deref()
            .map_or_else(String::new, |s| format!("{s}: "));
        let _ = writeln!(
            text,
            "  ok  {:<width$}  {subject}{}",
            c.check.name(),
            c.detail
        );
    }
    let mut block = Block::default()
        .row("decision", &v.decision_id)
        .row(
            "recorded",
            format!("entry {}, {}", v.decision_index, v.decision_timestamp),
        )
        .row("outcome", e.outcome);
    for (i, r) in e.reasons.iter().enumerate() {
        block = block.row(if i == 0 { "reasons" } else { "" }, r);
    }
    block = block.row(
        "bundle",
        format!(
            "{} ({}), entry {}",
            v.bundle_name, v.record.bundle, v.bundle_index
        ),
    );
    if v.exceptions.is_empty() {
        block = block.row("exceptions", "none in the decision's context");
    }
    for (i, (index, id)) in v.exceptions.iter().enumerate() {
        block = block.row(
            if i == 0 { "exceptions" } else { "" },
            format!("{id} (entry {index})"),
        );
    }
    if v.overrides.is_empty() {
        block = block.row("overrides", "none in the pack");
    }
    for (i, o) in v.overrides.iter().enumerate() {
        let what = match o.outcome.status {
            OverrideStatus::Granted => format!(
                "granted by {}{}",
                o.outcome.approver,
                o.outcome
                    .expires_at
                    .map_or_else(String::new, |t| format!(" until {t}"))
            ),
            OverrideStatus::Denied => format!("denied (approver {})", o.outcome.approver),
        };
        block = block.row(
            if i == 0 { "overrides" } else { "" },
            format!("entry {}: {what}", o.index),
        );
    }
    let cp = |c: &SignedCheckpoint| {
        format!(
            "tree size {}, root {}, signed by {}",
            c.checkpoint.size,
            c.checkpoint.root,
            c.signed_by.join(", ")
        )
    };
    block = block
        .row("checkpoint", cp(&v.checkpoint))
        .row("latest", cp(&v.latest));
    text.push_str(&block.render());
    text
}

/// Runs `vouch verify-pack`.
///
/// # Errors
///
/// Missing or malformed verifier keys (exit code 2), an unreadable file (1), a file that is
/// not a proof pack or a check that fails (4, naming the check).
pub fn verify_pack(args: &VerifyPackArgs, json: bool) -> anyhow::Result<()> {
    let trust = trusted(&args.trust)?;
    let bytes = read_pack(&args.file)?;
    let pack = ProofPack::parse(&bytes).map_err(|e| {
        anyhow::Error::from(
            Coded::verification(format!(
                "verification failed: {} is not a valid proof pack: {e}",
                args.file.display()
            ))
            .with_check("file"),
        )
    })?;
    let verified = verify(&pack, &trust, args.origin.as_deref()).map_err(|e| {
        anyhow::Error::from(
            Coded::verification(format!("verification failed: {e}")).with_check(e.check.name()),
        )
    })?;
    if json {
        output::json(&summary_json(&verified, &pack))?;
    } else {
        output::write_stdout(&summary_text(&verified, &pack))?;
    }
    Ok(())
}
