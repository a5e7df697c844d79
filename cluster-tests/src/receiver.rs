//! [`Receiver`]: a real HTTP webhook receiver and fake payment provider, for the queue's tests and
//! the README demo (`src/bin/fake-provider.rs`). It answers every POST after a configurable
//! latency, fails the first N calls and then a configurable share of them (500), refuses calls
//! whose signature does not verify when it is given the key, and records every call it received.
//! It can also act on a call and lose the answer (`lose_first`: the refund is made, the caller
//! hears nothing in time), and as a payment provider it answers `GET /refunds/{order id}` with
//! what it did about that order's refund (`{"status": "refunded" | "failed" | "unknown"}`), the
//! lookup behind `[payment] refund_status_url`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use warp::http::{HeaderMap, StatusCode};
use warp::Filter;

use crate::error::{Error, Result};
use crate::wait::poll_until;

/// How the receiver answers. Changeable while it runs ([`Receiver::set_options`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReceiverOptions {
    /// Share of calls answered 500 (0.0 to 1.0), after the first `fail_first`.
    pub fail_rate: f64,
    /// The first this many calls are answered 500.
    pub fail_first: u64,
    /// Delay before each answer.
    pub latency_ms: u64,
    /// The first this many calls are acted on (acknowledged, a refund made) but answered only
    /// after [`LOST_ANSWER_DELAY`], past any caller's timeout: the answer is lost.
    pub lose_first: u64,
}

/// How long a call whose answer is lost is held before it is answered.
pub const LOST_ANSWER_DELAY: Duration = Duration::from_secs(30);

/// What a provider says about one order's refund, from the calls it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    /// A call naming the order was acknowledged: the refund was made.
    Refunded,
    /// Calls named the order, none was acknowledged.
    Failed,
    /// No call named the order.
    Unknown,
}

impl RefundStatus {
    /// The contract's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Refunded => "refunded",
            RefundStatus::Failed => "failed",
            RefundStatus::Unknown => "unknown",
        }
    }
}

/// The order a call is about: the payload's order id, else the idempotency key (orderq sends
/// the order id as both for a refund).
pub fn order_of(call: &Received) -> Option<String> {
    call.body["payload"]["id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| call.idempotency_key.clone())
}

/// One call the receiver got.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// `X-Orderq-Message-Id`.
    pub id: String,
    /// `X-Orderq-Attempt`.
    pub attempt: u32,
    /// `Idempotency-Key`, if sent.
    pub idempotency_key: Option<String>,
    /// Milliseconds since the epoch when it arrived.
    pub at_ms: i64,
    /// The JSON body.
    pub body: Value,
    /// Whether it was answered 2xx.
    pub acked: bool,
    /// Whether its `X-Orderq-Signature` verified under the key the receiver requires
    /// ([`Receiver::require_signature`]); `None` when it requires none.
    pub signature_valid: Option<bool>,
}

/// What the running server shares with its handle.
struct Shared {
    /// How to answer.
    options: Mutex<ReceiverOptions>,
    /// Calls so far, and the log.
    log: Mutex<Vec<Received>>,
    /// Failure draws.
    rng: Mutex<u64>,
    /// The key calls must be signed with; calls without a valid signature are answered 500.
    signing_secret: Mutex<Option<String>>,
    /// Set while the receiver is "dead" ([`Receiver::go_dark`]): calls are neither acted on nor
    /// answered in time.
    dark: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Whether the receiver is dark.
    fn is_dark(&self) -> bool {
        self.dark.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The receiver died before answering call `index`: it was not acted on.
    fn unack(&self, index: usize) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(call) = log.get_mut(index) {
            call.acked = false;
        }
    }

    /// Answers a call: its index in the log, whether it is acknowledged, and how long to wait
    /// before answering.
    fn answer(&self, headers: &HeaderMap, body: &[u8]) -> (usize, bool, u64) {
        let options = self.options.lock().map(|o| *o).unwrap_or_default();
        let mut log = match self.log.lock() {
            Ok(log) => log,
            Err(poisoned) => poisoned.into_inner(),
        };
        let calls = log.len() as u64;
        let draw = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            (*rng >> 11) as f64 / (1u64 << 53) as f64
        };
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let key = self
            .signing_secret
            .lock()
            .map(|k| k.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        let signature_valid = key.map(|key| {
            header("x-orderq-signature").is_some_and(|h| {
                crate::signature::verify(&h, &key, body, now_ms().div_euclid(1000))
            })
        });
        let lost = calls < options.lose_first && signature_valid != Some(false);
        let acked = !self.is_dark()
            && (lost
                || (calls >= options.fail_first.saturating_add(options.lose_first)
                    && draw >= options.fail_rate
                    && signature_valid != Some(false)));
        log.push(Received {
            id: header("x-orderq-message-id").unwrap_or_default(),
            attempt: header("x-orderq-attempt")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
            idempotency_key: header("idempotency-key"),
            at_ms: now_ms(),
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
            acked,
            signature_valid,
        });
        let latency_ms = if lost {
            LOST_ANSWER_DELAY.as_millis() as u64
        } else {
            options.latency_ms
        };
        (log.len() - 1, acked, latency_ms)
    }

