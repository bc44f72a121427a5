//! The policy subcommands: `policy lint|publish|show|list|evaluate|simulate`, `decide`,
//! `override`, `exception`, `replay` and `decisions`.
//!
//! Each calls the policy service of `--server` (lint can also run `--offline`) and prints the
//! answer: text for people, one JSON document with `--json`. A BLOCK decision ends `decide`
//! and `policy evaluate` with exit code 6 after printing it; a replay that differs from the
//! record ends with exit code 4 (verification failed); a bundle with lint errors ends `policy
//! lint` with exit code 1.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::{Value, json};
use tonic::Status;
use vouch_ledger_core::entry::Timestamp;
use vouch_ledger_core::{EntryIndex, TreeSize};
use vouch_query::{Format, SourceBundle, compile};

use super::GlobalArgs;
use super::client::{
    alg_of, bad_answer, checkpoint_json, connect_error, hash_of, note_text, status_error,
};
use super::exit::{BLOCKED, Coded, FAILURE};
use super::output::{self, Block};
use crate::client::{BearerToken, ClientTls, PolicyClient, policy_client};
use crate::proof_file::InclusionProofFile;
use crate::proto::v1 as pb;
use crate::proto::v1::ledger_service_client::LedgerServiceClient;

/// `vouch policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Lints bundle files; prints `file:line:col: severity code: message` per finding.
    Lint(LintArgs),
    /// Publishes bundle files to the ledger (publishing a bundle again changes nothing).
    Publish(PublishArgs),
    /// Shows a published bundle: its hash, entry, policies and source.
    Show(ShowArgs),
    /// Lists published bundles.
    List(ListArgs),
    /// Evaluates request files against a published bundle without recording anything.
    Evaluate(EvaluateArgs),
    /// Evaluates a candidate bundle file over recorded decisions and shows what would change.
    Simulate(SimulateArgs),
}

/// `vouch policy lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Bundle files (`.yaml`, `.yml` or `.json`).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Lint here, without a server.
    #[arg(long)]
    pub offline: bool,
}

/// `vouch policy publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Bundle files.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Wait until a signed checkpoint covers each bundle entry.
    #[arg(long)]
    pub wait_checkpoint: bool,
}

/// `vouch policy show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The bundle: its name (the latest of that name) or its hash (`sha256:…`).
    #[arg(value_name = "BUNDLE")]
    pub bundle: String,
}

/// `vouch policy list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only bundles of this name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The most bundles to list (at most 1000).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: u32,
    /// Start after this entry index (the cursor a previous page printed).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<u64>,
}

/// `vouch policy evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The published bundle: its name (the latest of that name) or its hash.
    #[arg(long, value_name = "BUNDLE")]
    pub bundle: String,
    /// Request files (JSON, see docs/policy.md); `-` reads one from standard input.
    #[arg(value_name = "REQUEST", required = true)]
    pub requests: Vec<PathBuf>,
}

/// `vouch policy simulate`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("range").args(["last", "since", "until"]).multiple(true)))]
pub struct SimulateArgs {
    /// The candidate bundle file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The last N recorded decisions, at least 1 (default: 1000).
    #[arg(
        long,
        value_name = "N",
        conflicts_with_all = ["since", "until"],
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub last: Option<u64>,
    /// Decisions recorded at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Decisions recorded at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only decisions made with bundles of this name (default: the candidate's name; `*`
    /// for all).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The most changed decisions listed per list.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub list: u32,
}

/// `vouch decide`.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The published bundle: its name (the latest of that name) or its hash.
    #[arg(long, value_name = "BUNDLE")]
    pub bundle: String,
    /// The request file (JSON, see docs/policy.md); `-` reads standard input.
    #[arg(value_name = "REQUEST")]
    pub request: PathBuf,
    /// An idempotency key: a retry with the same key and request returns the first decision.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Wait for a signed checkpoint and show the decision's inclusion proof.
    #[arg(long)]
    pub proof: bool,
    /// Write the decision's inclusion proof file here (implies --proof); check it offline
    /// with `vouch verify inclusion FILE --vkey VKEY`.
    #[arg(long, value_name = "FILE")]
    pub proof_out: Option<PathBuf>,
}

/// `vouch override`.
#[derive(Debug, Args)]
pub struct OverrideArgs {
    /// The override request file (JSON, see docs/policy.md, "Overrides"); `-` reads
    /// standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Wait for a signed checkpoint and show the override's inclusion proof.
    #[arg(long)]
    pub proof: bool,
}

/// `vouch exception`.
#[derive(Debug, Args)]
pub struct ExceptionArgs {
    /// The exception file (JSON, see docs/policy.md, "Exceptions"); `-` reads standard
    /// input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Wait for a signed checkpoint and show the exception's inclusion proof.
    #[arg(long)]
    pub proof: bool,
}

/// `vouch replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The decision: its id (`sha256:…`) or its entry index.
    #[arg(value_name = "DECISION")]
    pub decision: String,
}

