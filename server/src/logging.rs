//! Structured logs to standard error, as text or JSON lines.
//!
//! Calls get a span (`rpc` with the method and the token's configured name) from
//! [`crate::middleware`]; tokens and payloads are never logged. The filter comes from
//! `log.filter` or `VOUCH_LOG` (tracing's `EnvFilter` syntax, such as `info` or
//! `vouch_server=debug,info`).

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The filter does not parse.
    #[error("log filter {filter:?} is invalid: {reason}")]
    Filter {
        /// The filter.
        filter: String,
        /// Why.
        reason: String,
    },
}

/// Installs the global subscriber. Returns `false` if one was installed already (by the
/// binary or a test), which is left in place.
///
/// # Errors
///
/// [`LogError::Filter`] for a filter that does not parse.
pub fn init(config: &LogConfig) -> Result<bool, LogError> {
    let filter = EnvFilter::try_new(&config.filter).map_err(|e| LogError::Filter {
        filter: config.filter.clone(),
        reason: e.to_string(),
    })?;
    // Colours only for a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let installed = match config.format {
        LogFormat::Text => builder.try_init().is_ok(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
            .is_ok(),
    };
    Ok(installed)
}
