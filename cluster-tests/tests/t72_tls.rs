//! TLS (`[tls]`), on real processes with certificates the test generates: push webhooks reach an
//! https receiver whose CA is given with `--tls-ca-file`, and fail without it (verification is
//! on); a node with `--tls-cert-file` and `--tls-key-file` serves its API over https; a
//! three-node cluster with `--tls-peer-ca-file` talks mutual TLS on the Raft port, and a client
//! without a certificate the cluster CA signed is refused there.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::{
    poll_until, within, Cluster, ClusterOptions, Endpoint, NewMessage, SkuSettings, Subscription,
};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, ExtendedKeyUsagePurpose, IsCa, SanType,
};
use serde_json::{json, Value};
use warp::Filter;

fn phase(text: &str) {
    eprintln!("t72: {text}");
}

/// A CA and a certificate it signed, for every loopback name a test uses, good for servers and
/// clients alike; written as PEM files into a directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn generate() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca_params = CertificateParams::new(Vec::new());
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "orderq t72 CA");
        let ca = Certificate::from_params(ca_params).expect("CA");
        let mut params = CertificateParams::new(Vec::new());
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "orderq t72 node");
        params.subject_alt_names = vec![SanType::DnsName("localhost".into())];
        for last in 1..=30u8 {
            params
                .subject_alt_names
                .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(
                    127, 0, 0, last,
                ))));
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let node = Certificate::from_params(params).expect("node certificate");
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", ca.serialize_pem().unwrap());
        write("cert.pem", node.serialize_pem_with_signer(&ca).unwrap());
        write("key.pem", node.serialize_private_key_pem());
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// A client trusting only this CA.
    fn client(&self) -> reqwest::Client {
        let ca = std::fs::read(self.path("ca.pem")).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }
}

fn server_config(cert: &Path, key: &Path) -> Arc<rustls::ServerConfig> {
    let certs = rustls_pemfile::certs(&mut std::fs::read(cert).unwrap().as_slice())
        .unwrap()
        .into_iter()
        .map(rustls::Certificate)
        .collect();
    let key = rustls_pemfile::pkcs8_private_keys(&mut std::fs::read(key).unwrap().as_slice())
        .unwrap()
        .remove(0);
    Arc::new(
        rustls::ServerConfig::builder()
            .with_safe_defaults()
            .with_no_client_auth()
            .with_single_cert(certs, rustls::PrivateKey(key))
            .unwrap(),
    )
}

