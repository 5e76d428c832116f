//! What the pubsub example's programs share: the topics and their messages,
//! configuration from the environment, and Kafka clients set up alike.
//!
//! rdkafka is re-exported so the version and its features are chosen in one place.

pub mod config;
pub mod kafka;
pub mod logging;
pub mod message;
pub mod publish;
pub mod shutdown;
pub mod trouble;

pub use rdkafka;

/// Orders the patients publish, keyed by order id.
pub const ORDERS_TOPIC: &str = "tabs.orders";
/// Deliveries the medicine workers publish, keyed by the order's id.
pub const DELIVERIES_TOPIC: &str = "tabs.deliveries";
