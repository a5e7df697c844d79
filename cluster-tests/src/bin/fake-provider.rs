//! A fake payment provider and webhook receiver for demos: answers POSTs after `--latency-ms`,
//! fails the first `--fail-first` calls and then `--fail-rate` of them with 500, and prints one
//! JSON line per call (message id, attempt, idempotency key, whether its signature verified,
//! whether it was acknowledged). With `--signing-secret` it refuses calls not signed with it.
//! `--lose-first N` acts on the first N calls (the refund is made) but answers them too late.
//! It answers `GET /refunds/{order id}` truthfully with what it did about that order's refund,
//! lost answers included: point `[payment] refund_status_url` at `http://127.0.0.1:PORT/refunds`.
//!
//! `cargo run --bin fake-provider -- --port 9900 --fail-rate 0.5`

use std::time::Duration;

use clap::Parser;
use cluster::receiver::{Receiver, ReceiverOptions};

/// Flags.
#[derive(Debug, Parser)]
#[command(about = "A fake payment provider / webhook receiver for orderq demos and tests")]
struct Args {
    /// Port on 127.0.0.1 (0 picks one).
    #[arg(long, default_value_t = 9900)]
    port: u16,
    /// Share of calls answered 500, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Answer the first N calls 500.
    #[arg(long, default_value_t = 0)]
    fail_first: u64,
    /// Act on the first N calls (acknowledge them, make the refund) but lose their answer.
    #[arg(long, default_value_t = 0)]
    lose_first: u64,
    /// Delay before each answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Refuse (500) every call whose `X-Orderq-Signature` does not verify under this key (the
    /// `signing_secret` of the group, or `[payment] signing_secret` for refunds).
    #[arg(long, env = "FAKE_PROVIDER_SIGNING_SECRET", hide_env_values = true)]
    signing_secret: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), cluster::Error> {
    let args = Args::parse();
    let receiver = Receiver::start(
        args.port,
        ReceiverOptions {
            fail_rate: args.fail_rate,
            fail_first: args.fail_first,
            latency_ms: args.latency_ms,
            lose_first: args.lose_first,
        },
    )
    .await?;
    receiver.require_signature(args.signing_secret.clone());
    eprintln!(
        "fake-provider listening: {} (refund status: {})",
        receiver.url(),
        receiver.status_url()
    );
    let mut printed = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let received = receiver.received();
        for r in &received[printed..] {
            println!(
                "{}",
                serde_json::json!({"id": r.id, "attempt": r.attempt, "idempotency_key": r.idempotency_key, "signature_valid": r.signature_valid, "acked": r.acked})
            );
        }
        printed = received.len();
    }
    Ok(())
}
