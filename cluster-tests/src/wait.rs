//! Waiting without guessing: every wait polls a condition until a deadline.
//!
//! A bare `sleep` that stands for "by now it has happened" makes a test slow on a fast machine
//! and flaky on a slow one. Here a condition is asked again and again; when the deadline
//! passes, the error says what was awaited and why it last did not hold.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often a condition is asked again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `check` until it returns `Ok`, or fails with [`Error::Timeout`] after `limit`.
///
/// `check` returns `Err(reason)` while the condition does not hold yet; the last reason ends up
/// in the timeout error.
pub async fn poll_until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        let remaining = limit.saturating_sub(started.elapsed()).max(POLL_INTERVAL);
        let last = match tokio::time::timeout(remaining, check()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(reason)) => reason,
            Err(_) => "the check itself did not finish".to_owned(),
        };
        if started.elapsed() >= limit {
            return Err(Error::Timeout {
                what: what.to_owned(),
                waited: started.elapsed(),
                last,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`poll_until`]'s answer for a plain condition: done, or not yet.
pub fn holds(condition: bool) -> std::result::Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err("not yet".to_owned())
    }
}

/// Runs a whole test scenario, failing the test (by panicking) if it takes longer than `limit`.
///
/// Start the [`crate::Cluster`] *outside* this call so that it is still alive when the panic
/// unwinds: its `Drop` then prints every node's log tail.
pub async fn within<F: Future>(limit: Duration, scenario: F) -> F::Output {
    match tokio::time::timeout(limit, scenario).await {
        Ok(output) => output,
        Err(_) => panic!("test scenario did not finish within {limit:?}"),
    }
}

/// Calls `attempt` until it succeeds, retrying while the failure is one a client should retry
/// ([`Error::is_retryable`]: no answer, 503 `no_leader`, 429, ...). Any other failure is
/// returned at once; retrying for longer than `limit` gives [`Error::Timeout`].
pub async fn retry_while_unavailable<T, F, Fut>(
    what: &str,
    limit: Duration,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    poll_until(what, limit, || {
        let call = attempt();
        async move {
            match call.await {
                Ok(value) => Ok(Ok(value)),
                Err(e) if e.is_retryable() => Err(e.to_string()),
                Err(e) => Ok(Err(e)),
            }
        }
    })
    .await?
}