    /// What the calls so far say about the refund of `order_id`.
    fn refund_status(&self, order_id: &str) -> RefundStatus {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let mut status = RefundStatus::Unknown;
        for call in log.iter() {
            if order_of(call).as_deref() == Some(order_id) {
                if call.acked {
                    return RefundStatus::Refunded;
                }
                status = RefundStatus::Failed;
            }
        }
        status
    }
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    /// Where it listens.
    addr: SocketAddr,
    /// Its state.
    shared: Arc<Shared>,
    /// Stops the server.
    _stop: oneshot::Sender<()>,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1:`port` (0 picks a free port).
    pub async fn start(port: u16, options: ReceiverOptions) -> Result<Receiver> {
        let shared = Arc::new(Shared {
            options: Mutex::new(options),
            log: Mutex::new(Vec::new()),
            rng: Mutex::new(0x2545_f491_4f6c_dd1d),
            signing_secret: Mutex::new(None),
            dark: std::sync::atomic::AtomicBool::new(false),
        });
        let state = shared.clone();
        let route = warp::post()
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(move |headers: HeaderMap, body: bytes::Bytes| {
                let state = state.clone();
                async move {
                    let (index, acked, latency_ms) = state.answer(&headers, &body);
                    if latency_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
                    }
                    if state.is_dark() {
                        // Died mid-request: nothing done, no answer before the caller gives up.
                        state.unack(index);
                        tokio::time::sleep(LOST_ANSWER_DELAY).await;
                        return warp::reply::with_status("dead", StatusCode::SERVICE_UNAVAILABLE);
                    }
                    let status = if acked {
                        StatusCode::OK
                    } else {
                        StatusCode::INTERNAL_SERVER_ERROR
                    };
                    warp::reply::with_status(if acked { "ok" } else { "failed" }, status)
                }
            });
        let state = shared.clone();
        let status_route = warp::get()
            .and(warp::path("refunds"))
            .and(warp::path::param::<String>())
            .and(warp::path::end())
            .map(move |order_id: String| {
                let status = state.refund_status(&order_id);
                warp::reply::json(&serde_json::json!({"status": status.as_str()}))
            });
        let route = status_route.or(route);
        let (stop, stopped) = oneshot::channel::<()>();
        let (addr, server) = warp::serve(route)
            .try_bind_with_graceful_shutdown(([127, 0, 0, 1], port), async {
                let _ = stopped.await;
            })
            .map_err(|e| Error::Usage(format!("binding the receiver: {e}")))?;
        tokio::spawn(server);
        Ok(Receiver {
            addr,
            shared,
            _stop: stop,
        })
    }

    /// A receiver on a free port answering 2xx to every call at once: the webhook a test
    /// expects every delivery to reach.
    pub async fn acking() -> Result<Receiver> {
        Receiver::start(0, ReceiverOptions::default()).await
    }

    /// A receiver on a free port answering 500 to a `fail_rate` share of calls (0.0 to 1.0), at
    /// once: the webhook a test of retries, backoff and dead letters needs.
    pub async fn failing(fail_rate: f64) -> Result<Receiver> {
        Receiver::start(
            0,
            ReceiverOptions {
                fail_rate,
                ..ReceiverOptions::default()
            },
        )
        .await
    }

    /// The URL to subscribe with.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The base of the refund status lookup (`[payment] refund_status_url`): `GET
    /// {status_url}/{order id}`.
    pub fn status_url(&self) -> String {
        format!("http://{}/refunds", self.addr)
    }

    /// Changes how it answers from now on.
    pub fn set_options(&self, options: ReceiverOptions) {
        if let Ok(mut o) = self.shared.options.lock() {
            *o = options;
        }
    }

    /// The receiver dies: calls in flight and arriving are not acted on (logged unacknowledged)
    /// and get no answer before any caller's timeout, until [`Receiver::come_back`].
    pub fn go_dark(&self) {
        self.shared
            .dark
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The receiver is back: calls are answered as its options say.
    pub fn come_back(&self) {
        self.shared
            .dark
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// How it answers now.
    pub fn options(&self) -> ReceiverOptions {
        self.shared.options.lock().map(|o| *o).unwrap_or_default()
    }

    /// From now on, refuses (500) every call whose `X-Orderq-Signature` does not verify under
    /// `key`; `None` accepts calls unsigned again.
    pub fn require_signature(&self, key: Option<String>) {
        if let Ok(mut slot) = self.shared.signing_secret.lock() {
            *slot = key;
        }
    }

    /// Every call so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Ids of the messages answered 2xx at least once.
    pub fn acked_ids(&self) -> HashSet<String> {
        self.received()
            .into_iter()
            .filter(|r| r.acked)
            .map(|r| r.id)
            .collect()
    }

    /// Waits until at least `count` distinct messages were answered 2xx: deliveries are at
    /// least once, so this counts message ids, not calls.
    pub async fn wait_acked(&self, count: usize, limit: Duration) -> Result<()> {
        poll_until(
            &format!("{count} messages acknowledged by the receiver"),
            limit,
            || async {
                let acked = self.acked_ids().len();
                if acked >= count {
                    Ok(())
                } else {
                    Err(format!("{acked} acknowledged"))
                }
            },
        )
        .await
    }

    /// Waits until message `id` was answered 2xx.
    pub async fn wait_acked_id(&self, id: &str, limit: Duration) -> Result<()> {
        poll_until(
            &format!("message {id} acknowledged by the receiver"),
            limit,
            || async {
                if self.acked_ids().contains(id) {
                    Ok(())
                } else {
                    Err("not yet".to_owned())
                }
            },
        )
        .await
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
