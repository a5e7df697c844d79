//! Clock offsets between members, measured over the peer port, and what a node whose clock is off
//! from the others must not do.
//!
//! The leader stamps its wall clock into every entry, and `apply` decides deadlines by it: a
//! leader whose clock runs ahead would close unpaid orders early and refuse on-time payments.
//! As CockroachDB does with its maximum clock offset, every node measures its offset to each
//! other voter; a node off from more than half of them by more than `max_clock_offset_ms` is
//! *skewed*.
//!
//! To ensure correctness:
//! - A node's clock is *trusted* only once at least half of the other voters have been read and
//!   agree with it (a lone node trusts itself). An untrusted node does not campaign, proposes
//!   nothing stamped with its clock (its batcher answers `no_leader`, its leader services stop)
//!   and stops sending heartbeats so that the others elect a leader among themselves. A node
//!   starts untrusted: one restarted with its clock ten minutes ahead must not win an election
//!   before its first reading, or a single entry it stamps moves every replica's batch clock ten
//!   minutes ahead for good (`apply` never lets the batch clock go back).
//! - Between readings, every stamp is checked against the monotonic clock since the last
//!   judgement: a wall clock stepped by more than `max_clock_offset_ms` stamps nothing until the
//!   next reading judges it again.
//! - A skewed node (measured off from more than half of them) answers `/readyz` with 503 and says
//!   so in its log, in `GET /admin/cluster` and in `orderq_clock_skewed`.
//! - An offset counts only beyond its measurement's uncertainty (half the round trip), so a slow
//!   link does not make a good clock look bad.
//! - A peer's last measurement is kept for [`MEASUREMENT_TTL`]: a node whose healthy peers just
//!   died still knows it disagreed with them, and does not take the lead over the survivors.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prost::Message;
use sm::raft_types::{NodeId, Raft};
use tokio::sync::watch;

use crate::peer_wire::{ClockReplyMsg, CLOCK_PATH, SECRET_HEADER, TARGET_HEADER};

/// How often each peer's clock is read.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How long a measurement counts after it was taken.
pub const MEASUREMENT_TTL: Duration = Duration::from_secs(30);

/// One peer's clock as last measured.
#[derive(Debug, Clone, Copy)]
struct Measurement {
    /// The peer's clock minus ours, in milliseconds.
    offset_ms: i64,
    /// Half the round trip: the offset is known to within this.
    uncertainty_ms: i64,
    /// When it was taken.
    at: Instant,
}

/// This node's view of its clock against the other voters'.
#[derive(Debug)]
pub struct ClockWatch {
    /// Largest offset tolerated beyond a measurement's uncertainty.
    max_offset_ms: i64,
    /// The last measurement of each peer.
    measured: Mutex<BTreeMap<NodeId, Measurement>>,
    /// Whether this node's clock is off from more than half of the other voters.
    skewed: AtomicBool,
    /// Whether at least half of the other voters were read and agree with this node's clock.
    trusted: AtomicBool,
    /// The wall clock (ms) and the monotonic clock at the last judgement that trusted this node.
    trusted_at: Mutex<Option<(i64, Instant)>>,
}

impl ClockWatch {
    /// A watch tolerating offsets up to `max_offset_ms`.
    pub fn new(max_offset_ms: u64) -> Self {
        ClockWatch {
            max_offset_ms: i64::try_from(max_offset_ms).unwrap_or(i64::MAX),
            measured: Mutex::new(BTreeMap::new()),
            skewed: AtomicBool::new(false),
            trusted: AtomicBool::new(false),
            trusted_at: Mutex::new(None),
        }
    }

