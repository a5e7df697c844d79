//! [`Cluster`]: n real `orderq serve` processes on 127.0.0.1, and the verbs tests use on them.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::client::{build_http, ApiResponse, NodeClient, Request};
use crate::error::{Error, Result};
use crate::model::{ClusterStatus, NewOrder, Order, Sku, SkuSettings};
use crate::ports::reserve_ports_on;
use crate::process::{locate_binary, log_tail, run_to_end, NodeProcess};
use crate::wait::{poll_until, POLL_INTERVAL};

/// How long [`Cluster::send_to_any`] retries through unavailable nodes.
pub const SEND_RETRY_LIMIT: Duration = Duration::from_secs(30);

/// How many log lines of each node a failing test prints.
const FAILURE_TAIL_LINES: usize = 40;

/// How a [`Cluster`] starts its nodes. `None` leaves the node's own default.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `--admin-token`; the fixture's clients send it on every request.
    pub admin_token: Option<String>,
    /// `--cluster-secret`, so the Raft port's authentication is exercised too.
    pub cluster_secret: Option<String>,
    /// `--snapshot-every N`: build a snapshot every N log entries.
    pub snapshot_every: Option<u64>,
    /// `--keep-logs-after-snapshot N`: logs kept behind a snapshot (0 purges right away).
    pub keep_logs_after_snapshot: Option<u64>,
    /// `--election-timeout-ms`.
    pub election_timeout_ms: Option<u64>,
    /// `--heartbeat-ms`.
    pub heartbeat_ms: Option<u64>,
    /// `--max-batch`: commands per Raft entry (1 turns batching off).
    pub max_batch: Option<u64>,
    /// `--default-pay-within-secs`.
    pub default_pay_within_secs: Option<u64>,
    /// Any further flags, appended as given.
    pub extra_args: Vec<String>,
    /// How long [`Cluster::start`] and [`Cluster::wait_for_leader`] wait for an agreed leader.
    pub leader_timeout: Duration,
    /// Environment given to every node at every start (`FAILPOINTS` to run a whole cluster as a
    /// deliberately broken build).
    pub env: Vec<(String, String)>,
    /// Fixed addresses for nodes `1..=n` instead of free ports on 127.0.0.1: the chaos harness
    /// gives each node its own loopback IP and puts a proxy in front of each Raft port.
    pub addresses: Option<Vec<NodeAddrs>>,
    /// A CA (PEM) that signed the certificate the nodes' APIs serve https with (pass the
    /// certificate itself in `extra_args`): the fixture's clients then use https and trust it.
    pub api_ca: Option<PathBuf>,
}

/// Where one node listens, and the Raft address its peers are told to dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAddrs {
    /// `--api-addr`.
    pub api_addr: SocketAddr,
    /// `--raft-addr`: where the node listens for peers (and, on a loopback IP, the source IP of
    /// its own peer connections).
    pub raft_addr: SocketAddr,
    /// The Raft address written into every node's `--peer` list: the node itself, or a proxy
    /// in front of it.
    pub advertised_raft_addr: SocketAddr,
    /// The API address written into every node's `--peer` list (where followers forward
    /// requests): the node's own, or a proxy in front of it.
    pub advertised_api_addr: SocketAddr,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            admin_token: Some("cluster-tests-admin-token".to_owned()),
            cluster_secret: Some("cluster-tests-cluster-secret".to_owned()),
            snapshot_every: None,
            keep_logs_after_snapshot: None,
            election_timeout_ms: None,
            heartbeat_ms: None,
            max_batch: None,
            default_pay_within_secs: None,
            extra_args: Vec::new(),
            leader_timeout: Duration::from_secs(30),
            env: Vec::new(),
            addresses: None,
            api_ca: None,
        }
    }
}

