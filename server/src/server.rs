//! Starting, running and stopping the server.
//!
//! [`start`] opens the data directory and every ledger, binds the gRPC and metrics ports
//! (port 0 is allowed; the bound addresses are reported), and serves in the background.
//! [`RunningServer::shutdown`] stops gracefully: health turns `NOT_SERVING`, the listeners
//! close, streams end with `UNAVAILABLE`, in-flight calls finish (up to
//! `shutdown_grace_ms`), then every ledger is closed (final checkpoint, sync, index head).
//! [`run_until_signal`] is `vouch serve`: start, print the startup block, wait for SIGTERM or
//! SIGINT, shut down.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::auth::Authenticator;
use crate::config::{Config, ConfigError, TlsConfig};
use crate::metrics::Metrics;
use crate::middleware::RpcLayer;
use crate::proto::v1::ledger_service_server::LedgerServiceServer;
use crate::proto::v1::policy_service_server::PolicyServiceServer;
use crate::registry::{Registry, RegistryError};
use crate::service::{LedgerService, PolicyService};

/// The gRPC service name health reports for the ledger service.
pub const LEDGER_SERVICE_NAME: &str = "vouch.v1.LedgerService";
/// The gRPC service name health reports for the policy service.
pub const POLICY_SERVICE_NAME: &str = "vouch.v1.PolicyService";

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory or a ledger could not be opened.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A ledger could not sign its first checkpoint.
    #[error("ledger {ledger:?}: signing the first checkpoint failed: {reason}")]
    FirstCheckpoint {
        /// The ledger.
        ledger: String,
        /// Why.
        reason: String,
    },
    /// A listen address could not be bound.
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        /// `gRPC` or `metrics`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A TLS file could not be read.
    #[error("cannot read {field} file {path}: {source}")]
    TlsFile {
        /// The configuration field.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The reflection service could not be built.
    #[error("reflection service: {0}")]
    Reflection(String),
    /// A start-up task failed.
    #[error("start-up task failed: {0}")]
    Task(String),
}

/// Why the shutdown was not clean. The ledgers are closed in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The gRPC server failed while serving or draining.
    #[error("gRPC server: {0}")]
    Grpc(String),
    /// The metrics server failed.
    #[error("metrics server: {0}")]
    Metrics(String),
    /// Closing the ledgers failed.
    #[error("closing the ledgers: {0}")]
    Close(String),
}

/// A server serving in the background.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// The bound metrics address, if metrics are enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// Each ledger's name and current verifier key (C2SP `<name>+<hex id>+<base64 key>`).
    pub ledgers: Vec<(String, String)>,
    /// Whether TLS is on (the URL scheme is `https`).
    pub tls: bool,
    config: Config,
    registry: Arc<Registry>,
    health: HealthReporter,
    shutdown_tx: watch::Sender<bool>,
    grpc_task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    metrics_task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts the server described by `config` and returns once it is serving.
///
/// # Errors
///
/// [`StartError`] for an invalid configuration, a data directory or ledger that cannot be
/// opened (a key file readable by others, corruption, strict-mode verification failure, a
/// lock held by another process), an address that cannot be bound, or bad TLS files.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    start_with_vfs(config, Arc::new(vouch_storage::vfs::RealVfs)).await
}