    /// Whether this node may lead: its clock was confirmed by the other voters at the last
    /// judgement.
    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::Relaxed)
    }

    /// The time to stamp an entry with, read now: `None` when this node's clock is not trusted,
    /// or has moved by more than `max_clock_offset_ms` against the monotonic clock since it was
    /// last judged (a step between two readings).
    pub fn stamp(&self) -> Option<i64> {
        self.stamp_at(crate::clock::now_ms())
    }

    /// [`ClockWatch::stamp`] with the wall clock read as `now_ms`.
    fn stamp_at(&self, now_ms: i64) -> Option<i64> {
        if !self.is_trusted() {
            return None;
        }
        let (wall_ms, at) = (*self
            .trusted_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))?;
        let elapsed = i64::try_from(at.elapsed().as_millis()).unwrap_or(i64::MAX);
        let expected = wall_ms.saturating_add(elapsed);
        (now_ms.saturating_sub(expected).abs() <= self.max_offset_ms).then_some(now_ms)
    }

    /// Whether this node's clock is off from the others'.
    pub fn is_skewed(&self) -> bool {
        self.skewed.load(Ordering::Relaxed)
    }

    /// The measured offset of each peer (its clock minus ours), in milliseconds.
    pub fn offsets(&self) -> BTreeMap<NodeId, i64> {
        self.lock()
            .iter()
            .map(|(id, m)| (*id, m.offset_ms))
            .collect()
    }

    /// Takes in a reading of `peer`: its clock said `peer_ms` between our `sent_ms` and
    /// `received_ms`.
    pub fn record(&self, peer: NodeId, sent_ms: i64, peer_ms: i64, received_ms: i64) {
        let midpoint = sent_ms + (received_ms - sent_ms) / 2;
        self.lock().insert(
            peer,
            Measurement {
                offset_ms: peer_ms.saturating_sub(midpoint),
                uncertainty_ms: (received_ms - sent_ms).max(0) / 2 + 1,
                at: Instant::now(),
            },
        );
    }

    /// Decides again whether this node is skewed against `others`, the other voters, and whether
    /// its clock is trusted, its wall clock read as `now_ms`; answers whether trust changed.
    pub fn judge(&self, others: &[NodeId], now_ms: i64) -> bool {
        let (off, agree) = {
            let mut measured = self.lock();
            measured.retain(|_, m| m.at.elapsed() <= MEASUREMENT_TTL);
            let read: Vec<&Measurement> = others.iter().filter_map(|id| measured.get(id)).collect();
            let off = read
                .iter()
                .filter(|m| m.offset_ms.abs() - m.uncertainty_ms > self.max_offset_ms)
                .count();
            (off, read.len() - off)
        };
        self.skewed.store(
            !others.is_empty() && off * 2 > others.len(),
            Ordering::Relaxed,
        );
        let trusted = agree * 2 >= others.len();
        *self
            .trusted_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            trusted.then(|| (now_ms, Instant::now()));
        self.trusted.swap(trusted, Ordering::Relaxed) != trusted
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Measurement>> {
        self.measured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Reads every other voter's clock each [`PROBE_INTERVAL`] until `shutdown`, and keeps this
/// node out of leadership while its clock is off from theirs.
pub async fn run(
    watch: std::sync::Arc<ClockWatch>,
    raft: Raft,
    secret: String,
    transport: crate::network::PeerTransport,
    mut shutdown: watch::Receiver<bool>,
) {
    let scheme = transport.scheme();
    let http = match transport
        .client_builder()
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_millis(1000))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "clock watch could not start");
            return;
        }
    };
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Untrusted until the first judgement: no campaign on a clock nobody has read yet.
    raft.runtime_config().elect(watch.is_trusted());
    raft.runtime_config().heartbeat(watch.is_trusted());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let (me, leading, others) = {
            let m = raft.metrics().borrow().clone();
            let membership = m.membership_config.membership();
            let others: Vec<(NodeId, String)> = membership
                .voter_ids()
                .filter(|id| *id != m.id)
                .filter_map(|id| Some((id, membership.get_node(&id)?.raft_addr.clone())))
                .collect();
            (m.id, m.state == openraft::ServerState::Leader, others)
        };
        let probes = others
            .iter()
            .map(|(id, addr)| probe(&http, scheme, &secret, *id, addr, &watch));
        futures::future::join_all(probes).await;
        let ids: Vec<NodeId> = others.iter().map(|(id, _)| *id).collect();
        if watch.judge(&ids, crate::clock::now_ms()) {
            let trusted = watch.is_trusted();
            if trusted {
                tracing::info!(
                    node_id = me,
                    "this node's clock agrees with the other voters': it may lead"
                );
            } else if watch.is_skewed() {
                tracing::warn!(
                    node_id = me,
                    leading,
                    offsets_ms = ?watch.offsets(),
                    "this node's clock is off from the other voters' by more than \
                     max_clock_offset_ms: it will not lead until it agrees again \
                     (a leader gives up its office)"
                );
            } else {
                tracing::info!(
                    node_id = me,
                    leading,
                    "too few other voters' clocks read: this node will not lead until half of \
                     them agree with its clock"
                );
            }
            raft.runtime_config().elect(trusted);
            raft.runtime_config().heartbeat(trusted);
        }
    }
}

