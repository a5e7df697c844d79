//! [`CliError`]: everything `orderq admin` can fail with, each as one line and a distinct exit
//! code, so a script can tell "the node is down" from "the token is wrong" without parsing text.

/// Why an `orderq admin` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--url` is not an http(s) URL, or the arguments contradict each other.
    #[error("{0}")]
    Usage(String),
    /// No answer: connection refused, name not resolved, timed out.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What the HTTP client said.
        reason: String,
    },
    /// The node answered with an error (the contract's `{"error": {"code", "message"}}`).
    #[error("{status} {code}: {message}{hint}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The contract's error code (`unauthorized`, `not_found`, ...).
        code: String,
        /// The node's sentence.
        message: String,
        /// What to do about it, when the status says (a missing token), else empty.
        hint: &'static str,
    },
    /// A 2xx whose body is not the JSON expected: not an orderq node, or a proxy in between.
    #[error("unexpected answer from {url}: {reason}")]
    BadAnswer {
        /// The URL called.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// Exit codes, one per kind of failure (clap's own usage errors exit 2 as well).
pub mod exit_code {
    /// Success.
    pub const OK: i32 = 0;
    /// The node refused the request (a 4xx or 5xx not listed below).
    pub const REFUSED: i32 = 1;
    /// Bad arguments.
    pub const USAGE: i32 = 2;
    /// The node could not be reached.
    pub const UNREACHABLE: i32 = 3;
    /// 401 or 403: no token, a wrong one, or one without `admin`.
    pub const UNAUTHORIZED: i32 = 4;
    /// 404: no such order, group or route.
    pub const NOT_FOUND: i32 = 5;
    /// The answer was not what an orderq node sends.
    pub const BAD_ANSWER: i32 = 6;
}

impl CliError {
    /// The process exit code for this failure (see [`exit_code`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => exit_code::USAGE,
            CliError::Unreachable { .. } => exit_code::UNREACHABLE,
            CliError::Refused { status, .. } => match status {
                401 | 403 => exit_code::UNAUTHORIZED,
                404 => exit_code::NOT_FOUND,
                _ => exit_code::REFUSED,
            },
            CliError::BadAnswer { .. } => exit_code::BAD_ANSWER,
        }
    }

    /// The hint shown after a refusal with `status`.
    pub(crate) fn hint_for(status: u16) -> &'static str {
        match status {
            401 => " (pass --token or set ORDERQ_ADMIN_TOKEN)",
            403 => " (this token lacks the admin scope)",
            _ => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16) -> CliError {
        CliError::Refused {
            status,
            code: "x".into(),
            message: "y".into(),
            hint: CliError::hint_for(status),
        }
    }

    #[test]
    fn each_kind_of_failure_has_its_own_exit_code() {
        assert_eq!(refused(401).exit_code(), exit_code::UNAUTHORIZED);
        assert_eq!(refused(403).exit_code(), exit_code::UNAUTHORIZED);
        assert_eq!(refused(404).exit_code(), exit_code::NOT_FOUND);
        assert_eq!(refused(409).exit_code(), exit_code::REFUSED);
        assert_eq!(refused(503).exit_code(), exit_code::REFUSED);
        assert_eq!(
            refused(401).to_string(),
            "401 x: y (pass --token or set ORDERQ_ADMIN_TOKEN)"
        );
    }
}
