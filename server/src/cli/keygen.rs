//! `vouch keygen` and `vouch token`: new checkpoint signing keys and bearer tokens.

use std::io::{Read as _, Write as _};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;

use super::exit::{Coded, FAILURE};
use super::output::{self, Block};
use crate::auth::{Role, generate_token, hash_token};
use crate::config::TokenConfig;

/// `vouch keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The key's name: by convention the checkpoint origin it signs, for example
    /// `vouch.local/default`.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Write the signing key to this file (created with mode 0600, never overwritten)
    /// instead of printing it. A ledger's key lives in `<data dir>/keys/<ledger>.key`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `vouch token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Creates a bearer token and prints it with the `[[tokens]]` entry for the config file.
    Create(TokenCreateArgs),
    /// Prints the SHA-256 a config file stores for a token.
    Hash(TokenHashArgs),
}

/// `vouch token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What the token may do.
    #[arg(long, value_name = "ROLE", value_parser = ["writer", "auditor", "policy-admin", "admin"])]
    pub role: String,
    /// A name for logs and metrics (default: the role and a few hex digits of the hash).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// `vouch token hash`.
#[derive(Debug, Args)]
pub struct TokenHashArgs {
    /// The token; `-` or nothing reads it from standard input (keeps it out of the shell
    /// history).
    #[arg(value_name = "TOKEN")]
    pub token: Option<String>,
}

/// Writes `text` to a new file readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).map_err(|e| {
        let message = if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} exists already; a key file is never overwritten (move it away first)",
                path.display()
            )
        } else {
            format!("cannot create {}: {e}", path.display())
        };
        Coded::new(FAILURE, message)
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Runs `vouch keygen`.
///
/// # Errors
///
/// An invalid key name (usage), no randomness, or a key file that cannot be written.
pub fn keygen(args: &KeygenArgs, json: bool) -> anyhow::Result<()> {
    if !vouch_ledger_core::note::is_valid_key_name(&args.name) {
        return Err(Coded::usage(format!(
            "--name {:?}: a key name is non-empty, without spaces, '+' or control characters",
            args.name
        ))
        .into());
    }
    let signer = crate::keys::generate(&args.name)?;
    let vkey = signer.verifier().to_vkey();
    let skey = signer.to_skey();
    if let Some(path) = &args.out {
        write_private(path, &format!("{skey}\n"))?;
    }
    if json {
        let mut value = json!({
            "name": signer.name(),
            "key_id": signer.key_id().to_string(),
            "verifier_key": vkey,
        });
        match &args.out {
            Some(path) => value["signing_key_file"] = json!(path.display().to_string()),
            None => value["signing_key"] = json!(skey),
        }
        output::json(&value)?;
    } else {
        let written = args
            .out
            .as_ref()
            .map(|p| format!("written to {} (mode 0600)", p.display()));
        Block::default()
            .row("name", signer.name())
            .row("key id", signer.key_id())
            .row(
                "signing key",
                written.unwrap_or_else(|| format!("{skey}  (secret: store it safely)")),
            )
            .row("verifier key", &vkey)
            .print()?;
    }
    Ok(())
}

/// Runs `vouch token …`.
///
/// # Errors
///
/// No randomness, or a token that cannot be read from standard input.
pub fn token(command: &TokenCommand, json: bool) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => create(args, json),
        TokenCommand::Hash(args) => {
            let token = match args.token.as_deref() {
                None | Some("-") => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("cannot read the token from standard input")?;
                    text.trim().to_owned()
                }
                Some(t) => t.to_owned(),
            };
            if token.is_empty() {
                return Err(Coded::usage("the token is empty").into());
            }
            let sha256 = hash_token(&token);
            if json {
                output::json(&json!({ "sha256": sha256 }))?;
            } else {
                output::line(&sha256)?;
            }
            Ok(())
        }
    }
}

/// The `[[tokens]]` table of a config file, for writing one entry.
#[derive(serde::Serialize)]
struct Snippet<'a> {
    tokens: [&'a TokenConfig; 1],
}

fn create(args: &TokenCreateArgs, json: bool) -> anyhow::Result<()> {
    let role: Role = args.role.parse().map_err(Coded::usage)?;
    let token = generate_token().map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let sha256 = hash_token(&token);
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", role.name(), sha256.get(..8).unwrap_or_default()));
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(
            Coded::usage("--name must be non-empty text without control characters").into(),
        );
    }
    let entry = TokenConfig {
        name: name.clone(),
        role,
        sha256: sha256.clone(),
    };
    let toml = toml::to_string(&Snippet { tokens: [&entry] })
        .context("cannot write the [[tokens]] entry")?;
    if json {
        output::json(&json!({
            "token": token,
            "name": name,
            "role": role.name(),
            "sha256": sha256,
            "toml": toml,
        }))?;
    } else {
        output::write_stdout(&format!(
            "token: {token}\n\
             \n\
             It is shown only once: store it now. Clients pass it with --token or VOUCH_TOKEN.\n\
             The server keeps only its hash; add this to its config file and restart it:\n\
             \n\
             {toml}"
        ))?;
    }
    Ok(())
}
