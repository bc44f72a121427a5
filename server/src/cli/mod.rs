//! The `vouch` command line: the server, client subcommands, offline verification and
//! administration tools in one binary.
//!
//! [`main`] parses the arguments with clap, runs one subcommand and turns its error into a
//! one-line `error: …` message on standard error (with `--json`, also a JSON object on
//! standard output) and an exit code from [`exit`]. The subcommands:
//!
//! - `serve` ([`serve`]): the gRPC server, on the embedded default without any flags;
//! - `append`, `get`, `entries`, `checkpoint`, `prove`, `ledger` ([`client`]): calls to a
//!   running server;
//! - `verify` ([`verify`]) and `verify-ledger` ([`verify_ledger`]): offline checks that never
//!   open a network connection;
//! - `policy`, `decide`, `override`, `exception`, `replay`, `decisions` ([`policy`]): calls
//!   to the policy service;
//! - `export-pack` and `verify-pack` ([`pack`]): a decision's proof pack, fetched from a
//!   server and verified offline;
//! - `monitor` ([`monitor`]): follows a server's checkpoints and alerts on a rollback or fork;
//! - `keygen` and `token` ([`keygen`]): signing keys and bearer tokens;
//! - `bench` ([`bench`]): the load generator, against an embedded or a running server.

pub mod bench;
pub mod client;
pub mod exit;
pub mod keygen;
pub mod monitor;
pub mod output;
pub mod pack;
pub mod policy;
pub mod serve;
pub mod verify;
pub mod verify_ledger;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use self::exit::{Coded, FAILURE};

/// The exit codes, as `vouch --help` shows them.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error: a file cannot be read or written, bad input data, an internal error
  2  usage: an unknown flag, a missing or malformed argument
  3  connection: the server cannot be reached
  4  verification failed: a proof, checkpoint, signature, proof file or ledger file
  5  the server refused the request (not found, invalid argument, permission denied, ...)
  6  the decision is BLOCK (decide, policy evaluate)
  7  inconsistent: a log that contradicts what was verified before (monitor: rollback, fork)";

/// Vouch: an append-only ledger with Merkle proofs and signed checkpoints.
#[derive(Debug, Parser)]
#[command(
    name = "vouch",
    version,
    about = "Vouch: an append-only ledger with Merkle proofs and signed checkpoints",
    long_about = "Vouch: an append-only ledger with Merkle proofs and signed checkpoints.\n\n\
                  Start a server with `vouch serve`, append and prove with the client \
                  subcommands, and check proofs offline with `vouch verify`.",
    after_help = EXIT_CODES,
    propagate_version = true
)]
pub struct Cli {
    /// Options every subcommand accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The server's URL (client subcommands).
    #[arg(
        long,
        global = true,
        env = "VOUCH_SERVER",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL",
        help_heading = "Client options"
    )]
    pub server: String,
    /// The bearer token (client subcommands).
    #[arg(
        long,
        global = true,
        env = "VOUCH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Client options"
    )]
    pub token: Option<String>,
    /// The ledger: the one to call (client subcommands; default: the server's default
    /// ledger), the default ledger to serve (`serve`), or the one to audit (`verify-ledger`;
    /// default: all).
    #[arg(long, global = true, value_name = "NAME")]
    pub ledger: Option<String>,
    /// CA certificates (PEM) to trust for the server's TLS certificate.
    #[arg(
        long = "tls-ca",
        visible_alias = "ca",
        global = true,
        env = "VOUCH_TLS_CA",
        value_name = "FILE",
        help_heading = "Client options"
    )]
    pub tls_ca: Option<PathBuf>,
    /// The client certificate (PEM) for mutual TLS.
    #[arg(
        long = "tls-cert",
        visible_alias = "cert",
        global = true,
        env = "VOUCH_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key",
        help_heading = "Client options"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM) for mutual TLS (`--key` is `append`'s
    /// idempotency key).
    #[arg(
        long = "tls-key",
        global = true,
        env = "VOUCH_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert",
        help_heading = "Client options"
    )]
    pub tls_key: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the server (with no flags: the embedded default, ./vouch-data on 127.0.0.1:50051).
    Serve(serve::ServeArgs),
    /// Appends an entry.
    Append(client::AppendArgs),
    /// Shows one entry with its leaf hash.
    Get(client::GetArgs),
    /// Lists a range of entries (streamed; one JSON object per line with --json).
    Entries(client::EntriesArgs),
    /// Prints the latest signed checkpoint (or the one of a given size).
    Checkpoint(client::CheckpointArgs),
    /// Fetches an inclusion or consistency proof (--json writes a proof file).
    #[command(subcommand)]
    Prove(client::ProveCommand),
    /// Creates and lists ledgers.
    #[command(subcommand)]
    Ledger(client::LedgerCommand),
    /// Lints, publishes, shows, evaluates and simulates policy bundles.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Decides a request against a published bundle and records the decision.
    Decide(policy::DecideArgs),
    /// Records an override of a blocked decision (granted or denied).
    Override(policy::OverrideArgs),
    /// Records an exception that later decisions honour while it is active.
    Exception(policy::ExceptionArgs),
    /// Replays a recorded decision from its stored snapshots.
    Replay(policy::ReplayArgs),
    /// Lists recorded decisions by subject, outcome, policy, environment and time.
    Decisions(policy::DecisionsArgs),
    /// Exports a recorded decision as a proof pack, to check offline with verify-pack.
    ExportPack(pack::ExportPackArgs),
    /// Verifies a proof pack offline: entries, proofs, signatures, bindings and the replay.
    VerifyPack(pack::VerifyPackArgs),
    /// Verifies a proof or checkpoint file offline, with the verifier keys you trust.
    #[command(subcommand)]
    Verify(verify::VerifyCommand),
    /// Audits a data directory offline: every entry, node and checkpoint.
    VerifyLedger(verify_ledger::VerifyLedgerArgs),
    /// Follows a server's checkpoints: signatures, consistency with the last one verified
    /// (kept in a state file), optionally every entry, and decisions matching watch filters.
    Monitor(monitor::MonitorArgs),
    /// Generates an Ed25519 checkpoint signing key and prints its verifier key.
    Keygen(keygen::KeygenArgs),
    /// Creates bearer tokens for the server's config file.
    #[command(subcommand)]
    Token(keygen::TokenCommand),
    /// Generates load and reports throughput and latency (embedded server without --server).
    Bench(bench::BenchArgs),
}

