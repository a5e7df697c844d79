//! [`LinkProxy`]: a TCP proxy in front of every node's Raft port, so the harness can cut, slow
//! down or break single links between nodes without iptables, netem or root.
//!
//! Every node listens for peers on its own loopback IP (127.0.0.11, .12, ...) and, because
//! `orderq` binds its outgoing peer connections to that IP, a connection arriving at node B's
//! front tells by its source address that it comes from node A. Each node's peers are told to
//! dial the front, not the node: all Raft traffic passes here, link by link. The nodes' API
//! ports have fronts too ([`LinkProxy::add_api_fronts`]): a follower forwarding a client's
//! request to the leader's API (it connects from its own IP as well) crosses the same links, so
//! a partition cuts it; the harness's own clients come from 127.0.0.1 and always pass.
//!
//! A link is directional (connections A opens to B); partitions set both directions. Changing a
//! link closes the connections it carries at once, as a real partition would stall them.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::rng::Rng;
use crate::error::{Error, Result};

/// How long the proxy waits to connect to a node; a paused node's kernel still accepts, a
/// killed node refuses at once.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The loopback IP of node `id`: 127.0.0.(10 + id).
pub fn node_ip(id: u64) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + u8::try_from(id).unwrap_or(u8::MAX - 10))
}

/// The node a source IP belongs to, by [`node_ip`]'s numbering.
fn node_of(ip: IpAddr) -> Option<u64> {
    match ip {
        IpAddr::V4(v4) if v4.octets()[..3] == [127, 0, 0] && v4.octets()[3] > 10 => {
            Some(u64::from(v4.octets()[3] - 10))
        }
        _ => None,
    }
}

/// What a link does to the traffic it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Passes everything.
    Up,
    /// Refuses new connections and closes open ones: a partition.
    Down,
    /// Delays every chunk by this many milliseconds: a slow link.
    Slow {
        /// Delay per chunk read.
        delay_ms: u64,
    },
    /// Closes a connection on a chunk with this probability (percent): a flaky link.
    Flaky {
        /// Chance per chunk, in percent.
        drop_percent: u64,
    },
}

/// The link table, shared by every connection task.
#[derive(Debug)]
struct Links {
    /// `(from, to)` → state; absent means [`LinkState::Up`].
    states: Mutex<HashMap<(u64, u64), LinkState>>,
    /// Bumped on every change, so open connections re-check their link.
    changed: watch::Sender<u64>,
    /// Numbers connections, to seed their flaky-link coin flips.
    connections: AtomicU64,
    /// The proxy's seed.
    seed: u64,
}

impl Links {
    /// The state of the link `from → to`; traffic from an unknown source always passes.
    fn state(&self, from: Option<u64>, to: u64) -> LinkState {
        match from {
            Some(from) => self
                .states
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&(from, to))
                .copied()
                .unwrap_or(LinkState::Up),
            None => LinkState::Up,
        }
    }
}

/// The proxy: one front listener per node, and the link table.
pub struct LinkProxy {
    /// Shared with every connection.
    links: Arc<Links>,
    /// Node id → the front address its peers dial.
    fronts: BTreeMap<u64, SocketAddr>,
    /// Node id → the front of its API that its peers forward requests to.
    api_fronts: BTreeMap<u64, SocketAddr>,
    /// Accept loops and connections; aborted when the proxy is dropped.
    tasks: JoinSet<()>,
}

impl LinkProxy {
    /// Starts a front on 127.0.0.1 for each `(node id, real Raft address)`.
    pub async fn start(targets: &BTreeMap<u64, SocketAddr>, seed: u64) -> Result<Self> {
        let (changed, _) = watch::channel(0);
        let links = Arc::new(Links {
            states: Mutex::new(HashMap::new()),
            changed,
            connections: AtomicU64::new(0),
            seed,
        });
        let mut proxy = LinkProxy {
            links,
            fronts: BTreeMap::new(),
            api_fronts: BTreeMap::new(),
            tasks: JoinSet::new(),
        };
        proxy.fronts = proxy.add_fronts(targets).await?;
        Ok(proxy)
    }