/// `vouch decisions`.
#[derive(Debug, Args)]
pub struct DecisionsArgs {
    /// The subject (change or ticket id).
    #[arg(long, value_name = "S")]
    pub subject: Option<String>,
    /// The outcome: allow, block or skipped.
    #[arg(long, value_name = "O", value_parser = ["allow", "block", "skipped", "ALLOW", "BLOCK", "SKIPPED"])]
    pub outcome: Option<String>,
    /// A policy that matched.
    #[arg(long, value_name = "P")]
    pub policy: Option<String>,
    /// The environment.
    #[arg(long, value_name = "E")]
    pub environment: Option<String>,
    /// Recorded at or after (RFC 3339).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Recorded at or before (RFC 3339).
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// What was decided as of this time: the latest decision per subject recorded by then,
    /// with the overrides recorded by then.
    #[arg(long, value_name = "T")]
    pub as_of: Option<String>,
    /// Attach each decision's inclusion proof against the latest checkpoint.
    #[arg(long)]
    pub with_proof: bool,
    /// The most decisions (at most 1000).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: u32,
    /// Start after this entry index (the cursor a previous page printed).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<u64>,
}

/// One policy subcommand, with its arguments.
#[derive(Debug)]
pub enum Call {
    /// `policy …`.
    Policy(PolicyCommand),
    /// `decide`.
    Decide(DecideArgs),
    /// `override`.
    Override(OverrideArgs),
    /// `exception`.
    Exception(ExceptionArgs),
    /// `replay`.
    Replay(ReplayArgs),
    /// `decisions`.
    Decisions(DecisionsArgs),
}

/// Runs a policy subcommand.
///
/// # Errors
///
/// Connection failures (exit code 3), errors the server answers with (5), bad arguments
/// (2), unreadable files (1), lint errors (1), a differing replay (4), a BLOCK decision (6).
pub fn run(global: &GlobalArgs, call: Call) -> anyhow::Result<()> {
    if let Call::Policy(PolicyCommand::Lint(args)) = &call
        && args.offline
    {
        return lint_offline(args, global.json);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut s = Session::connect(global).await?;
        match call {
            Call::Policy(PolicyCommand::Lint(args)) => s.lint(&args).await,
            Call::Policy(PolicyCommand::Publish(args)) => s.publish(&args).await,
            Call::Policy(PolicyCommand::Show(args)) => s.show(&args).await,
            Call::Policy(PolicyCommand::List(args)) => s.list(&args).await,
            Call::Policy(PolicyCommand::Evaluate(args)) => s.evaluate(&args).await,
            Call::Policy(PolicyCommand::Simulate(args)) => s.simulate(&args).await,
            Call::Decide(args) => s.decide(&args).await,
            Call::Override(args) => s.record_override(&args).await,
            Call::Exception(args) => s.record_exception(&args).await,
            Call::Replay(args) => s.replay(&args).await,
            Call::Decisions(args) => s.decisions(&args).await,
        }
    })
}

/// Reads a file, or standard input for `-`.
fn read_text(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The format of a bundle file, from its extension (else from its text).
fn format_of(path: &Path, text: &str) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ => Format::detect(text),
    }
}

fn format_to_proto(format: Format) -> i32 {
    match format {
        Format::Yaml => pb::BundleFormat::Yaml.into(),
        Format::Json => pb::BundleFormat::Json.into(),
    }
}

/// A bundle named on the command line: a hash or a name.
fn bundle_ref(text: &str) -> pb::BundleRef {
    let r = if text.starts_with("sha256:") {
        pb::bundle_ref::Ref::Hash(text.to_owned())
    } else {
        pb::bundle_ref::Ref::Name(text.to_owned())
    };
    pb::BundleRef { r#ref: Some(r) }
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

fn outcome_name(value: i32) -> &'static str {
    match pb::Outcome::try_from(value) {
        Ok(pb::Outcome::Allow) => "ALLOW",
        Ok(pb::Outcome::Block) => "BLOCK",
        Ok(pb::Outcome::Skipped) => "SKIPPED",
        _ => "UNSPECIFIED",
    }
}

fn override_status_name(value: i32) -> &'static str {
    match pb::OverrideStatus::try_from(value) {
        Ok(pb::OverrideStatus::Granted) => "granted",
        Ok(pb::OverrideStatus::Denied) => "denied",
        _ => "unspecified",
    }
}

fn reason_text(r: &pb::Reason) -> String {
    if r.policy.is_empty() {
        format!("{} ({}): {}", r.requirement, r.code, r.message)
    } else {
        format!(
            "[{}] {} ({}): {}",
            r.policy, r.requirement, r.code, r.message
        )
    }
}

fn reason_json(r: &pb::Reason) -> Value {
    json!({
        "policy": (!r.policy.is_empty()).then_some(&r.policy),
        "requirement": r.requirement,
        "code": r.code,
        "message": r.message,
    })
}

fn reasons_json(reasons: &[pb::Reason]) -> Value {
    Value::Array(reasons.iter().map(reason_json).collect())
}

fn finding_line(file: &str, f: &pb::Finding) -> String {
    let location = if f.path.is_empty() {
        String::new()
    } else {
        format!(" (at {})", f.path)
    };
    format!(
        "{file}:{}:{}: {} {}: {}{location}",
        f.line, f.column, f.severity, f.code, f.message
    )
}

fn finding_json(f: &pb::Finding) -> Value {
    json!({
        "line": f.line,
        "column": f.column,
        "severity": f.severity,
        "code": f.code,
        "path": f.path,
        "message": f.message,
    })
}

