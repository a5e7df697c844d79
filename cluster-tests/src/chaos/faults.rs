//! Faults: what the harness does to the cluster, the seeded schedule of them, and how each is
//! injected and healed.
//!
//! One fault at a time, each held for a few seconds and then healed, with quiet gaps between
//! them: the cluster must keep every promise through the fault and recover after it. Kills are
//! `kill -9` of the process (by pid) and a restart from its data directory; pauses are
//! `SIGSTOP`/`SIGCONT`, held longer than the election timeout so the paused node comes back
//! as a deposed leader; link faults go through the [`LinkProxy`]. Power cuts need the nodes'
//! data on the power-loss filesystem ([`LazyMounts`]): unlike `kill -9`, they lose every write
//! that was not fsynced.

use std::time::Duration;

use serde::Serialize;

use super::disk::SmallDisks;
use super::power::LazyMounts;
use super::proxy::{LinkProxy, LinkState};
use super::rng::Rng;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::fake_clock::FakeClock;

/// A family of faults, as chosen on the command line (`--faults kill,pause,...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `kill -9` the leader or a random node, restart it from its data.
    Kill,
    /// `SIGSTOP` the leader or a random node past the election timeout, then `SIGCONT`.
    Pause,
    /// Partitions: isolate the leader, isolate one node, the bridge.
    Partition,
    /// Slow or flaky links between every pair of nodes.
    Link,
    /// `kill -9` every node at once and restart them all.
    RestartAll,
    /// Two faults at once: the leader killed while another node is cut off (no quorum until
    /// healed), or a node paused while every link is flaky.
    Combined,
    /// Restart a node with a crash point armed in its write path (needs an `orderq` built with
    /// `--features failpoints`; in a normal build the node just runs on). Not in [`FaultKind::ALL`].
    CrashPoint,
    /// Move a node's data onto a small tmpfs and fill it up; free it when healing and restart
    /// the node. Needs root (`mount`). Not in [`FaultKind::ALL`].
    DiskFull,
    /// Cut the power of the leader or a random node (what it did not fsync is lost), restart it
    /// from what survived. Needs FUSE: the run mounts every data directory on the power-loss
    /// filesystem. Not in [`FaultKind::ALL`].
    PowerCut,
    /// Cut the power of all three nodes at once, restart them from what survived (Jepsen's
    /// NATS case). Needs FUSE, as [`FaultKind::PowerCut`]. Not in [`FaultKind::ALL`].
    PowerCutAll,
    /// 1,000 orders created with their `expires_at` aimed at one instant, and the leader killed
    /// 0-200 ms before the first of those deadlines: the new leader must close them all.
    DeadlineBurst,
    /// Pull consumers lease messages and die without acking: every message must come again.
    ConsumerCrash,
    /// The webhook receiver dies mid-request (calls in flight and arriving go unanswered and
    /// are not acted on) and comes back: every delivery must be retried until acknowledged.
    ReceiverKill,
    /// One node's wall clock jumps ten minutes ahead (libfaketime), then steps back ten minutes
    /// while it runs; healing restarts it on the real clock. No order may close early.
    ClockSkew,
}

impl FaultKind {
    /// Whether the kind needs the nodes' data on the power-loss filesystem.
    pub fn needs_power_loss_fs(self) -> bool {
        matches!(self, FaultKind::PowerCut | FaultKind::PowerCutAll)
    }

    /// The kind's name, as on the command line (`power-cut-all`).
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map(|value| value.get_name().to_owned())
            .unwrap_or_default()
    }

    /// Every kind.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Link,
        FaultKind::RestartAll,
        FaultKind::Combined,
        FaultKind::DeadlineBurst,
        FaultKind::ConsumerCrash,
        FaultKind::ReceiverKill,
        FaultKind::ClockSkew,
    ];
}

