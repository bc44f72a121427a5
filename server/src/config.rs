//! The server's configuration: a TOML file, environment overrides, defaults and validation.
//!
//! Every field has a default, so no configuration at all is a working server (the embedded
//! default): data directory `./vouch-data`, ledger `default` (BLAKE3) created on first start,
//! gRPC on `127.0.0.1:50051`, metrics on `127.0.0.1:9464`, durability `fsync`, no tokens
//! (authentication disabled, which is allowed on a loopback address only).
//!
//! Precedence, lowest first: defaults, the file (`--config`, else `VOUCH_CONFIG`), the
//! environment (`VOUCH_DATA_DIR`, `VOUCH_LISTEN`, `VOUCH_METRICS_LISTEN`, `VOUCH_LOG`,
//! `VOUCH_LOG_FORMAT`, `VOUCH_STRICT`, `VOUCH_DURABILITY`), then command-line flags, which the
//! CLI applies to the public fields before it calls [`Config::validate`] (and
//! [`crate::server::start`] validates again). Unknown fields are errors, so a typo never
//! silently falls back to a default. `examples/vouch.toml` documents every field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vouch_ledger_core::HashAlg;
use vouch_ledger_core::entry::MAX_PAYLOAD_LEN;
use vouch_storage::{CheckpointCadence, Durability, LedgerOptions, valid_ledger_name};

use crate::auth::Role;

/// The environment variable naming the configuration file.
pub const ENV_CONFIG: &str = "VOUCH_CONFIG";
/// Overrides [`Config::data_dir`].
pub const ENV_DATA_DIR: &str = "VOUCH_DATA_DIR";
/// Overrides [`Config::listen`].
pub const ENV_LISTEN: &str = "VOUCH_LISTEN";
/// Overrides [`MetricsConfig::listen`]; `off` disables the metrics endpoint.
pub const ENV_METRICS_LISTEN: &str = "VOUCH_METRICS_LISTEN";
/// Overrides [`LogConfig::filter`].
pub const ENV_LOG: &str = "VOUCH_LOG";
/// Overrides [`LogConfig::format`].
pub const ENV_LOG_FORMAT: &str = "VOUCH_LOG_FORMAT";
/// Overrides [`Config::strict`] (`true`/`false`/`1`/`0`).
pub const ENV_STRICT: &str = "VOUCH_STRICT";
/// Overrides [`StorageConfig::durability`].
pub const ENV_DURABILITY: &str = "VOUCH_DURABILITY";

/// Bytes an entry envelope and its protobuf framing add to a payload, at most: the 24-byte
/// header, a 128-byte idempotency key, a 127-byte content type, field tags and lengths.
const ENTRY_OVERHEAD: usize = 1024;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The data directory: ledgers, checkpoints, indexes and signing keys.
    pub data_dir: PathBuf,
    /// The gRPC listen address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The ledger used when a request names none; created on first start if missing.
    pub default_ledger: String,
    /// The hash function of ledgers created without one (including the default ledger).
    pub default_hash: HashName,
    /// Checkpoint origins of new ledgers are `<origin_prefix>/<ledger>` unless the creator
    /// gives one; the origin is also the signing key's name.
    pub origin_prefix: String,
    /// Verify every ledger in full before serving, and refuse to start on any error.
    pub strict: bool,
    /// How long a graceful shutdown waits for in-flight requests, in milliseconds, before
    /// it closes the remaining connections.
    pub shutdown_grace_ms: u64,
    /// Storage engine settings.
    pub storage: StorageConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Logging.
    pub log: LogConfig,
    /// TLS; absent means plaintext.
    pub tls: Option<TlsConfig>,
    /// Bearer tokens; none means authentication is disabled (loopback only).
    pub tokens: Vec<TokenConfig>,
}

/// A hash function name in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashName {
    /// BLAKE3.
    #[default]
    Blake3,
    /// SHA-256 (RFC 6962 compatible).
    Sha256,
}

impl From<HashName> for HashAlg {
    fn from(h: HashName) -> Self {
        match h {
            HashName::Blake3 => HashAlg::Blake3,
            HashName::Sha256 => HashAlg::Sha256,
        }
    }
}

