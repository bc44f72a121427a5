//! Clients of the ledger and policy services, with the bearer token added to every call and
//! optional TLS or mTLS. The CLI and the integration tests use them.

use std::path::Path;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

use crate::proto::v1::ledger_service_client::LedgerServiceClient;
use crate::proto::v1::policy_service_client::PolicyServiceClient;

/// The largest response message the client accepts (a response can carry a full payload
/// twice: the payload and the leaf bytes).
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// A connected ledger-service client.
pub type Client = LedgerServiceClient<InterceptedService<Channel, BearerToken>>;

/// A connected policy-service client.
pub type PolicyClient = PolicyServiceClient<InterceptedService<Channel, BearerToken>>;

/// TLS settings of a client, as PEM bytes.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// CA certificates that sign the server's certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// The client's certificate chain and private key, for mTLS.
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// The server name to verify, when it differs from the URL's host.
    pub domain: Option<String>,
}

impl ClientTls {
    /// Reads the PEM files: a CA, and a certificate and key for mTLS.
    ///
    /// # Errors
    ///
    /// [`ClientError::File`] naming the unreadable file.
    pub fn from_files(
        ca: Option<&Path>,
        cert_and_key: Option<(&Path, &Path)>,
    ) -> Result<Self, ClientError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| ClientError::File {
                path: p.to_path_buf(),
                source,
            })
        };
        Ok(Self {
            ca_pem: ca.map(read).transpose()?,
            identity_pem: match cert_and_key {
                Some((c, k)) => Some((read(c)?, read(k)?)),
                None => None,
            },
            domain: None,
        })
    }
}

/// Why a client could not connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not a valid endpoint.
    #[error("invalid server URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The token cannot be sent as a header value.
    #[error("the token contains characters that cannot be sent in a header")]
    Token,
    /// A TLS file could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The TLS settings were refused.
    #[error("TLS: {0}")]
    Tls(String),
    /// The connection failed.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// Why (with its sources).
        reason: String,
    },
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "BearerToken(***)"
        } else {
            "BearerToken(none)"
        })
    }
}

impl BearerToken {
    /// The interceptor for `token` (none: no header).
    ///
    /// # Errors
    ///
    /// [`ClientError::Token`] if the token cannot be a header value.
    pub fn new(token: Option<&str>) -> Result<Self, ClientError> {
        token
            .map(|t| {
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| ClientError::Token)
            })
            .transpose()
            .map(Self)
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A connected channel to `url` (`http://host:port` or `https://host:port`).
///
/// # Errors
///
/// [`ClientError`] for a bad URL or TLS settings, or a failed connection.
pub async fn channel(url: &str, tls: Option<ClientTls>) -> Result<Channel, ClientError> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| ClientError::Url {
            url: url.to_owned(),
            reason: error_chain(&e),
        })?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        let mut config = ClientTlsConfig::new();
        if let Some(ca) = tls.ca_pem {
            config = config.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = tls.identity_pem {
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(domain) = tls.domain {
            config = config.domain_name(domain);
        }
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| ClientError::Tls(error_chain(&e)))?;
    }
    endpoint.connect().await.map_err(|e| ClientError::Connect {
        url: url.to_owned(),
        reason: error_chain(&e),
    })
}

/// A ledger-service client for `url`, sending `token` with every call.
///
/// # Errors
///
/// As [`channel`], and [`ClientError::Token`].
pub async fn connect(
    url: &str,
    token: Option<String>,
    tls: Option<ClientTls>,
) -> Result<Client, ClientError> {
    let interceptor = BearerToken::new(token.as_deref())?;
    let channel = channel(url, tls).await?;
    Ok(LedgerServiceClient::with_interceptor(channel, interceptor)
        .max_decoding_message_size(MAX_RESPONSE_BYTES)
        .max_encoding_message_size(usize::MAX))
}

/// A policy-service client for `url`, sending `token` with every call.
///
/// # Errors
///
/// As [`channel`], and [`ClientError::Token`].
pub async fn connect_policy(
    url: &str,
    token: Option<String>,
    tls: Option<ClientTls>,
) -> Result<PolicyClient, ClientError> {
    let interceptor = BearerToken::new(token.as_deref())?;
    let channel = channel(url, tls).await?;
    Ok(policy_client(channel, interceptor))
}

/// A policy-service client over an existing channel.
pub fn policy_client(channel: Channel, interceptor: BearerToken) -> PolicyClient {
    PolicyServiceClient::with_interceptor(channel, interceptor)
        .max_decoding_message_size(MAX_RESPONSE_BYTES)
        .max_encoding_message_size(usize::MAX)
}
