//! One chaos run from start to verdict: start three nodes behind the link proxy, load SKUs, run
//! the workload while the fault schedule plays, heal everything, let the queue drain and the
//! cluster settle, read the final state from every node, and run the checkers.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::check::progress::{first_ack_after, FaultWindow, RECOVERY_BOUND_MS};
use super::check::{self, FinalState, NodeState};
use super::disk::SmallDisks;
use super::faults::{self, Fault, FaultKind};
use super::history::History;
use super::power::{locate_lazyfs, LazyMounts};
use super::proxy::{node_ip, LinkProxy};
use super::report::{InjectedFault, Report};
use super::rng::Rng;
use super::subscribers::Subscribers;
use super::timeline::Timeline;
use super::workload::{Target, Workload, WorkloadPlan, REQUEST_TIMEOUT};
use crate::client::{build_http, NodeClient, Request};
use crate::cluster::{Cluster, ClusterOptions, NodeAddrs};
use crate::error::{Error, Result};
use crate::model::{Order, OrderPage, Sku};
use crate::ports::reserve_ports_on;
use crate::wait::{holds, poll_until, retry_while_unavailable};

/// Nodes in a chaos cluster.
const NODES: u64 = 3;

/// How long the cluster may take to agree on a leader after a fault is healed.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long settling after the run may take by default (catching up, timers firing, the nodes
/// agreeing).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What a run does.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Seed of the fault schedule and of every client's choices.
    pub seed: u64,
    /// How long faults are injected while the workload runs.
    pub duration: Duration,
    /// Which kinds of fault the schedule draws from.
    pub faults: Vec<FaultKind>,
    /// The workload.
    pub plan: WorkloadPlan,
    /// Keep the nodes' data and logs even when every check passes.
    pub keep_data: bool,
    /// Where to write the report (and the history beside it).
    pub report: Option<PathBuf>,
    /// How long the healed cluster may take to settle ([`SETTLE_TIMEOUT`] by default; a run of
    /// a deliberately broken build, whose replicas may never agree, need not wait as long).
    pub settle_timeout: Duration,
    /// Environment for every node at every start (`FAILPOINTS=log-skip-sync=return` runs the
    /// whole cluster as the mutant that acknowledges unsynced appends).
    pub node_env: Vec<(String, String)>,
}

impl Default for ChaosOptions {
    fn default() -> Self {
        ChaosOptions {
            seed: 1,
            duration: Duration::from_secs(60),
            faults: FaultKind::ALL.to_vec(),
            plan: WorkloadPlan::default(),
            keep_data: false,
            report: None,
            node_env: Vec::new(),
            settle_timeout: SETTLE_TIMEOUT,
        }
    }
}

