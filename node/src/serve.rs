//! `orderq serve`: opens the storage, starts Raft, the peer port, the batcher, the API and the
//! change-stream retention, and initialises a new cluster from the node with the lowest id
//! (unless the node joins an existing cluster).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use openraft::SnapshotPolicy;
use sm::changes::Retention;
use sm::raft_types::Raft;
use sm::Storage;
use tokio::sync::watch;

use crate::batcher::{Batcher, BatcherConfig};
use crate::clock_watch::ClockWatch;
use crate::config::Config;
use crate::leadership::LeaderServices;
use crate::network::PeerNetwork;
use crate::queue_handle::QueueHandle;
use crate::quorum_contact::QuorumContact;
use crate::raft_cluster::RaftCluster;
use crate::timer_service::TimerLag;
use crate::write_forwarder::WriteForwarder;

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] sm::StoreError),
    /// openraft refused the configuration or failed to start.
    #[error("raft: {0}")]
    Raft(String),
    /// A port could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: warp::hyper::Error,
    },
    /// An address did not parse.
    #[error("address {0:?} is not host:port")]
    Address(String),
    /// This node lost its data while the cluster still counts it (see `wipe_guard`).
    #[error(transparent)]
    WipedMember(#[from] crate::wipe_guard::WipedMember),
    /// The operating system gave no random bytes (for the receipt key).
    #[error("random source: {0}")]
    Random(String),
    /// A `[tls]` file could not be used.
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// A TLS port could not be bound.
    #[error("binding {addr}: {source}")]
    BindTls {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
}

fn raft_config(config: &Config) -> Result<openraft::Config, ServeError> {
    let raft = openraft::Config {
        cluster_name: "orderq".into(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_timeout_ms,
        election_timeout_max: config.election_timeout_ms * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        max_in_snapshot_log_to_keep: config.keep_logs_after_snapshot,
        ..Default::default()
    };
    raft.validate().map_err(|e| ServeError::Raft(e.to_string()))
}

fn socket(addr: &str) -> Result<SocketAddr, ServeError> {
    addr.parse()
        .map_err(|_| ServeError::Address(addr.to_string()))
}

/// Runs the node until `shutdown` flips to true; the HTTP API runs on `api_runtime`, apart from
/// Raft, so that client work cannot starve it.
pub async fn run(
    config: Config,
    api_runtime: tokio::runtime::Handle,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    // TLS files first: a bad one stops the node before it touches its data.
    let extra_roots = crate::tls::outbound_roots(&config.tls)?;
    let api_client_tls = crate::tls::ApiClientTls::from_config(&config.tls)?;
    let api_server_tls = crate::tls::api_server_config(&config.tls)?;
    let peer_server_tls = crate::tls::peer_server_config(&config.tls)?;
    let transport = crate::network::PeerTransport::new(
        socket(&config.raft_addr)?,
        crate::tls::PeerClientTls::from_config(&config.tls)?,
    );
    std::fs::create_dir_all(&config.data_dir).map_err(sm::StoreError::from)?;
    let storage = Storage::open(&config.data_dir)?;
    let store_metrics = storage.metrics.clone();
    let delivery_metrics = crate::delivery_metrics::DeliveryMetrics::default();
    crate::wipe_guard::check(&config, &storage.log).await?;
    let state_machine = storage.state.clone();
    let network = PeerNetwork::new(
        config.cluster_secret.expose().to_string(),
        &transport,
        config.max_batch_bytes,
    )?;
    let raft = Raft::new(
        config.node_id,
        Arc::new(raft_config(&config)?),
        network,
        storage.log,
        storage.state,
    )
    .await
    .map_err(|e| ServeError::Raft(e.to_string()))?;

    let stopped = || {
        let mut shutdown = shutdown.clone();
        async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        }
    };
    let clock = Arc::new(ClockWatch::new(config.max_clock_offset_ms));
    let clock_task = tokio::spawn(crate::clock_watch::run(
        clock.clone(),
        raft.clone(),
        config.cluster_secret.expose().to_string(),
        transport.clone(),
        shutdown.clone(),
    ));
    let batcher = Batcher::start(
        raft.clone(),
        WriteForwarder::new(config.cluster_secret.expose().to_string(), &transport)?,
        clock.clone(),
        state_machine.watch_installs(),
        BatcherConfig {
            max_batch: config.max_batch,
            max_batch_bytes: config.max_batch_bytes,
            max_in_flight: config.max_in_flight,
            queue_depth: config.queue_depth,
            seckill_queue_depth: config.seckill_queue_depth,
        },
    );
    let (raft_bound, peer_server) = crate::peer_server::bind(
        config.node_id,
        raft.clone(),
        batcher.clone(),
        config.cluster_secret.clone(),
        socket(&config.raft_addr)?,
        peer_server_tls,
        stopped(),
    )
    .map_err(|source| ServeError::BindTls {
        addr: config.raft_addr.clone(),
        source,
    })?;
    let peer_task = tokio::spawn(peer_server);

    let retention_task = tokio::spawn(crate::change_retention::run(
        storage.reader.clone(),
        Retention {
            max_age_ms: i64::try_from(config.changes_retention_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            max_count: config.changes_retention_count,
        },
        stopped(),
    ));
    let timer_lag = Arc::new(TimerLag::default());
    let quorum = Arc::new(QuorumContact::new(Duration::from_millis(
        config.election_timeout_ms,
    )));
    let queue = Arc::new(QueueHandle::default());
    let leader_services = LeaderServices {
        raft: raft.clone(),
        state: state_machine,
        reader: storage.reader.clone(),
        batcher: batcher.clone(),
        timer_lag: timer_lag.clone(),
        queue: queue.clone(),
        refund_url: config.payment.refund_url.clone(),
        refund_status_url: config.payment.refund_status_url.clone(),
        refund_signing_secret: config.payment.signing_secret.expose().to_string(),
        webhook_policy: config.webhook_policy(),
        queue_retention_ms: config.queue_retention_secs.saturating_mul(1000),
        quorum: quorum.clone(),
        clock: clock.clone(),
        receipt_key: crate::receipt::ReceiptKey::generate()
            .map_err(|e| ServeError::Random(e.to_string()))?,
        extra_roots,
        delivery_metrics: delivery_metrics.clone(),
    };
    let leader_task = tokio::spawn(leader_services.run(shutdown.clone()));
    let cluster = Arc::new(
        RaftCluster::new(
            raft.clone(),
            batcher,
            storage.reader,
            timer_lag,
            quorum,
            clock,
            api_client_tls,
            socket(&config.raft_addr)?,
        )?
        .with_queue(queue)
        .with_observed(crate::raft_cluster::Observed {
            store: store_metrics,
            deliveries: delivery_metrics,
            data_dir: config.data_dir.clone(),
        }),
    );
    let api = Arc::new(
        api::Api::new(
            cluster,
            api::ApiConfig {
                access: api::Access::new(
                    config.admin_token.configured(),
                    config.client_tokens(),
                    config.metrics_token.configured(),
                ),
                default_pay_within_secs: config.default_pay_within_secs,
                seckill_pay_within_secs: config.seckill_pay_within_secs,
                redrive_step: config.redrive_step,
                webhook_policy: config.webhook_policy(),
                access_log: config.access_log,
            },
        )
        .draining_on(api::Drain::on(shutdown.clone())),
    );
    let (api_bound, api_server) = {
        // Bound inside the API runtime, so its sockets are driven there.
        let _api_context = api_runtime.enter();
        let addr = socket(&config.api_addr)?;
        match api_server_tls {
            None => api::server::bind(api, addr, stopped())
                .map(|(bound, server)| (bound, server.boxed()))
                .map_err(|source| ServeError::Bind {
                    addr: config.api_addr.clone(),
                    source,
                })?,
            Some(tls) => crate::tls::serve(api::server::service(api), addr, tls, stopped())
                .map(|(bound, server)| (bound, server.boxed()))
                .map_err(|source| ServeError::BindTls {
                    addr: config.api_addr.clone(),
                    source,
                })?,
        }
    };
    let api_task = api_runtime.spawn(api_server);
    tracing::info!(node_id = config.node_id, api = %api_bound, raft = %raft_bound, "orderq serving");
    crate::readiness::serving();
    let open = crate::exposure::open_parts(&config);
    if !open.is_empty() {
        tracing::warn!(
            open = ?open,
            "this node is open: no token is needed for {}; fine for a lone node on loopback, \
             configure admin_token and [[clients]] for anything else",
            open.join(" and ")
        );
    }

    if config.join {
        tracing::info!(
            node_id = config.node_id,
            "joining: add this node with POST /admin/cluster/learners on any member"
        );
    }
    if config.initialises() && !raft.is_initialized().await.unwrap_or(true) {
        let members = config.members();
        tracing::info!(voters = ?members.keys().collect::<Vec<_>>(), "initialising a new cluster");
        if let Err(e) = raft.initialize(members).await {
            tracing::warn!(error = %e, "initialise refused");
        }
    }

    if let Some(reason) = raft_stopped(&raft, &mut shutdown).await {
        // The Raft core stopped (a storage error, a refused snapshot): exit, so a supervisor
        // restarts the node from its data instead of it answering HTTP with no Raft behind.
        tracing::error!(%reason, "raft stopped; exiting");
        return Err(ServeError::Raft(reason));
    }
    crate::readiness::stopping();
    tracing::info!("shutting down: draining requests, ending long polls and streams");
    let _ = leader_task.await;
    let _ = api_task.await;
    let _ = peer_task.await;
    let _ = retention_task.await;
    let _ = clock_task.await;
    raft.shutdown()
        .await
        .map_err(|e| ServeError::Raft(e.to_string()))?;
    Ok(())
}

/// How often a serving node looks whether its Raft core stopped, besides when the core's server
/// metrics close.
const RAFT_CHECK: Duration = Duration::from_millis(200);

/// Waits until `shutdown` turns true (`None`) or the Raft core stops (`Some(why)`).
///
/// Why not wait on openraft's full metrics: they are published on every turn of the core's loop,
/// and a task waiting on them is woken (and a parked thread with it) for each. The server metrics
/// change only with the state, leader, vote or membership, and close when the core ends.
async fn raft_stopped(raft: &Raft, shutdown: &mut watch::Receiver<bool>) -> Option<String> {
    let mut server = raft.server_metrics();
    let mut check = tokio::time::interval(RAFT_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let fatal = || {
        let metrics = raft.metrics();
        let running = &metrics.borrow().running_state;
        running.as_ref().err().map(ToString::to_string)
    };
    loop {
        if let Some(fatal) = fatal() {
            return Some(fatal);
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return None,
            changed = server.changed() => {
                if changed.is_err() {
                    return Some(fatal().unwrap_or_else(|| "the raft core ended".to_owned()));
                }
            }
            _ = check.tick() => {}
        }
    }
}