/// Runs the `vouch` binary and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to standard output and succeed; usage errors exit with 2.
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let json = cli.global.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e, json),
    }
}

/// Runs one subcommand.
fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { global, command } = cli;
    match command {
        Command::Serve(args) => serve::run(&args, global.ledger.as_deref()),
        Command::Keygen(args) => keygen::keygen(&args, global.json),
        Command::Token(command) => keygen::token(&command, global.json),
        Command::Verify(command) => verify::run(&command, global.json),
        Command::VerifyLedger(args) => {
            verify_ledger::run(&args, global.ledger.as_deref(), global.json)
        }
        Command::Monitor(args) => monitor::run(&global, &args),
        Command::Append(args) => client::run(&global, client::Call::Append(args)),
        Command::Get(args) => client::run(&global, client::Call::Get(args)),
        Command::Entries(args) => client::run(&global, client::Call::Entries(args)),
        Command::Checkpoint(args) => client::run(&global, client::Call::Checkpoint(args)),
        Command::Prove(command) => client::run(&global, client::Call::Prove(command)),
        Command::Ledger(command) => client::run(&global, client::Call::Ledger(command)),
        Command::Policy(command) => policy::run(&global, policy::Call::Policy(command)),
        Command::Decide(args) => policy::run(&global, policy::Call::Decide(args)),
        Command::Override(args) => policy::run(&global, policy::Call::Override(args)),
        Command::Exception(args) => policy::run(&global, policy::Call::Exception(args)),
        Command::Replay(args) => policy::run(&global, policy::Call::Replay(args)),
        Command::Decisions(args) => policy::run(&global, policy::Call::Decisions(args)),
        Command::ExportPack(args) => pack::export(&global, &args),
        Command::VerifyPack(args) => pack::verify_pack(&args, global.json),
        Command::Bench(args) => bench::run(&global, &args),
    }
}

/// Whether the error is a closed standard output (`vouch entries | head`).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints the error and picks the exit code.
fn report(e: &anyhow::Error, json: bool) -> ExitCode {
    if is_broken_pipe(e) {
        return ExitCode::SUCCESS;
    }
    let coded = e.chain().find_map(|c| c.downcast_ref::<Coded>());
    let code = coded.map_or(FAILURE, |c| c.code);
    // The chain above the coded error is context; the coded message is the cause.
    let message = format!("{e:#}");
    // The output already showed what failed (a BLOCK decision, lint errors, a differing
    // replay; as JSON with --json): only the exit code and a line on standard error remain.
    if coded.is_some_and(|c| c.reported) {
        eprintln!("{message}");
        return ExitCode::from(code);
    }
    if json {
        let mut error = json!({
            "exit_code": code,
            "kind": exit::kind_name(code),
            "message": message,
        });
        if let Some(check) = coded.and_then(|c| c.check) {
            error["check"] = json!(check);
        }
        let _ = output::json(&json!({ "error": error }));
    }
    eprintln!("error: {message}");
    ExitCode::from(code)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("vouch").chain(args.iter().copied()))
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = parse(&["append", "--key", "k1", "data", "--json", "--ledger", "l1"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.ledger.as_deref(), Some("l1"));
        let Command::Append(args) = cli.command else {
            panic!("not append: {:?}", cli.command);
        };
        assert_eq!(args.key.as_deref(), Some("k1"));
        assert_eq!(args.data.as_deref(), Some("data"));
        let cli = parse(&["--tls-ca", "ca.pem", "get", "3"]).unwrap();
        assert_eq!(cli.global.tls_ca, Some(PathBuf::from("ca.pem")));
    }

    #[test]
    fn usage_errors_are_rejected() {
        for args in [
            &["append"][..],
            &["append", "x", "--file", "f"],
            &["prove", "inclusion"],
            &["prove", "inclusion", "--index", "1", "--leaf-hash", "ab"],
            &["prove", "consistency"],
            &["token", "create", "--role", "root"],
            &["keygen"],
            &["get", "minus-one"],
            &["get", "1", "--tls-cert", "c.pem"],
            &[
                "verify",
                "consistency",
                "f",
                "--old-root",
                "ab",
                "--old-checkpoint",
                "c",
            ],
            &["serve", "--durability", "sometimes"],
            &["decide", "req.json"],
            &["policy", "lint"],
            &[
                "policy",
                "simulate",
                "c.yaml",
                "--last",
                "5",
                "--since",
                "2025-01-01T00:00:00Z",
            ],
            &["decisions", "--outcome", "maybe"],
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.use_stderr(), "{args:?} was accepted");
        }
    }

    #[test]
    fn serve_needs_no_arguments() {
        let cli = parse(&["serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve: {:?}", cli.command);
        };
        assert!(args.config.is_none() && args.data_dir.is_none() && args.listen.is_none());
    }
}