/// One concrete fault. Random targets are chosen when the schedule is made (so the seed decides
/// them); "the leader" is whoever leads when the fault is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// `kill -9` the current leader.
    KillLeader,
    /// `kill -9` one node.
    KillNode {
        /// Which.
        node: u64,
    },
    /// `SIGSTOP` the current leader.
    PauseLeader,
    /// `SIGSTOP` one node.
    PauseNode {
        /// Which.
        node: u64,
    },
    /// Cut every link of the current leader.
    IsolateLeader,
    /// Cut every link of one node (split one from two).
    IsolateNode {
        /// Which.
        node: u64,
    },
    /// Cut the link between the two nodes other than `bridge`, which still sees both.
    Bridge {
        /// The node that still talks to both.
        bridge: u64,
    },
    /// Delay every chunk on every link.
    SlowLinks {
        /// Delay per chunk.
        delay_ms: u64,
    },
    /// Drop connections on every link at random.
    FlakyLinks {
        /// Chance per chunk, in percent.
        drop_percent: u64,
    },
    /// `kill -9` every node, then restart them all.
    RestartAll,
    /// Restart one node with `FAILPOINTS=<point>=<percent>%return`: it aborts inside its write
    /// path the next time the point fires; healing restarts it without.
    CrashPoint {
        /// Which node.
        node: u64,
        /// Index into `sm::failpoints::ALL` order: log-before-sync, log-after-sync,
        /// apply-before-write, apply-after-write.
        point: u8,
        /// Chance per pass through the point, in percent.
        percent: u8,
    },
    /// Cut `node` off, then `kill -9` the leader (another node if `node` leads): no quorum.
    KillLeaderWhileIsolated {
        /// The node cut off.
        node: u64,
    },
    /// `SIGSTOP` `node` while every link drops connections at random.
    PauseNodeOnFlakyLinks {
        /// The node paused.
        node: u64,
        /// Chance per chunk, in percent.
        drop_percent: u64,
    },
    /// The current leader's disk fills up (its data directory on a small tmpfs).
    DiskFullLeader,
    /// One node's disk fills up.
    DiskFull {
        /// Which.
        node: u64,
    },
    /// Cut the current leader's power.
    PowerCutLeader,
    /// Cut one node's power.
    PowerCutNode {
        /// Which.
        node: u64,
    },
    /// Cut every node's power at once.
    PowerCutAll,
    /// Create a burst of orders whose deadlines fall together, then `kill -9` the leader this
    /// long before the first of them.
    KillLeaderBeforeDeadlines {
        /// Milliseconds between the kill and the first deadline (0-200).
        lead_ms: u64,
    },
    /// This many pull consumers each lease messages and die without acking.
    PullConsumersCrash {
        /// How many consumers die.
        consumers: u64,
    },
    /// The webhook receiver dies mid-request; healing brings it back.
    WebhookReceiverDown,
    /// `node` restarts with its clock ten minutes ahead; `back_after_ms` later the clock steps
    /// back ten minutes, to the real time.
    ClockAheadThenBack {
        /// Which node.
        node: u64,
        /// How long the clock stays ahead.
        back_after_ms: u64,
    },
}

/// The crash points of `orderq`'s write path, by [`Fault::CrashPoint::point`] (the names in
/// `sm/src/failpoints.rs`).
pub const CRASH_POINTS: [&str; 4] = [
    "log-before-sync",
    "log-after-sync",
    "apply-before-write",
    "apply-after-write",
];

/// One step of the schedule: a quiet gap, then a fault held for a while, then healing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FaultStep {
    /// Quiet time before the fault.
    pub quiet_ms: u64,
    /// The fault.
    #[serde(flatten)]
    pub fault: Fault,
    /// How long it is held before healing.
    pub hold_ms: u64,
}

