//! `medicine lag`: how far group `medicine` is behind on tabs.orders.

use pubsub_common::{
    ORDERS_TOPIC, config,
    kafka::{self, Quiet, REQUEST_TIMEOUT},
    rdkafka::{
        Offset, TopicPartitionList,
        consumer::{BaseConsumer, Consumer},
    },
};

use crate::GROUP;

/// One partition's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub partition: i32,
    /// The group's committed offset: the next order it will work. `None`
    /// before its first commit there.
    pub committed: Option<i64>,
    /// The oldest offset still kept, where a group without a commit starts.
    pub start: i64,
    /// The end offset (high watermark): the next order to be published.
    pub end: i64,
}

impl Row {
    /// Orders published but not yet worked (and committed).
    pub fn lag(&self) -> i64 {
        (self.end - self.committed.unwrap_or(self.start)).max(0)
    }
}

/// Asks the broker for every partition of tabs.orders (blocking).
pub fn query(bootstrap: &str) -> anyhow::Result<Vec<Row>> {
    // A consumer of the group that never subscribes: it reads the group's
    // offsets without joining it, so the workers are not rebalanced.
    let consumer: BaseConsumer<Quiet> = kafka::client_config(bootstrap, &config::pod_name())
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create_with_context(Quiet)?;
    let ids = kafka::partitions(consumer.client(), ORDERS_TOPIC)?;
    let mut wanted = TopicPartitionList::new();
    for &id in &ids {
        wanted.add_partition(ORDERS_TOPIC, id);
    }
    let committed = consumer.committed_offsets(wanted, REQUEST_TIMEOUT)?;
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        let (start, end) = consumer.fetch_watermarks(ORDERS_TOPIC, id, REQUEST_TIMEOUT)?;
        let committed = match committed
            .find_partition(ORDERS_TOPIC, id)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(n)) => Some(n),
            _ => None,
        };
        rows.push(Row {
            partition: id,
            committed,
            start,
            end,
        });
    }
    rows.sort_by_key(|r| r.partition);
    Ok(rows)
}

/// The table `medicine lag` prints: a header, one line per partition, the total.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:>9}  {:>9}  {:>9}  {:>9}\n",
        "partition", "committed", "end", "lag"
    );
    for row in rows {
        let committed = row
            .committed
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        out.push_str(&format!(
            "{:>9}  {:>9}  {:>9}  {:>9}\n",
            row.partition,
            committed,
            row.end,
            row.lag()
        ));
    }
    let total: i64 = rows.iter().map(Row::lag).sum();
    out.push_str(&format!("total lag {total}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(partition: i32, committed: Option<i64>, start: i64, end: i64) -> Row {
        Row {
            partition,
            committed,
            start,
            end,
        }
    }

    #[test]
    fn lag_counts_from_the_commit_or_else_from_the_oldest_kept_order() {
        assert_eq!(row(0, Some(10), 0, 15).lag(), 5);
        assert_eq!(row(0, None, 3, 15).lag(), 12);
        assert_eq!(row(0, None, 0, 0).lag(), 0);
    }

    #[test]
    fn a_commit_past_a_truncated_end_is_no_lag() {
        assert_eq!(row(0, Some(20), 0, 15).lag(), 0);
    }

    #[test]
    fn the_table_has_a_row_per_partition_and_the_total() {
        let rows = [row(0, Some(12), 0, 15), row(1, None, 0, 4)];
        assert_eq!(
            table(&rows),
            concat!(
                "partition  committed        end        lag\n",
                "        0         12         15          3\n",
                "        1          -          4          4\n",
                "total lag 7\n",
            )
        );
    }

    #[test]
    fn no_partitions_is_no_lag() {
        assert!(table(&[]).ends_with("total lag 0\n"));
    }
}
