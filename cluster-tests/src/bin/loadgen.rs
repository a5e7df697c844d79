//! The benchmark's load generator: many clients creating one-item orders as fast as the
//! cluster answers, spread over the nodes, for a fixed time; then throughput and latency
//! percentiles.
//!
//! ```text
//! loadgen --targets http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083 \
//!         --clients 64 --duration-secs 20 --skus 100 --admin-token T
//! ```
//!
//! It first loads `--skus` SKUs with a stock no run can exhaust (`PUT /admin/skus`), so every
//! order measures the write path, not `insufficient_stock`. Only loopback targets are accepted.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use cluster::{retry_while_unavailable, Error, NewOrder, NodeClient, SkuSettings};

/// Longest run accepted, so a typo cannot leave a load running for a day.
const MAX_DURATION_SECS: u64 = 3600;
/// How long one order request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed request, so a client facing a dead node does not spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(20);
/// How long to wait for the targets to be ready and the SKUs to load.
const SETUP_LIMIT: Duration = Duration::from_secs(60);

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Load generator for orderq: concurrent POST /v1/orders for a fixed time")]
struct Args {
    /// API base URLs, comma-separated; clients are spread over them round-robin.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    targets: Vec<String>,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    clients: u64,
    /// How long the clients send orders.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=MAX_DURATION_SECS))]
    duration_secs: u64,
    /// How many SKUs to load and spread orders over.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    skus: u64,
    /// Stock loaded per SKU.
    #[arg(long, default_value_t = 1_000_000_000)]
    stock: i64,
    /// Prefix of the SKU ids (`PREFIX-0`, `PREFIX-1`, ...).
    #[arg(long, default_value = "loadgen")]
    sku_prefix: String,
    /// Pay window of the orders; the server's default when absent.
    #[arg(long)]
    pay_within_secs: Option<u64>,
    /// Bearer token for `/admin/*`, when the nodes have one.
    #[arg(long, env = "ORDERQ_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Also print the summary as one JSON line.
    #[arg(long)]
    json: bool,
}

