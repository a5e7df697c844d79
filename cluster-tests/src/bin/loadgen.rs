//! The load generator: many concurrent clients against any orderq cluster on this machine, per
//! scenario; then throughput and latency percentiles per outcome, and checks of the result
//! against the cluster. The exit status is non-zero when a check fails.
//!
//! ```text
//! # the benchmark's default: one-item orders for 20 s
//! loadgen --targets http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083 \
//!         --clients 64 --duration-secs 20 --admin-token T
//! # a flash sale: 200,000 purchases by 50,000 users for 10,000 units
//! loadgen --scenario seckill --requests 200000 --units 10000 --users 50000 --clients 256 ...
//! # normal orders (create then pay) while a flood of purchases runs beside them
//! loadgen --scenario orders --clients 16 --duration-secs 10 --flood-clients 256 ...
//! # publishing messages of 512 bytes
//! loadgen --scenario publish --topic bench --payload-bytes 512 ...
//! ```
//!
//! Scenarios: `create` (one-item orders; the default, what `make bench` runs), `orders` (create,
//! then pay), `seckill` (`--users` buyers, `--units` units of a fresh SKU), `publish`
//! (`POST /v1/topics/{topic}/messages`). A run lasts `--duration-secs`, or until `--requests`
//! requests were sent when that is given. Only loopback targets are accepted.
//!
//! Checks after the run: every SKU it used holds `available + reserved + sold == stock`, none
//! negative; every order answered 201 exists; a sale sold exactly as many units as it answered
//! 201 (`units sold == min(stock, accepted)`), never more than its stock; a publish run got at
//! least one message accepted.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use cluster::load_stats::LoadStats;
use cluster::{retry_while_unavailable, Error, NewOrder, NodeClient, Request, SkuSettings};
use reqwest::Method;
use serde_json::{json, Value};

/// Longest run accepted, so a typo cannot leave a load running for a day.
const MAX_DURATION_SECS: u64 = 3600;
/// How long one request may take before it counts as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a request got no answer, so a client facing a dead node does not spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(20);
/// How long to wait for the targets to be ready and the SKUs to load.
const SETUP_LIMIT: Duration = Duration::from_secs(60);
/// Concurrent reads when checking that every acknowledged order exists.
const CHECK_CONCURRENCY: usize = 64;

/// What the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// `POST /v1/orders` of one item.
    Create,
    /// `POST /v1/orders`, then `POST /v1/orders/{id}/pay`.
    Orders,
    /// `POST /v1/seckill/{sku}` by `--users` buyers for `--units` units.
    Seckill,
    /// `POST /v1/topics/{topic}/messages`.
    Publish,
}

/// Command-line arguments.
#[derive(Debug, Clone, Parser)]
#[command(
    about = "Load generator for orderq: concurrent clients per scenario, latency per outcome, checks of the result"
)]
struct Args {
    /// API base URLs, comma-separated; clients are spread over them round-robin.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    targets: Vec<String>,
    /// What the clients do.
    #[arg(long, value_enum, default_value_t = Scenario::Create)]
    scenario: Scenario,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    clients: u64,
    /// How long the clients send (ignored when `--requests` is given).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=MAX_DURATION_SECS))]
    duration_secs: u64,
    /// Send exactly this many requests of the scenario, then stop (0: run for the duration).
    #[arg(long, default_value_t = 0)]
    requests: u64,
    /// `create`/`orders`: how many SKUs to load and spread orders over.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    skus: u64,
    /// `create`/`orders`: stock loaded per SKU.
    #[arg(long, default_value_t = 1_000_000_000)]
    stock: i64,
    /// Prefix of the SKU ids (`PREFIX-0`, ...; a sale's SKU is `PREFIX-sale-<run>`).
    #[arg(long, default_value = "loadgen")]
    sku_prefix: String,
    /// Pay window of the orders; the server's default when absent.
    #[arg(long)]
    pay_within_secs: Option<u64>,
    /// `seckill`: units on sale.
    #[arg(long, default_value_t = 10_000)]
    units: i64,
    /// `seckill`: distinct buyers the purchases are spread over.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    users: u64,
    /// `seckill`: the sale's per-user limit (0: none).
    #[arg(long, default_value_t = 0)]
    per_user_limit: i64,
    /// Extra clients flooding a flash sale beside the scenario, for as long as it runs: to
    /// measure how the scenario fares during a sale. Their answers are labelled `flood ...`.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=4096))]
    flood_clients: u64,
    /// Units of the flood's SKU (large: the flood keeps reaching Raft instead of sold_out).
    #[arg(long, default_value_t = 1_000_000_000)]
    flood_units: i64,
    /// `publish`: the topic.
    #[arg(long, default_value = "loadgen")]
    topic: String,
    /// `publish`: bytes of payload per message.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    payload_bytes: u64,
    /// Skip the checks against the cluster after the run.
    #[arg(long)]
    no_check: bool,
    /// Bearer token for `/admin/*`, when the nodes have one.
    #[arg(long, env = "ORDERQ_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Also print the summary as one JSON line.
    #[arg(long)]
    json: bool,
}