/// One member of the fixture: its fixed addresses and directory, and its process if running.
#[derive(Debug)]
struct Node {
    /// HTTP API address, the same across restarts.
    api_addr: SocketAddr,
    /// Raft peer address, the same across restarts.
    raft_addr: SocketAddr,
    /// The Raft address peers dial (a proxy's, or `raft_addr`).
    advertised_raft_addr: SocketAddr,
    /// The API address peers forward to (a proxy's, or `api_addr`).
    advertised_api_addr: SocketAddr,
    /// `node-N/` in the cluster's temporary directory: holds `data/` and `node.log`.
    dir: PathBuf,
    /// The running process; `None` after [`Cluster::kill`].
    process: Option<NodeProcess>,
    /// A client for its API.
    client: NodeClient,
    /// Started with `--join` and added as a learner, rather than an initial voter.
    learner: bool,
}

impl Node {
    /// Where its stdout and stderr go.
    fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }
}

/// n `orderq serve` processes forming one cluster, with ids `1..=n`.
///
/// Ports are picked below the kernel's ephemeral range ([`crate::ports`]); data lives in a temporary directory
/// that is removed on drop, except when the test is panicking: then it is kept and every
/// node's log tail is printed. Dropping the cluster kills every process it started.
#[derive(Debug)]
pub struct Cluster {
    /// The `orderq` binary under test.
    binary: PathBuf,
    /// How the nodes were started; reused on restart.
    options: ClusterOptions,
    /// The members by id.
    nodes: BTreeMap<u64, Node>,
    /// Owns every node's directory; declared last so it is removed after the processes die.
    dir: TempDir,
}

impl Cluster {
    /// Starts `n` nodes (all initial voters; node 1 initialises the cluster) and waits until
    /// they agree on a leader.
    pub async fn start(n: u64, options: ClusterOptions) -> Result<Self> {
        let mut cluster = Cluster::create(n, options)?;
        cluster.start_all().await?;
        Ok(cluster)
    }

    /// The fixture of `n` nodes with their directories and addresses, none started yet: a test
    /// may prepare a node's directory first (the chaos harness mounts the power-loss filesystem
    /// on `node_dir(id)/data`), then [`Cluster::start_all`].
    pub fn create(n: u64, options: ClusterOptions) -> Result<Self> {
        if n == 0 {
            return Err(Error::Usage("a cluster needs at least one node".to_owned()));
        }
        let binary = locate_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("orderq-cluster-tests-")
            .tempdir()
            .map_err(|source| Error::Io {
                context: "creating the cluster's temporary directory".to_owned(),
                source,
            })?;
        let addresses = match &options.addresses {
            Some(given) if given.len() as u64 == n => given.clone(),
            Some(given) => {
                return Err(Error::Usage(format!(
                    "{} addresses given for {n} nodes",
                    given.len()
                )))
            }
            None => reserve_ports(2 * n as usize)?
                .chunks(2)
                .map(|pair| {
                    let raft_addr = SocketAddr::from(([127, 0, 0, 1], pair[1]));
                    let api_addr = SocketAddr::from(([127, 0, 0, 1], pair[0]));
                    NodeAddrs {
                        api_addr,
                        raft_addr,
                        advertised_raft_addr: raft_addr,
                        advertised_api_addr: api_addr,
                    }
                })
                .collect(),
        };
        let mut nodes = BTreeMap::new();
        for (id, addrs) in (1..=n).zip(addresses) {
            let NodeAddrs {
                api_addr,
                raft_addr,
                advertised_raft_addr,
                advertised_api_addr,
            } = addrs;
            let node_dir = dir.path().join(format!("node-{id}"));
            std::fs::create_dir_all(&node_dir).map_err(|source| Error::Io {
                context: format!("creating {}", node_dir.display()),
                source,
            })?;
            let client = node_client(api_addr, &options)?;
            nodes.insert(
                id,
                Node {
                    api_addr,
                    raft_addr,
                    advertised_raft_addr,
                    advertised_api_addr,
                    dir: node_dir,
                    process: None,
                    client,
                    learner: false,
                },
            );
        }
        let cluster = Cluster {
            binary,
            options,
            nodes,
            dir,
        };
        eprintln!(
            "cluster-tests: {n} node(s) in {}, binary {}",
            cluster.dir.path().display(),
            cluster.binary.display()
        );
        Ok(cluster)
    }

