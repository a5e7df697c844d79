//! The order wing: SKUs and stock, the order life cycle, per-user limits, the flash sale, the
//! order's events, and refunds as an order concern.
//!
//! It publishes its events into the queue wing (orders → queue, never the other way); the
//! refund group's outcomes come back through the queue's [`crate::queue::SettleHook`], which
//! [`refund::RefundHook`] implements.
//!
//! # Layout
//! - Records (plain data, importing nothing of the wing): [`record`] (an order, its lines, state
//!   and close reason), [`sku`] (a SKU's stock).
//! - [`stock`]: loading and changing SKUs; moving an order's units between available, reserved
//!   and sold.
//! - [`lifecycle`]: placing, paying, cancelling and closing orders.
//! - [`user_limit`]: per-user holdings of a SKU against its limit.
//! - [`seckill`]: the flash sale's one-unit purchase.
//! - [`event`]: the life cycle's messages and the order's JSON shape (`OrderView`), which the API
//!   answers and every event carries — one shape, defined here.
//! - [`refund`]: refunds through the payment provider's built-in push group.
//! - [`reserved_topics`]: topics only `apply` writes (`order.*`, built-in groups' topics).
//! - [`sold_out`]: the node's in-memory set of SKUs with nothing available.

mod event;
pub(crate) mod lifecycle;
pub(crate) mod record;
pub(crate) mod refund;
mod reserved_topics;
pub(crate) mod seckill;
pub(crate) mod sku;
mod sold_out;
pub(crate) mod stock;
mod user_limit;

pub use event::{
    order_json, rfc3339, OrderView, CLOSED, CREATED, PAID, REFUNDED, REFUND_FAILED,
    REFUND_REQUESTED,
};
pub use lifecycle::MAX_ORDER_LINES;
pub use record::{CloseReason, Order, OrderItem, OrderState};
pub use refund::REFUND_GROUP;
pub use reserved_topics::{is_built_in_group, is_reserved};
pub use sku::Sku;
pub use sold_out::SoldOut;
