//! The one error type of the fixture and the load generator.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while driving `orderq` processes.
///
/// `Debug` prints the same sentence as `Display`, so a test's `.expect(..)` shows a readable
/// failure (with the node's log tail) rather than a struct dump.
pub enum Error {
    /// The `orderq` binary is not where we looked for it.
    BinaryNotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// Spawning, killing or logging a process failed at the OS level.
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP request never produced a response (refused, reset, timed out).
    Transport {
        /// Method and URL of the request.
        request: String,
        /// The client error.
        source: reqwest::Error,
    },
    /// The node answered with a status the caller did not expect.
    Api {
        /// Method and URL of the request.
        request: String,
        /// HTTP status code.
        status: u16,
        /// `error.code` from the body, or empty when the body was not the contract's error shape.
        code: String,
        /// The raw body, for the failure message.
        body: String,
    },
    /// The node answered 2xx but the body did not have the contract's shape.
    Decode {
        /// Method and URL of the request.
        request: String,
        /// Why it did not parse.
        source: serde_json::Error,
        /// The raw body, for the failure message.
        body: String,
    },
    /// A polled condition did not become true before its deadline.
    Timeout {
        /// The condition, in words.
        what: String,
        /// How long we waited.
        waited: Duration,
        /// The last reason the condition gave for not holding yet.
        last: String,
    },
    /// A node process exited while the fixture expected it to run.
    NodeExited {
        /// The node's id.
        node_id: u64,
        /// How it exited.
        status: String,
        /// The end of its log, which usually says why.
        log_tail: String,
    },
    /// A one-shot `orderq` command (`orderq restore`) exited with a failure.
    CommandFailed {
        /// The command line.
        command: String,
        /// How it exited.
        status: String,
        /// What it printed to stderr, which says why.
        stderr: String,
    },
    /// The caller asked for something the fixture cannot do (unknown node id, ...).
    Usage(String),
}

impl Error {
    /// True when a client should simply retry: no answer at all, or an answer that says the
    /// cluster is between leaders or busy (503, 429, 502, 504).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// The HTTP status of an [`Error::Api`], if that is what this is.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BinaryNotFound { path } => write!(
                f,
                "orderq binary not found at {}: build it (`cargo build -p orderq-node`) or point \
                 ORDERQ_BIN at it",
                path.display()
            ),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Transport { request, source } => write!(f, "{request}: no answer: {source}"),
            Error::Api {
                request,
                status,
                body,
                ..
            } => write!(f, "{request}: HTTP {status}: {body}"),
            Error::Decode {
                request,
                source,
                body,
            } => write!(f, "{request}: unexpected body ({source}): {body}"),
            Error::Timeout { what, waited, last } => {
                write!(
                    f,
                    "timed out after {waited:?} waiting for {what}; last: {last}"
                )
            }
            Error::NodeExited {
                node_id,
                status,
                log_tail,
            } => write!(
                f,
                "node {node_id} exited unexpectedly ({status}); its log ends:\n{log_tail}"
            ),
            Error::CommandFailed {
                command,
                status,
                stderr,
            } => write!(f, "`{command}` failed ({status}): {stderr}"),
            Error::Usage(message) => f.write_str(message),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Transport { source, .. } => Some(source),
            Error::Decode { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The fixture's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