/// [`start`] with the storage engine writing through `vfs`: the reliability tests serve a
/// data directory on a file system that fails on purpose (a full disk, a failed `fsync`).
///
/// # Errors
///
/// As [`start`].
pub async fn start_with_vfs(
    config: Config,
    vfs: Arc<dyn vouch_storage::vfs::Vfs>,
) -> Result<RunningServer, StartError> {
    config.validate()?;
    let open_config = config.clone();
    let registry = tokio::task::spawn_blocking(move || -> Result<Registry, StartError> {
        let registry = Registry::open_with_vfs(&open_config, vfs)?;
        // Every served ledger has a latest checkpoint, so "tree size 0 = the latest
        // checkpoint" always has an answer.
        for ledger in registry.list() {
            if ledger.latest_checkpoint().is_none() {
                ledger
                    .checkpoint_now()
                    .map_err(|e| StartError::FirstCheckpoint {
                        ledger: ledger.name().to_owned(),
                        reason: e.to_string(),
                    })?;
            }
        }
        Ok(registry)
    })
    .await
    .map_err(|e| StartError::Task(e.to_string()))??;
    let registry = Arc::new(registry);

    let tls = config.tls.as_ref().map(read_tls).transpose()?;
    let grpc_listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            what: "gRPC",
            addr: config.listen,
            source,
        })?;
    let grpc_addr = grpc_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            what: "gRPC",
            addr: config.listen,
            source,
        })?;
    let metrics_listener = if config.metrics.enabled {
        let l = tokio::net::TcpListener::bind(config.metrics.listen)
            .await
            .map_err(|source| StartError::Bind {
                what: "metrics",
                addr: config.metrics.listen,
                source,
            })?;
        Some(l)
    } else {
        None
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(tokio::net::TcpListener::local_addr)
        .transpose()
        .map_err(|source| StartError::Bind {
            what: "metrics",
            addr: config.metrics.listen,
            source,
        })?;

    let auth = Authenticator::new(&config.tokens);
    if auth.enabled() {
        tracing::info!(
            tokens = config.tokens.len(),
            "bearer-token authentication enabled"
        );
    } else {
        tracing::warn!(
            listen = %grpc_addr,
            "authentication is DISABLED: no [[tokens]] configured; serving on a loopback address only"
        );
    }
    if config.storage.durability == crate::config::DurabilityMode::None {
        tracing::warn!(
            "durability is \"none\": acknowledged appends can be lost on power failure; benchmarks only"
        );
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in [LEDGER_SERVICE_NAME, POLICY_SERVICE_NAME, ""] {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }

    let reflection_v1 = reflection_builder()
        .build_v1()
        .map_err(|e| StartError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .map_err(|e| StartError::Reflection(e.to_string()))?;
    let ledger_service = LedgerServiceServer::new(LedgerService::new(
        registry.clone(),
        metrics.clone(),
        &config.limits,
        shutdown_rx.clone(),
    ))
    .max_decoding_message_size(config.limits.max_message_bytes)
    .max_encoding_message_size(usize::MAX);
    let policy_service = PolicyServiceServer::new(PolicyService::new(registry.clone()))
        .max_decoding_message_size(config.limits.max_message_bytes)
        .max_encoding_message_size(usize::MAX);

    // Idle connections are pinged (HTTP/2 and TCP keepalive); see `crate::connection` for
    // connections that never finish their handshake.
    let keepalive = (config.limits.keepalive_interval_ms > 0)
        .then(|| Duration::from_millis(config.limits.keepalive_interval_ms));
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| StartError::Tls(e.to_string()))?;
    }
    let router = builder
        .timeout(Duration::from_millis(config.limits.request_timeout_ms))
        .max_concurrent_streams(config.limits.max_concurrent_streams_per_connection)
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(Some(Duration::from_millis(
            config.limits.keepalive_timeout_ms,
        )))
        .tcp_nodelay(true)
        .layer(RpcLayer::new(
            auth,
            metrics.clone(),
            config.limits.max_message_bytes,
            shutdown_rx.clone(),
        ))
        .add_service(ledger_service)
        .add_service(policy_service)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let incoming = crate::connection::Incoming::new(
        TcpIncoming::from(grpc_listener)
            .with_nodelay(Some(true))
            .with_keepalive(keepalive),
        Duration::from_millis(config.limits.handshake_timeout_ms),
    );
    let mut grpc_stop = shutdown_rx.clone();
    let grpc_task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
        let _ = grpc_stop.wait_for(|s| *s).await;
    }));
    let metrics_task = metrics_listener.map(|listener| {
        let mut stop = shutdown_rx.clone();
        tokio::spawn(crate::metrics::serve(
            listener,
            metrics.clone(),
            registry.clone(),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ))
    });
    let ledgers = registry
        .list()
        .iter()
        .map(|l| (l.name().to_owned(), l.meta().current_vkey().to_owned()))
        .collect();
    tracing::info!(grpc = %grpc_addr, metrics = ?metrics_addr, data_dir = %config.data_dir.display(), "serving");
    Ok(RunningServer {
        grpc_addr,
        metrics_addr,
        ledgers,
        tls: config.tls.is_some(),
        config,
        registry,
        health,
        shutdown_tx,
        grpc_task: Some(grpc_task),
        metrics_task,
    })
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

fn read_tls(tls: &TlsConfig) -> Result<ServerTlsConfig, StartError> {
    let read = |field: &'static str, path: &PathBuf| {
        std::fs::read(path).map_err(|source| StartError::TlsFile {
            field,
            path: path.clone(),
            source,
        })
    };
    let cert = read("tls.cert", &tls.cert)?;
    let key = read("tls.key", &tls.key)?;
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if let Some(ca) = &tls.client_ca {
        config = config
            .client_ca_root(Certificate::from_pem(read("tls.client_ca", ca)?))
            .client_auth_optional(false);
    }
    Ok(config)
}

