//! Draining on shutdown: once the node is told to stop (SIGTERM), it takes no new request, ends
//! its long polls (`/v1/subscriptions/{g}/receive`, `/v1/changes?wait_ms=`) and its open change
//! streams, and lets the requests already in progress finish. Without this an idle stream or a
//! 60-second long poll would keep the server's graceful shutdown waiting past the supervisor's
//! stop timeout, and the stop would end in `SIGKILL`.
//!
//! To ensure correctness:
//! - A write in progress is never cut by draining: its caller waits for its outcome, so a client
//!   that heard 2xx knows the write is committed. Only waits that change nothing are ended.
//! - A long poll ended by draining answers 503 `shutting_down` with `Retry-After`: messages it
//!   may have leased come back after their visibility time (at least once, never lost).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

/// Whether this node is draining, shared by every request.
#[derive(Debug, Clone)]
pub struct Drain {
    /// Flips to `true` once, when the node starts to stop.
    stopping: watch::Receiver<bool>,
    /// Keeps the channel open for [`Drain::never`], so waiting on it never ends.
    _keep_open: Option<Arc<watch::Sender<bool>>>,
}

impl Drain {
    /// Drains once `stopping` flips to `true` (the node's shutdown signal).
    pub fn on(stopping: watch::Receiver<bool>) -> Self {
        Drain {
            stopping,
            _keep_open: None,
        }
    }

    /// A drain that never starts: an API with no shutdown signal (tests, embedding).
    pub fn never() -> Self {
        let (sender, stopping) = watch::channel(false);
        Drain {
            stopping,
            _keep_open: Some(Arc::new(sender)),
        }
    }

    /// Whether the node has started to stop.
    pub fn is_draining(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Resolves once the node starts to stop (at once if it has); never if its signal is gone
    /// without that.
    pub fn started(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping.clone();
        async move {
            if stopping.wait_for(|stop| *stop).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