    /// Starts every node and waits until they agree on a leader.
    pub async fn start_all(&mut self) -> Result<()> {
        for id in self.ids() {
            self.restart(id)?;
        }
        self.wait_for_leader().await?;
        Ok(())
    }

    /// All node ids, running or not.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Ids of the nodes whose process the fixture started and has not killed.
    pub fn running_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.process.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// The API base URL of node `id`, e.g. `http://127.0.0.1:41234`.
    ///
    /// # Panics
    /// If there is no node `id` (a mistake in the test).
    pub fn api(&self, id: u64) -> String {
        self.client(id).base().to_owned()
    }

    /// A client for node `id`'s API (sending the admin token).
    ///
    /// # Panics
    /// If there is no node `id` (a mistake in the test).
    pub fn client(&self, id: u64) -> &NodeClient {
        &self.node(id).client
    }

    /// Clients for every node, running or not, in id order: for tasks that outlive a borrow
    /// of the cluster (a killed node's client just gets no answer).
    pub fn clients(&self) -> Vec<NodeClient> {
        self.nodes
            .values()
            .map(|node| node.client.clone())
            .collect()
    }

    /// The pid of node `id`, if running.
    pub fn pid(&self, id: u64) -> Option<libc::pid_t> {
        self.node(id).process.as_ref().map(NodeProcess::pid)
    }

    /// The directory of node `id` (holding `data/` and `node.log`).
    pub fn node_dir(&self, id: u64) -> &Path {
        &self.node(id).dir
    }

    /// Where node `id` listens for Raft peers (its own port, not a proxy in front of it).
    pub fn raft_addr(&self, id: u64) -> SocketAddr {
        self.node(id).raft_addr
    }

    /// Whether node `id`'s process has exited on its own (the fixture still holds it).
    pub fn has_exited(&self, id: u64) -> bool {
        self.node(id)
            .process
            .as_ref()
            .is_some_and(|process| process.exit_status().is_some())
    }

    /// The root directory holding every node's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps every node's data and log after the cluster is dropped (a failed chaos run).
    pub fn keep_data(&mut self) {
        self.dir.disable_cleanup(true);
    }

    /// `kill -9` node `id`: no shutdown code runs, exactly like a crash.
    pub fn kill(&mut self, id: u64) -> Result<()> {
        match self.node_mut(id).process.take() {
            Some(process) => {
                eprintln!("cluster-tests: kill -9 node {id} (pid {})", process.pid());
                process.kill()
            }
            None => Err(Error::Usage(format!("node {id} is not running"))),
        }
    }

    /// Stops node `id` as systemd does (`SIGTERM`), waiting up to `limit` for it to exit;
    /// answers how it exited and how long the stop took. Its data stays for a restart.
    pub fn stop(&mut self, id: u64, limit: Duration) -> Result<(ExitStatus, Duration)> {
        match self.node_mut(id).process.take() {
            Some(process) => {
                eprintln!(
                    "cluster-tests: kill -TERM node {id} (pid {})",
                    process.pid()
                );
                process.terminate(limit)
            }
            None => Err(Error::Usage(format!("node {id} is not running"))),
        }
    }

    /// (Re)starts node `id` with its data directory and ports; kills it first if running.
    /// Does not wait for anything: follow with [`Cluster::wait_for_leader`] or a poll.
    pub fn restart(&mut self, id: u64) -> Result<()> {
        self.restart_with_env(id, &[])
    }

