//! What the worker's consumer reports: rebalances and failed commits, in words.

use pubsub_common::{
    ORDERS_TOPIC, kafka,
    rdkafka::{
        ClientContext, TopicPartitionList,
        config::RDKafkaLogLevel,
        consumer::{BaseConsumer, ConsumerContext, Rebalance},
        error::{KafkaError, KafkaResult},
    },
};
use tracing::{info, warn};

/// The worker consumer's context: librdkafka's chatter as in [`kafka::Quiet`],
/// the group's decisions at info level.
pub struct Worker;

impl ClientContext for Worker {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        kafka::library_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        kafka::library_error(&error, reason);
    }
}

impl ConsumerContext for Worker {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let parts = partitions(list);
                if parts.is_empty() {
                    info!(
                        "rebalanced: no partition of {ORDERS_TOPIC} for this worker (the others have them all)"
                    );
                } else {
                    info!(
                        "rebalanced: working on partitions {} of {ORDERS_TOPIC}",
                        describe(&parts)
                    );
                }
            }
            Rebalance::Revoke(list) => info!(
                "rebalancing: partitions {} handed back to the group",
                describe(&partitions(list))
            ),
            Rebalance::Error(error) => warn!("rebalance failed: {error}"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(error) = result {
            warn!(
                "commit on partitions {} failed ({error}): their last orders will be worked again",
                describe(&partitions(offsets))
            );
        }
    }
}

/// The partition ids in `list`, sorted.
fn partitions(list: &TopicPartitionList) -> Vec<i32> {
    let mut ids: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
    ids.sort_unstable();
    ids
}

/// `0, 1, 3`, or `none`.
fn describe(partitions: &[i32]) -> String {
    if partitions.is_empty() {
        return "none".to_owned();
    }
    partitions
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_read_as_a_list() {
        assert_eq!(describe(&[0, 1, 3]), "0, 1, 3");
        assert_eq!(describe(&[]), "none");
    }
}
