//! Runs an [`EventHandler`] on its queue, on every instance (competing consumers), for ever:
//! (re)connects, declares its topology, consumes with a prefetch window, and settles each
//! delivery after the handler's effect:
//!
//! - `Ok` → ack.
//! - `Retry` before the last attempt → the message is republished (confirmed) to the consumer's
//!   retry queue with a per-message TTL of the backoff (`retry_base · 2^(attempt-1)`, capped) and
//!   `x-aries-attempt + 1`; when the TTL runs out the broker dead-letters it back to the work queue.
//!   Then the original is acked. (Per-message TTLs expire at the head of the retry queue only, so a
//!   short backoff may wait behind a longer one: backoff is a lower bound.)
//! - `Retry` on the last attempt, `Reject`, or a body that is not an envelope → published
//!   (confirmed) to the dead-letter exchange with the queue, the error and the attempts in headers,
//!   then acked; the archiver moves it into the catalog, where the operator can replay it.
//!
//! A republish that fails leaves the delivery unacked: the broker redelivers it after the
//! connection is back (at least once; handlers deduplicate by event id).

use super::broker::{
    self, Broker, H_ATTEMPT, H_ERROR, H_QUEUE, H_ROUTING_KEY, header_text, header_u32, headers_with,
};
use super::{Delivery, Envelope, EventHandler, HandleError};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use std::sync::Arc;
use std::time::Duration;

/// Retry policy and flow control of consumers.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerConfig {
    /// Attempts before a message is dead-lettered (1 = no retry).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles each time.
    pub retry_base: Duration,
    /// Longest backoff.
    pub retry_max: Duration,
    /// Deliveries in flight per consumer per instance (handled concurrently).
    pub prefetch: u16,
}

impl ConsumerConfig {
    /// Backoff after attempt `attempt` (1-based) failed.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.retry_base.saturating_mul(factor).min(self.retry_max)
    }
}

/// Starts `handler` on this instance; it runs until the process ends.
pub fn spawn(
    broker: Broker,
    handler: Arc<dyn EventHandler>,
    config: ConsumerConfig,
    instance: String,
) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            match consume(&broker, &handler, config, &instance).await {
                Ok(()) => {
                    tracing::info!(
                        consumer = handler.name(),
                        "consumer stream ended; reconnecting"
                    );
                    backoff = Duration::from_millis(200);
                }
                Err(e) => {
                    tracing::warn!(consumer = handler.name(), error = %e, "consumer stopped; reconnecting");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(crate::links::MAX_BACKOFF);
        }
    });
}

async fn consume(
    broker: &Broker,
    handler: &Arc<dyn EventHandler>,
    config: ConsumerConfig,
    instance: &str,
) -> Result<(), lapin::Error> {
    let conn = broker.wait_connection().await;
    let names = &broker.names;
    let ch = conn.create_channel().await?;
    names
        .declare_consumer(
            &ch,
            handler.name(),
            &handler.bindings(),
            handler.max_priority(),
        )
        .await?;
    ch.basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let publish = conn.create_channel().await?;
    publish
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await?;
    let queue = names.work_queue(handler.name());
    let mut consumer = ch
        .basic_consume(
            queue.as_str().into(),
            format!("{queue}.{instance}").into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            next = consumer.next(), if in_flight.len() < usize::from(config.prefetch.max(1)) => {
                match next {
                    Some(Ok(delivery)) => in_flight.push(settle(delivery, handler.as_ref(), &publish, broker, &queue, config)),
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                }
            }
            Some(done) = in_flight.next(), if !in_flight.is_empty() => done?,
        }
    }
}

/// Runs the handler on one delivery and settles it.
async fn settle(
    delivery: lapin::message::Delivery,
    handler: &dyn EventHandler,
    publish: &Channel,
    broker: &Broker,
    queue: &str,
    config: ConsumerConfig,
) -> Result<(), lapin::Error> {
    let attempt = header_u32(&delivery.properties, H_ATTEMPT)
        .unwrap_or(1)
        .max(1);
    let final_attempt = attempt >= config.max_attempts;
    let outcome = match serde_json::from_slice::<Envelope>(&delivery.data) {
        Err(e) => Err(HandleError::Reject(format!("not an event envelope: {e}"))),
        Ok(envelope) => {
            let d = Delivery {
                envelope,
                body: delivery.data.clone(),
                attempt,
                final_attempt,
            };
            handler.handle(&d).await
        }
    };
    let name = handler.name();
    let routing_key = header_text(&delivery.properties, H_ROUTING_KEY)
        .unwrap_or_else(|| delivery.routing_key.as_str().to_owned());
    let republished = match &outcome {
        Ok(()) => {
            metrics::counter!("aries_events_handled_total", "consumer" => name, "outcome" => "ok")
                .increment(1);
            Ok(())
        }
        Err(HandleError::Retry(why)) if !final_attempt => {
            metrics::counter!("aries_events_handled_total", "consumer" => name, "outcome" => "retry")
                .increment(1);
            tracing::info!(consumer = name, attempt, error = %why, "event handling failed; will retry");
            let backoff = config.backoff(attempt);
            let props = copy_properties(
                &delivery.properties,
                headers_with(
                    &delivery.properties,
                    &[
                        (H_ATTEMPT, AMQPValue::LongUInt(attempt + 1)),
                        (H_ROUTING_KEY, broker::text(&routing_key)),
                        (H_ERROR, broker::text(why)),
                    ],
                ),
            )
            .with_expiration(backoff.as_millis().to_string().into());
            broker::publish_confirmed(
                publish,
                "",
                broker.names.retry_queue(name).into(),
                &delivery.data,
                props,
            )
            .await
        }
        Err(HandleError::Retry(why) | HandleError::Reject(why)) => {
            metrics::counter!("aries_events_handled_total", "consumer" => name, "outcome" => "dead")
                .increment(1);
            tracing::warn!(consumer = name, attempt, error = %why, "event dead-lettered");
            let props = copy_properties(
                &delivery.properties,
                headers_with(
                    &delivery.properties,
                    &[
                        (H_ATTEMPT, AMQPValue::LongUInt(attempt)),
                        (H_ROUTING_KEY, broker::text(&routing_key)),
                        (H_QUEUE, broker::text(queue)),
                        (H_ERROR, broker::text(why)),
                    ],
                ),
            );
            broker::publish_confirmed(
                publish,
                &broker.names.dead_letter_exchange(),
                routing_key.as_str().into(),
                &delivery.data,
                props,
            )
            .await
        }
    };
    match republished {
        Ok(()) => {
            delivery.ack(BasicAckOptions::default()).await?;
            Ok(())
        }
        Err(e) => {
            // Not acked: redelivered once the connection is back.
            tracing::warn!(consumer = name, error = %e, "could not republish a failed event; left unacked");
            Err(match e {
                broker::BrokerError::Amqp(e) => e,
                other => lapin::Error::from(std::io::Error::other(other.to_string())),
            })
        }
    }
}

/// The message's own properties (id, type, priority, content type, timestamp), persistent, with
/// `headers`; no expiration.
fn copy_properties(p: &BasicProperties, headers: FieldTable) -> BasicProperties {
    let message_id = p
        .message_id()
        .as_ref()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    let mut out = broker::event_properties(
        &message_id,
        p.kind().as_ref().map(|s| s.as_str()),
        *p.priority(),
        headers,
    );
    if let Some(ts) = p.timestamp() {
        out = out.with_timestamp(*ts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = ConsumerConfig {
            max_attempts: 8,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            prefetch: 4,
        };
        let got: Vec<u64> = (1..=8).map(|a| c.backoff(a).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(60));
    }
}