/// Reads `peer`'s clock once and records it.
async fn probe(
    http: &reqwest::Client,
    scheme: &str,
    secret: &str,
    peer: NodeId,
    addr: &str,
    watch: &ClockWatch,
) {
    let sent_ms = crate::clock::now_ms();
    let reply = http
        .post(format!("{scheme}://{addr}/raft/{CLOCK_PATH}"))
        .header(SECRET_HEADER, secret)
        .header(TARGET_HEADER, peer.to_string())
        // The peer port wants a length on every body, an empty one included.
        .header(reqwest::header::CONTENT_LENGTH, 0)
        .send()
        .await;
    let reply = match reply {
        Ok(reply) if reply.status().is_success() => reply,
        Ok(reply) => {
            tracing::debug!(peer, status = %reply.status(), "clock probe refused");
            return;
        }
        Err(e) => {
            tracing::debug!(peer, error = %e, "clock probe failed");
            return;
        }
    };
    let Ok(body) = reply.bytes().await else {
        return;
    };
    let received_ms = crate::clock::now_ms();
    if let Ok(msg) = ClockReplyMsg::decode(body) {
        watch.record(peer, sent_ms, msg.now_ms, received_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_off_from_most_voters_is_skewed_and_one_off_peer_is_not_enough() {
        let watch = ClockWatch::new(500);
        let now = 1_000_000;
        // Both peers read ten minutes behind us: we are the odd one out.
        watch.record(2, now, now - 600_000, now + 2);
        watch.record(3, now, now - 600_000, now + 2);
        watch.judge(&[2, 3], now);
        assert!(watch.is_skewed());
        assert!(!watch.is_trusted());
        assert_eq!(watch.stamp_at(now), None);

        // One peer agrees with us, the other is off: that one is the odd one, not us.
        watch.record(2, now, now + 1, now + 2);
        assert!(watch.judge(&[2, 3], now), "trust changed");
        assert!(!watch.is_skewed());
        assert!(watch.is_trusted());
        assert_eq!(watch.stamp_at(now), Some(now));
    }

    #[test]
    fn a_node_is_not_trusted_before_its_clock_was_read_and_a_lone_node_is() {
        let watch = ClockWatch::new(500);
        assert!(!watch.is_trusted(), "untrusted before any judgement");
        assert_eq!(watch.stamp_at(1_000), None);
        watch.judge(&[2, 3], 1_000);
        assert!(!watch.is_trusted(), "no peer read yet: not trusted");
        assert!(!watch.is_skewed(), "nor known to be off");

        let lone = ClockWatch::new(500);
        lone.judge(&[], 1_000);
        assert!(lone.is_trusted());
    }

    #[test]
    fn a_clock_stepped_since_the_last_judgement_stamps_nothing() {
        let watch = ClockWatch::new(500);
        let now = 1_000_000;
        watch.record(2, now, now, now + 2);
        watch.judge(&[2], now);
        assert_eq!(watch.stamp_at(now + 100), Some(now + 100));
        assert_eq!(watch.stamp_at(now + 600_000), None, "ten minutes ahead");
        assert_eq!(watch.stamp_at(now - 600_000), None, "ten minutes back");
    }

    #[test]
    fn an_offset_within_the_round_trip_is_not_counted() {
        let watch = ClockWatch::new(500);
        // 800 ms apart, but the reading took two seconds: the offset is not known to be over.
        watch.record(2, 0, 1_800, 2_000);
        watch.record(3, 0, 1_800, 2_000);
        watch.judge(&[2, 3], 2_000);
        assert!(!watch.is_skewed());
        assert!(watch.is_trusted());
    }
}