/// When appends are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    /// Acknowledge after `fdatasync`: nothing acknowledged is lost.
    #[default]
    Fsync,
    /// Sync every `sync_interval_ms`: a power failure loses up to one interval.
    Interval,
    /// Never sync on the append path. Benchmarks only.
    None,
}

/// Storage engine settings, applied to every ledger when it is opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `fsync` (default), `interval` or `none`.
    pub durability: DurabilityMode,
    /// The sync interval of `interval` durability, in milliseconds.
    pub sync_interval_ms: u64,
    /// Sign a checkpoint after this many new entries; 0 disables.
    pub checkpoint_every_entries: u64,
    /// Sign a checkpoint this often while entries arrive, in milliseconds; 0 disables.
    pub checkpoint_every_ms: u64,
    /// Roll over to a new segment file at this size, in bytes.
    pub segment_target_bytes: u64,
    /// Whether new ledgers index entries by leaf hash (proofs by leaf hash need it).
    pub leaf_hash_index: bool,
}

/// Request limits. Each error caused by a limit names it and the value that broke it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The largest request message, in bytes.
    pub max_message_bytes: usize,
    /// The largest entry payload, in bytes (at most 16 MiB, the envelope's limit).
    pub max_payload_bytes: usize,
    /// The most entries one `AppendBatch` may hold.
    pub max_batch_entries: usize,
    /// The most concurrent HTTP/2 streams (calls) on one connection.
    pub max_concurrent_streams_per_connection: u32,
    /// The most `StreamEntries` and `WatchCheckpoints` calls open at once, server-wide.
    pub max_open_streams: usize,
    /// The longest a unary call may take, in milliseconds (streams are not cut).
    pub request_timeout_ms: u64,
    /// How long a new connection has to send the HTTP/2 connection preface (or, with TLS, its
    /// first 24 bytes), in milliseconds, before it is closed.
    pub handshake_timeout_ms: u64,
    /// How often the server pings each idle connection (HTTP/2 PING; also the TCP keepalive
    /// idle time), in milliseconds; 0 turns pings off.
    pub keepalive_interval_ms: u64,
    /// How long a ping may go unanswered before the connection is closed, in milliseconds.
    pub keepalive_timeout_ms: u64,
}

/// The Prometheus metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Whether to serve metrics.
    pub enabled: bool,
    /// Where `GET /metrics` is served; port 0 picks a free port.
    pub listen: SocketAddr,
}

/// How logs are written (to standard error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` (one object per line) for log pipelines.
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `vouch_server=debug,info`, ...
    pub filter: String,
}