    /// [`Cluster::restart`] with extra environment for this start only (e.g. `FAILPOINTS` to
    /// arm a crash point in a failpoint build).
    pub fn restart_with_env(&mut self, id: u64, env: &[(String, String)]) -> Result<()> {
        if let Some(process) = self.node_mut(id).process.take() {
            process.kill()?;
        }
        let args = self.serve_args(id);
        let node = self.node(id);
        let env: Vec<(String, String)> = self.options.env.iter().chain(env).cloned().collect();
        let process = NodeProcess::spawn(id, &self.binary, &args, &env, &node.log_path())?;
        eprintln!(
            "cluster-tests: started node {id} (pid {}, api {}, raft {})",
            process.pid(),
            node.api_addr,
            node.raft_addr
        );
        self.node_mut(id).process = Some(process);
        Ok(())
    }

    /// Seeds node `id`'s empty data directory from the backup in `backup` with `orderq restore`,
    /// given the flags the node is served with (its id, addresses and peers); answers what the
    /// command printed. Restore every node before [`Cluster::start_all`].
    pub async fn restore_node(&self, id: u64, backup: &Path) -> Result<String> {
        let mut args = vec![
            "restore".to_owned(),
            "--from".to_owned(),
            backup.display().to_string(),
        ];
        args.extend(self.serve_args(id).into_iter().skip(1));
        run_to_end(&self.binary, &args, &self.node(id).log_path()).await
    }