/// Runs the chaos scenario and returns its report (also written to `options.report`).
/// An `Err` means the harness itself could not do its job (no binary, no ports), not that the
/// cluster failed a check: that is `report.passed == false`.
pub async fn run(options: ChaosOptions) -> Result<Report> {
    let power_cuts = options.faults.iter().any(|k| k.needs_power_loss_fs());
    if power_cuts && options.faults.contains(&FaultKind::DiskFull) {
        return Err(Error::Usage(
            "disk-full moves a node's data onto a tmpfs and power cuts keep it on lazyfs: run \
             them separately"
                .to_owned(),
        ));
    }
    let started = Instant::now();
    let mut rng = Rng::new(options.seed);
    let mut subscribers = Subscribers::start().await?;
    // Power cuts need every node's data on the power-loss filesystem from the start.
    let mut power = if power_cuts {
        Some(LazyMounts::new(locate_lazyfs()?))
    } else {
        None
    };
    let (mut cluster, proxy) = start_cluster(
        options.seed,
        subscribers.node_args(),
        subscribers
            .node_env()
            .into_iter()
            .chain(options.node_env.clone())
            .collect(),
        power.as_mut(),
    )
    .await?;
    eprintln!("chaos: cluster up in {}", cluster.dir().display());
    load_skus(&cluster, &options.plan).await?;
    subscribers.subscribe(&cluster, &options.plan.topic).await?;

    let history = Arc::new(History::new());
    let targets = targets(&cluster)?;
    let faults_end = Instant::now() + options.duration;
    let workload = Workload::start(
        options.plan.clone(),
        targets,
        history.clone(),
        &rng,
        faults_end,
    );
    let schedule = faults::schedule(&mut rng, &options.faults, NODES, options.duration);
    let mut injected = Vec::new();
    let mut incidents = Vec::new();
    let mut disks = SmallDisks::default();
    for step in schedule {
        let quiet_until = Instant::now() + Duration::from_millis(step.quiet_ms);
        if quiet_until + Duration::from_millis(step.hold_ms) > faults_end {
            break;
        }
        tokio::time::sleep_until(quiet_until.into()).await;
        let mut note = harness_fault(
            step.fault,
            &cluster,
            &workload,
            &subscribers,
            &history,
            &rng,
        )
        .await;
        // The fault starts as its injection does (a kill aimed just before a deadline counts
        // from the kill, not from when the kill returned).
        let injected_ms = history.now_ms();
        let injecting =
            faults::inject(&mut cluster, &proxy, &mut disks, power.as_mut(), step.fault);
        let (active, nodes) = match injecting.await {
            Ok(injected) => injected,
            Err(e) => {
                incidents.push(format!("injecting {:?} failed: {e}", step.fault));
                recover(&mut cluster, &mut incidents).await.ok();
                continue;
            }
        };
        eprintln!(
            "chaos: {injected_ms} ms: inject {:?} on {nodes:?}",
            step.fault
        );
        tokio::time::sleep(Duration::from_millis(step.hold_ms)).await;
        if step.fault == Fault::WebhookReceiverDown {
            subscribers.restart_webhook_receiver();
        }
        let healed = faults::heal(&mut cluster, &proxy, &disks, power.as_mut(), active)?;
        if !healed.is_empty() {
            note = if note.is_empty() {
                healed
            } else {
                format!("{note}; {healed}")
            };
        }
        let healed_ms = history.now_ms();
        let recovered_ms = match recover(&mut cluster, &mut incidents).await {
            Ok(()) => Some(history.now_ms()),
            Err(e) => {
                incidents.push(format!(
                    "after {:?}: no leader within {RECOVERY_TIMEOUT:?}: {}",
                    step.fault,
                    describe(&cluster, &e)
                ));
                None
            }
        };
        injected.push(InjectedFault {
            step,
            nodes,
            injected_ms,
            healed_ms,
            recovered_ms,
            time_to_recover_ms: None,
            note,
        });
    }
    tokio::time::sleep_until(faults_end.into()).await;
    if let Some(last) = injected.last() {
        await_ack_after(&history, last.healed_ms).await;
    }
    eprintln!(
        "chaos: {} ms: faults over, stopping clients",
        history.now_ms()
    );
    workload.stop().await;
    let workload_end_ms = history.now_ms();

    proxy.heal();
    // A cluster that does not recover is reported by `settle_and_read`; draining just fails.
    recover(&mut cluster, &mut incidents).await.ok();
    let groups = match subscribers.drain(&cluster).await {
        Ok(groups) => {
            eprintln!("chaos: {} ms: the queue drained", history.now_ms());
            Some(groups)
        }
        Err(e) => {
            incidents.push(format!("the queue did not drain: {e}"));
            None
        }
    };
    let mut final_state = settle_and_read(
        &mut cluster,
        &options.plan,
        options.settle_timeout,
        &mut incidents,
    )
    .await;
    final_state.read_ms = history.now_ms();
    final_state.deliveries = subscribers.deliveries(groups);
    let windows: Vec<FaultWindow> = injected
        .iter()
        .map(|f| FaultWindow {
            injected_ms: f.injected_ms,
            healed_ms: f.healed_ms,
        })
        .collect();
    let verdicts = check::run_all(
        &history,
        &options.plan,
        &final_state,
        &windows,
        workload_end_ms,
    );
    let operations = history.operations();
    for fault in &mut injected {
        fault.time_to_recover_ms = first_ack_after(&operations, fault.healed_ms)
            .filter(|at| *at <= workload_end_ms)
            .map(|at| at - fault.healed_ms);
    }
    let (by_kind, totals) = Report::count(&operations);
    let passed = incidents.is_empty() && verdicts.iter().all(|v| v.passed);
    let data_dir = if !passed || options.keep_data {
        cluster.keep_data();
        Some(cluster.dir().display().to_string())
    } else {
        None
    };
    let mut report = Report {
        seed: options.seed,
        duration_secs: options.duration.as_secs(),
        elapsed_secs: started.elapsed().as_secs(),
        faults: injected,
        operations: by_kind,
        totals,
        verdicts,
        subscriptions: final_state.deliveries.groups.clone(),
        incidents,
        passed,
        data_dir,
        timeline: None,
    };
    if let Some(path) = &options.report {
        let picture = PathBuf::from(format!("{}.timeline.png", path.display()));
        match Timeline::new(&operations, &report.faults, history.now_ms()).draw(&picture) {
            Ok(legend) => report.timeline = Some(legend),
            Err(e) => eprintln!("chaos: no timeline picture: {e}"),
        }
        report.write(path, &operations, &final_state.deliveries)?;
    }
    // The tmpfs mounts go after the nodes that use them, before the directory is removed.
    for id in cluster.running_ids() {
        cluster.kill(id)?;
    }
    for problem in disks.unmount_all(report.data_dir.is_some()) {
        eprintln!("chaos: {problem}");
    }
    if let Some(power) = &mut power {
        for problem in power.unmount_all() {
            eprintln!("chaos: {problem}");
        }
    }
    Ok(report)
}