/// A flash sale's SKU and what the run needs to check it.
#[derive(Debug, Clone)]
struct Sale {
    /// The SKU id.
    sku: String,
    /// Units loaded.
    units: i64,
    /// Label prefix of its answers (`seckill` or `flood`).
    label: &'static str,
}

/// What is shared by the clients of one run.
struct Plan {
    /// The arguments.
    args: Args,
    /// One client per target.
    nodes: Vec<NodeClient>,
    /// `create`/`orders`: the SKUs orders spread over.
    skus: Vec<String>,
    /// `seckill`: the sale.
    sale: Option<Sale>,
    /// `--flood-clients`: the flood's sale.
    flood: Option<Sale>,
    /// Distinguishes this run's idempotency keys and SKUs from earlier runs'.
    run_id: u64,
    /// The run's start.
    started: Instant,
    /// When duration mode stops.
    deadline: Instant,
    /// Requests handed out so far (count mode).
    issued: AtomicU64,
    /// Payload of published messages.
    payload: Value,
}

/// What one client saw.
#[derive(Debug, Default)]
struct ClientReport {
    /// Latencies by outcome.
    stats: LoadStats,
    /// Ids of orders answered 201, with whether they were paid (200 to pay).
    orders: Vec<(String, bool)>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadgen: a check failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the load and the checks; `Ok(false)` when a check failed.
async fn run(args: Args) -> Result<bool, Error> {
    for target in &args.targets {
        check_loopback(target)?;
    }
    let http = cluster::client::build_http(
        reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host((args.clients + args.flood_clients) as usize),
    )?;
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
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);

    let mut skus = Vec::new();
    if matches!(args.scenario, Scenario::Create | Scenario::Orders) {
        skus = (0..args.skus)
            .map(|i| format!("{}-{i}", args.sku_prefix))
            .collect();
        eprintln!(
            "loadgen: loading {} SKUs with stock {}",
            skus.len(),
            args.stock
        );
        for sku in &skus {
            load_sku(&nodes[0], sku, args.stock, 0).await?;
        }
    }
    let sale = if args.scenario == Scenario::Seckill {
        let sale = Sale {
            sku: format!("{}-sale-{run_id}", args.sku_prefix),
            units: args.units,
            label: "seckill",
        };
        eprintln!("loadgen: sale of {} units of {}", sale.units, sale.sku);
        load_sku(&nodes[0], &sale.sku, sale.units, args.per_user_limit).await?;
        Some(sale)
    } else {
        None
    };
    let flood = if args.flood_clients > 0 {
        let flood = Sale {
            sku: format!("{}-flood-{run_id}", args.sku_prefix),
            units: args.flood_units,
            label: "flood",
        };
        load_sku(&nodes[0], &flood.sku, flood.units, 0).await?;
        Some(flood)
    } else {
        None
    };
    let payload = json!({ "data": "x".repeat(args.payload_bytes as usize) });

    eprintln!(
        "loadgen: scenario {:?}, {} clients (+{} flooding) over {} target(s), {}",
        args.scenario,
        args.clients,
        args.flood_clients,
        nodes.len(),
        if args.requests > 0 {
            format!("{} requests", args.requests)
        } else {
            format!("{} s", args.duration_secs)
        }
    );
    let started = Instant::now();
    let plan = Arc::new(Plan {
        deadline: started + Duration::from_secs(args.duration_secs),
        args: args.clone(),
        nodes,
        skus,
        sale,
        flood,
        run_id,
        started,
        issued: AtomicU64::new(0),
        payload,
    });
    let main_clients = spawn_clients(&plan, args.clients, false);
    let flood_clients = spawn_clients(&plan, args.flood_clients, true);
    let report = join(main_clients).await;
    let elapsed = started.elapsed();
    // The flood lasts as long as the scenario: it stops when the scenario's clients are done.
    plan.issued.store(u64::MAX, Ordering::SeqCst);
    let mut flood_report = join(flood_clients).await;
    let mut stats = report.stats;
    stats.merge(std::mem::take(&mut flood_report.stats));
    stats.finish();
    print_summary(&plan, &stats, elapsed);

