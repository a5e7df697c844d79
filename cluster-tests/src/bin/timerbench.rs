//! The time wheel's benchmark: creates many orders whose close timers come due together (or far
//! in the future, to measure what pending timers cost), then measures how fast they all close.
//!
//! ```text
//! timerbench --targets http://127.0.0.1:8081 --orders 100000 --expire-in-secs 30 --admin-token T
//! timerbench --targets http://127.0.0.1:8081 --orders 1000000 --expire-in-secs 86400 --no-wait
//! timerbench --targets http://127.0.0.1:8081 --messages --orders 100000 --expire-in-secs 30
//! ```
//!
//! With `--messages` it publishes delayed messages instead (`deliver_at` in the same second) to a
//! topic whose push subscription delivers to a webhook receiver it runs itself, and measures how
//! long after the deadline the last one arrived; any call before the deadline fails the run.
//!
//! Every order's pay window is chosen so that its deadline falls in the same wall-clock second
//! (`--expire-in-secs` from the start, rounded to a whole second). With `--no-wait` it stops after
//! creating them (for memory figures); otherwise it waits until the SKU has nothing reserved and
//! reports how long after the deadline the last order closed, and checks the stock is whole.
//! Only loopback targets are accepted; the run is bounded in time.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use cluster::{poll_until, NewOrder, NodeClient, Receiver, Request, SkuSettings, TimerStats};
use reqwest::Method;
use serde_json::json;

