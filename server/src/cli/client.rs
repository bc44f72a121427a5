//! The client subcommands: `append`, `get`, `entries`, `checkpoint`, `prove`, `ledger`.
//!
//! Each connects to `--server` with `--token` and the TLS flags, makes its calls and prints
//! the answer: aligned text for people, JSON with `--json`. `prove … --json` and
//! `checkpoint --json` print the proof files of [`crate::proof_file`], which `vouch verify`
//! checks offline.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use tokio_stream::StreamExt as _;
use tonic::{Code, Status};
use vouch_ledger_core::entry::{EntryKind, Timestamp};
use vouch_ledger_core::{EntryIndex, Hash, HashAlg, TreeSize};

use super::GlobalArgs;
use super::exit::{CONNECTION, Coded, FAILURE, SERVER, USAGE};
use super::output::{self, Block};
use crate::client::{Client, ClientError, ClientTls};
use crate::proof_file::{CheckpointFile, ConsistencyProofFile, InclusionProofFile};
use crate::proto::v1 as pb;

/// `vouch append`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("input").required(true).args(["data", "file"])))]
pub struct AppendArgs {
    /// The payload as text; `-` reads it from standard input.
    #[arg(value_name = "DATA")]
    pub data: Option<String>,
    /// Read the payload from this file.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The entry kind; the ledger service appends records only (the policy service writes
    /// the others).
    #[arg(long, default_value = "record", value_name = "KIND")]
    pub kind: String,
    /// The payload's media type, for example `application/json`.
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// An idempotency key: appending again with the same key returns the first receipt.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Wait until a signed checkpoint covers the entry, and print it with the entry's
    /// inclusion proof.
    #[arg(long)]
    pub wait_checkpoint: bool,
}

/// `vouch get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The entry's index (0-based).
    #[arg(value_name = "INDEX")]
    pub index: u64,
    /// Write only the payload's raw bytes to standard output.
    #[arg(long, conflicts_with = "json")]
    pub payload: bool,
}

/// `vouch entries`.
#[derive(Debug, Args)]
pub struct EntriesArgs {
    /// The first index.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub start: u64,
    /// One past the last index (default: the ledger's size when the call starts).
    #[arg(long, value_name = "N")]
    pub end: Option<u64>,
}

/// `vouch checkpoint`.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// The tree size of the checkpoint (default: the latest).
    #[arg(long, value_name = "N")]
    pub size: Option<u64>,
}

/// `vouch prove …`.
#[derive(Debug, Subcommand)]
pub enum ProveCommand {
    /// The inclusion proof of an entry against a signed checkpoint.
    Inclusion(ProveInclusionArgs),
    /// The consistency proof between two tree sizes.
    Consistency(ProveConsistencyArgs),
}

/// `vouch prove inclusion`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["index", "leaf_hash"])))]
pub struct ProveInclusionArgs {
    /// The entry's index.
    #[arg(long, value_name = "N")]
    pub index: Option<u64>,
    /// The entry's leaf hash (64 hex digits).
    #[arg(long, value_name = "HEX")]
    pub leaf_hash: Option<String>,
    /// The tree size to prove against (default: the latest checkpoint's).
    #[arg(long, value_name = "N")]
    pub size: Option<u64>,
}

/// `vouch prove consistency`.
#[derive(Debug, Args)]
pub struct ProveConsistencyArgs {
    /// The earlier tree size.
    #[arg(long, value_name = "N")]
    pub old: u64,
    /// The later tree size (default: the latest checkpoint's).
    #[arg(long, value_name = "N")]
    pub new: Option<u64>,
}

/// `vouch ledger …`.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Creates a ledger with its own hash function and signing key.
    Create(LedgerCreateArgs),
    /// Lists the ledgers with their sizes, verifier keys and latest checkpoints.
    List,
}

/// `vouch ledger create`.
#[derive(Debug, Args)]
pub struct LedgerCreateArgs {
    /// The name: 1 to 64 of a-z 0-9 - _ . starting with a letter or digit.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The hash function, fixed for the ledger's life (default: the server's).
    #[arg(long, value_enum, value_name = "HASH")]
    pub hash: Option<HashChoice>,
    /// The checkpoint origin line and key name (default: `<server origin prefix>/<name>`).
    #[arg(long, value_name = "ORIGIN")]
    pub origin: Option<String>,
}