/// Parses canonical JSON text the server returned.
fn parsed(text: &str, what: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).map_err(|e| bad_answer(format!("{what} is not JSON: {e}")))
}

fn receipt_json(r: Option<&pb::Receipt>) -> anyhow::Result<Value> {
    let r = r.ok_or_else(|| bad_answer("an answer without a receipt"))?;
    Ok(json!({
        "index": r.index,
        "leaf_hash": output::hex(&r.leaf_hash),
        "timestamp": Timestamp::from_unix_nanos(r.timestamp_unix_nanos).to_string(),
        "tree_size": r.tree_size,
        "duplicate": r.duplicate,
    }))
}

fn proof_json(p: &pb::InclusionProof) -> Value {
    json!({
        "index": p.index,
        "tree_size": p.tree_size,
        "leaf_hash": output::hex(&p.leaf_hash),
        "path": p.path.iter().map(|h| output::hex(h)).collect::<Vec<_>>(),
    })
}

/// Adds the checkpoint and proof rows of an answer made with `wait_for_checkpoint`.
fn proof_rows(
    mut block: Block,
    checkpoint: Option<&pb::SignedCheckpoint>,
    proof: Option<&pb::InclusionProof>,
) -> Block {
    if let Some(cp) = checkpoint {
        block = block.row(
            "checkpoint",
            format!(
                "tree size {}, root {}",
                cp.tree_size,
                output::hex(&cp.root_hash)
            ),
        );
    }
    if let Some(p) = proof {
        block = block.row(
            "proof",
            format!(
                "{} against that checkpoint",
                output::count(p.path.len() as u64, "path hash", "path hashes")
            ),
        );
    }
    block
}

fn lint_offline(args: &LintArgs, json: bool) -> anyhow::Result<()> {
    let mut reports = Vec::new();
    for path in &args.files {
        let text = read_text(path)?;
        let format = format_of(path, &text);
        let response = match SourceBundle::parse(&text, format) {
            Err(e) => pb::LintBundleResponse {
                compiles: false,
                hash: String::new(),
                name: String::new(),
                findings: e
                    .errors
                    .iter()
                    .map(crate::service::policy::convert::parse_error_to_proto)
                    .collect(),
            },
            Ok(source) => {
                let findings = source.lint();
                let hash = compile(&source)
                    .map(|c| c.hash().to_owned())
                    .unwrap_or_default();
                pb::LintBundleResponse {
                    compiles: !hash.is_empty(),
                    hash,
                    name: source.name().to_owned(),
                    findings: findings
                        .iter()
                        .map(crate::service::policy::convert::finding_to_proto)
                        .collect(),
                }
            }
        };
        reports.push((path.display().to_string(), response));
    }
    print_lint(&reports, json)
}