    /// Starts a new node with the next free id as `orderq serve --join`, adds it through node
    /// `via` with `POST /admin/cluster/learners` and returns its id once the leader answered that
    /// it caught up.
    pub async fn add_learner(&mut self, via: u64, limit: Duration) -> Result<u64> {
        let id = self.ids().into_iter().max().unwrap_or(0) + 1;
        let ports = reserve_ports(2)?;
        let api_addr = SocketAddr::from(([127, 0, 0, 1], ports[0]));
        let raft_addr = SocketAddr::from(([127, 0, 0, 1], ports[1]));
        let dir = self.dir.path().join(format!("node-{id}"));
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            context: format!("creating {}", dir.display()),
            source,
        })?;
        let client = node_client(api_addr, &self.options)?;
        self.nodes.insert(
            id,
            Node {
                api_addr,
                raft_addr,
                advertised_raft_addr: raft_addr,
                advertised_api_addr: api_addr,
                dir,
                process: None,
                client,
                learner: true,
            },
        );
        self.restart(id)?;
        poll_until(&format!("node {id} to answer"), limit, || async {
            if let Err(exited) = self.ensure_running() {
                return Ok(Err(exited));
            }
            match self.client(id).is_healthy().await {
                true => Ok(Ok(())),
                false => Err("no /healthz yet".to_owned()),
            }
        })
        .await??;
        let via = self.client(via).clone();
        let (api, raft) = (api_addr.to_string(), raft_addr.to_string());
        crate::wait::retry_while_unavailable(&format!("learner {id} to be added"), limit, || {
            via.add_learner(id, &api, &raft)
        })
        .await?;
        Ok(id)
    }

    /// Whether node `id` was added as a learner.
    pub fn is_learner(&self, id: u64) -> bool {
        self.node(id).learner
    }

    /// Fails if any node the fixture believes running has exited (with its log tail).
    pub fn ensure_running(&self) -> Result<()> {
        for node in self.nodes.values() {
            if let Some(process) = &node.process {
                process.ensure_running(&node.log_path())?;
            }
        }
        Ok(())
    }

    /// One look: the leader every running node agrees on, if they agree, it is running, and it
    /// answers `/readyz`. `Err(reason)` otherwise.
    pub async fn leader_id(&self) -> Result<u64, String> {
        let running = self.running_ids();
        let mut leaders = Vec::new();
        for id in &running {
            match self.client(*id).cluster_status().await {
                Ok(status) => leaders.push((*id, status.leader_id)),
                Err(e) => return Err(format!("node {id}: {e}")),
            }
        }
        let agreed = match leaders.first() {
            Some((_, Some(leader))) => *leader,
            _ => return Err(format!("no leader known: {leaders:?}")),
        };
        if leaders.iter().any(|(_, leader)| *leader != Some(agreed)) {
            return Err(format!(
                "nodes disagree on the leader (node, leader): {leaders:?}"
            ));
        }
        if !running.contains(&agreed) {
            return Err(format!(
                "nodes still name the killed node {agreed} as leader"
            ));
        }
        if !self.client(agreed).is_ready().await {
            return Err(format!("leader {agreed} does not answer /readyz with 200"));
        }
        Ok(agreed)
    }

    /// Waits until every running node names the same running leader; returns its id.
    /// Fails at once, with its log tail, if a node the fixture started has exited.
    pub async fn wait_for_leader(&self) -> Result<u64> {
        poll_until(
            "the running nodes to agree on a leader",
            self.options.leader_timeout,
            || async {
                if let Err(exited) = self.ensure_running() {
                    return Ok(Err(exited));
                }
                self.leader_id().await.map(Ok)
            },
        )
        .await?
    }

    /// The running nodes other than the agreed leader (waits for the leader first).
    pub async fn followers(&self) -> Result<Vec<u64>> {
        let leader = self.wait_for_leader().await?;
        Ok(self
            .running_ids()
            .into_iter()
            .filter(|id| *id != leader)
            .collect())
    }

    /// Node `id`'s view of the cluster (`GET /admin/cluster`).
    pub async fn status(&self, id: u64) -> Result<ClusterStatus> {
        self.client(id).cluster_status().await
    }

    /// Waits until node `id` has applied everything the leader had in its log when this was
    /// called.
    pub async fn wait_caught_up(&self, id: u64, limit: Duration) -> Result<()> {
        let leader = self.wait_for_leader().await?;
        let target = self.status(leader).await?.last_log_index.unwrap_or(0);
        poll_until(
            &format!("node {id} to apply up to index {target}"),
            limit,
            || async {
                let status = self.status(id).await.map_err(|e| e.to_string())?;
                match status.last_applied {
                    Some(applied) if applied >= target => Ok(()),
                    other => Err(format!("last_applied {other:?}")),
                }
            },
        )
        .await
    }

    /// Waits until node `node` reads every one of `orders` exactly as given through
    /// `?consistency=local`, i.e. until its own applied state has caught up with them.
    pub async fn wait_orders_visible(
        &self,
        node: u64,
        orders: &[Order],
        limit: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        let mut pending: Vec<&Order> = orders.iter().collect();
        loop {
            self.ensure_running()?;
            let mut still_pending = Vec::new();
            let mut last = String::new();
            for order in pending {
                match self.get_order(&order.id, node, true).await {
                    Ok(read) if &read == order => continue,
                    Ok(read) => last = format!("order {} reads {read:?}, want {order:?}", order.id),
                    Err(e) => last = e.to_string(),
                }
                still_pending.push(order);
            }
            if still_pending.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= limit {
                return Err(Error::Timeout {
                    what: format!(
                        "node {node} to read all {} orders locally ({} still differ)",
                        orders.len(),
                        still_pending.len()
                    ),
                    waited: started.elapsed(),
                    last,
                });
            }
            pending = still_pending;
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until node `node`'s own applied state shows SKU `sku` exactly as the leader does
    /// (linearizable read), e.g. after writes stopped.
    pub async fn wait_sku_converged(&self, node: u64, sku: &str, limit: Duration) -> Result<Sku> {
        let leader = self.wait_for_leader().await?;
        let expected = self.get_sku(leader, sku, false).await?;
        poll_until(
            &format!("node {node} to show SKU {sku} as the leader does"),
            limit,
            || async {
                match self.get_sku(node, sku, true).await {
                    Ok(local) if local == expected => Ok(local),
                    other => Err(format!("{other:?}, leader has {expected:?}")),
                }
            },
        )
        .await
    }

    /// `PUT /admin/skus/{sku}` through node `node`.
    pub async fn put_sku(&self, node: u64, sku: &str, settings: &SkuSettings) -> Result<Sku> {
        self.client(node).put_sku(sku, settings).await
    }

    /// `GET /v1/skus/{sku}` through node `node`; `local` reads its own applied state.
    pub async fn get_sku(&self, node: u64, sku: &str, local: bool) -> Result<Sku> {
        self.client(node).get_sku(sku, local).await
    }

    /// `POST /v1/orders` through node `node`, with an `Idempotency-Key` when given.
    pub async fn create_order(
        &self,
        node: u64,
        order: &NewOrder,
        key: Option<&str>,
    ) -> Result<Order> {
        self.client(node).create_order(order, key).await
    }

    /// `GET /v1/orders/{order_id}` through node `node`; `local` reads its own applied state.
    pub async fn get_order(&self, order_id: &str, node: u64, local: bool) -> Result<Order> {
        self.client(node).get_order(order_id, local).await
    }

    /// `POST /v1/orders/{order_id}/pay` through node `node`.
    pub async fn pay(&self, node: u64, order_id: &str, payment_ref: &str) -> Result<Order> {
        self.client(node).pay(order_id, payment_ref).await
    }

    /// `POST /v1/seckill/{sku}` for `user_id` through node `node`; the answer undecoded.
    pub async fn seckill(
        &self,
        node: u64,
        sku: &str,
        user_id: &str,
        key: Option<&str>,
    ) -> Result<ApiResponse> {
        self.client(node).seckill(sku, user_id, key).await
    }

    /// `POST /v1/orders/{order_id}/cancel` through node `node`.
    pub async fn cancel(&self, node: u64, order_id: &str) -> Result<Order> {
        self.client(node).cancel(order_id).await
    }

    /// Sends `request` to the running nodes in turn until one answers something other than a
    /// retryable failure (no answer, 429, 502-504), for at most [`SEND_RETRY_LIMIT`]; answers
    /// that, or the last retryable answer once the limit is reached.
    pub async fn send_to_any(&self, request: Request) -> Result<ApiResponse> {
        let clients: Vec<NodeClient> = self
            .running_ids()
            .into_iter()
            .map(|id| self.client(id).clone())
            .collect();
        if clients.is_empty() {
            return Err(Error::Usage("no running node to send to".to_owned()));
        }
        let started = Instant::now();
        for client in clients.iter().cycle() {
            let past_limit = started.elapsed() > SEND_RETRY_LIMIT;
            match client.send(request.clone()).await {
                Ok(r) if past_limit || ![429, 502, 503, 504].contains(&r.status) => return Ok(r),
                Err(e) if past_limit => return Err(e),
                _ => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
        Err(Error::Usage("no running node to send to".to_owned()))
    }

    /// Everything node `id` has logged (all its starts), for tests of what logs hold.
    pub fn log(&self, id: u64) -> Result<String> {
        let path = self.node(id).log_path();
        std::fs::read_to_string(&path).map_err(|source| Error::Io {
            context: format!("reading {}", path.display()),
            source,
        })
    }

    /// The last `lines` lines of node `id`'s log.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        log_tail(&self.node(id).log_path(), lines)
    }

    /// Prints the end of every node's log to stderr (shown by the test harness on failure).
    pub fn print_log_tails(&self) {
        for (id, node) in &self.nodes {
            eprintln!(
                "----- node {id}: last {FAILURE_TAIL_LINES} lines of {} -----\n{}",
                node.log_path().display(),
                log_tail(&node.log_path(), FAILURE_TAIL_LINES)
            );
        }
    }

    /// The `orderq serve` arguments of node `id`.
    fn serve_args(&self, id: u64) -> Vec<String> {
        let node = self.node(id);
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--node-id".into(),
            id.to_string(),
            "--data-dir".into(),
            node.dir.join("data").display().to_string(),
            "--api-addr".into(),
            node.api_addr.to_string(),
            "--raft-addr".into(),
            node.raft_addr.to_string(),
        ];
        if node.learner {
            args.push("--join".into());
        } else {
            for (peer_id, peer) in self.nodes.iter().filter(|(_, peer)| !peer.learner) {
                args.push("--peer".into());
                args.push(format!(
                    "{peer_id}={},{}",
                    peer.advertised_raft_addr, peer.advertised_api_addr
                ));
            }
        }
        let options = &self.options;
        let flags: [(&str, Option<String>); 8] = [
            ("--admin-token", options.admin_token.clone()),
            ("--cluster-secret", options.cluster_secret.clone()),
            (
                "--snapshot-every",
                options.snapshot_every.map(|v| v.to_string()),
            ),
            (
                "--keep-logs-after-snapshot",
                options.keep_logs_after_snapshot.map(|v| v.to_string()),
            ),
            (
                "--election-timeout-ms",
                options.election_timeout_ms.map(|v| v.to_string()),
            ),
            (
                "--heartbeat-ms",
                options.heartbeat_ms.map(|v| v.to_string()),
            ),
            ("--max-batch", options.max_batch.map(|v| v.to_string())),
            (
                "--default-pay-within-secs",
                options.default_pay_within_secs.map(|v| v.to_string()),
            ),
        ];
        for (flag, value) in flags {
            if let Some(value) = value {
                args.push(flag.into());
                args.push(value);
            }
        }
        args.extend(options.extra_args.iter().cloned());
        args
    }

    /// Node `id`, or a panic naming the test's mistake.
    fn node(&self, id: u64) -> &Node {
        match self.nodes.get(&id) {
            Some(node) => node,
            None => panic!("no node {id} in this cluster (ids {:?})", self.ids()),
        }
    }

    /// Node `id`, mutably, or a panic naming the test's mistake.
    fn node_mut(&mut self, id: u64) -> &mut Node {
        let ids = self.ids();
        match self.nodes.get_mut(&id) {
            Some(node) => node,
            None => panic!("no node {id} in this cluster (ids {ids:?})"),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Kill first so the logs are complete, then report.
        for node in self.nodes.values_mut() {
            if let Some(process) = node.process.take() {
                if let Err(e) = process.kill() {
                    eprintln!("cluster-tests: {e}");
                }
            }
        }
        if std::thread::panicking() {
            self.print_log_tails();
            self.dir.disable_cleanup(true);
            eprintln!(
                "cluster-tests: test failed; data and logs kept in {}",
                self.dir.path().display()
            );
        }
    }
}

/// Picks `count` distinct free ports on 127.0.0.1.
fn reserve_ports(count: usize) -> Result<Vec<u16>> {
    reserve_ports_on(Ipv4Addr::LOCALHOST, count)
}

/// The fixture's client of the node at `api_addr`: https trusting `options.api_ca` when set.
fn node_client(api_addr: SocketAddr, options: &ClusterOptions) -> Result<NodeClient> {
    let Some(ca) = &options.api_ca else {
        return NodeClient::new(format!("http://{api_addr}"), options.admin_token.clone());
    };
    let pem = std::fs::read(ca).map_err(|source| Error::Io {
        context: format!("reading {}", ca.display()),
        source,
    })?;
    let root = reqwest::Certificate::from_pem(&pem).map_err(|source| Error::Transport {
        request: format!("reading the CA certificate {}", ca.display()),
        source,
    })?;
    let http = build_http(
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(root)
            .timeout(crate::client::REQUEST_TIMEOUT)
            .connect_timeout(crate::client::CONNECT_TIMEOUT),
    )?;
    Ok(NodeClient::with_http(
        format!("https://{api_addr}"),
        options.admin_token.clone(),
        http,
    ))
}
