//! A patient: publishes an order to `tabs.orders` every `ORDER_INTERVAL_MS`
//! and logs `ordered <id>` once the broker has it (all replicas, acks=all).
//!
//!   KAFKA_BOOTSTRAP     kafka-0.kafka.pubsub:9092
//!   POD_NAME            names the patient and its orders (the downward API sets it)
//!   ORDER_INTERVAL_MS   200

use pubsub_common::{
    ORDERS_TOPIC, config, kafka, logging,
    message::{self, Order},
    publish,
    rdkafka::producer::Producer,
    shutdown,
    trouble::Trouble,
};
use tokio::time::{self, MissedTickBehavior};
use tracing::info;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    logging::init();
    let bootstrap = config::bootstrap();
    let patient = config::pod_name();
    let interval = config::millis("ORDER_INTERVAL_MS", 200)?;
    let producer = kafka::producer(&bootstrap, &patient)?;
    info!(
        "patient {patient}: an order every {} ms to {ORDERS_TOPIC} on {bootstrap}",
        interval.as_millis()
    );

    let stop = shutdown::requested();
    tokio::pin!(stop);
    tokio::select! {
        _ = kafka::wait_for_topic(producer.client(), ORDERS_TOPIC) => {}
        _ = &mut stop => return Ok(()),
    }

    let mut trouble = Trouble::default();
    let mut ticker = time::interval(interval);
    // After a slow delivery, keep the pace from then on instead of catching up in a burst.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for seq in 1.. {
        let order = Order::new(&patient, seq);
        let payload = message::encode(&order);
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut stop => break,
        }
        tokio::select! {
            _ = publish::until_acknowledged(&producer, &mut trouble, ORDERS_TOPIC, &order.id, &payload) => {
                info!("ordered {}", order.id);
            }
            _ = &mut stop => break,
        }
    }
    info!("patient {patient}: stopping");
    Ok(())
}
