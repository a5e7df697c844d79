//! Telling the supervisor where the node is (systemd `Type=notify`, through `sd-notify`):
//! `READY=1` once the API and the Raft port serve, `STOPPING=1` when a stop begins. systemd then
//! starts the next unit of a rolling restart only once this one is really up, and knows a slow
//! stop is a drain, not a hang. Without `NOTIFY_SOCKET` (not under systemd) both do nothing.

use sd_notify::NotifyState;

/// Tells the supervisor the node serves.
pub fn serving() {
    notify(NotifyState::Ready);
}

/// Tells the supervisor the node is draining and about to exit.
pub fn stopping() {
    notify(NotifyState::Stopping);
}

fn notify(state: NotifyState) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %e, "telling systemd the node's state failed");
    }
}
