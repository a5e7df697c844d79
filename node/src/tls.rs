//! TLS (`[tls]`): extra roots for outbound https, the https API port, and mutual TLS on the Raft
//! port. Everything is rustls 0.21, the version reqwest 0.11 uses, so one rustls is linked; the
//! servers are hyper 0.14 (warp's) over tokio-rustls.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::server::AllowAnyAuthenticatedClient;
use rustls::{Certificate, PrivateKey, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use warp::http::{Request, Response};
use warp::hyper::service::{make_service_fn, Service};
use warp::hyper::Body;

use crate::config::Tls;

/// A TLS file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds nothing usable.
    #[error("{path}: {what}")]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn bad(path: &Path, what: impl std::fmt::Display) -> TlsError {
    TlsError::Content {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

/// The certificates (DER) of a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut read(path)?.as_slice()).map_err(|e| bad(path, e))?;
    if certs.is_empty() {
        return Err(bad(path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, RSA or SEC1) of a PEM file.
fn read_key(path: &Path) -> Result<PrivateKey, TlsError> {
    let items = rustls_pemfile::read_all(&mut read(path)?.as_slice()).map_err(|e| bad(path, e))?;
    items
        .into_iter()
        .find_map(|item| match item {
            rustls_pemfile::Item::PKCS8Key(k)
            | rustls_pemfile::Item::RSAKey(k)
            | rustls_pemfile::Item::ECKey(k) => Some(PrivateKey(k)),
            _ => None,
        })
        .ok_or_else(|| bad(path, "no private key in the file"))
}

/// The extra roots of `ca_file` for outbound https, beside the system's.
pub fn outbound_roots(tls: &Tls) -> Result<Vec<reqwest::Certificate>, TlsError> {
    let Some(path) = &tls.ca_file else {
        return Ok(Vec::new());
    };
    read_certs(path)?
        .iter()
        .map(|der| reqwest::Certificate::from_der(der).map_err(|e| bad(path, e)))
        .collect()
}

/// Adds `roots` to `builder`: the client of webhooks and refunds.
pub fn with_roots(
    mut builder: reqwest::ClientBuilder,
    roots: &[reqwest::Certificate],
) -> reqwest::ClientBuilder {
    builder = builder.use_rustls_tls();
    for root in roots {
        builder = builder.add_root_certificate(root.clone());
    }
    builder
}

/// The server side of the API port: `cert_file` and `key_file`, when both are set.
pub fn api_server_config(tls: &Tls) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => server_config(cert, key, None).map(Some),
        _ => Ok(None),
    }
}

/// The server side of the Raft port: `cert_file` and `key_file`, requiring client certificates
/// signed by `peer_ca_file`; `None` when `peer_ca_file` is not set.
pub fn peer_server_config(tls: &Tls) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    match (&tls.cert_file, &tls.key_file, &tls.peer_ca_file) {
        (Some(cert), Some(key), Some(ca)) => server_config(cert, key, Some(ca)).map(Some),
        _ => Ok(None),
    }
}

fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certs(cert)?.into_iter().map(Certificate).collect();
    let private = read_key(key)?;
    let builder = ServerConfig::builder().with_safe_defaults();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for der in read_certs(ca)? {
                roots.add(&Certificate(der)).map_err(|e| bad(ca, e))?;
            }
            builder.with_client_cert_verifier(AllowAnyAuthenticatedClient::new(roots).boxed())
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, private)
        .map_err(|e| bad(key, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What a node needs to reach its peers' Raft ports over mutual TLS.
#[derive(Clone)]
pub struct PeerClientTls {
    /// This node's certificate and key.
    identity: reqwest::Identity,
    /// The cluster CA, the only root peers are checked against.
    ca: Vec<reqwest::Certificate>,
}

impl PeerClientTls {
    /// From `[tls]`: `None` when `peer_ca_file` is not set (plain HTTP between peers).
    pub fn from_config(tls: &Tls) -> Result<Option<Self>, TlsError> {
        let (Some(cert), Some(key), Some(ca)) = (&tls.cert_file, &tls.key_file, &tls.peer_ca_file)
        else {
            return Ok(None);
        };
        let mut pem = read(key)?;
        pem.push(b'\n');
        pem.extend(read(cert)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| bad(cert, e))?;
        let ca = read_certs(ca)?
            .iter()
            .map(|der| reqwest::Certificate::from_der(der).map_err(|e| bad(ca, e)))
            .collect::<Result<_, _>>()?;
        Ok(Some(PeerClientTls { identity, ca }))
    }

    /// `builder` presenting this node's certificate and trusting only the cluster CA.
    pub fn apply(&self, mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder = builder
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .identity(self.identity.clone());
        for root in &self.ca {
            builder = builder.add_root_certificate(root.clone());
        }
        builder
    }
}

/// Binds `addr` and serves `service` over TLS with `config` until `shutdown` resolves, then
/// lets open requests finish (as warp's graceful shutdown does). Handshakes run on their own
/// tasks, so a slow or failing client never holds up the others.
pub fn serve<S>(
    service: S,
    addr: SocketAddr,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()>)>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let bound = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(config);
    let (ready, incoming) = futures::channel::mpsc::unbounded::<
        Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, std::io::Error>,
    >();
    let accept_loop = async move {
        loop {
            match listener.accept().await {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    let acceptor = acceptor.clone();
                    let ready = ready.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(stream)) => {
                                let _ = ready.unbounded_send(Ok(stream));
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake refused")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    let make = make_service_fn(move |_| {
        let service = service.clone();
        async move { Ok::<_, Infallible>(service) }
    });
    let server = warp::hyper::Server::builder(warp::hyper::server::accept::from_stream(incoming))
        .serve(make)
        .with_graceful_shutdown(shutdown);
    let run = async move {
        tokio::select! {
            () = accept_loop => {}
            result = server => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "TLS server failed");
                }
            }
        }
    };
    Ok((bound, run))
}

/// How this node calls its fellow members' APIs (a write or read forwarded to the leader, the
/// wiped-member check): https when this node's API serves https (members are configured alike),
/// trusting the system's roots plus `ca_file`.
#[derive(Clone, Default)]
pub struct ApiClientTls {
    /// Whether members' APIs serve https.
    https: bool,
    /// `ca_file`'s roots.
    roots: Vec<reqwest::Certificate>,
}

impl ApiClientTls {
    /// From `[tls]`.
    pub fn from_config(tls: &Tls) -> Result<Self, TlsError> {
        Ok(ApiClientTls {
            https: tls.cert_file.is_some() && tls.key_file.is_some(),
            roots: outbound_roots(tls)?,
        })
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// `builder` trusting the system's roots plus `ca_file`.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        with_roots(builder, &self.roots)
    }
}
