//! Exit codes and the error type that carries one.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | an error that is none of the below: a file that cannot be read or written, bad input data, an internal error |
//! | 2 | usage: an unknown flag, a missing or malformed argument |
//! | 3 | connection: the server cannot be reached (refused, unreachable, TLS handshake, unavailable) |
//! | 4 | verification failed: a proof, checkpoint, signature, proof file or ledger file did not verify |
//! | 5 | the server refused the request (not found, invalid argument, permission denied, …) |
//! | 6 | the decision is BLOCK (`decide`, `policy evaluate`): the command itself succeeded |
//! | 7 | the log is inconsistent (`monitor`): a rollback or fork, validly signed checkpoints that no proof joins, or entries that do not rebuild a signed root |

use std::fmt;

/// Success.
pub const SUCCESS: u8 = 0;
/// An error that is none of the others.
pub const FAILURE: u8 = 1;
/// A usage error (clap uses 2 as well).
pub const USAGE: u8 = 2;
/// The server cannot be reached.
pub const CONNECTION: u8 = 3;
/// Something did not verify.
pub const VERIFICATION: u8 = 4;
/// The server answered with an error status.
pub const SERVER: u8 = 5;
/// A policy decision is BLOCK.
pub const BLOCKED: u8 = 6;
/// The log contradicts what was verified before: a rollback, a fork, or entries that do not
/// rebuild a signed root (`vouch monitor`).
pub const INCONSISTENT: u8 = 7;

/// The name of an exit code, as `--json` error output shows it.
pub const fn kind_name(code: u8) -> &'static str {
    match code {
        SUCCESS => "success",
        USAGE => "usage",
        CONNECTION => "connection",
        VERIFICATION => "verification",
        SERVER => "server",
        BLOCKED => "blocked",
        INCONSISTENT => "inconsistent",
        _ => "error",
    }
}

/// An error with the exit code it ends the process with.
#[derive(Debug)]
pub struct Coded {
    /// The exit code.
    pub code: u8,
    /// The one-line message, without the `error: ` prefix.
    pub message: String,
    /// For a verification failure, the name of the check that failed.
    pub check: Option<&'static str>,
    /// The command's output already says what failed (a BLOCK decision, lint errors, a
    /// replay that differs): with `--json`, no separate error object is printed, so standard
    /// output stays one JSON document.
    pub reported: bool,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

impl Coded {
    /// An error ending with `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            check: None,
            reported: false,
        }
    }

    /// The same error, marked as already shown in the command's output.
    #[must_use]
    pub fn reported(mut self) -> Self {
        self.reported = true;
        self
    }

    /// The same error, naming the check that failed.
    #[must_use]
    pub fn with_check(mut self, check: &'static str) -> Self {
        self.check = Some(check);
        self
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(USAGE, message)
    }

    /// A verification failure.
    pub fn verification(message: impl Into<String>) -> Self {
        Self::new(VERIFICATION, message)
    }
}