    if args.no_check {
        return Ok(true);
    }
    let mut ok = true;
    let mut orders = report.orders;
    orders.extend(flood_report.orders);
    if !orders.is_empty() {
        ok &= check_orders(&plan, &orders).await;
    }
    for sku in &plan.skus {
        ok &= check_sku(&plan, sku, args.stock).await;
    }
    for sale in plan.sale.iter().chain(plan.flood.iter()) {
        ok &= check_sale(&plan, sale, &stats).await;
    }
    if args.scenario == Scenario::Publish && stats.count("publish 201") == 0 {
        eprintln!(
            "check FAILED: no message was accepted by POST /v1/topics/{}/messages; answers: {:?}",
            args.topic,
            stats.outcomes.keys().collect::<Vec<_>>()
        );
        if stats.count("publish 404") > 0 {
            eprintln!("  (404: this cluster does not serve the queue's publish route yet)");
        }
        ok = false;
    }
    if ok {
        eprintln!("loadgen: every check passed");
    }
    Ok(ok)
}

/// Loads `sku` with `stock` units, retrying while the cluster is unavailable.
async fn load_sku(
    node: &NodeClient,
    sku: &str,
    stock: i64,
    per_user_limit: i64,
) -> Result<(), Error> {
    let settings = SkuSettings {
        stock,
        price_cents: 100,
        per_user_limit,
    };
    retry_while_unavailable(&format!("SKU {sku} to load"), SETUP_LIMIT, || {
        node.put_sku(sku, &settings)
    })
    .await
    .map(|_| ())
}

fn spawn_clients(plan: &Arc<Plan>, count: u64, flood: bool) -> tokio::task::JoinSet<ClientReport> {
    let mut set = tokio::task::JoinSet::new();
    for client in 0..count {
        set.spawn(client_loop(plan.clone(), client, flood));
    }
    set
}

async fn join(mut set: tokio::task::JoinSet<ClientReport>) -> ClientReport {
    let mut all = ClientReport::default();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(client) => {
                all.stats.merge(client.stats);
                all.orders.extend(client.orders);
            }
            Err(e) => eprintln!("loadgen: a client task failed: {e}"),
        }
    }
    all
}

/// Whether a client should send another request; the flood runs until the scenario is done.
fn next_request(plan: &Plan, flood: bool) -> bool {
    let args = &plan.args;
    if flood {
        return plan.issued.load(Ordering::SeqCst) != u64::MAX;
    }
    if args.requests > 0 {
        plan.issued.fetch_add(1, Ordering::SeqCst) < args.requests
    } else {
        Instant::now() < plan.deadline
    }
}

