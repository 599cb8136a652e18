//! This instance's own event queue: every event of every tenant reaches every instance here (a
//! fan-out, unlike the competing work queues), for what each instance derives locally from the
//! events: its response-cache tier, its live-dashboard sockets.
//!
//! The queue is exclusive and auto-deleted: it exists while this instance's connection does. After
//! a broker restart it is declared again, and events published while it was gone never reach it;
//! so on every (re)start each sink's `on_reset` runs once the queue is consuming again, and must
//! drop what it derived (a cache tier clears itself; a dashboard re-sends its snapshot).
//! Deliveries are auto-acked: nothing here is a durable effect.

use super::Envelope;
use super::broker::Broker;
use futures::StreamExt as _;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use std::sync::Arc;
use std::time::Duration;

/// What the instance queue feeds.
pub trait InstanceSink: Send + Sync + 'static {
    /// An event of some tenant, committed on some instance (this one included).
    fn on_event(&self, event: &Envelope);
    /// The queue was (re)created: events may have been missed.
    fn on_reset(&self);
}

/// Starts consuming this instance's queue into `sinks`; runs until the process ends.
pub fn spawn(broker: Broker, instance: String, sinks: Vec<Arc<dyn InstanceSink>>) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = run(&broker, &instance, &sinks).await {
                tracing::warn!(error = %e, "instance event queue stopped; reconnecting");
            }
            for sink in &sinks {
                sink.on_reset();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

async fn run(
    broker: &Broker,
    instance: &str,
    sinks: &[Arc<dyn InstanceSink>],
) -> Result<(), lapin::Error> {
    let conn = broker.wait_connection().await;
    let ch = conn.create_channel().await?;
    let queue = broker.names.declare_instance(&ch, instance).await?;
    let mut consumer = ch
        .basic_consume(
            queue.as_str().into(),
            queue.as_str().into(),
            BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    // Consuming: from here on nothing is missed, so drop what may be stale from before.
    for sink in sinks {
        sink.on_reset();
    }
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        match serde_json::from_slice::<Envelope>(&delivery.data) {
            Ok(event) => {
                for sink in sinks {
                    sink.on_event(&event);
                }
            }
            Err(e) => tracing::warn!(error = %e, "instance queue: not an event envelope; skipped"),
        }
    }
    Ok(())
}
