//! The worker: one member of group `medicine`. For each order it works
//! WORK_MS, publishes the delivery, waits for the broker's ack, and only then
//! commits the order's offset. A worker killed at any point loses no order:
//! the next owner of the partition starts after the last commit (so an order
//! may be delivered twice, never not at all).

use std::time::Duration;

use anyhow::Context;
use pubsub_common::{
    DELIVERIES_TOPIC, ORDERS_TOPIC, kafka,
    message::{self, Delivery, Order},
    publish,
    rdkafka::{
        ClientContext, Message,
        consumer::{CommitMode, Consumer, StreamConsumer},
        error::{KafkaError, RDKafkaErrorCode},
        message::BorrowedMessage,
        producer::{FutureProducer, Producer},
    },
    shutdown,
    trouble::{self, Trouble},
};
use tracing::{info, warn};

use crate::{GROUP, context};

pub struct Settings {
    pub bootstrap: String,
    /// This worker's name, in its deliveries and as its client id.
    pub worker: String,
    /// How long one order takes.
    pub work: Duration,
}

/// Works orders until SIGTERM, then commits and leaves the group.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let Settings {
        bootstrap,
        worker,
        work,
    } = settings;
    let producer = kafka::producer(&bootstrap, &worker).context("cannot make the producer")?;
    info!(
        "worker {worker}: group {GROUP} on {ORDERS_TOPIC} at {bootstrap}, {} ms per order",
        work.as_millis()
    );

    let stop = shutdown::requested();
    tokio::pin!(stop);
    // Asked through the producer: a consumer made now would queue an error
    // for every failed connection, to be read (and reported) later as news.
    tokio::select! {
        _ = kafka::wait_for_topic(producer.client(), ORDERS_TOPIC) => {}
        _ = &mut stop => return Ok(()),
    }
    let consumer: StreamConsumer<context::Worker> = kafka::client_config(&bootstrap, &worker)
        .set("group.id", GROUP)
        // Committed by hand, after the delivery is acknowledged.
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // A worker killed outright hands its partitions on after 10 s, not 45.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "2000")
        // Orders fetched ahead, per partition: a few MB, not the default 64, in a
        // pod limited to 64 MiB.
        .set("queued.max.messages.kbytes", "2048")
        .create_with_context(context::Worker)
        .context("cannot make the consumer")?;
    consumer
        .subscribe(&[ORDERS_TOPIC])
        .context("cannot subscribe")?;

    // What the consumer said went wrong, and what the delivery producer did.
    let mut reading = Trouble::default();
    let mut delivering = Trouble::default();
    loop {
        let next = tokio::select! {
            next = consumer.recv() => next,
            _ = &mut stop => break,
        };
        match next {
            Ok(order) => {
                if reading.over() {
                    info!("orders are flowing again");
                }
                tokio::select! {
                    _ = handle(&consumer, &producer, &mut delivering, &worker, work, &order) => {}
                    // Uncommitted: the partition's next owner works it again.
                    _ = &mut stop => break,
                }
            }
            // Reports, not failures: librdkafka reconnects and rejoins by
            // itself. Read at once, too: a rebalance waits behind them.
            Err(error) => {
                let what = trouble::describe(&error, ORDERS_TOPIC);
                if reading.news(&what) {
                    warn!("cannot read orders: {what}; waiting");
                }
            }
        }
    }

    info!("worker {worker}: stopping, leaving group {GROUP}");
    // Everything read so far has been delivered: commit it all, then leave, so
    // the partitions move to the other workers now rather than after the session timeout.
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => warn!("last commit failed ({error}): some orders may be worked again"),
    }
    consumer.unsubscribe();
    Ok(())
}

/// Works one order: the delivery first, then the commit.
async fn handle<C: ClientContext + 'static>(
    consumer: &StreamConsumer<context::Worker>,
    producer: &FutureProducer<C>,
    trouble: &mut Trouble,
    worker: &str,
    work: Duration,
    message: &BorrowedMessage<'_>,
) {
    match message::decode::<Order>(message.payload()) {
        Ok(order) => {
            tokio::time::sleep(work).await;
            let delivery = Delivery {
                order: order.id.clone(),
                worker: worker.to_owned(),
            };
            publish::until_acknowledged(
                producer,
                trouble,
                DELIVERIES_TOPIC,
                &order.id,
                &message::encode(&delivery),
            )
            .await;
            commit(consumer, message);
            info!("delivered {}", order.id);
        }
        Err(error) => {
            // Not an order: working it again would fail again, so step over it.
            warn!(
                "skipping the message at partition {} offset {}: {error}",
                message.partition(),
                message.offset()
            );
            commit(consumer, message);
        }
    }
}

/// Commits past `message`. Asynchronous: the broker's answer comes to
/// [`context::Worker::commit_callback`], and a later commit covers a lost one.
fn commit(consumer: &StreamConsumer<context::Worker>, message: &BorrowedMessage<'_>) {
    if let Err(error) = consumer.commit_message(message, CommitMode::Async) {
        warn!(
            "cannot commit partition {} offset {} ({error}): it may be worked again",
            message.partition(),
            message.offset()
        );
    }
}