impl Fault {
    /// The kind this fault is drawn as.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::KillLeader | Fault::KillNode { .. } => FaultKind::Kill,
            Fault::PauseLeader | Fault::PauseNode { .. } => FaultKind::Pause,
            Fault::IsolateLeader | Fault::IsolateNode { .. } | Fault::Bridge { .. } => {
                FaultKind::Partition
            }
            Fault::SlowLinks { .. } | Fault::FlakyLinks { .. } => FaultKind::Link,
            Fault::RestartAll => FaultKind::RestartAll,
            Fault::CrashPoint { .. } => FaultKind::CrashPoint,
            Fault::KillLeaderWhileIsolated { .. } | Fault::PauseNodeOnFlakyLinks { .. } => {
                FaultKind::Combined
            }
            Fault::DiskFullLeader | Fault::DiskFull { .. } => FaultKind::DiskFull,
            Fault::PowerCutLeader | Fault::PowerCutNode { .. } => FaultKind::PowerCut,
            Fault::PowerCutAll => FaultKind::PowerCutAll,
            Fault::KillLeaderBeforeDeadlines { .. } => FaultKind::DeadlineBurst,
            Fault::PullConsumersCrash { .. } => FaultKind::ConsumerCrash,
            Fault::WebhookReceiverDown => FaultKind::ReceiverKill,
            Fault::ClockAheadThenBack { .. } => FaultKind::ClockSkew,
        }
    }
}

