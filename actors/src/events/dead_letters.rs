//! The dead-letter archiver and replay. Consumers publish what they give up on to `<ns>.dlx`
//! (→ queue `<ns>.dead`); the archiver, running on every instance as a competing consumer, stores
//! each message in the catalog (`dead_letter`, upsert by queue and message id) and acks it only
//! then. The operator lists them through the API and replays one: its body goes back, confirmed,
//! to the work queue it died in (not to the exchange, so other consumers are not bothered again),
//! as a first attempt.

use super::broker::{
    self, Broker, BrokerError, H_ATTEMPT, H_ERROR, H_QUEUE, H_REPLAYS, H_ROUTING_KEY, H_TENANT,
    header_text, header_u32,
};
use aries_shards::dead_letters::{self, DeadLetter, NewDeadLetter};
use futures::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// Starts the archiver on this instance; it runs until the process ends.
pub fn spawn_archiver(broker: Broker, catalog: PgPool, instance: String) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = archive(&broker, &catalog, &instance).await {
                tracing::warn!(error = %e, "dead-letter archiver stopped; reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

async fn archive(broker: &Broker, catalog: &PgPool, instance: &str) -> Result<(), lapin::Error> {
    let conn = broker.wait_connection().await;
    let ch = conn.create_channel().await?;
    broker.names.declare_dead_letters(&ch).await?;
    ch.basic_qos(16, BasicQosOptions::default()).await?;
    let queue = broker.names.dead_letter_queue();
    let mut consumer = ch
        .basic_consume(
            queue.as_str().into(),
            format!("{queue}.{instance}").into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let p = &delivery.properties;
        let headers = p
            .headers()
            .as_ref()
            .and_then(|h| serde_json::to_value(h.inner()).ok())
            .unwrap_or(serde_json::Value::Null);
        let record = NewDeadLetter {
            queue: header_text(p, H_QUEUE).unwrap_or_else(|| "unknown".into()),
            message_id: p
                .message_id()
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|| format!("unidentified-{}", Uuid::now_v7())),
            routing_key: header_text(p, H_ROUTING_KEY)
                .unwrap_or_else(|| delivery.routing_key.as_str().to_owned()),
            event_type: p.kind().as_ref().map(|s| s.as_str().to_owned()),
            tenant: header_text(p, H_TENANT),
            body: delivery.data.clone(),
            headers,
            error: header_text(p, H_ERROR).unwrap_or_else(|| "rejected".into()),
            attempts: header_u32(p, H_ATTEMPT)
                .and_then(|a| i32::try_from(a).ok())
                .unwrap_or(1),
        };
        match dead_letters::archive(catalog, &record).await {
            Ok(()) => {
                metrics::counter!("aries_dead_letters_total").increment(1);
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Err(e) => {
                tracing::warn!(error = %e, "dead letter not archived (catalog); requeued");
                tokio::time::sleep(Duration::from_secs(1)).await;
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await?;
            }
        }
    }
    Ok(())
}

/// Why a replay did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no such dead letter")]
    NotFound,
    #[error("the dead letter was replayed already")]
    AlreadyReplayed,
    #[error("catalog: {0}")]
    Catalog(#[from] sqlx::Error),
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
}

/// Sends a dead letter back to its work queue, confirmed. It is marked replayed first (so two
/// operators replaying at once send it once, and a message that dies again at once is recorded as
/// dead again, not overwritten by a late mark); a publish that fails marks it dead again.
pub async fn replay(
    broker: &Broker,
    catalog: &PgPool,
    id: Uuid,
    by: &aries_tenants::audit::AuditActor,
) -> Result<DeadLetter, ReplayError> {
    let Some(letter) = dead_letters::mark_replayed(catalog, id, by).await? else {
        return Err(match dead_letters::get(catalog, id).await? {
            None => ReplayError::NotFound,
            Some(_) => ReplayError::AlreadyReplayed,
        });
    };
    let body = dead_letters::body(catalog, id)
        .await?
        .ok_or(ReplayError::NotFound)?;
    let mut headers = FieldTable::default();
    headers.insert(H_ATTEMPT.into(), AMQPValue::LongUInt(1));
    headers.insert(H_ROUTING_KEY.into(), broker::text(&letter.routing_key));
    headers.insert(H_REPLAYS.into(), AMQPValue::LongInt(letter.replays));
    if let Some(t) = &letter.tenant {
        headers.insert(H_TENANT.into(), broker::text(t));
    }
    let props = broker::event_properties(
        &letter.message_id,
        letter.event_type.as_deref(),
        None,
        headers,
    );
    let sent = async {
        let ch = broker.confirm_channel().await?;
        let sent =
            broker::publish_confirmed(&ch, "", letter.queue.as_str().into(), &body, props).await;
        let _ = ch.close(200, "done".into()).await;
        sent
    }
    .await;
    if let Err(e) = sent {
        dead_letters::unmark_replayed(catalog, id).await?;
        return Err(e.into());
    }
    Ok(letter)
}