fn print_lint(reports: &[(String, pb::LintBundleResponse)], json: bool) -> anyhow::Result<()> {
    let failed: Vec<&str> = reports
        .iter()
        .filter(|(_, r)| !r.compiles)
        .map(|(f, _)| f.as_str())
        .collect();
    if json {
        let files: Vec<Value> = reports
            .iter()
            .map(|(file, r)| {
                json!({
                    "file": file,
                    "compiles": r.compiles,
                    "name": (!r.name.is_empty()).then_some(&r.name),
                    "hash": (!r.hash.is_empty()).then_some(&r.hash),
                    "findings": r.findings.iter().map(finding_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        output::json(&json!({ "files": files }))?;
    } else {
        for (file, r) in reports {
            for f in &r.findings {
                output::line(&finding_line(file, f))?;
            }
            let errors = r.findings.iter().filter(|f| f.severity == "error").count();
            let warnings = r.findings.len() - errors;
            if r.compiles {
                output::line(&format!(
                    "{file}: bundle {} compiles to {} ({})",
                    r.name,
                    r.hash,
                    output::count(warnings as u64, "warning", "warnings")
                ))?;
            } else {
                output::line(&format!(
                    "{file}: does not compile ({}, {})",
                    output::count(errors as u64, "error", "errors"),
                    output::count(warnings as u64, "warning", "warnings")
                ))?;
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(
            Coded::new(FAILURE, format!("lint errors in {}", failed.join(", ")))
                .reported()
                .into(),
        )
    }
}

/// A connected client of the policy service (and of the ledger service, for proof files).
struct Session {
    policy: PolicyClient,
    ledger_client: crate::client::Client,
    url: String,
    ledger: String,
    json: bool,
}

impl Session {
    async fn connect(global: &GlobalArgs) -> anyhow::Result<Self> {
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
        Ok(Self {
            policy: policy_client(channel.clone(), token.clone()),
            ledger_client: LedgerServiceClient::with_interceptor(channel, token)
                .max_decoding_message_size(crate::client::MAX_RESPONSE_BYTES),
            url: global.server.clone(),
            ledger: global.ledger.clone().unwrap_or_default(),
            json: global.json,
        })
    }

    fn fail(&self, status: &Status) -> anyhow::Error {
        status_error(status, &self.url)
    }

    async fn lint(&mut self, args: &LintArgs) -> anyhow::Result<()> {
        let mut reports = Vec::new();
        for path in &args.files {
            let text = read_text(path)?;
            let request = pb::LintBundleRequest {
                format: format_to_proto(format_of(path, &text)),
                source: text,
            };
            let response = self
                .policy
                .lint_bundle(request)
                .await
                .map_err(|s| self.fail(&s))?
                .into_inner();
            reports.push((path.display().to_string(), response));
        }
        print_lint(&reports, self.json)
    }

    async fn publish(&mut self, args: &PublishArgs) -> anyhow::Result<()> {
        let mut results = Vec::new();
        for path in &args.files {
            let text = read_text(path)?;
            let request = pb::PublishBundleRequest {
                ledger: self.ledger.clone(),
                format: format_to_proto(format_of(path, &text)),
                source: text,
                wait_for_checkpoint: args.wait_checkpoint,
            };
            let r = self
                .policy
                .publish_bundle(request)
                .await
                .map_err(|s| self.fail(&s).context(path.display().to_string()))?
                .into_inner();
            if self.json {
                results.push(json!({
                    "file": path.display().to_string(),
                    "hash": r.hash,
                    "name": r.name,
                    "index": r.index,
                    "duplicate": r.duplicate,
                    "receipt": receipt_json(r.receipt.as_ref())?,
                    "warnings": r.warnings.iter().map(finding_json).collect::<Vec<_>>(),
                    "checkpoint": r.checkpoint.as_ref().map(checkpoint_json).transpose()?,
                    "inclusion_proof": r.inclusion_proof.as_ref().map(proof_json),
                }));
                continue;
            }
            for f in &r.warnings {
                output::line(&finding_line(&path.display().to_string(), f))?;
            }
            let title = if r.duplicate {
                format!(
                    "bundle {} was published before as entry {}; nothing was appended",
                    r.name, r.index
                )
            } else {
                format!("published bundle {} as entry {}", r.name, r.index)
            };
            let block = Block::titled(title).row("hash", &r.hash);
            proof_rows(block, r.checkpoint.as_ref(), r.inclusion_proof.as_ref()).print()?;
        }
        if self.json {
            output::json(&json!({ "bundles": results }))?;
        }
        Ok(())
    }

    async fn get_bundle(&mut self, bundle: &str) -> anyhow::Result<pb::Bundle> {
        let request = pb::GetBundleRequest {
            ledger: self.ledger.clone(),
            bundle: Some(bundle_ref(bundle)),
        };
        match self.policy.get_bundle(request).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.fail(&s)),
        }
    }

    async fn show(&mut self, args: &ShowArgs) -> anyhow::Result<()> {
        let b = self.get_bundle(&args.bundle).await?;
        let format = if b.format == i32::from(pb::BundleFormat::Json) {
            "json"
        } else {
            "yaml"
        };
        if self.json {
            output::json(&json!({
                "hash": b.hash,
                "name": b.name,
                "index": b.index,
                "timestamp": Timestamp::from_unix_nanos(b.timestamp_unix_nanos).to_string(),
                "format": format,
                "policies": b.policies,
                "source": b.source,
                "ir": parsed(&b.ir_json, "the IR")?,
            }))?;
            return Ok(());
        }
        Block::titled(format!("bundle {}", b.name))
            .row("hash", &b.hash)
            .row("entry", b.index)
            .row(
                "published",
                Timestamp::from_unix_nanos(b.timestamp_unix_nanos),
            )
            .row("format", format)
            .row("policies", b.policies.join(", "))
            .print()?;
        output::line("")?;
        output::write_stdout(&b.source)?;
        Ok(())
    }

    async fn list(&mut self, args: &ListArgs) -> anyhow::Result<()> {
        let request = pb::ListBundlesRequest {
            ledger: self.ledger.clone(),
            name: args.name.clone().unwrap_or_default(),
            after: args.after,
            limit: args.limit,
        };
        let r = self
            .policy
            .list_bundles(request)
            .await
            .map_err(|s| self.fail(&s))?
            .into_inner();
        if self.json {
            let bundles: Vec<Value> = r
                .bundles
                .iter()
                .map(|b| {
                    json!({
                        "hash": b.hash,
                        "name": b.name,
                        "index": b.index,
                        "timestamp": Timestamp::from_unix_nanos(b.timestamp_unix_nanos).to_string(),
                    })
                })
                .collect();
            output::json(&json!({ "bundles": bundles, "next_cursor": r.next_cursor }))?;
            return Ok(());
        }
        for b in &r.bundles {
            output::line(&format!(
                "{}  {}  {}  {}",
                b.index,
                Timestamp::from_unix_nanos(b.timestamp_unix_nanos),
                b.name,
                b.hash
            ))?;
        }
        if r.bundles.is_empty() {
            eprintln!("no bundles published");
        }
        if let Some(next) = r.next_cursor {
            eprintln!("more: --after {next}");
        }
        Ok(())
    }

    async fn evaluate(&mut self, args: &EvaluateArgs) -> anyhow::Result<()> {
        let mut blocked = Vec::new();
        let mut results = Vec::new();
        for path in &args.requests {
            let request = pb::EvaluateRequest {
                ledger: self.ledger.clone(),
                bundle: Some(bundle_ref(&args.bundle)),
                request_json: read_text(path)?,
            };
            let r = self
                .policy
                .evaluate(request)
                .await
                .map_err(|s| self.fail(&s).context(path.display().to_string()))?
                .into_inner();
            let file = path.display().to_string();
            if r.outcome == i32::from(pb::Outcome::Block) {
                blocked.push(file.clone());
            }
            if self.json {
                results.push(json!({
                    "file": file,
                    "outcome": outcome_name(r.outcome),
                    "reasons": reasons_json(&r.reasons),
                    "bundle": {"hash": r.bundle_hash, "index": r.bundle_index},
                    "evaluation": parsed(&r.evaluation_json, "the evaluation")?,
                    "request": parsed(&r.request_json, "the request snapshot")?,
                }));
                continue;
            }
            output::line(&format!(
                "{file}: {} (not recorded)",
                outcome_name(r.outcome)
            ))?;
            for reason in &r.reasons {
                output::line(&format!("  {}", reason_text(reason)))?;
            }
        }
        if self.json {
            output::json(&json!({ "evaluations": results }))?;
        }
        if blocked.is_empty() {
            Ok(())
        } else {
            Err(
                Coded::new(BLOCKED, format!("BLOCK: {}", blocked.join(", ")))
                    .reported()
                    .into(),
            )
        }
    }

    async fn simulate(&mut self, args: &SimulateArgs) -> anyhow::Result<()> {
        let text = read_text(&args.file)?;
        let format = format_of(&args.file, &text);
        let name = match args.name.as_deref() {
            Some("*") => String::new(),
            Some(n) => n.to_owned(),
            None => SourceBundle::parse(&text, format)
                .map(|b| b.name().to_owned())
                .unwrap_or_default(),
        };
        let request = pb::SimulateRequest {
            ledger: self.ledger.clone(),
            source: text,
            format: format_to_proto(format),
            last: args.last.unwrap_or(0),
            since: args.since.clone().unwrap_or_default(),
            until: args.until.clone().unwrap_or_default(),
            bundle_name: name.clone(),
            list_limit: args.list,
        };
        let r = self
            .policy
            .simulate(request)
            .await
            .map_err(|s| self.fail(&s))?
            .into_inner();
        let counts = |c: Option<&pb::OutcomeCounts>| {
            let c = c.copied().unwrap_or_default();
            (c.allow, c.block, c.skipped)
        };
        let change_json = |c: &pb::SimulatedChange| {
            json!({
                "index": c.index,
                "decision_id": c.decision_id,
                "subject": c.subject,
                "before": outcome_name(c.before),
                "after": outcome_name(c.after),
                "reasons": reasons_json(&c.reasons),
            })
        };
        if self.json {
            let (ba, bb, bs) = counts(r.before.as_ref());
            let (aa, ab, as_) = counts(r.after.as_ref());
            output::json(&json!({
                "candidate": r.candidate_hash,
                "bundle_name": (!name.is_empty()).then_some(&name),
                "evaluated": r.evaluated,
                "first_index": r.first_index,
                "last_index": r.last_index,
                "unchanged": r.unchanged,
                "would_newly_block": r.would_newly_block,
                "would_unblock": r.would_unblock,
                "other_changes": r.other_changes,
                "delta": r.delta,
                "before": {"allow": ba, "block": bb, "skipped": bs},
                "after": {"allow": aa, "block": ab, "skipped": as_},
                "by_policy": r.by_policy.iter().map(|p| json!({
                    "policy": p.policy,
                    "matched_before": p.matched_before,
                    "matched_after": p.matched_after,
                    "blocked_before": p.blocked_before,
                    "blocked_after": p.blocked_after,
                    "newly_blocked": p.newly_blocked,
                    "unblocked": p.unblocked,
                })).collect::<Vec<_>>(),
                "newly_blocked": r.newly_blocked.iter().map(change_json).collect::<Vec<_>>(),
                "unblocked": r.unblocked.iter().map(change_json).collect::<Vec<_>>(),
                "unreadable": r.unreadable,
            }))?;
            return Ok(());
        }
        let range = match (r.first_index, r.last_index) {
            (Some(a), Some(b)) => format!(" (entries {a} to {b})"),
            _ => String::new(),
        };
        let scope = if name.is_empty() {
            String::new()
        } else {
            format!(" made with bundle {name}")
        };
        let outcomes = |(a, b, s): (u64, u64, u64)| format!("{a} ALLOW, {b} BLOCK, {s} SKIPPED");
        Block::titled(format!(
            "simulation of {} over {}{scope}{range}",
            r.candidate_hash,
            output::count(r.evaluated, "decision", "decisions")
        ))
        .row("unchanged", r.unchanged)
        .row("would newly block", r.would_newly_block)
        .row("would unblock", r.would_unblock)
        .row("other changes", r.other_changes)
        .row("delta", format!("{:+} BLOCK", r.delta))
        .row("before", outcomes(counts(r.before.as_ref())))
        .row("after", outcomes(counts(r.after.as_ref())))
        .print()?;
        if !r.by_policy.is_empty() {
            output::line(
                "by policy (matched before/after, blocked before/after, newly blocked, unblocked):",
            )?;
            for p in &r.by_policy {
                output::line(&format!(
                    "  {}: {}/{}, {}/{}, +{}, -{}",
                    p.policy,
                    p.matched_before,
                    p.matched_after,
                    p.blocked_before,
                    p.blocked_after,
                    p.newly_blocked,
                    p.unblocked
                ))?;
            }
        }
        for (title, list) in [
            ("newly blocked", &r.newly_blocked),
            ("unblocked", &r.unblocked),
        ] {
            if list.is_empty() {
                continue;
            }
            output::line(&format!("{title}:"))?;
            for c in list {
                output::line(&format!(
                    "  entry {}  {}  {} -> {}  {}",
                    c.index,
                    c.subject,
                    outcome_name(c.before),
                    outcome_name(c.after),
                    c.reasons.first().map(reason_text).unwrap_or_default()
                ))?;
            }
        }
        Ok(())
    }

    async fn decide(&mut self, args: &DecideArgs) -> anyhow::Result<()> {
        let want_proof = args.proof || args.proof_out.is_some();
        let request = pb::DecideRequest {
            ledger: self.ledger.clone(),
            bundle: Some(bundle_ref(&args.bundle)),
            request_json: read_text(&args.request)?,
            idempotency_key: args.key.clone().unwrap_or_default(),
            wait_for_checkpoint: want_proof,
        };
        let r = self
            .policy
            .decide(request)
            .await
            .map_err(|s| self.fail(&s))?
            .into_inner();
        if let Some(path) = &args.proof_out {
            self.write_proof_file(path, r.inclusion_proof.as_ref(), r.checkpoint.as_ref())
                .await?;
        }
        let record = parsed(&r.record_json, "the decision record")?;
        let outcome = outcome_name(r.outcome);
        if self.json {
            output::json(&json!({
                "decision_id": r.decision_id,
                "index": r.index,
                "outcome": outcome,
                "reasons": reasons_json(&r.reasons),
                "bundle": {"hash": r.bundle_hash, "index": r.bundle_index},
                "duplicate": r.duplicate,
                "receipt": receipt_json(r.receipt.as_ref())?,
                "record": record,
                "checkpoint": r.checkpoint.as_ref().map(checkpoint_json).transpose()?,
                "inclusion_proof": r.inclusion_proof.as_ref().map(proof_json),
            }))?;
        } else {
            let title = if r.duplicate {
                format!(
                    "{outcome}: decided before as entry {}; nothing was appended",
                    r.index
                )
            } else {
                format!("{outcome}: recorded as entry {}", r.index)
            };
            let request = &record["request"];
            let mut block = Block::titled(title)
                .row("decision", &r.decision_id)
                .row(
                    "subject",
                    format!(
                        "{} ({})",
                        request["subject"].as_str().unwrap_or_default(),
                        request["environment"].as_str().unwrap_or_default()
                    ),
                )
                .row(
                    "bundle",
                    format!("{} (entry {})", r.bundle_hash, r.bundle_index),
                );
            for (i, reason) in r.reasons.iter().enumerate() {
                block = block.row(if i == 0 { "reasons" } else { "" }, reason_text(reason));
            }
            let obligations = record["evaluation"]["obligations"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for (i, o) in obligations.iter().enumerate() {
                block = block.row(
                    if i == 0 { "obligations" } else { "" },
                    format!(
                        "{} by {} ({})",
                        o["kind"].as_str().unwrap_or_default(),
                        o["due"].as_str().unwrap_or_default(),
                        o["policy"].as_str().unwrap_or_default()
                    ),
                );
            }
            block = proof_rows(block, r.checkpoint.as_ref(), r.inclusion_proof.as_ref());
            if let Some(path) = &args.proof_out {
                block = block.row("proof file", path.display());
            }
            block.print()?;
        }
        if r.outcome == i32::from(pb::Outcome::Block) {
            return Err(
                Coded::new(BLOCKED, format!("BLOCK: decision {}", r.decision_id))
                    .reported()
                    .into(),
            );
        }
        Ok(())
    }

    /// Writes a `vouch.inclusion-proof.v1` file for an entry proven in an answer.
    async fn write_proof_file(
        &mut self,
        path: &Path,
        proof: Option<&pb::InclusionProof>,
        checkpoint: Option<&pb::SignedCheckpoint>,
    ) -> anyhow::Result<()> {
        let (Some(proof), Some(cp)) = (proof, checkpoint) else {
            return Err(bad_answer(
                "an answer without the inclusion proof asked for",
            ));
        };
        let info = self
            .ledger_client
            .get_ledger(pb::GetLedgerRequest {
                ledger: self.ledger.clone(),
            })
            .await
            .map_err(|s| self.fail(&s))?
            .into_inner();
        let entry = self
            .ledger_client
            .get_entry(pb::GetEntryRequest {
                ledger: self.ledger.clone(),
                index: proof.index,
            })
            .await
            .map_err(|s| self.fail(&s))?
            .into_inner();
        let file = InclusionProofFile {
            ledger: info.name,
            hash: alg_of(info.hash)?,
            index: EntryIndex(proof.index),
            tree_size: TreeSize(proof.tree_size),
            leaf_hash: hash_of(&proof.leaf_hash, "the leaf hash")?,
            leaf_bytes: Some(entry.leaf_bytes),
            path: proof
                .path
                .iter()
                .enumerate()
                .map(|(i, h)| hash_of(h, &format!("path hash {i}")))
                .collect::<anyhow::Result<Vec<_>>>()?,
            checkpoint: note_text(cp)?,
        };
        std::fs::write(path, file.to_json())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    async fn record_override(&mut self, args: &OverrideArgs) -> anyhow::Result<()> {
        let request = pb::RecordOverrideRequest {
            ledger: self.ledger.clone(),
            override_json: read_text(&args.file)?,
            wait_for_checkpoint: args.proof,
        };
        let r = self
            .policy
            .record_override(request)
            .await
            .map_err(|s| self.fail(&s))?
            .into_inner();
        let status = override_status_name(r.status);
        if self.json {
            output::json(&json!({
                "index": r.index,
                "status": status,
                "reasons": reasons_json(&r.reasons),
                "decision_id": r.decision_id,
                "decision_index": r.decision_index,
                "duplicate": r.duplicate,
                "receipt": receipt_json(r.receipt.as_ref())?,
                "outcome": parsed(&r.outcome_json, "the override outcome")?,
                "checkpoint": r.checkpoint.as_ref().map(checkpoint_json).transpose()?,
                "inclusion_proof": r.inclusion_proof.as_ref().map(proof_json),
            }))?;
            return Ok(());
        }
        let outcome = parsed(&r.outcome_json, "the override outcome")?;
        let title = if r.duplicate {
            format!(
                "override {status}: recorded before as entry {}; nothing was appended",
                r.index
            )
        } else {
            format!("override {status}: recorded as entry {}", r.index)
        };
        let mut block = Block::titled(title)
            .row(
                "decision",
                format!("{} (entry {})", r.decision_id, r.decision_index),
            )
            .row_opt("expires at", outcome["expires_at"].as_str());
        for (i, reason) in r.reasons.iter().enumerate() {
            block = block.row(if i == 0 { "reasons" } else { "" }, reason_text(reason));
        }
        proof_rows(block, r.checkpoint.as_ref(), r.inclusion_proof.as_ref()).print()?;
        Ok(())
    }

    async fn record_exception(&mut self, args: &ExceptionArgs) -> anyhow::Result<()> {
        let request = pb::RecordExceptionRequest {
            ledger: self.ledger.clone(),
            exception_json: read_text(&args.file)?,
            wait_for_checkpoint: args.proof,
        };
        let r = self
            .policy
            .record_exception(request)
            .await
            .map_err(|s| self.fail(&s))?
            .into_inner();
        if self.json {
            output::json(&json!({
                "index": r.index,
                "exception_id": r.exception_id,
                "duplicate": r.duplicate,
                "receipt": receipt_json(r.receipt.as_ref())?,
                "checkpoint": r.checkpoint.as_ref().map(checkpoint_json).transpose()?,
                "inclusion_proof": r.inclusion_proof.as_ref().map(proof_json),
            }))?;
            return Ok(());
        }
        let title = if r.duplicate {
            format!(
                "exception {} was recorded before as entry {}; nothing was appended",
                r.exception_id, r.index
            )
        } else {
            format!("recorded exception {} as entry {}", r.exception_id, r.index)
        };
        proof_rows(
            Block::titled(title),
            r.checkpoint.as_ref(),
            r.inclusion_proof.as_ref(),
        )
        .print()?;
        Ok(())
    }

    async fn replay(&mut self, args: &ReplayArgs) -> anyhow::Result<()> {
        let request = pb::ReplayRequest {
            ledger: self.ledger.clone(),
            decision: Some(decision_ref(&args.decision)?),
        };
        let r = self
            .policy
            .replay(request)
            .await
            .map_err(|s| self.fail(&s))?
            .into_inner();
        if self.json {
            output::json(&json!({
                "decision_id": r.decision_id,
                "index": r.index,
                "matches": r.matches,
                "bundle": {"hash": r.bundle_hash, "index": r.bundle_index},
                "recorded_outcome": outcome_name(r.recorded_outcome),
                "replayed_outcome": (r.replayed_outcome != 0).then(|| outcome_name(r.replayed_outcome)),
                "differences": r.differences.iter().map(|d| json!({
                    "kind": d.kind,
                    "message": d.message,
                    "recorded": d.recorded,
                    "replayed": d.replayed,
                })).collect::<Vec<_>>(),
            }))?;
        } else if r.matches {
            Block::titled(format!(
                "decision {} (entry {}) replays identically: {}",
                r.decision_id,
                r.index,
                outcome_name(r.recorded_outcome)
            ))
            .row(
                "bundle",
                format!("{} (entry {})", r.bundle_hash, r.bundle_index),
            )
            .print()?;
        } else {
            let mut block = Block::titled(format!(
                "decision {} (entry {}) does NOT replay identically",
                r.decision_id, r.index
            ))
            .row(
                "bundle",
                format!("{} (entry {})", r.bundle_hash, r.bundle_index),
            );
            for (i, d) in r.differences.iter().enumerate() {
                block = block.row(if i == 0 { "differences" } else { "" }, &d.message);
            }
            block.print()?;
        }
        if r.matches {
            Ok(())
        } else {
            Err(Coded::verification(format!(
                "decision {} does not replay identically ({})",
                r.decision_id,
                output::count(r.differences.len() as u64, "difference", "differences")
            ))
            .with_check("replay")
            .reported()
            .into())
        }
    }

    async fn decisions(&mut self, args: &DecisionsArgs) -> anyhow::Result<()> {
        let outcome = match args
            .outcome
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("allow") => pb::Outcome::Allow,
            Some("block") => pb::Outcome::Block,
            Some("skipped") => pb::Outcome::Skipped,
            _ => pb::Outcome::Unspecified,
        };
        let request = pb::QueryDecisionsRequest {
            ledger: self.ledger.clone(),
            subject: args.subject.clone().unwrap_or_default(),
            outcome: outcome.into(),
            policy: args.policy.clone().unwrap_or_default(),
            environment: args.environment.clone().unwrap_or_default(),
            since: args.since.clone().unwrap_or_default(),
            until: args.until.clone().unwrap_or_default(),
            as_of: args.as_of.clone().unwrap_or_default(),
            with_proof: args.with_proof,
            limit: args.limit,
            after: args.after,
        };
        let r = self
            .policy
            .query_decisions(request)
            .await
            .map_err(|s| self.fail(&s))?
            .into_inner();
        if self.json {
            let decisions = r
                .decisions
                .iter()
                .map(|d| {
                    Ok(json!({
                        "decision_id": d.decision_id,
                        "index": d.index,
                        "timestamp": Timestamp::from_unix_nanos(d.timestamp_unix_nanos).to_string(),
                        "leaf_hash": output::hex(&d.leaf_hash),
                        "subject": d.subject,
                        "environment": d.environment,
                        "outcome": outcome_name(d.outcome),
                        "reasons": reasons_json(&d.reasons),
                        "bundle": {"hash": d.bundle_hash, "index": d.bundle_index},
                        "overrides": d.overrides.iter().map(|o| json!({
                            "index": o.index,
                            "status": override_status_name(o.status),
                            "approver": o.approver,
                            "expires_at": (!o.expires_at.is_empty()).then_some(&o.expires_at),
                            "policies": o.policies,
                            "idempotency_key": o.idempotency_key,
                            "reasons": reasons_json(&o.reasons),
                        })).collect::<Vec<_>>(),
                        "record": parsed(&d.record_json, "a decision record")?,
                        "inclusion_proof": d.inclusion_proof.as_ref().map(proof_json),
                    }))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            output::json(&json!({
                "decisions": decisions,
                "next_cursor": r.next_cursor,
                "checkpoint": r.checkpoint.as_ref().map(checkpoint_json).transpose()?,
            }))?;
            return Ok(());
        }
        for d in &r.decisions {
            let mut line = format!(
                "{}  {}  {:<7}  {}  {}  {}",
                d.index,
                Timestamp::from_unix_nanos(d.timestamp_unix_nanos),
                outcome_name(d.outcome),
                d.subject,
                d.environment,
                d.decision_id
            );
            for o in &d.overrides {
                let status = override_status_name(o.status);
                if o.expires_at.is_empty() {
                    let _ = write!(line, "  (override {status} at entry {})", o.index);
                } else {
                    let _ = write!(
                        line,
                        "  (override {status} at entry {} until {})",
                        o.index, o.expires_at
                    );
                }
            }
            if let Some(p) = &d.inclusion_proof {
                let _ = write!(
                    line,
                    "  proof: {} to tree size {}",
                    output::count(p.path.len() as u64, "hash", "hashes"),
                    p.tree_size
                );
            }
            output::line(&line)?;
            for reason in &d.reasons {
                output::line(&format!("    {}", reason_text(reason)))?;
            }
        }
        if r.decisions.is_empty() {
            eprintln!("no decisions match");
        }
        if let Some(cp) = &r.checkpoint {
            eprintln!(
                "proofs against the checkpoint of tree size {}, root {}",
                cp.tree_size,
                output::hex(&cp.root_hash)
            );
        }
        if let Some(next) = r.next_cursor {
            eprintln!("more: --after {next}");
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn findings_print_as_file_line_column() {
        let f = pb::Finding {
            line: 12,
            column: 9,
            severity: "error".into(),
            code: "undeclared-role".into(),
            path: "policies[1].require".into(),
            message: "role \"Securty\" is not declared".into(),
        };
        assert_eq!(
            finding_line("b.yaml", &f),
            "b.yaml:12:9: error undeclared-role: role \"Securty\" is not declared (at policies[1].require)"
        );
    }

    #[test]
    fn references_are_hashes_names_or_indexes() {
        assert_eq!(
            bundle_ref("sha256:ab").r#ref,
            Some(pb::bundle_ref::Ref::Hash("sha256:ab".into()))
        );
        assert_eq!(
            bundle_ref("release").r#ref,
            Some(pb::bundle_ref::Ref::Name("release".into()))
        );
        assert_eq!(
            decision_ref("17").unwrap().r#ref,
            Some(pb::decision_ref::Ref::Index(17))
        );
        assert!(decision_ref("seventeen").is_err());
        assert_eq!(format_of(Path::new("b.json"), "version: 1"), Format::Json);
        assert_eq!(format_of(Path::new("b"), "{}"), Format::Json);
        assert_eq!(format_of(Path::new("b.yml"), "{}"), Format::Yaml);
    }
}
