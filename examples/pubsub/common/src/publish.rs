//! Sending one message until the broker acknowledges it.

use std::time::Duration;

use rdkafka::{
    ClientContext,
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
};
use tracing::{info, warn};

use crate::trouble::{self, Trouble};

/// The pause before a message the broker did not take is sent again.
const RESEND_AFTER: Duration = Duration::from_secs(1);

/// Publishes `payload` to `topic` under `key`, sending it again after a failure
/// (broker down, topic gone) until it is acknowledged: nothing is dropped.
/// `trouble` carries what was said from one message to the next.
pub async fn until_acknowledged<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    trouble: &mut Trouble,
    topic: &str,
    key: &str,
    payload: &[u8],
) {
    loop {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        // Waits for room in the local queue, then for the broker's answer
        // (at most message.timeout.ms, see kafka::producer).
        match producer.send(record, Timeout::Never).await {
            Ok(_) => {
                if trouble.over() {
                    info!("{topic} takes messages again");
                }
                return;
            }
            Err((error, _)) => {
                let what = trouble::describe(&error, topic);
                if trouble.news(&what) {
                    warn!(
                        "{key} not acknowledged: {what}; sending it again every {} s",
                        RESEND_AFTER.as_secs()
                    );
                }
                tokio::time::sleep(RESEND_AFTER).await;
            }
        }
    }
}