/// What one client saw.
#[derive(Debug, Default)]
struct ClientReport {
    /// Latency of every acknowledged order, in microseconds.
    latencies_us: Vec<u32>,
    /// Failed requests by kind (`HTTP 503 no_leader`, `no answer`, ...).
    errors: BTreeMap<String, u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Error> {
    for target in &args.targets {
        check_loopback(target)?;
    }
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(args.clients as usize)
        .no_proxy()
        .build()
        .map_err(|source| Error::Transport {
            request: "building the HTTP client".to_owned(),
            source,
        })?;
    let nodes: Vec<NodeClient> = args
        .targets
        .iter()
        .map(|target| NodeClient::with_http(target, args.admin_token.clone(), http.clone()))
        .collect();

    for node in &nodes {
        cluster::poll_until(
            &format!("{} to be ready", node.base()),
            SETUP_LIMIT,
            || async {
                if node.is_ready().await {
                    Ok(())
                } else {
                    Err("/readyz is not 200".to_owned())
                }
            },
        )
        .await?;
    }
    let skus: Vec<String> = (0..args.skus)
        .map(|i| format!("{}-{i}", args.sku_prefix))
        .collect();
    eprintln!(
        "loadgen: loading {} SKUs with stock {}",
        skus.len(),
        args.stock
    );
    let settings = SkuSettings {
        stock: args.stock,
        price_cents: 100,
        per_user_limit: 0,
    };
    for sku in &skus {
        retry_while_unavailable(&format!("SKU {sku} to load"), SETUP_LIMIT, || {
            nodes[0].put_sku(sku, &settings)
        })
        .await?;
    }

    eprintln!(
        "loadgen: {} clients over {} target(s) for {} s",
        args.clients,
        nodes.len(),
        args.duration_secs
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_secs);
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..args.clients {
        let node = nodes[client as usize % nodes.len()].clone();
        let skus = skus.clone();
        clients.spawn(send_orders(
            client,
            node,
            skus,
            args.pay_within_secs,
            deadline,
        ));
    }
    let mut report = ClientReport::default();
    while let Some(joined) = clients.join_next().await {
        match joined {
            Ok(client) => {
                report.latencies_us.extend(client.latencies_us);
                for (kind, count) in client.errors {
                    *report.errors.entry(kind).or_default() += count;
                }
            }
            Err(e) => {
                *report
                    .errors
                    .entry(format!("client task: {e}"))
                    .or_default() += 1
            }
        }
    }
    print_summary(&args, report, started.elapsed());
    Ok(())
}

/// One client: creates an order, waits for the answer, repeats until `deadline`.
async fn send_orders(
    client: u64,
    node: NodeClient,
    skus: Vec<String>,
    pay_within_secs: Option<u64>,
    deadline: Instant,
) -> ClientReport {
    let mut report = ClientReport::default();
    // xorshift64: a cheap, per-client reproducible spread over the SKUs.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ (client + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut sent = 0_u64;
    while Instant::now() < deadline {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let sku = &skus[(state % skus.len() as u64) as usize];
        let mut order = NewOrder::single(format!("lg-{client}-{}", sent % 1000), sku, 1);
        order.pay_within_secs = pay_within_secs;
        sent += 1;
        let begun = Instant::now();
        match node.create_order(&order, None).await {
            Ok(_) => {
                let micros = begun.elapsed().as_micros();
                report
                    .latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Err(e) => {
                *report.errors.entry(error_kind(&e)).or_default() += 1;
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    report
}

/// A short label grouping errors of the same kind.
fn error_kind(error: &Error) -> String {
    match error {
        Error::Api { status, code, .. } => format!("HTTP {status} {code}"),
        Error::Transport { source, .. } if source.is_timeout() => "timeout".to_owned(),
        Error::Transport { .. } => "no answer".to_owned(),
        Error::Decode { .. } => "bad body".to_owned(),
        other => other.to_string(),
    }
}

/// Prints totals, throughput and latency percentiles.
fn print_summary(args: &Args, mut report: ClientReport, elapsed: Duration) {
    report.latencies_us.sort_unstable();
    let ok = report.latencies_us.len() as u64;
    let errors: u64 = report.errors.values().sum();
    let rate = ok as f64 / elapsed.as_secs_f64();
    let ms = |p: f64| percentile_us(&report.latencies_us, p) as f64 / 1000.0;
    let (p50, p90, p99, max) = (ms(0.50), ms(0.90), ms(0.99), ms(1.0));
    println!(
        "clients {} targets {} elapsed {:.1} s",
        args.clients,
        args.targets.len(),
        elapsed.as_secs_f64()
    );
    println!("ok {ok} errors {errors}");
    for (kind, count) in &report.errors {
        println!("  {kind}: {count}");
    }
    println!("throughput {rate:.1} orders/s");
    println!("latency ms p50 {p50:.2} p90 {p90:.2} p99 {p99:.2} max {max:.2}");
    if args.json {
        let summary = serde_json::json!({
            "clients": args.clients,
            "targets": args.targets,
            "elapsed_secs": elapsed.as_secs_f64(),
            "ok": ok,
            "errors": errors,
            "errors_by_kind": report.errors,
            "orders_per_sec": rate,
            "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "max": max},
        });
        println!("{summary}");
    }
}

/// The `p` quantile (0..=1) of sorted `values`, nearest-rank; 0 when empty.
fn percentile_us(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Refuses any target that is not an `http://` URL on a loopback address.
fn check_loopback(target: &str) -> Result<(), Error> {
    let url = reqwest::Url::parse(target)
        .map_err(|e| Error::Usage(format!("target {target:?} is not a URL: {e}")))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if url.scheme() == "http" && loopback {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "target {target:?} refused: only http:// on 127.0.0.1 (or another loopback address)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile_us(&sorted, 0.50), 50);
        assert_eq!(percentile_us(&sorted, 0.99), 99);
        assert_eq!(percentile_us(&sorted, 1.0), 100);
        assert_eq!(percentile_us(&[7], 0.5), 7);
        assert_eq!(percentile_us(&[], 0.5), 0);
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:8081",
            "http://localhost:8080",
            "http://[::1]:8080",
        ] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://10.0.0.1:8080",
            "https://127.0.0.1:8080",
            "http://example.com",
            "127.0.0.1:8080",
        ] {
            assert!(check_loopback(refused).is_err(), "{refused}");
        }
    }
}