/// `--hash` of `ledger create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HashChoice {
    /// BLAKE3.
    Blake3,
    /// SHA-256, byte-compatible with RFC 6962 tools.
    Sha256,
}

/// One client call, with its arguments.
#[derive(Debug)]
pub enum Call {
    /// `append`.
    Append(AppendArgs),
    /// `get`.
    Get(GetArgs),
    /// `entries`.
    Entries(EntriesArgs),
    /// `checkpoint`.
    Checkpoint(CheckpointArgs),
    /// `prove …`.
    Prove(ProveCommand),
    /// `ledger …`.
    Ledger(LedgerCommand),
}

/// Runs a client subcommand on a single-threaded runtime.
///
/// # Errors
///
/// Connection failures (exit code 3), errors the server answers with (exit code 5), bad
/// arguments (exit code 2), unreadable input files.
pub fn run(global: &GlobalArgs, call: Call) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut session = Session::connect(global).await?;
        match call {
            Call::Append(args) => session.append(args).await,
            Call::Get(args) => session.get(&args).await,
            Call::Entries(args) => session.entries(&args).await,
            Call::Checkpoint(args) => session.checkpoint(&args).await,
            Call::Prove(ProveCommand::Inclusion(args)) => session.prove_inclusion(&args).await,
            Call::Prove(ProveCommand::Consistency(args)) => session.prove_consistency(&args).await,
            Call::Ledger(LedgerCommand::Create(args)) => session.create_ledger(&args).await,
            Call::Ledger(LedgerCommand::List) => session.list_ledgers().await,
        }
    })
}

/// A connected client and the options every call uses.
struct Session {
    client: Client,
    url: String,
    ledger: String,
    json: bool,
}

pub(crate) fn connect_error(e: &ClientError) -> anyhow::Error {
    let code = match e {
        ClientError::Url { .. } | ClientError::Token => USAGE,
        ClientError::Connect { .. } => CONNECTION,
        _ => FAILURE,
    };
    Coded::new(code, e.to_string()).into()
}

/// A gRPC status as a one-line error with its exit code.
pub(crate) fn status_error(status: &Status, url: &str) -> anyhow::Error {
    let message = status.message();
    let (code, text) = match status.code() {
        Code::Unavailable => (
            CONNECTION,
            format!("the server at {url} is unavailable: {message}"),
        ),
        Code::DeadlineExceeded => (CONNECTION, format!("the call timed out: {message}")),
        Code::Unauthenticated => (
            SERVER,
            format!("unauthenticated: {message} (pass --token or set VOUCH_TOKEN)"),
        ),
        other => (SERVER, format!("{}: {message}", code_text(other))),
    };
    Coded::new(code, text).into()
}