/// How many orders a deadline burst creates.
const BURST_ORDERS: u32 = 1_000;

/// How many pseudo-clients create a burst's orders at once.
const BURST_LANES: u32 = 32;

/// How far ahead a burst aims its deadlines: time to create the orders first.
const BURST_AIM_MS: i64 = 6_000;

/// Does the harness's own part of `fault`, before the cluster is touched: creates the burst of
/// orders and waits until the kill is due (0-200 ms before the first deadline), lets pull
/// consumers crash, or kills the webhook receiver mid-request. Answers a note for the report.
async fn harness_fault(
    fault: Fault,
    cluster: &Cluster,
    workload: &Workload,
    subscribers: &Subscribers,
    history: &History,
    rng: &Rng,
) -> String {
    let now_epoch =
        || history.started_epoch_ms() + i64::try_from(history.now_ms()).unwrap_or(i64::MAX);
    match fault {
        Fault::KillLeaderBeforeDeadlines { lead_ms } => {
            let aim = now_epoch() + BURST_AIM_MS;
            let burst = rng.fork(history.now_ms());
            let first = workload
                .deadline_burst(BURST_ORDERS, BURST_LANES, aim, &burst)
                .await;
            match first {
                Some(first) => {
                    let wait = first - i64::try_from(lead_ms).unwrap_or(0) - now_epoch();
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                    }
                    format!(
                        "{BURST_ORDERS} orders due from {} ms into the run; the kill came {} ms \
                         before",
                        first - history.started_epoch_ms(),
                        first - now_epoch()
                    )
                }
                None => "the burst's creates were not acknowledged".to_owned(),
            }
        }
        Fault::PullConsumersCrash { consumers } => {
            let taken = subscribers.crash_pull_consumers(cluster, consumers).await;
            format!("{consumers} pull consumer(s) died holding {taken} message(s)")
        }
        Fault::WebhookReceiverDown => {
            subscribers.kill_webhook_receiver().await;
            "the webhook receiver died mid-request".to_owned()
        }
        _ => String::new(),
    }
}