/// An https webhook receiver on 127.0.0.1 answering 200 and keeping every body it gets.
struct HttpsReceiver {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsReceiver {
    async fn start(pki: &Pki) -> HttpsReceiver {
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(
            &pki.path("cert.pem"),
            &pki.path("key.pem"),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        let route = warp::post()
            .and(warp::path("hook"))
            .and(warp::body::json())
            .map(move |body: Value| {
                kept.lock().unwrap().push(body);
                "ok"
            });
        let service = warp::service(route);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let service = service.clone();
                tokio::spawn(async move {
                    // A client that does not trust the CA aborts the handshake: nothing to serve.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = warp::hyper::server::conn::Http::new()
                        .serve_connection(
                            tls,
                            warp::hyper::service::service_fn(move |req| {
                                let mut service = service.clone();
                                async move {
                                    use warp::hyper::service::Service;
                                    Ok::<_, Infallible>(service.call(req).await.unwrap())
                                }
                            }),
                        )
                        .await;
                });
            }
        });
        HttpsReceiver { addr, bodies, task }
    }

    fn url(&self) -> String {
        format!("https://{}/hook", self.addr)
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Drop for HttpsReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A push group on `topic` posting to the https receiver at `url`, retrying quickly.
fn https_hook(topic: &str, url: &str) -> Subscription {
    Subscription::push(topic, url)
        .timeout_ms(2000)
        .backoff(100, 200)
}

#[tokio::test(flavor = "multi_thread")]
async fn t72_push_webhooks_reach_https_receivers_the_node_trusts() {
    let pki = Pki::generate();
    let hook = HttpsReceiver::start(&pki).await;

    phase("--- the receiver answers https to a client trusting the generated CA");
    let probe = pki
        .client()
        .post(hook.url())
        .json(&json!({"probe": true}))
        .send()
        .await
        .expect("https probe");
    assert!(probe.status().is_success(), "{}", probe.status());
    hook.bodies.lock().unwrap().clear();

    phase("--- a node given the CA with --tls-ca-file delivers over https");
    let trusting = Cluster::start(
        1,
        ClusterOptions {
            extra_args: vec!["--tls-ca-file".into(), pki.arg("ca.pem")],
            ..Default::default()
        },
    )
    .await
    .expect("cluster with the CA");
    within(Duration::from_secs(40), async {
        let node = trusting.client(1);
        node.subscribe("t72-https", &https_hook("t72.https", &hook.url()))
            .await
            .expect("subscribe");
        node.publish("t72.https", &NewMessage::keyed("trusted", json!({"n": 1})))
            .await
            .expect("publish");
        poll_until("the https delivery", Duration::from_secs(20), || async {
            let bodies = hook.bodies();
            if bodies.iter().any(|b| b["key"] == "trusted") {
                Ok(())
            } else {
                Err(format!("received {bodies:?}"))
            }
        })
        .await
        .expect("delivered over https");
        let stats = node
            .subscription_stats("t72-https", false)
            .await
            .expect("subscriptions");
        assert_eq!(stats.map_or(0, |s| s.failures), 0);
    })
    .await;
    drop(trusting);

    phase("--- a node without the CA fails the delivery: the certificate is verified");
    let untrusting = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster without the CA");
    within(Duration::from_secs(40), async {
        let node = untrusting.client(1);
        node.subscribe("t72-untrusted", &https_hook("t72.untrusted", &hook.url()))
            .await
            .expect("subscribe");
        node.publish(
            "t72.untrusted",
            &NewMessage::keyed("untrusted", json!({"n": 2})),
        )
        .await
        .expect("publish");
        node.wait_failures("t72-untrusted", 2, Duration::from_secs(20))
            .await
            .expect("attempts fail");
        assert!(
            !hook.bodies().iter().any(|b| b["key"] == "untrusted"),
            "nothing reached the receiver: {:?}",
            hook.bodies()
        );
    })
    .await;
}

/// An orderq process this test started; killed when dropped.
struct Node {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Node {
    /// `orderq serve` on a fresh data directory with `args`, its log in the data directory.
    fn spawn(args: &[String]) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let binary = cluster::process::locate_binary().expect("orderq binary");
        let log = std::fs::File::create(dir.path().join("orderq.log")).unwrap();
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ORDERQ_") {
                command.env_remove(key);
            }
        }
        Node {
            child: command.spawn().expect("spawn orderq"),
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("orderq.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn t72_the_api_serves_https_with_cert_and_key() {
    let pki = Pki::generate();
    let ports = cluster::ports::reserve_ports_on(Ipv4Addr::LOCALHOST, 2).expect("ports");
    let api = format!("127.0.0.1:{}", ports[0]);
    let node = Node::spawn(&[
        "--api-addr".into(),
        api.clone(),
        "--raft-addr".into(),
        format!("127.0.0.1:{}", ports[1]),
        "--tls-cert-file".into(),
        pki.arg("cert.pem"),
        "--tls-key-file".into(),
        pki.arg("key.pem"),
        "--tls-ca-file".into(),
        pki.arg("ca.pem"),
    ]);
    let client = pki.client();

    phase("--- https://.../healthz answers a client trusting the CA");
    let healthz = format!("https://{api}/healthz");
    poll_until("the https API", Duration::from_secs(20), || async {
        match client.get(&healthz).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("status {}", r.status())),
            Err(e) => Err(format!("{e}")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log()));

    phase("--- a write over https is served too");
    let put = client
        .put(format!("https://{api}/admin/skus/t72-sku"))
        .json(&json!({"stock": 5, "price_cents": 100, "per_user_limit": 0}))
        .send()
        .await
        .expect("PUT sku over https");
    assert!(put.status().is_success(), "{}", put.status());

    phase("--- plain http gets no answer, and a client not trusting the CA is refused");
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let r = plain.get(format!("http://{api}/healthz")).send().await;
    assert!(
        r.as_ref().map_or(true, |r| !r.status().is_success()),
        "plain http must not be served: {r:?}"
    );
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    assert!(
        untrusting.get(&healthz).send().await.is_err(),
        "the certificate is not trusted without the CA"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn t72_a_cluster_with_mutual_tls_on_the_raft_port_elects_and_refuses_strangers() {
    let pki = Pki::generate();
    let options = ClusterOptions {
        api_ca: Some(pki.path("ca.pem")),
        extra_args: vec![
            "--tls-cert-file".into(),
            pki.arg("cert.pem"),
            "--tls-key-file".into(),
            pki.arg("key.pem"),
            "--tls-peer-ca-file".into(),
            pki.arg("ca.pem"),
            "--tls-ca-file".into(),
            pki.arg("ca.pem"),
        ],
        ..Default::default()
    };
    phase("--- three nodes with mutual TLS between them elect a leader");
    let cluster = Cluster::start(3, options).await.expect("mTLS cluster");
    within(Duration::from_secs(60), async {
        let leader = cluster.wait_for_leader().await.expect("a leader");
        phase("--- a write through a follower is forwarded and replicated");
        let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
        cluster
            .client(follower)
            .put_sku("t72-mtls", &SkuSettings::new(7, 100))
            .await
            .expect("put the SKU through a follower");
        for id in cluster.ids() {
            cluster
                .wait_sku_converged(id, "t72-mtls", Duration::from_secs(20))
                .await
                .expect("replicated");
        }

        let raft = cluster.raft_addr(leader);
        let clock = |client: reqwest::Client| {
            let url = format!("https://{raft}/raft/clock");
            async move {
                client
                    .post(url)
                    .header("x-orderq-cluster-secret", "cluster-tests-cluster-secret")
                    .header("x-orderq-target-node", leader.to_string())
                    .header(reqwest::header::CONTENT_LENGTH, 0)
                    .send()
                    .await
            }
        };
        phase("--- a client with the cluster's certificate and secret is served");
        // A client trusting the cluster CA and presenting `holder`'s certificate.
        let presenting = |holder: &Pki| {
            let mut pem = std::fs::read(holder.path("key.pem")).unwrap();
            pem.extend(std::fs::read(holder.path("cert.pem")).unwrap());
            reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(
                    reqwest::Certificate::from_pem(&std::fs::read(pki.path("ca.pem")).unwrap())
                        .unwrap(),
                )
                .identity(reqwest::Identity::from_pem(&pem).unwrap())
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap()
        };
        let r = clock(presenting(&pki)).await.expect("a member is served");
        assert!(r.status().is_success(), "{}", r.status());

        phase("--- a client without a certificate is refused, secret or not");
        match clock(pki.client()).await {
            Err(_) => {}
            Ok(r) => panic!("a client without a certificate got {}", r.status()),
        }
        phase("--- a client whose certificate another CA signed is refused");
        let stranger = Pki::generate();
        match clock(presenting(&stranger)).await {
            Err(_) => {}
            Ok(r) => panic!("a certificate of another CA got {}", r.status()),
        }
        phase("--- and so is plain http");
        let plain = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let r = plain
            .post(format!("http://{raft}/raft/clock"))
            .header("x-orderq-cluster-secret", "cluster-tests-cluster-secret")
            .header(reqwest::header::CONTENT_LENGTH, 0)
            .send()
            .await;
        assert!(
            r.as_ref().map_or(true, |r| !r.status().is_success()),
            "plain http must not be served: {r:?}"
        );
    })
    .await;
}
