//! `medicine flowing --min N`: have at least N deliveries been published?

use pubsub_common::{
    DELIVERIES_TOPIC, config,
    kafka::{self, Quiet, REQUEST_TIMEOUT},
    rdkafka::consumer::{BaseConsumer, Consumer},
};

/// The number of messages ever published to tabs.deliveries: the sum of its
/// partitions' high watermarks (blocking).
pub fn deliveries(bootstrap: &str) -> anyhow::Result<i64> {
    let consumer: BaseConsumer<Quiet> =
        kafka::client_config(bootstrap, &config::pod_name()).create_with_context(Quiet)?;
    let mut total = 0;
    for id in kafka::partitions(consumer.client(), DELIVERIES_TOPIC)? {
        let (_, end) = consumer.fetch_watermarks(DELIVERIES_TOPIC, id, REQUEST_TIMEOUT)?;
        total += end;
    }
    Ok(total)
}

/// The line to print, as `Ok` when `count` reaches `min`.
pub fn verdict(count: i64, min: i64) -> Result<String, String> {
    if count >= min {
        Ok(format!("{count} deliveries (at least {min})"))
    } else {
        Err(format!("{count} of {min} deliveries so far"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_deliveries_pass() {
        assert_eq!(
            verdict(12, 10),
            Ok("12 deliveries (at least 10)".to_owned())
        );
        assert!(verdict(10, 10).is_ok());
    }

    #[test]
    fn too_few_say_how_many_so_far() {
        assert_eq!(verdict(3, 10), Err("3 of 10 deliveries so far".to_owned()));
    }
}