/// One client: sends the scenario's requests one at a time until the run ends.
async fn client_loop(plan: Arc<Plan>, client: u64, flood: bool) -> ClientReport {
    let mut report = ClientReport::default();
    let node = &plan.nodes[client as usize % plan.nodes.len()];
    // xorshift64: a cheap, per-client reproducible spread over SKUs and users.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64
        ^ (client + 1 + u64::from(flood) * 1_000_003).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut sent = 0_u64;
    while next_request(&plan, flood) {
        sent += 1;
        let step = if flood {
            let sale = plan.flood.as_ref();
            Step::Buy(sale.map(|s| s.sku.clone()).unwrap_or_default(), "flood")
        } else {
            match plan.args.scenario {
                Scenario::Create | Scenario::Orders => {
                    let sku = &plan.skus[(random() % plan.skus.len() as u64) as usize];
                    Step::Order(sku.clone(), plan.args.scenario == Scenario::Orders)
                }
                Scenario::Seckill => {
                    let sale = plan.sale.as_ref();
                    Step::Buy(sale.map(|s| s.sku.clone()).unwrap_or_default(), "seckill")
                }
                Scenario::Publish => Step::Publish,
            }
        };
        let failed = match step {
            Step::Order(sku, pay) => {
                let mut order = NewOrder::single(format!("lg-{client}-{}", sent % 1000), sku, 1);
                order.pay_within_secs = plan.args.pay_within_secs;
                let request = Request::json(Method::POST, "/v1/orders", &order);
                let (answer, body) = send(&plan, node, "create", request, &mut report).await;
                match (answer, body.as_ref().and_then(order_id)) {
                    (Some(201), Some(id)) if pay => {
                        let request = Request::json(
                            Method::POST,
                            format!("/v1/orders/{id}/pay"),
                            &json!({ "payment_ref": format!("lg-pay-{id}") }),
                        );
                        let (paid, _) = send(&plan, node, "pay", request, &mut report).await;
                        report.orders.push((id, paid == Some(200)));
                        paid.is_none()
                    }
                    (Some(201), Some(id)) => {
                        report.orders.push((id, false));
                        false
                    }
                    (answer, _) => answer.is_none(),
                }
            }
            Step::Buy(sku, label) => {
                let user = format!("lg-user-{}", random() % plan.args.users);
                let key = format!("lg-{}-{label}-{client}-{sent}", plan.run_id);
                let request = Request::json(
                    Method::POST,
                    format!("/v1/seckill/{sku}"),
                    &json!({ "user_id": user }),
                )
                .idempotency_key(&key);
                let (answer, body) = send(&plan, node, label, request, &mut report).await;
                if let (Some(201), Some(id)) = (answer, body.as_ref().and_then(order_id)) {
                    report.orders.push((id, false));
                }
                answer.is_none()
            }
            Step::Publish => {
                let request = Request::json(
                    Method::POST,
                    format!("/v1/topics/{}/messages", plan.args.topic),
                    &json!({ "key": format!("k{}", random() % 1024), "payload": plan.payload }),
                )
                .idempotency_key(&format!("lg-{}-pub-{client}-{sent}", plan.run_id));
                send(&plan, node, "publish", request, &mut report)
                    .await
                    .0
                    .is_none()
            }
        };
        if failed {
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
    report
}

/// One request of a client's loop.
enum Step {
    /// Create an order of one unit of the SKU; pay it too when set.
    Order(String, bool),
    /// Buy one unit of the SKU at its flash sale, labelled as given.
    Buy(String, &'static str),
    /// Publish one message.
    Publish,
}

/// Sends `request`, recording its outcome under `label`; answers the status and the JSON body
/// (`None` when no answer came).
async fn send(
    plan: &Plan,
    node: &NodeClient,
    label: &str,
    request: Request,
    report: &mut ClientReport,
) -> (Option<u16>, Option<Value>) {
    let sent = plan.started.elapsed();
    let answer = node.send(request).await;
    let answered = plan.started.elapsed();
    match answer {
        Ok(response) => {
            let outcome = match response.error_code() {
                Some(code) => format!("{label} {} {code}", response.status),
                None => format!("{label} {}", response.status),
            };
            report.stats.record(outcome, sent, answered);
            (Some(response.status), Some(response.json()))
        }
        Err(e) => {
            report
                .stats
                .record(format!("{label} {}", error_kind(&e)), sent, answered);
            (None, None)
        }
    }
}

fn order_id(body: &Value) -> Option<String> {
    body.get("id")?.as_str().map(str::to_owned)
}

/// A short label grouping failures of the same kind.
fn error_kind(error: &Error) -> String {
    match error {
        Error::Transport { source, .. } if source.is_timeout() => "ERROR timeout".to_owned(),
        Error::Transport { .. } => "ERROR no answer".to_owned(),
        other => format!("ERROR {other}"),
    }
}

/// Whether an outcome label is an error: no answer, or a 5xx.
fn is_error(label: &str) -> bool {
    label.contains("ERROR") || label.split(' ').nth(1).is_some_and(|s| s.starts_with('5'))
}

fn print_summary(plan: &Plan, stats: &LoadStats, elapsed: Duration) {
    let args = &plan.args;
    let total = stats.total();
    let errors: u64 = stats
        .outcomes
        .iter()
        .filter(|(label, _)| is_error(label))
        .map(|(_, s)| s.latencies_us.len() as u64)
        .sum();
    let rate = total as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    println!(
        "scenario {:?} clients {} flood-clients {} targets {} elapsed {:.2} s",
        args.scenario,
        args.clients,
        args.flood_clients,
        args.targets.len(),
        elapsed.as_secs_f64()
    );
    println!("requests {total} errors {errors} throughput {rate:.1} req/s");
    print!("{}", stats.render(elapsed));
    if args.json {
        let summary = json!({
            "scenario": format!("{:?}", args.scenario).to_lowercase(),
            "clients": args.clients,
            "flood_clients": args.flood_clients,
            "targets": args.targets,
            "elapsed_secs": elapsed.as_secs_f64(),
            "requests": total,
            "errors": errors,
            "requests_per_sec": rate,
            "outcomes": stats.to_json(elapsed),
        });
        println!("{summary}");
    }
}

/// Every order answered 201 exists (and is paid when its payment was answered 200).
async fn check_orders(plan: &Plan, orders: &[(String, bool)]) -> bool {
    let node = &plan.nodes[0];
    let chunks: Vec<Vec<(String, bool)>> = orders
        .chunks(orders.len().div_ceil(CHECK_CONCURRENCY).max(1))
        .map(<[_]>::to_vec)
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in chunks {
        let node = node.clone();
        tasks.spawn(async move {
            let mut missing = Vec::new();
            for (id, paid) in chunk {
                let read = retry_while_unavailable(&format!("order {id}"), SETUP_LIMIT, || {
                    node.get_order(&id, false)
                })
                .await;
                match read {
                    Ok(order) if !paid || order.state == cluster::OrderState::Paid => {}
                    Ok(order) => missing.push(format!("{id} is {:?}, was paid", order.state)),
                    Err(e) => missing.push(format!("{id}: {e}")),
                }
            }
            missing
        });
    }
    let mut missing = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        missing.extend(joined.unwrap_or_else(|e| vec![format!("check task: {e}")]));
    }
    if missing.is_empty() {
        eprintln!("check ok: all {} acknowledged orders exist", orders.len());
        true
    } else {
        eprintln!(
            "check FAILED: {} of {} acknowledged orders are missing or wrong, e.g. {:?}",
            missing.len(),
            orders.len(),
            &missing[..missing.len().min(5)]
        );
        false
    }
}

/// The SKU holds `available + reserved + sold == stock`, none negative.
async fn check_sku(plan: &Plan, sku: &str, stock: i64) -> bool {
    match plan.nodes[0].get_sku(sku, false).await {
        Ok(read) if read.holds_invariant(stock) => true,
        Ok(read) => {
            eprintln!("check FAILED: SKU {sku} breaks its invariant: {read:?}");
            false
        }
        Err(e) => {
            eprintln!("check FAILED: reading SKU {sku}: {e}");
            false
        }
    }
}

/// A sale sold exactly the units it answered 201 for (`min(stock, accepted)`, give or take the
/// purchases whose answer never came), and its SKU holds its invariant.
async fn check_sale(plan: &Plan, sale: &Sale, stats: &LoadStats) -> bool {
    let accepted = stats.count(&format!("{} 201", sale.label)) as i64;
    let unknown = stats.count(&format!("{} ERROR", sale.label)) as i64
        + stats.count(&format!("{} 5", sale.label)) as i64;
    let read = match plan.nodes[0].get_sku(&sale.sku, false).await {
        Ok(read) => read,
        Err(e) => {
            eprintln!("check FAILED: reading SKU {}: {e}", sale.sku);
            return false;
        }
    };
    let sold = read.reserved + read.sold;
    let expected = sale.units.min(accepted);
    let ok = read.holds_invariant(sale.units)
        && sold <= sale.units
        && (expected..=expected.saturating_add(unknown).min(sale.units)).contains(&sold);
    if ok {
        eprintln!(
            "check ok: sale {}: {sold} units sold of {}, {accepted} accepted",
            sale.sku, sale.units
        );
    } else {
        eprintln!(
            "check FAILED: sale {}: {sold} units sold of {}, {accepted} accepted, {unknown} unanswered: {read:?}",
            sale.sku, sale.units
        );
    }
    ok
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

    #[test]
    fn errors_are_no_answer_or_5xx() {
        assert!(is_error("seckill ERROR no answer"));
        assert!(is_error("create 503 no_leader"));
        assert!(!is_error("seckill 409 sold_out"));
        assert!(!is_error("seckill 429 overloaded"));
    }

    #[test]
    fn the_old_flags_still_parse() {
        let args = Args::try_parse_from([
            "loadgen",
            "--targets",
            "http://127.0.0.1:8081,http://127.0.0.1:8082",
            "--clients",
            "64",
            "--duration-secs",
            "20",
            "--admin-token",
            "t",
        ])
        .unwrap();
        assert_eq!(args.scenario, Scenario::Create);
        assert_eq!(args.targets.len(), 2);
    }
}