    /// Starts a front on 127.0.0.1 for each `(node id, real API address)`, under the same links.
    pub async fn add_api_fronts(&mut self, targets: &BTreeMap<u64, SocketAddr>) -> Result<()> {
        self.api_fronts = self.add_fronts(targets).await?;
        Ok(())
    }

    /// Binds one front per target and starts proxying it; answers the fronts by node.
    async fn add_fronts(
        &mut self,
        targets: &BTreeMap<u64, SocketAddr>,
    ) -> Result<BTreeMap<u64, SocketAddr>> {
        let mut fronts = BTreeMap::new();
        for (&id, &target) in targets {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .map_err(|source| Error::Io {
                    context: format!("binding the proxy front of node {id}"),
                    source,
                })?;
            let front = listener.local_addr().map_err(|source| Error::Io {
                context: "reading the proxy front's address".to_owned(),
                source,
            })?;
            fronts.insert(id, front);
            self.tasks
                .spawn(accept_loop(listener, id, target, self.links.clone()));
        }
        Ok(fronts)
    }

    /// The address node `id`'s peers forward API requests to.
    pub fn api_front(&self, id: u64) -> Option<SocketAddr> {
        self.api_fronts.get(&id).copied()
    }

    /// The address node `id`'s peers must dial.
    pub fn front(&self, id: u64) -> Option<SocketAddr> {
        self.fronts.get(&id).copied()
    }

    /// Sets the link `from → to`.
    pub fn set(&self, from: u64, to: u64, state: LinkState) {
        self.links
            .states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((from, to), state);
        self.links.changed.send_modify(|n| *n += 1);
    }

    /// Sets both directions between `a` and `b`.
    pub fn set_both(&self, a: u64, b: u64, state: LinkState) {
        self.set(a, b, state);
        self.set(b, a, state);
    }

    /// Every link up again.
    pub fn heal(&self) {
        self.links
            .states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.links.changed.send_modify(|n| *n += 1);
    }
}

/// Accepts connections to node `to`'s front and proxies each to `target`.
async fn accept_loop(listener: TcpListener, to: u64, target: SocketAddr, links: Arc<Links>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((inbound, peer)) => {
                    connections.spawn(proxy_connection(inbound, node_of(peer.ip()), to, target, links.clone()));
                }
                Err(e) => eprintln!("chaos proxy: accept on node {to}'s front: {e}"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Carries one connection `from → to` while its link allows.
async fn proxy_connection(
    inbound: TcpStream,
    from: Option<u64>,
    to: u64,
    target: SocketAddr,
    links: Arc<Links>,
) {
    if links.state(from, to) == LinkState::Down {
        return;
    }
    let outbound = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(stream)) => stream,
        _ => return,
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let n = links.connections.fetch_add(1, Ordering::Relaxed);
    let rng = Rng::new(links.seed).fork(n);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let mut changed = links.changed.subscribe();
    let cut = async {
        loop {
            if changed.changed().await.is_err() || links.state(from, to) == LinkState::Down {
                return;
            }
        }
    };
    // Whichever ends first (either direction closing, or the link going down) ends both.
    tokio::select! {
        _ = pump(in_read, out_write, from, to, &links, rng.fork(1)) => {}
        _ = pump(out_read, in_write, from, to, &links, rng.fork(2)) => {}
        _ = cut => {}
    }
}

/// Copies one direction chunk by chunk, applying the link's delay or flakiness to each chunk.
async fn pump(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    from: Option<u64>,
    to: u64,
    links: &Links,
    mut rng: Rng,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = writer.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        match links.state(from, to) {
            LinkState::Up => {}
            LinkState::Down => return,
            LinkState::Slow { delay_ms } => {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            LinkState::Flaky { drop_percent } => {
                if rng.chance(drop_percent) {
                    return;
                }
            }
        }
        if writer.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ips_map_back_to_their_nodes() {
        for id in 1..=5 {
            assert_eq!(node_of(IpAddr::V4(node_ip(id))), Some(id));
        }
        assert_eq!(node_of(IpAddr::V4(Ipv4Addr::LOCALHOST)), None);
    }
}