/// The seeded schedule: enough steps to fill twice `duration` however fast the cluster
/// recovers (the run stops taking steps when its time is up, so the tail is unused), drawn from
/// `kinds` over nodes `1..=nodes`. Kinds are dealt like cards: every kind once, in a seeded
/// order, before any repeats, so even a short run meets each kind.
pub fn schedule(
    rng: &mut Rng,
    kinds: &[FaultKind],
    nodes: u64,
    duration: Duration,
) -> Vec<FaultStep> {
    let mut steps = Vec::new();
    let mut planned = 0u64;
    let total = 2 * duration.as_millis() as u64;
    let mut deck: Vec<FaultKind> = Vec::new();
    while planned < total && !kinds.is_empty() {
        if deck.is_empty() {
            deck = kinds.to_vec();
            for i in (1..deck.len()).rev() {
                deck.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        let node = rng.between(1, nodes);
        let Some(kind) = deck.pop() else { break };
        let fault = match (kind, rng.below(3)) {
            (FaultKind::Kill, 0) => Fault::KillNode { node },
            (FaultKind::Kill, _) => Fault::KillLeader,
            (FaultKind::Pause, 0) => Fault::PauseNode { node },
            (FaultKind::Pause, _) => Fault::PauseLeader,
            (FaultKind::Partition, 0) => Fault::IsolateLeader,
            (FaultKind::Partition, 1) => Fault::IsolateNode { node },
            (FaultKind::Partition, _) => Fault::Bridge { bridge: node },
            (FaultKind::Link, 0) => Fault::FlakyLinks {
                drop_percent: rng.between(2, 10),
            },
            (FaultKind::Link, _) => Fault::SlowLinks {
                delay_ms: rng.between(20, 150),
            },
            (FaultKind::RestartAll, _) => Fault::RestartAll,
            (FaultKind::Combined, 0) => Fault::PauseNodeOnFlakyLinks {
                node,
                drop_percent: rng.between(2, 8),
            },
            (FaultKind::Combined, _) => Fault::KillLeaderWhileIsolated { node },
            (FaultKind::DiskFull, 0) => Fault::DiskFull { node },
            (FaultKind::DiskFull, _) => Fault::DiskFullLeader,
            (FaultKind::PowerCut, 0) => Fault::PowerCutNode { node },
            (FaultKind::PowerCut, _) => Fault::PowerCutLeader,
            (FaultKind::PowerCutAll, _) => Fault::PowerCutAll,
            (FaultKind::DeadlineBurst, _) => Fault::KillLeaderBeforeDeadlines {
                lead_ms: rng.below(201),
            },
            (FaultKind::ConsumerCrash, _) => Fault::PullConsumersCrash {
                consumers: rng.between(1, 3),
            },
            (FaultKind::ReceiverKill, _) => Fault::WebhookReceiverDown,
            (FaultKind::ClockSkew, _) => Fault::ClockAheadThenBack {
                node,
                back_after_ms: rng.between(2_000, 4_000),
            },
            (FaultKind::CrashPoint, _) => Fault::CrashPoint {
                node,
                point: rng.below(CRASH_POINTS.len() as u64) as u8,
                percent: rng.between(5, 30) as u8,
            },
        };
        let quiet_ms = rng.between(1_500, 4_000);
        let hold_ms = match fault {
            // Long enough to be found off while ahead, and to run on after the step back.
            Fault::ClockAheadThenBack { back_after_ms, .. } => {
                back_after_ms + rng.between(2_000, 4_000)
            }
            _ => rng.between(2_500, 7_000),
        };
        let step = FaultStep {
            quiet_ms,
            fault,
            hold_ms,
        };
        planned += step.quiet_ms + step.hold_ms + 2_000;
        steps.push(step);
    }
    steps
}

/// What must be undone to heal an injected fault.
#[derive(Debug)]
pub enum Active {
    /// These nodes were killed: restart them.
    Killed(Vec<u64>),
    /// These processes were stopped: continue them.
    Paused(Vec<(u64, libc::pid_t)>),
    /// Links were changed: heal them all.
    Links,
    /// A node runs with a crash point armed: restart it without (whether or not it crashed).
    Armed(u64),
    /// A node's disk is full: free it and restart the node.
    DiskFull(u64),
    /// These nodes' power was cut: mount what survived and restart them.
    PowerCut(Vec<u64>),
    /// A node runs on a fake clock (and a task will step it back): restart it on the real one.
    FakeClock {
        /// Which node.
        node: u64,
        /// The task that steps the clock back, stopped if it has not yet.
        step_back: tokio::task::JoinHandle<Result<()>>,
    },
    /// Several of the above, healed in order.
    Many(Vec<Active>),
}

/// Injects `fault`; returns what to undo and the nodes it hit. Power cuts need `power`, the
/// nodes' mounts on the power-loss filesystem.
pub async fn inject(
    cluster: &mut Cluster,
    proxy: &LinkProxy,
    disks: &mut SmallDisks,
    power: Option<&mut LazyMounts>,
    fault: Fault,
) -> Result<(Active, Vec<u64>)> {
    let leader = || async { cluster.leader_id().await.ok() };
    let others =
        |node: u64| -> Vec<u64> { cluster.ids().into_iter().filter(|id| *id != node).collect() };
    match fault {
        Fault::PowerCutLeader | Fault::PowerCutNode { .. } | Fault::PowerCutAll => {
            let power = power.ok_or_else(|| {
                Error::Usage("a power cut needs the nodes on the power-loss filesystem".into())
            })?;
            let nodes = match fault {
                Fault::PowerCutNode { node } => vec![node],
                Fault::PowerCutLeader => vec![leader().await.unwrap_or(1)],
                _ => cluster.ids(),
            };
            // Every filesystem first, so no node makes anything durable after the cut.
            for node in &nodes {
                power.cut(*node)?;
            }
            for node in &nodes {
                if cluster.pid(*node).is_some() {
                    cluster.kill(*node)?;
                }
            }
            Ok((Active::PowerCut(nodes.clone()), nodes))
        }
        // The harness's own parts (the burst of orders, the consumers, the receiver) are done
        // by the run; here the cluster is touched only by the burst's kill.
        Fault::PullConsumersCrash { .. } | Fault::WebhookReceiverDown => {
            Ok((Active::Many(Vec::new()), Vec::new()))
        }
        Fault::ClockAheadThenBack {
            node,
            back_after_ms,
        } => {
            let clock =
                FakeClock::new(&cluster.dir().join(format!("faketime-node-{node}")), "+600")?;
            cluster.restart_with_env(node, &clock.env())?;
            let step_back = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(back_after_ms)).await;
                clock.set("+0")
            });
            Ok((Active::FakeClock { node, step_back }, vec![node]))
        }
        Fault::KillLeader | Fault::KillLeaderBeforeDeadlines { .. } | Fault::KillNode { .. } => {
            let node = match fault {
                Fault::KillNode { node } => node,
                _ => leader().await.unwrap_or(1),
            };
            cluster.kill(node)?;
            Ok((Active::Killed(vec![node]), vec![node]))
        }
        Fault::CrashPoint {
            node,
            point,
            percent,
        } => {
            let name = CRASH_POINTS[usize::from(point) % CRASH_POINTS.len()];
            let env = [("FAILPOINTS".to_owned(), format!("{name}={percent}%return"))];
            cluster.restart_with_env(node, &env)?;
            Ok((Active::Armed(node), vec![node]))
        }
        Fault::DiskFull { .. } | Fault::DiskFullLeader => {
            let node = match fault {
                Fault::DiskFull { node } => node,
                _ => leader().await.unwrap_or(1),
            };
            if !disks.has(node) {
                cluster.kill(node)?;
                disks.adopt(node, &cluster.node_dir(node).join("data"))?;
                cluster.restart(node)?;
            }
            disks.fill(node)?;
            Ok((Active::DiskFull(node), vec![node]))
        }
        Fault::KillLeaderWhileIsolated { node } => {
            let killed = match leader().await {
                Some(leader) if leader != node => leader,
                _ => others(node).first().copied().unwrap_or(node),
            };
            for other in others(node) {
                proxy.set_both(node, other, LinkState::Down);
            }
            cluster.kill(killed)?;
            Ok((
                Active::Many(vec![Active::Killed(vec![killed]), Active::Links]),
                vec![node, killed],
            ))
        }
        Fault::PauseNodeOnFlakyLinks { node, drop_percent } => {
            let (links, _) = Box::pin(inject(
                cluster,
                proxy,
                disks,
                None,
                Fault::FlakyLinks { drop_percent },
            ))
            .await?;
            let (paused, _) = Box::pin(inject(
                cluster,
                proxy,
                disks,
                None,
                Fault::PauseNode { node },
            ))
            .await?;
            Ok((Active::Many(vec![paused, links]), vec![node]))
        }
        Fault::RestartAll => {
            let ids = cluster.running_ids();
            for id in &ids {
                cluster.kill(*id)?;
            }
            Ok((Active::Killed(ids.clone()), ids))
        }
        Fault::PauseLeader | Fault::PauseNode { .. } => {
            let node = match fault {
                Fault::PauseNode { node } => node,
                _ => leader().await.unwrap_or(1),
            };
            let pid = cluster
                .pid(node)
                .ok_or_else(|| Error::Usage(format!("node {node} is not running")))?;
            signal(pid, libc::SIGSTOP, node)?;
            Ok((Active::Paused(vec![(node, pid)]), vec![node]))
        }
        Fault::IsolateLeader | Fault::IsolateNode { .. } => {
            let node = match fault {
                Fault::IsolateNode { node } => node,
                _ => leader().await.unwrap_or(1),
            };
            for other in others(node) {
                proxy.set_both(node, other, LinkState::Down);
            }
            Ok((Active::Links, vec![node]))
        }
        Fault::Bridge { bridge } => {
            let ends = others(bridge);
            if let [a, b] = ends[..] {
                proxy.set_both(a, b, LinkState::Down);
            }
            Ok((Active::Links, ends))
        }
        Fault::SlowLinks { .. } | Fault::FlakyLinks { .. } => {
            let state = match fault {
                Fault::SlowLinks { delay_ms } => LinkState::Slow { delay_ms },
                Fault::FlakyLinks { drop_percent } => LinkState::Flaky { drop_percent },
                _ => LinkState::Up,
            };
            let ids = cluster.ids();
            for a in &ids {
                for b in &ids {
                    if a != b {
                        proxy.set(*a, *b, state);
                    }
                }
            }
            Ok((Active::Links, ids))
        }
    }
}