/// A log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// TLS for the gRPC port (rustls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert: PathBuf,
    /// PEM private key of the server.
    pub key: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate they signed (mTLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// A bearer token: its name (for logs), its role and the SHA-256 of the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs and metrics; never the token itself.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// Lowercase hex SHA-256 of the token (`vouch token hash`, [`crate::auth::hash_token`]).
    pub sha256: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./vouch-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            default_ledger: "default".to_owned(),
            default_hash: HashName::Blake3,
            origin_prefix: "vouch.local".to_owned(),
            strict: false,
            shutdown_grace_ms: 10_000,
            storage: StorageConfig::default(),
            limits: LimitsConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            tls: None,
            tokens: Vec::new(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            durability: DurabilityMode::Fsync,
            sync_interval_ms: 10,
            checkpoint_every_entries: 10_000,
            checkpoint_every_ms: 1_000,
            segment_target_bytes: 64 << 20,
            leaf_hash_index: true,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 << 20,
            max_payload_bytes: 1 << 20,
            max_batch_entries: 1_000,
            max_concurrent_streams_per_connection: 256,
            max_open_streams: 256,
            request_timeout_ms: 60_000,
            handshake_timeout_ms: 10_000,
            keepalive_interval_ms: 60_000,
            keepalive_timeout_ms: 20_000,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line and column.
        message: String,
    },
    /// An environment variable has a value that cannot be used.
    #[error("environment variable {var}={value:?}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A field has a value that cannot be used.
    #[error("config field {field}: {reason}")]
    Invalid {
        /// The field, as written in the file (`limits.max_payload_bytes`).
        field: String,
        /// Why.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// The configuration used when there is no file and no environment override.
    pub fn embedded_default() -> Self {
        Self::default()
    }

    /// Parses a TOML document (missing fields take their defaults). It is not validated.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] naming the line, column and problem; `path` is used only in the
    /// message.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })
    }

    /// Loads the configuration: the file at `path` (else at `$VOUCH_CONFIG`, else the
    /// embedded default), then the environment overrides, then validates it.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for an unreadable or invalid file, a bad environment value or a field
    /// that fails validation.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, |k| std::env::var(k).ok())
    }

    /// [`Config::load`] with the environment read through `env`.
    ///
    /// # Errors
    ///
    /// As [`Config::load`].
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let from_env = env(ENV_CONFIG).filter(|p| !p.is_empty()).map(PathBuf::from);
        let mut config = match path.map(Path::to_path_buf).or(from_env) {
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                Self::from_toml(&text, &p)?
            }
            None => Self::embedded_default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Applies the environment overrides read through `env`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Env`] naming the variable and why its value cannot be used.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |var: &'static str| env(var).filter(|v| !v.is_empty()).map(|v| (var, v));
        let bad = |var: &'static str, value: &str, reason: &str| ConfigError::Env {
            var,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some((_, v)) = get(ENV_DATA_DIR) {
            self.data_dir = PathBuf::from(v);
        }
        if let Some((var, v)) = get(ENV_LISTEN) {
            self.listen = v.parse().map_err(|_| {
                bad(
                    var,
                    &v,
                    "expected an IP address and port such as 127.0.0.1:50051",
                )
            })?;
        }
        if let Some((var, v)) = get(ENV_METRICS_LISTEN) {
            if v.eq_ignore_ascii_case("off") {
                self.metrics.enabled = false;
            } else {
                self.metrics.listen = v.parse().map_err(|_| {
                    bad(
                        var,
                        &v,
                        "expected an IP address and port such as 127.0.0.1:9464, or off",
                    )
                })?;
                self.metrics.enabled = true;
            }
        }
        if let Some((_, v)) = get(ENV_LOG) {
            self.log.filter = v;
        }
        if let Some((var, v)) = get(ENV_LOG_FORMAT) {
            self.log.format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(bad(var, &v, "expected text or json")),
            };
        }
        if let Some((var, v)) = get(ENV_STRICT) {
            self.strict = match v.as_str() {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => return Err(bad(var, &v, "expected true, false, 1 or 0")),
            };
        }
        if let Some((var, v)) = get(ENV_DURABILITY) {
            self.storage.durability = match v.as_str() {
                "fsync" => DurabilityMode::Fsync,
                "interval" => DurabilityMode::Interval,
                "none" => DurabilityMode::None,
                _ => return Err(bad(var, &v, "expected fsync, interval or none")),
            };
        }
        Ok(())
    }

    /// Checks every field, and the combination of an open listen address without tokens.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the first bad field and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        if !valid_ledger_name(&self.default_ledger) {
            return Err(invalid(
                "default_ledger",
                format!(
                    "{:?} is not a ledger name: use 1 to 64 of a-z, 0-9, '-', '_', '.', starting with a letter or digit",
                    self.default_ledger
                ),
            ));
        }
        let origin = self.origin_for(&self.default_ledger);
        if self.origin_prefix.is_empty() || !vouch_ledger_core::note::is_valid_key_name(&origin) {
            return Err(invalid(
                "origin_prefix",
                format!(
                    "{:?} must be non-empty, without white space, '+' or control characters",
                    self.origin_prefix
                ),
            ));
        }
        if self.storage.durability == DurabilityMode::Interval && self.storage.sync_interval_ms == 0
        {
            return Err(invalid(
                "storage.sync_interval_ms",
                "must be at least 1 with durability \"interval\"",
            ));
        }
        if self.storage.segment_target_bytes < 1 << 20 {
            return Err(invalid(
                "storage.segment_target_bytes",
                format!(
                    "{} is below the minimum of 1048576",
                    self.storage.segment_target_bytes
                ),
            ));
        }
        self.validate_limits()?;
        self.validate_tokens()?;
        if let Some(tls) = &self.tls {
            if tls.cert.as_os_str().is_empty() {
                return Err(invalid("tls.cert", "must name a PEM certificate file"));
            }
            if tls.key.as_os_str().is_empty() {
                return Err(invalid("tls.key", "must name a PEM private key file"));
            }
        }
        if self.tokens.is_empty() && !self.listen.ip().is_loopback() {
            return Err(invalid(
                "listen",
                format!(
                    "{} is not a loopback address and no [[tokens]] are configured: \
                     authentication would be disabled for the network; add tokens \
                     (`vouch token create`) or listen on 127.0.0.1",
                    self.listen
                ),
            ));
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if l.max_payload_bytes == 0 || l.max_payload_bytes > MAX_PAYLOAD_LEN {
            return Err(invalid(
                "limits.max_payload_bytes",
                format!(
                    "{} is outside 1..={MAX_PAYLOAD_LEN} (the entry envelope's limit)",
                    l.max_payload_bytes
                ),
            ));
        }
        if l.max_message_bytes < l.max_payload_bytes.saturating_add(ENTRY_OVERHEAD) {
            return Err(invalid(
                "limits.max_message_bytes",
                format!(
                    "{} cannot carry one entry of limits.max_payload_bytes = {}; use at least {}",
                    l.max_message_bytes,
                    l.max_payload_bytes,
                    l.max_payload_bytes.saturating_add(ENTRY_OVERHEAD)
                ),
            ));
        }
        if l.max_batch_entries == 0 || l.max_batch_entries > 100_000 {
            return Err(invalid(
                "limits.max_batch_entries",
                format!("{} is outside 1..=100000", l.max_batch_entries),
            ));
        }
        if l.max_concurrent_streams_per_connection == 0 {
            return Err(invalid(
                "limits.max_concurrent_streams_per_connection",
                "must be at least 1",
            ));
        }
        if l.max_open_streams == 0 {
            return Err(invalid("limits.max_open_streams", "must be at least 1"));
        }
        if l.request_timeout_ms == 0 {
            return Err(invalid("limits.request_timeout_ms", "must be at least 1"));
        }
        if l.handshake_timeout_ms == 0 {
            return Err(invalid("limits.handshake_timeout_ms", "must be at least 1"));
        }
        if l.keepalive_interval_ms > 0 && l.keepalive_timeout_ms == 0 {
            return Err(invalid(
                "limits.keepalive_timeout_ms",
                "must be at least 1 while limits.keepalive_interval_ms is not 0",
            ));
        }
        Ok(())
    }

    fn validate_tokens(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        let mut hashes = std::collections::HashSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let field = format!("tokens[{i}]");
            if t.name.is_empty() || t.name.chars().any(char::is_control) {
                return Err(invalid(
                    format!("{field}.name"),
                    "must be non-empty text without control characters",
                ));
            }
            if !names.insert(t.name.as_str()) {
                return Err(invalid(
                    format!("{field}.name"),
                    format!("{:?} is used by an earlier token", t.name),
                ));
            }
            if t.sha256.len() != 64
                || !t
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(invalid(
                    format!("{field}.sha256"),
                    "must be the 64 lowercase hex digits of the token's SHA-256 \
                     (`vouch token hash`); never put the token itself in the file",
                ));
            }
            if !hashes.insert(t.sha256.as_str()) {
                return Err(invalid(
                    format!("{field}.sha256"),
                    "the same token hash is configured twice",
                ));
            }
        }
        Ok(())
    }

    /// The checkpoint origin (and key name) a new ledger gets by default.
    pub fn origin_for(&self, ledger: &str) -> String {
        format!("{}/{ledger}", self.origin_prefix)
    }

    /// The storage options every ledger is opened with.
    pub fn ledger_options(&self) -> LedgerOptions {
        let s = &self.storage;
        let durability = match s.durability {
            DurabilityMode::Fsync => Durability::Fsync,
            DurabilityMode::Interval => {
                Durability::Interval(Duration::from_millis(s.sync_interval_ms))
            }
            DurabilityMode::None => Durability::NoneUnsafe,
        };
        LedgerOptions {
            durability,
            checkpoints: CheckpointCadence {
                every_entries: (s.checkpoint_every_entries > 0)
                    .then_some(s.checkpoint_every_entries),
                every: (s.checkpoint_every_ms > 0)
                    .then(|| Duration::from_millis(s.checkpoint_every_ms)),
            },
            segment_target_size: s.segment_target_bytes,
            max_batch_entries: self.limits.max_batch_entries,
            strict: self.strict,
            ..LedgerOptions::default()
        }
    }

    /// Whether bearer-token authentication is on.
    pub fn auth_enabled(&self) -> bool {
        !self.tokens.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn no_file_no_env_is_the_embedded_default() {
        let c = Config::load_with_env(None, no_env).unwrap();
        assert_eq!(c, Config::embedded_default());
        assert_eq!(c.data_dir, PathBuf::from("./vouch-data"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(c.default_ledger, "default");
        assert!(c.metrics.enabled);
        assert_eq!(c.ledger_options().durability, Durability::Fsync);
    }

    #[test]
    fn the_example_file_parses_and_matches_the_defaults() {
        let text = include_str!("../../examples/vouch.toml");
        let c = Config::from_toml(text, Path::new("examples/vouch.toml")).unwrap();
        c.validate().unwrap();
        assert_eq!(c, Config::embedded_default());
    }

    #[test]
    fn unknown_fields_are_errors_naming_the_field() {
        let e = Config::from_toml("data_dri = \"x\"\n", Path::new("v.toml")).unwrap_err();
        assert!(e.to_string().contains("data_dri"), "{e}");
        let e = Config::from_toml("[limits]\nmax_payload = 1\n", Path::new("v.toml")).unwrap_err();
        assert!(e.to_string().contains("max_payload"), "{e}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.toml");
        std::fs::write(
            &path,
            "data_dir = \"/from/file\"\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "VOUCH_DATA_DIR" => Some("/from/env".to_owned()),
            "VOUCH_METRICS_LISTEN" => Some("off".to_owned()),
            "VOUCH_LOG_FORMAT" => Some("json".to_owned()),
            "VOUCH_DURABILITY" => Some("interval".to_owned()),
            _ => None,
        };
        let c = Config::load_with_env(Some(&path), env).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/env"));
        assert_eq!(c.listen.port(), 1);
        assert!(!c.metrics.enabled);
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.storage.durability, DurabilityMode::Interval);
        let env = |k: &str| (k == "VOUCH_CONFIG").then(|| path.display().to_string());
        let c = Config::load_with_env(None, env).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let env = |k: &str| (k == "VOUCH_LISTEN").then(|| "localhost".to_owned());
        let e = Config::load_with_env(None, env).unwrap_err();
        assert!(e.to_string().contains("VOUCH_LISTEN"), "{e}");
    }

    #[test]
    fn open_address_without_tokens_is_refused() {
        let mut c = Config::embedded_default();
        c.listen = "0.0.0.0:50051".parse().unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        c.tokens.push(TokenConfig {
            name: "ci".into(),
            role: Role::Writer,
            sha256: crate::auth::hash_token("vch_x"),
        });
        c.validate().unwrap();
    }

    #[test]
    fn limits_and_tokens_are_checked() {
        let mut c = Config::embedded_default();
        c.limits.max_payload_bytes = MAX_PAYLOAD_LEN + 1;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("limits.max_payload_bytes")
        );
        let mut c = Config::embedded_default();
        c.limits.max_message_bytes = c.limits.max_payload_bytes;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("limits.max_message_bytes")
        );
        let mut c = Config::embedded_default();
        c.tokens.push(TokenConfig {
            name: "a".into(),
            role: Role::Admin,
            sha256: "vch_plaintext".into(),
        });
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("tokens[0].sha256")
        );
        let mut c = Config::embedded_default();
        c.default_ledger = "Bad".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("default_ledger")
        );
    }
}