/// Longest the whole run may take.
const RUN_LIMIT: Duration = Duration::from_secs(3600);

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Time wheel benchmark: many orders expiring in the same second, or far ahead")]
struct Args {
    /// API base URLs, comma-separated (loopback only).
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    targets: Vec<String>,
    /// Orders to create (messages to publish with `--messages`).
    #[arg(long, default_value_t = 100_000)]
    orders: u64,
    /// Publish delayed messages instead of creating orders.
    #[arg(long)]
    messages: bool,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: u64,
    /// Seconds from the start until every order's deadline.
    #[arg(long, default_value_t = 30)]
    expire_in_secs: u64,
    /// The SKU to use (loaded with exactly `--orders` units).
    #[arg(long, default_value = "timerbench")]
    sku: String,
    /// Stop after creating the orders.
    #[arg(long)]
    no_wait: bool,
    /// Bearer token for `/admin/*`.
    #[arg(long, env = "ORDERQ_ADMIN_TOKEN")]
    admin_token: Option<String>,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args
        .targets
        .iter()
        .any(|t| !t.starts_with("http://127.") && !t.starts_with("http://localhost"))
    {
        eprintln!("timerbench: only loopback targets are allowed");
        return ExitCode::from(2);
    }
    match tokio::time::timeout(RUN_LIMIT, run(args)).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("timerbench: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("timerbench: run exceeded {RUN_LIMIT:?}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let clients: Vec<NodeClient> = args
        .targets
        .iter()
        .map(|t| NodeClient::new(t.clone(), args.admin_token.clone()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    if args.messages {
        return run_messages(&args, &clients).await;
    }
    let first = clients.first().ok_or("no targets")?.clone();
    let stock = i64::try_from(args.orders).map_err(|e| e.to_string())?;
    let settings = SkuSettings::new(stock, 100);
    first
        .put_sku(&args.sku, &settings)
        .await
        .map_err(|e| e.to_string())?;
    let before = first.timers().await.map_err(|e| e.to_string())?;

    // Every deadline in the same whole second.
    let deadline_ms = (wall_ms() / 1000 + args.expire_in_secs as i64) * 1000;
    let sku = args.sku.clone();
    let (failed, create_secs) = drive(&clients, args.clients, args.orders, move |client, i| {
        let sku = sku.clone();
        async move {
            let secs_left = (deadline_ms - wall_ms()) / 1000;
            let order = NewOrder {
                pay_within_secs: Some(secs_left.max(1) as u64),
                ..NewOrder::single(format!("tb-{}", i % 10_000), sku, 1)
            };
            client.create_order(&order, None).await.is_ok()
        }
    })
    .await?;
    let created = args.orders - failed;
    println!(
        "created {created} orders ({failed} failed) in {create_secs:.1} s: {:.0} orders/s",
        created as f64 / create_secs
    );
    let Some(limit) = armed(&first, &before, &args, deadline_ms, "every close").await? else {
        return Ok(());
    };
    let sku = poll_until("every order closed", limit, || async {
        let sku = first
            .get_sku(&args.sku, true)
            .await
            .map_err(|e| e.to_string())?;
        if sku.reserved == 0 && wall_ms() >= deadline_ms {
            Ok(sku)
        } else {
            Err(format!("{} reserved", sku.reserved))
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    let closed_after = wall_ms() - deadline_ms;
    let after = first.timers().await.map_err(|e| e.to_string())?;
    println!(
        "all closed {:.2} s after the deadline (observed by polling every 100 ms); fired {}; lag p99 {:?} ms",
        closed_after as f64 / 1000.0,
        after.fired - before.fired,
        after.lag_ms_p99
    );
    println!(
        "stock available {} reserved {} sold {} of {}",
        sku.available, sku.reserved, sku.sold, stock
    );
    if sku.available != stock || sku.reserved != 0 {
        return Err("stock was not restored exactly".into());
    }
    Ok(())
}

/// Makes `total` calls `call(client, i)` from `workers` concurrent workers spread over the
/// targets; answers how many failed and how many seconds it took.
async fn drive<F, Fut>(
    targets: &[NodeClient],
    workers: u64,
    total: u64,
    call: F,
) -> Result<(u64, f64), String>
where
    F: Fn(NodeClient, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let client = targets[(w as usize) % targets.len()].clone();
        let (next, failed, call) = (next.clone(), failed.clone(), call.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if !call(client.clone(), i).await {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())?;
    }
    Ok((
        failed.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    ))
}

/// After the timers are armed: prints how many are pending, and answers how long to wait for
/// `what` (until the deadline and a while after), or `None` with `--no-wait`.
async fn armed(
    first: &NodeClient,
    before: &TimerStats,
    args: &Args,
    deadline_ms: i64,
    what: &str,
) -> Result<Option<Duration>, String> {
    let armed = first.timers().await.map_err(|e| e.to_string())?;
    println!("timers pending {} (was {})", armed.pending, before.pending);
    if args.no_wait {
        return Ok(None);
    }
    let deadline_left = (deadline_ms - wall_ms()).max(0);
    println!(
        "due in {:.1} s; waiting for {what}",
        deadline_left as f64 / 1000.0
    );
    Ok(Some(
        Duration::from_millis(deadline_left as u64) + Duration::from_secs(300),
    ))
}

/// Sends `request` to `client`; an answer other than 2xx is an error.
async fn expect_ok(client: &NodeClient, request: Request) -> Result<serde_json::Value, String> {
    let what = format!("{} {}", request.method, request.path);
    let response = client.send(request).await.map_err(|e| e.to_string())?;
    if response.is_success() {
        Ok(response.json())
    } else {
        Err(format!("{what}: {} {}", response.status, response.body))
    }
}

/// Publishes `--orders` messages all due in the same second and waits until every one reached
/// the receiver.
async fn run_messages(args: &Args, clients: &[NodeClient]) -> Result<(), String> {
    let first = clients.first().ok_or("no targets")?.clone();
    let receiver = Receiver::acking().await.map_err(|e| e.to_string())?;
    let topic = format!("{}.delayed", args.sku);
    let group = format!("{}-delayed", args.sku);
    expect_ok(
        &first,
        Request::json(
            Method::PUT,
            format!("/admin/subscriptions/{group}"),
            &json!({
                "topic": topic,
                "start": "latest",
                "push": {"url": receiver.url(), "timeout_ms": 5000},
                "max_in_flight": 1000,
            }),
        ),
    )
    .await?;
    let before = first.timers().await.map_err(|e| e.to_string())?;
    let deadline_ms = (wall_ms() / 1000 + args.expire_in_secs as i64) * 1000;
    let deliver_at = time::OffsetDateTime::from_unix_timestamp(deadline_ms / 1000)
        .map_err(|e| e.to_string())?
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    let (failed, publish_secs) = drive(clients, args.clients, args.orders, move |client, i| {
        let request = Request::json(
            Method::POST,
            format!("/v1/topics/{topic}/messages"),
            &json!({"key": format!("m{i}"), "payload": {"n": i}, "deliver_at": deliver_at}),
        );
        async move { expect_ok(&client, request).await.is_ok() }
    })
    .await?;
    let published = args.orders - failed;
    println!(
        "published {published} delayed messages ({failed} failed) in {publish_secs:.1} s: {:.0}/s",
        published as f64 / publish_secs
    );
    let Some(limit) = armed(&first, &before, args, deadline_ms, "every delivery").await? else {
        return Ok(());
    };
    poll_until("every message delivered", limit, || async {
        let n = receiver.acked_ids().len() as u64;
        if n >= published {
            Ok(())
        } else {
            Err(format!("{n} of {published} delivered"))
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    let calls = receiver.received();
    let first_call = calls.iter().map(|r| r.at_ms).min().unwrap_or(0);
    let last_ack = calls
        .iter()
        .filter(|r| r.acked)
        .map(|r| r.at_ms)
        .max()
        .unwrap_or(0);
    let after = first.timers().await.map_err(|e| e.to_string())?;
    println!(
        "first delivery {:.2} s after the due time, last {:.2} s after; {} calls for {published} messages; fired {}; lag p99 {:?} ms",
        (first_call - deadline_ms) as f64 / 1000.0,
        (last_ack - deadline_ms) as f64 / 1000.0,
        calls.len(),
        after.fired - before.fired,
        after.lag_ms_p99
    );
    if first_call < deadline_ms {
        return Err(format!(
            "a message was delivered {} ms before its deliver_at",
            deadline_ms - first_call
        ));
    }
    Ok(())
}