/// Undoes an injected fault: restarts killed nodes, continues paused ones, heals every link,
/// restarts an armed node without its crash point, brings the power back. Answers a note for
/// the report (whether an armed node crashed), empty otherwise.
pub fn heal(
    cluster: &mut Cluster,
    proxy: &LinkProxy,
    disks: &SmallDisks,
    mut power: Option<&mut LazyMounts>,
    active: Active,
) -> Result<String> {
    let mut note = String::new();
    match active {
        Active::Killed(nodes) => {
            for node in nodes {
                cluster.restart(node)?;
            }
        }
        Active::Paused(nodes) => {
            for (node, pid) in nodes {
                // Only the pid we stopped, and only if the fixture still runs it.
                if cluster.pid(node) == Some(pid) {
                    signal(pid, libc::SIGCONT, node)?;
                }
            }
        }
        Active::Links => proxy.heal(),
        Active::Armed(node) => {
            note = if cluster.has_exited(node) {
                format!("node {node} crashed at its crash point")
            } else {
                format!("node {node} did not reach its crash point (not a failpoints build?)")
            };
            cluster.restart(node)?;
        }
        Active::Many(all) => {
            let notes: Vec<String> = all
                .into_iter()
                .map(|active| heal(cluster, proxy, disks, power.as_deref_mut(), active))
                .collect::<Result<_>>()?;
            note = notes.join("; ").trim_matches(&[';', ' '][..]).to_owned();
        }
        Active::DiskFull(node) => {
            note = if cluster.has_exited(node) {
                format!("node {node} exited on the full disk")
            } else {
                format!("node {node} kept running on the full disk")
            };
            disks.free(node)?;
            cluster.restart(node)?;
        }
        Active::FakeClock { node, step_back } => {
            step_back.abort();
            cluster.restart(node)?;
        }
        Active::PowerCut(nodes) => {
            let power = power.ok_or_else(|| {
                Error::Usage("power cut without the power-loss filesystem".to_owned())
            })?;
            for node in &nodes {
                power.restore(*node)?;
            }
            for node in nodes {
                cluster.restart(node)?;
            }
        }
    }
    Ok(note)
}