impl RunningServer {
    /// The URL clients connect to: `http://` or `https://` and the bound address.
    pub fn grpc_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.grpc_addr)
    }

    /// The startup block `vouch serve` prints: addresses, data directory, each ledger with
    /// its hash, size and verifier key, and the authentication mode.
    pub fn banner(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!("vouch {} serving\n", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(out, "  grpc:         {}", self.grpc_url());
        match self.metrics_addr {
            Some(a) => {
                let _ = writeln!(out, "  metrics:      {}", crate::metrics::url(a));
            }
            None => {
                let _ = writeln!(out, "  metrics:      disabled");
            }
        }
        let _ = writeln!(out, "  data dir:     {}", self.config.data_dir.display());
        for ledger in self.registry.list() {
            let _ = writeln!(
                out,
                "  ledger:       {} ({}, {} entries)",
                ledger.name(),
                ledger.hash_alg().name(),
                ledger.size().0
            );
            let _ = writeln!(out, "  verifier key: {}", ledger.meta().current_vkey());
        }
        let tls = match &self.config.tls {
            Some(t) if t.client_ca.is_some() => ", TLS with client certificates (mTLS)",
            Some(_) => ", TLS",
            None => "",
        };
        if self.config.tokens.is_empty() {
            let _ = writeln!(
                out,
                "  auth:         disabled: no tokens configured, loopback only{tls}"
            );
        } else {
            let _ = writeln!(
                out,
                "  auth:         bearer tokens ({} configured){tls}",
                self.config.tokens.len()
            );
        }
        out
    }

    /// The open ledgers.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Stops gracefully: reports `NOT_SERVING`, stops accepting connections, ends streams,
    /// lets in-flight calls finish (up to `shutdown_grace_ms`, then cuts them), and closes
    /// every ledger (final checkpoint, sync, index head).
    ///
    /// # Errors
    ///
    /// [`ShutdownError`] if a server task failed; the ledgers are closed regardless.
    pub async fn shutdown(mut self) -> Result<(), ShutdownError> {
        tracing::info!("shutting down");
        for name in [LEDGER_SERVICE_NAME, POLICY_SERVICE_NAME, ""] {
            self.health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        let _ = self.shutdown_tx.send(true);
        let grace = Duration::from_millis(self.config.shutdown_grace_ms);
        let mut result = Ok(());
        if let Some(task) = self.grpc_task.take() {
            let abort = task.abort_handle();
            match tokio::time::timeout(grace, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => result = Err(ShutdownError::Grpc(e.to_string())),
                Ok(Err(e)) => result = Err(ShutdownError::Grpc(e.to_string())),
                Err(_) => {
                    tracing::warn!(
                        grace_ms = self.config.shutdown_grace_ms,
                        "in-flight calls did not finish in time; closing their connections"
                    );
                    abort.abort();
                }
            }
        }
        if let Some(task) = self.metrics_task.take() {
            let abort = task.abort_handle();
            match tokio::time::timeout(grace, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    result = result.and(Err(ShutdownError::Metrics(e.to_string())));
                }
                Ok(Err(e)) => result = result.and(Err(ShutdownError::Metrics(e.to_string()))),
                Err(_) => abort.abort(),
            }
        }
        let registry = self.registry.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || registry.close_all()).await {
            result = result.and(Err(ShutdownError::Close(e.to_string())));
        }
        tracing::info!("shut down");
        result
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // A server dropped without `shutdown` still stops serving; its ledgers close when
        // the last handle to them goes.
        let _ = self.shutdown_tx.send(true);
    }
}

/// `vouch serve`: sets up logging, starts the server, prints the startup block to standard
/// output, waits for SIGTERM or SIGINT (Ctrl-C), and shuts down gracefully.
///
/// # Errors
///
/// Start-up failures (with their cause), a failure to install the signal handlers, or an
/// unclean shutdown.
pub async fn run_until_signal(config: Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    crate::logging::init(&config.log).context("setting up logging")?;
    // Every start error says its causes in its own text; as a chain, `{:#}` would print each
    // cause again after it.
    let server = start(config)
        .await
        .map_err(|e| anyhow::anyhow!("starting the server: {e}"))?;
    {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(server.banner().as_bytes())
            .and_then(|()| stdout.flush())
            .context("writing the startup block")?;
    }
    wait_for_signal().await.context("waiting for a signal")?;
    server.shutdown().await.context("shutting down")?;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