/// A gRPC code in words.
fn code_text(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// An answer that breaks the protocol (a server bug or a different server).
pub(crate) fn bad_answer(what: impl Into<String>) -> anyhow::Error {
    Coded::new(
        SERVER,
        format!("unexpected answer from the server: {}", what.into()),
    )
    .into()
}

pub(crate) fn hash_of(bytes: &[u8], field: &str) -> anyhow::Result<Hash> {
    Hash::from_slice(bytes)
        .map_err(|_| bad_answer(format!("{field} is {} bytes, not 32", bytes.len())))
}

pub(crate) fn alg_of(value: i32) -> anyhow::Result<HashAlg> {
    match pb::HashAlgorithm::try_from(value) {
        Ok(pb::HashAlgorithm::Blake3) => Ok(HashAlg::Blake3),
        Ok(pb::HashAlgorithm::Sha256) => Ok(HashAlg::Sha256),
        _ => Err(bad_answer(format!("unknown hash algorithm {value}"))),
    }
}

fn kind_name(value: i32) -> String {
    u8::try_from(value)
        .ok()
        .and_then(EntryKind::from_u8)
        .map_or_else(|| format!("kind-{value}"), |k| k.name().to_owned())
}

pub(crate) fn note_text(cp: &pb::SignedCheckpoint) -> anyhow::Result<String> {
    String::from_utf8(cp.note.clone()).map_err(|_| bad_answer("a checkpoint note is not UTF-8"))
}

pub(crate) fn checkpoint_json(cp: &pb::SignedCheckpoint) -> anyhow::Result<Value> {
    Ok(json!({
        "origin": cp.origin,
        "tree_size": cp.tree_size,
        "root_hash": output::hex(&cp.root_hash),
        "note": note_text(cp)?,
    }))
}

fn entry_json(e: &pb::Entry) -> Value {
    json!({
        "index": e.index,
        "timestamp": Timestamp::from_unix_nanos(e.timestamp_unix_nanos).to_string(),
        "timestamp_unix_nanos": e.timestamp_unix_nanos,
        "kind": kind_name(e.kind),
        "idempotency_key": (!e.idempotency_key.is_empty()).then_some(&e.idempotency_key),
        "content_type": e.content_type,
        "payload": output::base64(&e.payload),
        "leaf_hash": output::hex(&e.leaf_hash),
        "leaf_bytes": output::base64(&e.leaf_bytes),
    })
}

fn ledger_json(l: &pb::LedgerInfo) -> anyhow::Result<Value> {
    Ok(json!({
        "name": l.name,
        "hash": alg_of(l.hash)?.name(),
        "origin": l.origin,
        "size": l.size,
        "verifier_keys": l.verifier_keys,
        "latest_checkpoint": l.latest_checkpoint.as_ref().map(checkpoint_json).transpose()?,
        "leaf_hash_index": l.leaf_hash_index,
        "durability": l.durability,
    }))
}

fn ledger_block(l: &pb::LedgerInfo) -> anyhow::Result<Block> {
    let mut block = Block::titled(format!("ledger {}", l.name))
        .row("hash", alg_of(l.hash)?.name())
        .row("origin", &l.origin)
        .row("entries", l.size)
        .row("durability", &l.durability);
    for key in &l.verifier_keys {
        block = block.row("verifier key", key);
    }
    block = match &l.latest_checkpoint {
        Some(cp) => block.row(
            "checkpoint",
            format!(
                "tree size {}, root {}",
                cp.tree_size,
                output::hex(&cp.root_hash)
            ),
        ),
        None => block.row("checkpoint", "none signed yet"),
    };
    Ok(block)
}

/// The payload of `append`: the text, a file, or standard input.
fn read_payload(args: &AppendArgs) -> anyhow::Result<Vec<u8>> {
    match (&args.data, &args.file) {
        (_, Some(path)) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
        (Some(d), None) if d == "-" => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
            Ok(bytes)
        }
        (Some(d), None) => Ok(d.clone().into_bytes()),
        (None, None) => Err(Coded::usage(
            "give the payload as DATA, --file FILE or - for standard input",
        )
        .into()),
    }
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
        let client = crate::client::connect(&global.server, global.token.clone(), tls)
            .await
            .map_err(|e| connect_error(&e))?;
        Ok(Self {
            client,
            url: global.server.clone(),
            ledger: global.ledger.clone().unwrap_or_default(),
            json: global.json,
        })
    }

    fn fail(&self, status: &Status) -> anyhow::Error {
        status_error(status, &self.url)
    }

    /// The ledger's description (its real name when none was given, and its hash function).
    async fn ledger_info(&mut self) -> anyhow::Result<pb::LedgerInfo> {
        let request = pb::GetLedgerRequest {
            ledger: self.ledger.clone(),
        };
        match self.client.get_ledger(request).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.fail(&s)),
        }
    }

    async fn append(&mut self, args: AppendArgs) -> anyhow::Result<()> {
        let kind: EntryKind =
            args.kind
                .parse()
                .map_err(|e: vouch_ledger_core::entry::ParseEntryKindError| {
                    Coded::usage(format!("--kind: {e}"))
                })?;
        let payload = read_payload(&args)?;
        let request = pb::AppendRequest {
            ledger: self.ledger.clone(),
            entry: Some(pb::EntryInput {
                kind: i32::from(kind.as_u8()),
                idempotency_key: args.key.clone().unwrap_or_default(),
                content_type: args.content_type.clone().unwrap_or_default(),
                payload,
            }),
            wait_for_checkpoint: args.wait_checkpoint,
        };
        let response = match self.client.append(request).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s)),
        };
        let receipt = response
            .receipt
            .ok_or_else(|| bad_answer("an append answer without a receipt"))?;
        let leaf_hash = hash_of(&receipt.leaf_hash, "the leaf hash")?;
        let timestamp = Timestamp::from_unix_nanos(receipt.timestamp_unix_nanos);
        if self.json {
            let mut value = json!({
                "index": receipt.index,
                "leaf_hash": leaf_hash.to_hex(),
                "timestamp": timestamp.to_string(),
                "timestamp_unix_nanos": receipt.timestamp_unix_nanos,
                "tree_size": receipt.tree_size,
                "duplicate": receipt.duplicate,
            });
            if let Some(cp) = &response.checkpoint {
                value["checkpoint"] = checkpoint_json(cp)?;
            }
            if let Some(p) = &response.inclusion_proof {
                value["inclusion_proof"] = json!({
                    "index": p.index,
                    "tree_size": p.tree_size,
                    "leaf_hash": output::hex(&p.leaf_hash),
                    "path": p.path.iter().map(|h| output::hex(h)).collect::<Vec<_>>(),
                });
            }
            output::json(&value)?;
            return Ok(());
        }
        let title = if receipt.duplicate {
            format!(
                "entry {} exists already with this idempotency key; nothing was appended",
                receipt.index
            )
        } else {
            format!("appended entry {}", receipt.index)
        };
        let mut block = Block::titled(title)
            .row("leaf hash", leaf_hash)
            .row("timestamp", timestamp)
            .row("tree size", receipt.tree_size);
        if let Some(cp) = &response.checkpoint {
            block = block.row(
                "checkpoint",
                format!(
                    "tree size {}, root {}",
                    cp.tree_size,
                    output::hex(&cp.root_hash)
                ),
            );
        }
        if let Some(p) = &response.inclusion_proof {
            block = block.row(
                "proof",
                format!(
                    "{} against that checkpoint; `vouch prove inclusion --index {} --json` writes a proof file",
                    output::count(p.path.len() as u64, "path hash", "path hashes"),
                    receipt.index
                ),
            );
        }
        block.print()?;
        Ok(())
    }

    async fn fetch_entry(&mut self, index: u64) -> anyhow::Result<pb::Entry> {
        let request = pb::GetEntryRequest {
            ledger: self.ledger.clone(),
            index,
        };
        match self.client.get_entry(request).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.fail(&s)),
        }
    }

    async fn get(&mut self, args: &GetArgs) -> anyhow::Result<()> {
        let e = self.fetch_entry(args.index).await?;
        if args.payload {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            out.write_all(&e.payload)?;
            out.flush()?;
            return Ok(());
        }
        if self.json {
            output::json(&entry_json(&e))?;
            return Ok(());
        }
        Block::titled(format!("entry {}", e.index))
            .row(
                "timestamp",
                Timestamp::from_unix_nanos(e.timestamp_unix_nanos),
            )
            .row("kind", kind_name(e.kind))
            .row_opt(
                "idempotency key",
                (!e.idempotency_key.is_empty()).then_some(&e.idempotency_key),
            )
            .row_opt(
                "content type",
                (!e.content_type.is_empty()).then_some(&e.content_type),
            )
            .row(
                "payload",
                format!(
                    "{} {}",
                    output::count(e.payload.len() as u64, "byte", "bytes"),
                    output::payload_preview(&e.payload, 200)
                ),
            )
            .row("leaf hash", output::hex(&e.leaf_hash))
            .print()?;
        Ok(())
    }

    async fn entries(&mut self, args: &EntriesArgs) -> anyhow::Result<()> {
        if let Some(end) = args.end
            && end <= args.start
        {
            return Err(Coded::usage(format!(
                "--end {end} must be greater than --start {}",
                args.start
            ))
            .into());
        }
        let request = pb::StreamEntriesRequest {
            ledger: self.ledger.clone(),
            start: args.start,
            end: args.end.unwrap_or(0),
        };
        let mut stream = match self.client.stream_entries(request).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s)),
        };
        let mut count = 0u64;
        while let Some(item) = stream.next().await {
            let e = item.map_err(|s| self.fail(&s))?;
            count += 1;
            if self.json {
                output::json(&entry_json(&e))?;
            } else {
                output::line(&format!(
                    "{}  {}  {}  {}  {}",
                    e.index,
                    Timestamp::from_unix_nanos(e.timestamp_unix_nanos),
                    kind_name(e.kind),
                    output::hex(&e.leaf_hash),
                    output::payload_preview(&e.payload, 60)
                ))?;
            }
        }
        if count == 0 && !self.json {
            eprintln!("no entries in that range");
        }
        Ok(())
    }

    async fn checkpoint(&mut self, args: &CheckpointArgs) -> anyhow::Result<()> {
        let info = if self.json {
            Some(self.ledger_info().await?)
        } else {
            None
        };
        let request = pb::GetCheckpointRequest {
            ledger: self.ledger.clone(),
            tree_size: args.size.unwrap_or(0),
        };
        let cp = match self.client.get_checkpoint(request).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s)),
        };
        let note = note_text(&cp)?;
        match info {
            Some(info) => {
                let file = CheckpointFile {
                    ledger: info.name,
                    hash: alg_of(info.hash)?,
                    origin: cp.origin.clone(),
                    tree_size: TreeSize(cp.tree_size),
                    root_hash: hash_of(&cp.root_hash, "the root hash")?,
                    note,
                };
                output::write_stdout(&file.to_json())?;
            }
            None => output::write_stdout(&note)?,
        }
        Ok(())
    }

    async fn prove_inclusion(&mut self, args: &ProveInclusionArgs) -> anyhow::Result<()> {
        let info = self.ledger_info().await?;
        let alg = alg_of(info.hash)?;
        let target = match (args.index, &args.leaf_hash) {
            (Some(index), _) => pb::get_inclusion_proof_request::Target::Index(index),
            (None, Some(hex)) => {
                let hash = Hash::from_hex(hex).map_err(|_| {
                    Coded::usage(format!("--leaf-hash {hex:?} is not 64 hex digits"))
                })?;
                pb::get_inclusion_proof_request::Target::LeafHash(hash.0.to_vec())
            }
            (None, None) => return Err(Coded::usage("give --index or --leaf-hash").into()),
        };
        let request = pb::GetInclusionProofRequest {
            ledger: self.ledger.clone(),
            target: Some(target),
            tree_size: args.size.unwrap_or(0),
        };
        let proof = match self.client.get_inclusion_proof(request).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s)),
        };
        let leaf_hash = hash_of(&proof.leaf_hash, "the leaf hash")?;
        let path = proof
            .path
            .iter()
            .enumerate()
            .map(|(i, h)| hash_of(h, &format!("path hash {i}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let entry = self.fetch_entry(proof.index).await?;
        if entry.leaf_hash != proof.leaf_hash {
            return Err(bad_answer(format!(
                "entry {} has leaf hash {}, the proof {}",
                proof.index,
                output::hex(&entry.leaf_hash),
                leaf_hash
            )));
        }
        if self.json {
            let cp = proof.checkpoint.as_ref().ok_or_else(|| {
                Coded::new(
                    SERVER,
                    format!(
                        "the server has no signed checkpoint of size {}, so the proof cannot be anchored; leave out --size to prove against the latest checkpoint",
                        proof.tree_size
                    ),
                )
            })?;
            let file = InclusionProofFile {
                ledger: info.name,
                hash: alg,
                index: EntryIndex(proof.index),
                tree_size: TreeSize(proof.tree_size),
                leaf_hash,
                leaf_bytes: Some(entry.leaf_bytes),
                path,
                checkpoint: note_text(cp)?,
            };
            output::write_stdout(&file.to_json())?;
            return Ok(());
        }
        let mut block = Block::titled(format!(
            "inclusion proof of entry {} in ledger {} at tree size {}",
            proof.index, info.name, proof.tree_size
        ))
        .row("hash", alg.name())
        .row("leaf hash", leaf_hash)
        .row("path", output::count(path.len() as u64, "hash", "hashes"));
        for h in &path {
            block = block.more(h);
        }
        block = match &proof.checkpoint {
            Some(cp) => block.row(
                "checkpoint",
                format!(
                    "{}, tree size {}, root {}",
                    cp.origin,
                    cp.tree_size,
                    output::hex(&cp.root_hash)
                ),
            ),
            None => block.row("checkpoint", "none signed at this size"),
        };
        block.print()?;
        output::line(
            "write a proof file with --json and check it offline with `vouch verify inclusion FILE --vkey VKEY`",
        )?;
        Ok(())
    }

    async fn prove_consistency(&mut self, args: &ProveConsistencyArgs) -> anyhow::Result<()> {
        let info = self.ledger_info().await?;
        let alg = alg_of(info.hash)?;
        let request = pb::GetConsistencyProofRequest {
            ledger: self.ledger.clone(),
            old_size: args.old,
            new_size: args.new.unwrap_or(0),
        };
        let proof = match self.client.get_consistency_proof(request).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s)),
        };
        let path = proof
            .path
            .iter()
            .enumerate()
            .map(|(i, h)| hash_of(h, &format!("path hash {i}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if self.json {
            let new = proof.new_checkpoint.as_ref().ok_or_else(|| {
                Coded::new(
                    SERVER,
                    format!(
                        "the server has no signed checkpoint of size {}, so the proof cannot be anchored; leave out --new to prove up to the latest checkpoint",
                        proof.new_size
                    ),
                )
            })?;
            let file = ConsistencyProofFile {
                ledger: info.name,
                hash: alg,
                old_size: TreeSize(proof.old_size),
                new_size: TreeSize(proof.new_size),
                path,
                old_checkpoint: proof.old_checkpoint.as_ref().map(note_text).transpose()?,
                new_checkpoint: note_text(new)?,
            };
            output::write_stdout(&file.to_json())?;
            return Ok(());
        }
        let mut block = Block::titled(format!(
            "consistency proof of ledger {} from tree size {} to {}",
            info.name, proof.old_size, proof.new_size
        ))
        .row("hash", alg.name())
        .row("path", output::count(path.len() as u64, "hash", "hashes"));
        for h in &path {
            block = block.more(h);
        }
        for (label, cp) in [
            ("old checkpoint", &proof.old_checkpoint),
            ("new checkpoint", &proof.new_checkpoint),
        ] {
            block = match cp {
                Some(cp) => block.row(
                    label,
                    format!(
                        "tree size {}, root {}",
                        cp.tree_size,
                        output::hex(&cp.root_hash)
                    ),
                ),
                None => block.row(label, "none signed at this size"),
            };
        }
        block.print()?;
        output::line(
            "write a proof file with --json and check it offline with `vouch verify consistency FILE --vkey VKEY`",
        )?;
        Ok(())
    }

    async fn create_ledger(&mut self, args: &LedgerCreateArgs) -> anyhow::Result<()> {
        let hash = match args.hash {
            None => pb::HashAlgorithm::Unspecified,
            Some(HashChoice::Blake3) => pb::HashAlgorithm::Blake3,
            Some(HashChoice::Sha256) => pb::HashAlgorithm::Sha256,
        };
        let request = pb::CreateLedgerRequest {
            name: args.name.clone(),
            hash: hash.into(),
            origin: args.origin.clone().unwrap_or_default(),
            disable_leaf_hash_index: false,
        };
        let info = match self.client.create_ledger(request).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s)),
        };
        if self.json {
            output::json(&ledger_json(&info)?)?;
        } else {
            ledger_block(&info)?.print()?;
        }
        Ok(())
    }

    async fn list_ledgers(&mut self) -> anyhow::Result<()> {
        let list = match self.client.list_ledgers(pb::ListLedgersRequest {}).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s)),
        };
        if self.json {
            let ledgers = list
                .ledgers
                .iter()
                .map(ledger_json)
                .collect::<anyhow::Result<Vec<_>>>()?;
            output::json(&json!({ "ledgers": ledgers }))?;
        } else {
            for (i, l) in list.ledgers.iter().enumerate() {
                if i > 0 {
                    output::line("")?;
                }
                ledger_block(l)?.print()?;
            }
        }
        Ok(())
    }
}