/// Sends `sig` to node `node`'s process `pid`.
fn signal(pid: libc::pid_t, sig: libc::c_int, node: u64) -> Result<()> {
    // SAFETY: `kill` has no memory-safety preconditions; `pid` is a child the fixture started
    // and has not reaped, so it names that process.
    if unsafe { libc::kill(pid, sig) } == -1 {
        return Err(Error::Io {
            context: format!("signal {sig} to node {node} (pid {pid})"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_decided_by_the_seed_and_fills_the_duration() {
        let make = |seed| {
            schedule(
                &mut Rng::new(seed),
                &FaultKind::ALL,
                3,
                Duration::from_secs(60),
            )
        };
        assert_eq!(make(5), make(5));
        assert_ne!(make(5), make(6));
        let planned: u64 = make(5).iter().map(|s| s.quiet_ms + s.hold_ms + 2_000).sum();
        assert!(planned >= 60_000);
        for seed in 0..20 {
            let first: std::collections::HashSet<FaultKind> = make(seed)
                .iter()
                .take(FaultKind::ALL.len())
                .map(|s| s.fault.kind())
                .collect();
            assert_eq!(first.len(), FaultKind::ALL.len(), "seed {seed}: {first:?}");
        }
    }

    #[test]
    fn power_cuts_are_drawn_only_when_asked_for_and_need_the_power_loss_fs() {
        let kinds = [FaultKind::PowerCutAll, FaultKind::PowerCut];
        let steps = schedule(&mut Rng::new(66), &kinds, 3, Duration::from_secs(25));
        assert!(steps.iter().any(|s| s.fault == Fault::PowerCutAll));
        assert!(steps.iter().all(|s| s.fault.kind().needs_power_loss_fs()));
        assert!(!FaultKind::ALL.iter().any(|k| k.needs_power_loss_fs()));
        assert_eq!(FaultKind::PowerCutAll.name(), "power-cut-all");
    }
}