/// Starts three nodes, each on its own loopback IP, with every Raft and API port behind the
/// proxy (for peers; the harness's clients reach the APIs directly),
/// `node_args` (the payment provider's URL) and `node_env` on every node, and their data on the
/// power-loss filesystem when `power` is given.
pub async fn start_cluster(
    seed: u64,
    node_args: Vec<String>,
    node_env: Vec<(String, String)>,
    power: Option<&mut LazyMounts>,
) -> Result<(Cluster, LinkProxy)> {
    let mut listen = BTreeMap::new();
    for id in 1..=NODES {
        let ip = node_ip(id);
        let ports = reserve_ports_on(ip, 2)?;
        listen.insert(
            id,
            (
                std::net::SocketAddr::from((ip, ports[0])),
                std::net::SocketAddr::from((ip, ports[1])),
            ),
        );
    }
    let raft: BTreeMap<u64, _> = listen.iter().map(|(id, (_, raft))| (*id, *raft)).collect();
    let api: BTreeMap<u64, _> = listen.iter().map(|(id, (api, _))| (*id, *api)).collect();
    let mut proxy = LinkProxy::start(&raft, seed).await?;
    proxy.add_api_fronts(&api).await?;
    let addresses = listen
        .iter()
        .map(|(id, (api_addr, raft_addr))| {
            Ok(NodeAddrs {
                api_addr: *api_addr,
                raft_addr: *raft_addr,
                advertised_raft_addr: proxy
                    .front(*id)
                    .ok_or_else(|| Error::Usage(format!("no proxy front for node {id}")))?,
                advertised_api_addr: proxy
                    .api_front(*id)
                    .ok_or_else(|| Error::Usage(format!("no API front for node {id}")))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let options = ClusterOptions {
        addresses: Some(addresses),
        // Snapshots and log purges happen during the run, so a restarted node may need one.
        snapshot_every: Some(200),
        keep_logs_after_snapshot: Some(50),
        extra_args: ["--seckill-pay-within-secs".to_owned(), "8".to_owned()]
            .into_iter()
            .chain(node_args)
            .collect(),
        leader_timeout: RECOVERY_TIMEOUT,
        env: node_env,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::create(NODES, options)?;
    if let Some(power) = power {
        for id in cluster.ids() {
            power.mount(id, &cluster.node_dir(id).join("data"))?;
        }
    }
    cluster.start_all().await?;
    Ok((cluster, proxy))
}

/// Loads every SKU of the plan through the leader.
async fn load_skus(cluster: &Cluster, plan: &WorkloadPlan) -> Result<()> {
    let leader = cluster.wait_for_leader().await?;
    for sku in plan.all_skus() {
        retry_while_unavailable(
            &format!("SKU {} to load", sku.sku),
            RECOVERY_TIMEOUT,
            || cluster.put_sku(leader, &sku.sku, &sku.settings),
        )
        .await?;
    }
    Ok(())
}

/// The workload's clients: one per node, with short timeouts so a paused node cannot hold a
/// client for long.
fn targets(cluster: &Cluster) -> Result<Vec<Target>> {
    let http = build_http(
        reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(1)),
    )?;
    Ok(cluster
        .ids()
        .into_iter()
        .map(|id| Target {
            id,
            client: NodeClient::with_http(cluster.api(id), None, http.clone()),
        })
        .collect())
}

/// Keeps the clients going after the faults end until a write is acknowledged after the last
/// heal, or until [`RECOVERY_BOUND_MS`] has passed since it (and a second more, so `progress`
/// sees the bound exceeded). Without this, a cluster that took no write after a fault healed
/// late in the run was excused by `progress`: the workload stopped before the bound ran out.
async fn await_ack_after(history: &History, healed_ms: u64) {
    let give_up_ms = healed_ms + RECOVERY_BOUND_MS + 1_000;
    let limit = Duration::from_millis(give_up_ms.saturating_sub(history.now_ms()));
    let acked = poll_until(
        "a write acknowledged after the last heal",
        limit,
        || async { holds(first_ack_after(&history.operations(), healed_ms).is_some()) },
    )
    .await;
    if acked.is_err() {
        eprintln!(
            "chaos: {} ms: no write acknowledged since the last fault healed at {healed_ms} ms",
            history.now_ms()
        );
    }
}

/// After a fault is healed: notes (and restarts) any node that died on its own, then waits for
/// an agreed leader.
async fn recover(cluster: &mut Cluster, incidents: &mut Vec<String>) -> Result<()> {
    for id in cluster.ids() {
        if cluster.has_exited(id) {
            incidents.push(format!(
                "node {id} exited on its own: {}",
                exit_reason(&cluster.log_tail(id, 400))
            ));
            cluster.restart(id)?;
        } else if cluster.pid(id).is_none() {
            cluster.restart(id)?;
        }
    }
    cluster.wait_for_leader().await.map(|_| ())
}

/// An error for the report: a node that exited is described by its panic (read from further
/// back in its log than the error's own tail, which a backtrace fills), not its backtrace.
fn describe(cluster: &Cluster, e: &Error) -> String {
    match e {
        Error::NodeExited {
            node_id, status, ..
        } => format!(
            "node {node_id} exited ({status}): {}",
            exit_reason(&cluster.log_tail(*node_id, 400))
        ),
        other => other.to_string(),
    }
}

/// Why a node exited, from the end of its log: the last panic message (the backtrace after it
/// says little in a report), else the last lines.
fn exit_reason(log_tail: &str) -> String {
    let lines: Vec<&str> = log_tail.lines().collect();
    match lines.iter().rposition(|l| l.contains("panicked at")) {
        Some(at) => lines[at..lines.len().min(at + 2)].join("\n"),
        None => lines[lines.len().saturating_sub(20)..].join("\n"),
    }
}

/// Heals, waits for every node to catch up, then reads the final state: each node's own orders
/// and SKUs at a stable applied index, the same on every node (it is retried until it is, or
/// the time is up). Every node had caught up with the leader's log first, so this state holds
/// every acknowledged write.
async fn settle_and_read(
    cluster: &mut Cluster,
    plan: &WorkloadPlan,
    settle_timeout: Duration,
    incidents: &mut Vec<String>,
) -> FinalState {
    let mut final_state = FinalState::default();
    if let Err(e) = recover(cluster, incidents).await {
        incidents.push(format!(
            "the healed cluster found no leader: {}",
            describe(cluster, &e)
        ));
        // A node that cannot come back is left out, so the rest can still be judged.
        for id in cluster.ids() {
            if cluster.has_exited(id) {
                incidents.push(format!(
                    "node {id} does not stay up after a restart: left out of the final state"
                ));
                if let Err(e) = cluster.kill(id) {
                    incidents.push(format!("reaping node {id}: {e}"));
                }
            }
        }
        if let Err(e) = cluster.wait_for_leader().await {
            incidents.push(format!("the remaining nodes found no leader: {e}"));
            return final_state;
        }
    }
    final_state.live = cluster.running_ids();
    for id in cluster.running_ids() {
        if let Err(e) = cluster.wait_caught_up(id, settle_timeout).await {
            incidents.push(format!("node {id} did not catch up: {e}"));
        }
    }
    match poll_until(
        "every node to hold the same state at a stable applied index",
        settle_timeout,
        || async {
            let mut nodes = Vec::new();
            for id in cluster.ids() {
                nodes.push(node_state(cluster.client(id), id, plan).await?);
            }
            if nodes
                .windows(2)
                .all(|w| w[0].0.applied == w[1].0.applied && w[0].0.digest == w[1].0.digest)
            {
                Ok(nodes)
            } else {
                Err(format!(
                    "not yet: {:?}",
                    nodes
                        .iter()
                        .map(|(n, ..)| (n.node, n.applied, n.digest.clone()))
                        .collect::<Vec<_>>()
                ))
            }
        },
    )
    .await
    {
        Ok(nodes) => {
            if let Some((_, orders, skus)) = nodes.first() {
                final_state.orders = orders.clone();
                final_state.skus = skus.clone();
                final_state.read = true;
            }
            final_state.nodes = nodes.into_iter().map(|(node, ..)| node).collect();
        }
        Err(Error::Timeout { last, .. }) => {
            // Report what differs: the convergence checker judges the last reading.
            incidents.push(format!("nodes did not converge: {last}"));
            let mut nodes = Vec::new();
            for id in cluster.running_ids() {
                if let Ok((node, orders, skus)) = node_state(cluster.client(id), id, plan).await {
                    if nodes.is_empty() {
                        final_state.orders = orders;
                        final_state.skus = skus;
                        final_state.read = true;
                    }
                    nodes.push(node);
                }
            }
            final_state.nodes = nodes;
        }
        Err(e) => incidents.push(format!("reading the nodes' states: {e}")),
    }
    final_state
}

/// Every order of `user`, linearizably or from the answering node's own state.
async fn read_orders(client: &NodeClient, user: &str, local: bool) -> Result<Vec<Order>> {
    let mut orders = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/v1/orders?user_id={user}&limit=1000");
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        if local {
            path.push_str("&consistency=local");
        }
        let page: OrderPage = client.call(Request::get(path)).await?;
        orders.extend(page.orders);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(orders),
        }
    }
}

/// Node `id`'s own state (its orders and SKUs, and a summary of them), read while its applied
/// index stays put, so the reads form one consistent picture even while timers still fire.
async fn node_state(
    client: &NodeClient,
    id: u64,
    plan: &WorkloadPlan,
) -> Result<(NodeState, BTreeMap<String, Order>, BTreeMap<String, Sku>), String> {
    let applied = || async {
        client
            .cluster_status()
            .await
            .map(|s| s.last_applied.unwrap_or(0))
            .map_err(|e| e.to_string())
    };
    let before = applied().await?;
    let mut hasher = DefaultHasher::new();
    let mut orders = BTreeMap::new();
    for user in plan.users() {
        for order in read_orders(client, &user, true)
            .await
            .map_err(|e| e.to_string())?
        {
            format!("{order:?}").hash(&mut hasher);
            orders.insert(order.id.clone(), order);
        }
    }
    let mut skus = BTreeMap::new();
    for sku in plan.all_skus() {
        let read: Sku = client
            .get_sku(&sku.sku, true)
            .await
            .map_err(|e| e.to_string())?;
        format!("{read:?}").hash(&mut hasher);
        skus.insert(sku.sku.clone(), read);
    }
    let server_digest = match client.send(Request::get("/admin/digest")).await {
        Ok(response) if response.status == 200 => {
            let body = response.json();
            let at = body.get("applied_index").and_then(|v| v.as_u64());
            if at != Some(before) {
                return Err(format!(
                    "node {id}: /admin/digest at {at:?}, applied {before}"
                ));
            }
            body.get("digest")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        }
        _ => None,
    };
    let after = applied().await?;
    if before != after {
        return Err(format!(
            "node {id} applied {before}..{after} while being read"
        ));
    }
    let node = NodeState {
        node: id,
        applied: before,
        digest: format!("{:016x}", hasher.finish()),
        orders: orders.len(),
        server_digest,
    };
    Ok((node, orders, skus))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_is_told_by_its_panic_message() {
        let log =
            "serving\nthread 'x' panicked at a.rs:1:\ninvalid state\nstack backtrace:\n  0: f";
        assert_eq!(
            exit_reason(log),
            "thread 'x' panicked at a.rs:1:\ninvalid state"
        );
        assert_eq!(exit_reason("one\ntwo"), "one\ntwo");
    }
}
