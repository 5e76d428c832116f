//! Kafka clients set up alike, and the wait for a topic that the `topics` Job
//! may not have made yet on a broker that may not be up yet.

use std::time::Duration;

use rdkafka::{
    ClientConfig, ClientContext,
    client::Client,
    config::RDKafkaLogLevel,
    consumer::ConsumerContext,
    error::{KafkaError, KafkaResult, RDKafkaErrorCode},
    producer::FutureProducer,
};
use tracing::{debug, info, warn};

/// How long one metadata or offsets request may take before it counts as "no answer".
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause between two looks at a missing broker or topic.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// How many looks at an unchanged "not yet" go unreported (about 30 s).
const REPORT_EVERY: u32 = 15;

/// The settings every client here shares.
pub fn client_config(bootstrap: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        // A topic made after the client started is seen within seconds (the
        // default looks every 5 minutes), and so is a consumer's partition set.
        .set("topic.metadata.refresh.interval.ms", "2000")
        // A restarted broker is found again within seconds.
        .set("reconnect.backoff.max.ms", "2000")
        .set("socket.connection.setup.timeout.ms", "5000");
    // librdkafka's own tracing, for example KAFKA_DEBUG=cgrp,broker (its lines
    // are logged at debug level: RUST_LOG=debug).
    if let Some(contexts) = std::env::var("KAFKA_DEBUG").ok().filter(|v| !v.is_empty()) {
        config.set("debug", contexts);
    }
    config
}

/// A producer that waits for every replica (`acks=all`) and never writes a
/// message twice on its own retries (idempotence).
pub fn producer(bootstrap: &str, client_id: &str) -> KafkaResult<FutureProducer<Quiet>> {
    client_config(bootstrap, client_id)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // A message that cannot be delivered (no broker, no topic) fails in
        // seconds, so the caller can say so and send it again; the default
        // is silent for 5 minutes.
        .set("message.timeout.ms", "10000")
        .set("linger.ms", "5")
        .create_with_context(Quiet)
}

/// librdkafka's own log lines at debug level, and its connection errors too:
/// a broker that is not up yet is reported once, in words, by [`wait_for_topic`]
/// and the callers' retries, not every second by the library.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        library_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        library_error(&error, reason);
    }
}

/// For the clients that read offsets without joining a group.
impl ConsumerContext for Quiet {}

/// [`Quiet`]'s `log`, for other contexts to share.
pub fn library_log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    debug!(?level, "librdkafka {fac}: {message}");
}

/// [`Quiet`]'s `error`, for other contexts to share.
pub fn library_error(error: &KafkaError, reason: &str) {
    match error.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::Resolve,
        ) => debug!("kafka: {reason}"),
        _ => warn!("kafka: {reason}"),
    }
}

/// Why a topic cannot be used yet.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("the broker is not answering ({0})")]
    Broker(KafkaError),
    #[error("topic {0} does not exist yet (the `topics` Job makes it)")]
    Topic(String),
    #[error("topic {topic} cannot be used: {code}")]
    Other {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// The partition ids of `topic`, asked of the broker now (blocking, at most
/// [`REQUEST_TIMEOUT`]).
pub fn partitions<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
) -> Result<Vec<i32>, Unavailable> {
    let metadata = client
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(Unavailable::Broker)?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(Unavailable::Topic(topic.to_owned()));
    };
    match found.error().map(RDKafkaErrorCode::from) {
        None if !found.partitions().is_empty() => {
            Ok(found.partitions().iter().map(|p| p.id()).collect())
        }
        None | Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            Err(Unavailable::Topic(topic.to_owned()))
        }
        Some(code) => Err(Unavailable::Other {
            topic: topic.to_owned(),
            code,
        }),
    }
}

/// Waits until `topic` exists on the broker, saying what it waits for when
/// that changes (and every half minute), and returns its partition count.
pub async fn wait_for_topic<C: ClientContext>(client: &Client<C>, topic: &str) -> usize {
    let mut last: Option<String> = None;
    let mut unreported = 0;
    loop {
        // The metadata call blocks; let the runtime move other tasks off this thread.
        match tokio::task::block_in_place(|| partitions(client, topic)) {
            Ok(ids) => {
                if last.is_some() {
                    info!("topic {topic} is there, with {} partitions", ids.len());
                }
                return ids.len();
            }
            Err(why) => {
                let why = why.to_string();
                if last.as_ref() != Some(&why) || unreported >= REPORT_EVERY {
                    info!("waiting: {why}");
                    unreported = 0;
                } else {
                    unreported += 1;
                }
                last = Some(why);
            }
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}
