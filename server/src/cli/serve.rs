//! `vouch serve`: loads the configuration (file, then environment), applies the flags on top
//! and runs the server until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::exit::Coded;
use crate::config::{Config, DurabilityMode, HashName, LogFormat};

/// `vouch serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The TOML configuration file (default: the file `VOUCH_CONFIG` names, else the embedded default).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory: ledgers, checkpoints, indexes and signing keys.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The gRPC listen address; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The Prometheus metrics listen address, or `off`.
    #[arg(long, value_name = "ADDR|off")]
    pub metrics_listen: Option<String>,
    /// When appends are acknowledged: after fsync (default), after a sync interval, or
    /// never synced (benchmarks only: acknowledged entries can be lost).
    #[arg(long, value_enum, value_name = "MODE")]
    pub durability: Option<DurabilityArg>,
    /// The hash function of ledgers created without one, the default ledger included.
    #[arg(long, value_enum, value_name = "HASH")]
    pub hash: Option<HashArg>,
    /// Sign a checkpoint this often while entries arrive, in milliseconds (0: never by time).
    #[arg(long, value_name = "MS")]
    pub checkpoint_every_ms: Option<u64>,
    /// Verify every ledger in full before serving and refuse to start on any error.
    #[arg(long)]
    pub strict: bool,
    /// The log format on standard error.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,
}

/// `--durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Acknowledge after fsync.
    Fsync,
    /// Sync on an interval.
    Interval,
    /// Never sync (benchmarks only).
    None,
}

/// `--hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HashArg {
    /// BLAKE3.
    Blake3,
    /// SHA-256, byte-compatible with RFC 6962 tools.
    Sha256,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Lines for people.
    Text,
    /// One JSON object per line.
    Json,
}

/// The configuration `vouch serve` runs with: the file and environment, then the flags.
///
/// # Errors
///
/// A configuration that cannot be loaded or does not validate, or a malformed flag value.
pub fn config(args: &ServeArgs, ledger: Option<&str>) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(dir) = &args.data_dir {
        config.data_dir.clone_from(dir);
    }
    if let Some(addr) = args.listen {
        config.listen = addr;
    }
    if let Some(metrics) = &args.metrics_listen {
        if metrics.eq_ignore_ascii_case("off") {
            config.metrics.enabled = false;
        } else {
            config.metrics.listen = metrics.parse().map_err(|_| {
                Coded::usage(format!(
                    "--metrics-listen {metrics:?}: expected an address such as 127.0.0.1:9464, or off"
                ))
            })?;
            config.metrics.enabled = true;
        }
    }
    if let Some(name) = ledger {
        name.clone_into(&mut config.default_ledger);
    }
    if let Some(d) = args.durability {
        config.storage.durability = match d {
            DurabilityArg::Fsync => DurabilityMode::Fsync,
            DurabilityArg::Interval => DurabilityMode::Interval,
            DurabilityArg::None => DurabilityMode::None,
        };
    }
    if let Some(h) = args.hash {
        config.default_hash = match h {
            HashArg::Blake3 => HashName::Blake3,
            HashArg::Sha256 => HashName::Sha256,
        };
    }
    if let Some(ms) = args.checkpoint_every_ms {
        config.storage.checkpoint_every_ms = ms;
    }
    if args.strict {
        config.strict = true;
    }
    if let Some(f) = args.log_format {
        config.log.format = match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    config.validate()?;
    Ok(config)
}

/// Runs `vouch serve` until SIGTERM or SIGINT.
///
/// # Errors
///
/// A bad configuration, or a server that fails to start or to shut down cleanly.
pub fn run(args: &ServeArgs, ledger: Option<&str>) -> anyhow::Result<()> {
    let config = config(args, ledger)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vouch")
        .build()?;
    runtime.block_on(crate::server::run_until_signal(config))
}
