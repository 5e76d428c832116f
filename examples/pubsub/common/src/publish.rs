//! Sending one message until the broker acknowledges it.

use std::time::Duration;

use rdkafka::{
    ClientContext,
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
};
use tracing::warn;

/// The pause before a message the broker did not take is sent again.
const RESEND_AFTER: Duration = Duration::from_secs(1);

/// Publishes `payload` to `topic` under `key`, sending it again after a failure
/// (broker down, topic gone) until it is acknowledged: nothing is dropped.
pub async fn until_acknowledged<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    topic: &str,
    key: &str,
    payload: &[u8],
) {
    loop {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        // Waits for room in the local queue, then for the broker's answer
        // (at most message.timeout.ms, see kafka::producer).
        match producer.send(record, Timeout::Never).await {
            Ok(_) => return,
            Err((error, _)) => {
                warn!(
                    "{key} not acknowledged by {topic} ({error}); sending it again in {} s",
                    RESEND_AFTER.as_secs()
                );
                tokio::time::sleep(RESEND_AFTER).await;
            }
        }
    }
}
